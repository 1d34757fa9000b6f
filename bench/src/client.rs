//! The stack's public HTTP interface, as the benchmark uses it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::stats::Recorder;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: Client,
    /// Requests completed, for the progress line.
    pub done: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Api {
    pub fn new(base: &str) -> Self {
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(512)
            .build()
            .expect("HTTP client");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            done: Default::default(),
        }
    }

    /// One request, timed under `series`; a non-2xx answer or a transport
    /// failure is counted as an error of its kind and returned as `Err`.
    pub async fn call(
        &self,
        rec: &mut Recorder,
        series: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(error) => {
                rec.error(format!("{series}: transport"));
                return Err(error.into());
            }
        };
        let status = resp.status();
        let text = resp.bytes().await.unwrap_or_default();
        rec.record(series, started.elapsed());
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !status.is_success() {
            rec.error(format!("{series}: HTTP {}", status.as_u16()));
            bail!(
                "{series} answered {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        Ok(serde_json::from_slice(&text).unwrap_or(Value::Null))
    }

    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}/Auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == StatusCode::OK,
            "login as {email} answered {}",
            resp.status()
        );
        let body: Value = resp.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access_token")
    }

    /// A fresh account, logged in.
    pub async fn new_user(&self, email: &str) -> anyhow::Result<String> {
        let password = "bench-password-1";
        let resp = self
            .http
            .post(format!("{}/Auth/signup", self.base))
            .json(&json!({"name": "Bench", "email": email, "password": password}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success() || resp.status() == StatusCode::CONFLICT,
            "signup: {}",
            resp.status()
        );
        self.login(email, password).await
    }

    pub async fn create_locker(
        &self,
        admin: &str,
        location: &str,
        agent: Option<&str>,
    ) -> anyhow::Result<i64> {
        let resp = self
            .http
            .post(format!("{}/Admin/", self.base))
            .bearer_auth(admin)
            .json(&json!({"location": location, "agent_id": agent}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == StatusCode::CREATED,
            "create locker: {}",
            resp.status()
        );
        let body: Value = resp.json().await?;
        body["id"].as_i64().context("locker id")
    }

    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?)
    }
}
