//! `TestApp`: the whole stack (api, relay, workers) on a random port over its
//! own database — a fresh SQLite file, or a fresh PostgreSQL database when
//! `TEST_DATABASE_URL` is set — and its own job queue — in-process, or
//! RabbitMQ queues of its own when `TEST_AMQP_URL` is set. Email goes to a
//! real SMTP server and SMS to a Twilio-shaped HTTP server, both run here.
//! A clock the test moves, and typed request helpers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use locker_api::state::AppState;
use locker_core::clock::ManualClock;
use locker_core::config::{ApiConfig, DoorsConfig, Env, NotifyConfig, Profile};
use locker_core::jobs::JobKind;
use locker_core::queue::JobQueue;
use locker_core::{Clock, SystemClock};
use locker_exchange::{Stack, StackOptions};
use locker_testkit::{SmtpSink, TcpProxy, TwilioFake};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ACCESS_SECRET: &str = "test-access-secret-that-is-long-enough-0001";
pub const REFRESH_SECRET: &str = "test-refresh-secret-that-is-long-enough-0002";
pub const ADMIN_EMAIL: &str = "root@lockers.test";
pub const ADMIN_PASSWORD: &str = "root-password-1";
pub const PASSWORD: &str = "StrongPassword@123";
/// How long a test waits for a message that should come.
pub const WAIT: Duration = Duration::from_secs(20);

pub const EMAIL_FROM: &str = "lockers@lockers.test";
pub const AGENT_SECRET: &str = "test-agent-signing-secret-long-enough-0003";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxied {
    Nothing,
    Amqp,
    Database,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    pub queue: JobQueue,
    pub smtp: SmtpSink,
    pub twilio: TwilioFake,
    /// Between the stack and RabbitMQ or PostgreSQL, when asked for.
    pub proxy: Option<TcpProxy>,
    config: ApiConfig,
    notify: NotifyConfig,
    pub doors: DoorsConfig,
    /// MQTT client ids to forget on the broker afterwards.
    pub(crate) sessions: MqttSessions,
    stack: Option<Stack>,
    /// Code and notice jobs on workers without the doors' link.
    split_workers: bool,
    _queues: TestQueues,
    _db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// With extra settings, e.g. `[("OTP_RATE_PER_LOCKER", "3")]`.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_inner(extra, Proxied::Nothing).await
    }

    /// With code and notice jobs on workers that have no link to the doors,
    /// as a deployment that runs them apart would.
    pub async fn spawn_split() -> Self {
        let mut app = Self::spawn().await;
        app.split_workers = true;
        app.kill_and_restart().await;
        app
    }

    /// On RabbitMQ through a TCP proxy the test can cut; `None` unless
    /// `TEST_AMQP_URL` is set.
    pub async fn spawn_behind_amqp_proxy() -> Option<Self> {
        test_amqp_url()?;
        Some(Self::spawn_inner(&[], Proxied::Amqp).await)
    }

    /// On PostgreSQL through a TCP proxy the test can cut; PostgreSQL is
    /// required (`TEST_DATABASE_URL`).
    pub async fn spawn_behind_database_proxy(extra: &[(&str, &str)]) -> Self {
        Self::spawn_inner(extra, Proxied::Database).await
    }

    async fn spawn_inner(extra: &[(&str, &str)], proxied: Proxied) -> Self {
        locker_core::telemetry::init_for_tests("warn");
        let mut db = TestDb::create().await;
        let mut queues = TestQueues::create();
        let mut proxy = None;
        if proxied == Proxied::Database {
            assert!(
                matches!(db.kind, TestDbKind::Postgres { .. }),
                "TEST_DATABASE_URL must name a PostgreSQL server for this test"
            );
            let (head, rest) = db
                .url
                .split_once('@')
                .expect("user@host in TEST_DATABASE_URL");
            let (host, path) = rest.split_once('/').expect("a database in the URL");
            let upstream = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
            let started = TcpProxy::start(upstream).await;
            db.url = format!("{head}@{}/{path}", started.addr);
            proxy = Some(started);
        }
        if let (Proxied::Amqp, Some(url)) = (proxied, &queues.amqp_url) {
            let (head, rest) = url.split_once('@').expect("TEST_AMQP_URL has user@host");
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let upstream = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
            let started = TcpProxy::start(upstream).await;
            let through = format!("{head}@{}/{path}", started.addr);
            queues.connect_url = Some(through);
            proxy = Some(started);
        }
        let smtp = SmtpSink::start().await;
        let twilio = TwilioFake::start().await;
        let smtp_port = smtp.addr.port().to_string();
        let mqtt_url = test_mqtt_url();
        let worker_id = format!("workers-{}", queues.prefix);
        let mut pairs = vec![
            ("DATABASE_URL", db.url.as_str()),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("ACCESS_SECRET_KEY", ACCESS_SECRET),
            ("REFRESH_SECRET_KEY", REFRESH_SECRET),
            ("ADMIN_EMAIL", ADMIN_EMAIL),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("AMQP_QUEUE_PREFIX", queues.prefix.as_str()),
            ("JOB_RETRY_DELAYS_MS", "100,200"),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", smtp_port.as_str()),
            ("SMTP_TLS", "none"),
            ("EMAIL_FROM", EMAIL_FROM),
            ("TWILIO_ACCOUNT_SID", twilio.account_sid.as_str()),
            ("TWILIO_AUTH_TOKEN", twilio.auth_token.as_str()),
            ("TWILIO_PHONE_NUMBER", twilio.from.as_str()),
            ("TWILIO_API_BASE", twilio.base.as_str()),
            ("MQTT_URL", mqtt_url.as_str()),
            ("MQTT_TOPIC_ROOT", queues.prefix.as_str()),
            ("WORKER_ID", worker_id.as_str()),
            ("AGENT_SIGNING_SECRET", AGENT_SECRET),
            ("UNLOCK_ACK_TIMEOUT_SECONDS", "2"),
            ("WORKER_PEER_TIMEOUT_SECONDS", "3"),
        ];
        if let Some(url) = queues.connect_url.as_ref().or(queues.amqp_url.as_ref()) {
            pairs.push(("AMQP_URL", url.as_str()));
        }
        pairs.extend_from_slice(extra);
        let env = Env::from_pairs(pairs);
        // Every secret given; only the queue may be in-process.
        let config = ApiConfig::load(&env, Profile::Development).expect("test config");
        let notify = NotifyConfig::load(&env, Profile::Development).expect("notify config");
        let mut doors = DoorsConfig::load(&env, Profile::Development).expect("doors config");
        // rumqttd drops messages on shared subscriptions; Mosquitto gets them.
        doors.shared_subscriptions = std::env::var("TEST_MQTT_URL").is_ok_and(|u| !u.is_empty());
        let clock = ManualClock::new(SystemClock.now_millis());
        let options_notify = notify.clone();
        let stack = start_stack(&config, notify, doors.clone(), &clock, false).await;
        Self {
            base: format!("http://{}", stack.addr),
            client: reqwest::Client::new(),
            clock,
            state: stack.state.clone(),
            queue: stack.queue.clone(),
            smtp,
            twilio,
            proxy,
            config,
            notify: options_notify,
            sessions: MqttSessions::new(&doors),
            doors,
            stack: Some(stack),
            split_workers: false,
            _queues: queues,
            _db: db,
        }
    }

    /// Kills the stack mid-work, as `kill -9` would, and starts it again on
    /// the same database and queues.
    pub async fn kill_and_restart(&mut self) {
        self.kill().await;
        self.restart().await;
    }

    /// Another api, relay and workers on this test's database, queues and
    /// broker, as a second process of each would be (its own MQTT client id).
    pub async fn another_stack(&self, name: &str) -> Stack {
        let mut doors = self.doors.clone();
        doors.client_id = format!("{}-{name}", doors.client_id);
        self.sessions
            .client_ids
            .lock()
            .unwrap()
            .push(doors.client_id.clone());
        start_stack(
            &self.config,
            self.notify.clone(),
            doors,
            &self.clock,
            self.split_workers,
        )
        .await
    }

    /// Kills the stack (api, relay, workers, their MQTT session) mid-work.
    pub async fn kill(&mut self) {
        if let Some(stack) = self.stack.take() {
            stack.kill().await;
        }
    }

    /// Starts the stack again on the same database, queues and MQTT session.
    pub async fn restart(&mut self) {
        let stack = start_stack(
            &self.config,
            self.notify.clone(),
            self.doors.clone(),
            &self.clock,
            self.split_workers,
        )
        .await;
        self.base = format!("http://{}", stack.addr);
        self.state = stack.state.clone();
        self.queue = stack.queue.clone();
        self.stack = Some(stack);
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request_to(&self.base, method, path, token, body).await
    }

    /// A request to the api at `base` (another process's, say).
    pub async fn request_to(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{base}{path}"));
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
        self.locker_with(admin, json!({"location": location})).await
    }

    /// Creates a locker as admin from a whole body (size, agent...).
    pub async fn locker_with(&self, admin: &str, body: Value) -> Value {
        let (status, locker) = self.post("/Admin/", Some(admin), body).await;
        assert_eq!(status, StatusCode::CREATED, "{locker}");
        locker
    }

    /// Drops an item into a locker as `sender`.
    pub async fn drop_item(
        &self,
        sender: &str,
        locker_id: &Value,
        receiver: Value,
    ) -> (StatusCode, Value) {
        let mut body = json!({"locker_id": locker_id, "name": "Blue umbrella"});
        body.as_object_mut()
            .unwrap()
            .extend(receiver.as_object().unwrap().clone());
        self.post("/Items/", Some(sender), body).await
    }

    pub async fn request_otp(&self, locker_id: &Value, contact: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/Items/lockers/{locker_id}/request-otp"),
            None,
            json!({"contact": contact}),
        )
        .await
    }

    pub async fn collect(&self, locker_id: &Value, otp: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/Items/lockers/{locker_id}/collect"),
            None,
            json!({"otp": otp}),
        )
        .await
    }

    /// The code in the `n`th code email to `to` (1-based), waiting for it.
    pub async fn email_code(&self, to: &str, n: usize) -> String {
        let mails = self
            .smtp
            .wait_matching(to, n, WAIT, |m| {
                m.header("Subject").is_some_and(|s| s.contains("code"))
            })
            .await;
        locker_testkit::digits(&mails[n - 1].body(), 6).expect("a 6-digit code in the email")
    }

    /// The code in the `n`th code SMS to `to` (1-based), waiting for it.
    pub async fn sms_code(&self, to: &str, n: usize) -> String {
        let sent = self
            .twilio
            .wait_matching(to, n, WAIT, |s| s.body.contains("code is"))
            .await;
        locker_testkit::digits(&sent[n - 1].body, 6).expect("a 6-digit code in the SMS")
    }

    /// Runs a query returning one number, for checks on stored state.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.state.db.pool())
            .await
            .unwrap()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Waits until the job pipeline is idle: every job written is published,
    /// none waits in a queue or a retry delay, none is in a worker's hands.
    /// It must hold for three looks in a row, 100 ms apart, since a delivery
    /// on its way from the broker to a consumer is in neither count for a
    /// moment. After it, "nothing more happened" means a duplicate still due
    /// would have had its effect.
    pub async fn drain(&self) {
        self.drain_with(&[]).await;
    }

    /// [`TestApp::drain`], counting the jobs in the hands of `others` too.
    pub async fn drain_with(&self, others: &[&Stack]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut idle_looks = 0;
        while idle_looks < 3 {
            let unpublished = self
                .count("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                .await;
            let mut waiting = 0;
            for kind in JobKind::ALL {
                waiting += self.queue.backlog(kind).await.expect("queue backlog");
            }
            let in_hand: usize = self
                .stack
                .iter()
                .chain(others.iter().copied())
                .map(|stack| stack.jobs_in_hand.load(Ordering::SeqCst))
                .sum();
            if unpublished == 0 && waiting == 0 && in_hand == 0 {
                idle_looks += 1;
            } else {
                idle_looks = 0;
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "pipeline still busy: {unpublished} unpublished, {waiting} queued, {in_hand} in hand"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn start_stack(
    config: &ApiConfig,
    notify: NotifyConfig,
    doors: DoorsConfig,
    clock: &ManualClock,
    split_workers: bool,
) -> Stack {
    let options = StackOptions {
        notify,
        doors,
        sweep_every: Duration::from_millis(100),
        console_fallback: false,
        worker_concurrency: 2,
        split_workers,
    };
    Stack::start(config, options, Arc::new(clock.clone()))
        .await
        .expect("stack starts")
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

/// The MQTT broker: Mosquitto (or another) when `TEST_MQTT_URL` is set, else
/// one embedded broker for the whole test binary; each test has a topic root
/// of its own.
fn test_mqtt_url() -> String {
    static EMBEDDED: OnceLock<String> = OnceLock::new();
    match std::env::var("TEST_MQTT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => EMBEDDED
            .get_or_init(|| {
                let broker = locker_exchange::broker::start("127.0.0.1:0".parse().unwrap())
                    .expect("embedded broker");
                format!("mqtt://{}:{}", broker.host, broker.port)
            })
            .clone(),
    }
}

/// Persistent MQTT sessions the test opened, ended afterwards on a shared
/// broker so they do not pile up there.
pub(crate) struct MqttSessions {
    broker: Option<locker_protocol::MqttEndpoint>,
    pub(crate) client_ids: std::sync::Mutex<Vec<String>>,
}

impl MqttSessions {
    fn new(doors: &DoorsConfig) -> Self {
        let shared = std::env::var("TEST_MQTT_URL").is_ok_and(|u| !u.is_empty());
        Self {
            broker: doors.broker.clone().filter(|_| shared),
            client_ids: std::sync::Mutex::new(vec![doors.client_id.clone()]),
        }
    }
}

impl Drop for MqttSessions {
    fn drop(&mut self) {
        let Some(broker) = self.broker.clone() else {
            return;
        };
        let ids = std::mem::take(&mut *self.client_ids.lock().unwrap());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for id in ids {
                    // Connecting with a clean session discards the stored one.
                    let mut options =
                        rumqttc::MqttOptions::new(id, broker.host.clone(), broker.port);
                    options.set_clean_session(true);
                    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
                    let connected = tokio::time::timeout(Duration::from_secs(2), async {
                        while !matches!(
                            eventloop.poll().await,
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) | Err(_)
                        ) {}
                    });
                    let _ = connected.await;
                    let _ = client.disconnect().await;
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
                }
            });
        })
        .join();
    }
}

/// Queue names of the test's own on RabbitMQ (when `TEST_AMQP_URL` is set),
/// deleted afterwards.
struct TestQueues {
    amqp_url: Option<String>,
    /// What the stack connects to, when it differs (a proxy).
    connect_url: Option<String>,
    prefix: String,
}

fn test_amqp_url() -> Option<String> {
    std::env::var("TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

impl TestQueues {
    fn create() -> Self {
        Self {
            amqp_url: test_amqp_url(),
            connect_url: None,
            prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for TestQueues {
    fn drop(&mut self) {
        if let Some(url) = self.amqp_url.clone() {
            let prefix = self.prefix.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(locker_core::queue::AmqpQueue::delete_queues(
                    &url,
                    &prefix,
                    &[100, 200],
                ))
                .map_err(std::io::Error::other)
            })
            .join();
        }
    }
}

/// A database of the test's own, dropped afterwards.
pub struct TestDb {
    pub url: String,
    kind: TestDbKind,
}

enum TestDbKind {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server: String, name: String },
}

impl TestDb {
    /// A PostgreSQL database of the test's own: without `TEST_DATABASE_URL`
    /// the test fails.
    pub async fn postgres_required() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => Self::postgres(server).await,
            _ => panic!("TEST_DATABASE_URL must name a PostgreSQL server for this test"),
        }
    }

    pub async fn create() -> Self {
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
