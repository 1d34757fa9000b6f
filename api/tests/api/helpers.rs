//! `TestApp`: the API on a random port over its own database — a fresh SQLite
//! file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set — with
//! a clock the test moves and typed request helpers.

use std::sync::Arc;
use std::time::Duration;

use locker_api::Application;
use locker_api::state::AppState;
use locker_core::clock::ManualClock;
use locker_core::config::{ApiConfig, Env, Profile};
use locker_core::{Clock, SystemClock};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ACCESS_SECRET: &str = "test-access-secret-that-is-long-enough-0001";
pub const REFRESH_SECRET: &str = "test-refresh-secret-that-is-long-enough-0002";
pub const ADMIN_EMAIL: &str = "root@lockers.test";
pub const ADMIN_PASSWORD: &str = "root-password-1";
pub const PASSWORD: &str = "StrongPassword@123";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    _db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let db = TestDb::create().await;
        let pairs = [
            ("DATABASE_URL", db.url.as_str()),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("ACCESS_SECRET_KEY", ACCESS_SECRET),
            ("REFRESH_SECRET_KEY", REFRESH_SECRET),
            ("ADMIN_EMAIL", ADMIN_EMAIL),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ];
        let config =
            ApiConfig::load(&Env::from_pairs(pairs), Profile::Production).expect("test config");
        let clock = ManualClock::new(SystemClock.now_millis());
        let app = Application::build(&config, Arc::new(clock.clone()))
            .await
            .expect("app starts");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            base,
            client: reqwest::Client::new(),
            clock,
            state,
            _db: db,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body read");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON answer {status}: {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, token, None).await
    }

    pub async fn signup(&self, name: &str, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/Auth/signup",
            None,
            json!({"name": name, "email": email, "password": password}),
        )
        .await
    }

    /// Logs in and returns the token pair, asserting success.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let (status, body) = self
            .post(
                "/Auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A new account, logged in; its access token.
    pub async fn user_token(&self, email: &str) -> String {
        let (status, body) = self.signup("Tester", email, PASSWORD).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        access(&self.login(email, PASSWORD).await)
    }

    pub async fn admin_token(&self) -> String {
        access(&self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await)
    }

    /// Creates a locker as admin and returns it.
    pub async fn locker(&self, admin: &str, location: &str) -> Value {
        let (status, body) = self
            .post("/Admin/", Some(admin), json!({"location": location}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

pub fn access(pair: &Value) -> String {
    pair["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

pub fn refresh(pair: &Value) -> String {
    pair["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

/// A database of the test's own, dropped afterwards.
struct TestDb {
    url: String,
    kind: TestDbKind,
}

enum TestDbKind {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server: String, name: String },
}

impl TestDb {
    async fn create() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => Self::postgres(server).await,
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/test.db", dir.path().display());
                Self {
                    url,
                    kind: TestDbKind::Sqlite(dir),
                }
            }
        }
    }

    async fn postgres(server: String) -> Self {
        use sqlx::Connection;
        let name = format!("lx_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .expect("TEST_DATABASE_URL reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let (base, _) = server
            .rsplit_once('/')
            .expect("TEST_DATABASE_URL names a database");
        Self {
            url: format!("{base}/{name}"),
            kind: TestDbKind::Postgres { server, name },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDbKind::Postgres { server, name } = &self.kind {
            let (server, name) = (server.clone(), name.clone());
            // Drop runs inside the test's runtime; the cleanup needs one of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&server).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await?;
                    Ok::<_, sqlx::Error>(())
                })
                .map_err(std::io::Error::other)
            })
            .join();
        }
    }
}
