//! An HTTP server that answers like Twilio's Messages API and checks each
//! request as Twilio documents it: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! HTTP Basic auth with the account SID and auth token, a form body with
//! `To` (E.164), `From` (the account's number) and `Body`. Wrong requests get
//! Twilio's error codes; accepted ones are kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Sms {
    pub to: String,
    pub from: String,
    pub body: String,
}

#[derive(Clone)]
pub struct TwilioFake {
    /// What to put in `TWILIO_API_BASE`.
    pub base: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    sent: Mutex<Vec<Sms>>,
    /// Statuses to answer the next requests with instead of accepting them.
    scripted: Mutex<VecDeque<u16>>,
    arrived: Notify,
}

impl TwilioFake {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind Twilio fake");
        let fake = Self {
            base: format!("http://{}", listener.local_addr().expect("address")),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: "twilio-test-auth-token".into(),
            from: "+15005550006".into(),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(messages))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn sent(&self) -> Vec<Sms> {
        self.inner.sent.lock().expect("lock").clone()
    }

    pub fn sent_to(&self, to: &str) -> Vec<Sms> {
        self.sent().into_iter().filter(|s| s.to == to).collect()
    }

    /// Answers the next requests with these statuses (e.g. 500, 400).
    pub fn script(&self, statuses: &[u16]) {
        self.inner.scripted.lock().expect("lock").extend(statuses);
    }

    pub async fn wait_for(&self, to: &str, count: usize, within: Duration) -> Vec<Sms> {
        self.wait_matching(to, count, within, |_| true).await
    }

    /// Waits until `count` messages to `to` that satisfy `filter` were accepted.
    pub async fn wait_matching(
        &self,
        to: &str,
        count: usize,
        within: Duration,
        filter: impl Fn(&Sms) -> bool,
    ) -> Vec<Sms> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.inner.arrived.notified();
            let sent: Vec<_> = self.sent_to(to).into_iter().filter(&filter).collect();
            if sent.len() >= count {
                return sent;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("{count} SMS to {to} within {within:?}; got {}", sent.len());
            }
        }
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"code": code, "message": message, "status": status.as_u16()})),
    )
}

async fn messages(
    State(fake): State<TwilioFake>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", fake.account_sid, fake.auth_token))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if sid != fake.account_sid {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    }
    if let Some(status) = fake.inner.scripted.lock().expect("lock").pop_front() {
        let status = StatusCode::from_u16(status).expect("valid status");
        return error(
            status,
            30000 + u32::from(status.as_u16()),
            "Scripted failure",
        );
    }
    let (Some(to), Some(from), Some(body)) = (form.get("To"), form.get("From"), form.get("Body"))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To', 'From' and 'Body' are required.",
        );
    };
    let e164 =
        |n: &str| n.starts_with('+') && n.len() > 8 && n[1..].bytes().all(|b| b.is_ascii_digit());
    if !e164(to) {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            "The 'To' number is not a valid phone number.",
        );
    }
    if *from != fake.from {
        return error(
            StatusCode::BAD_REQUEST,
            21606,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number for this account.",
        );
    }
    if body.is_empty() || body.chars().count() > 1600 {
        return error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    fake.inner.sent.lock().expect("lock").push(Sms {
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
    });
    fake.inner.arrived.notify_waiters();
    (
        StatusCode::CREATED,
        Json(
            json!({"sid": format!("SM{:032x}", fake.sent().len()), "status": "queued", "to": to, "from": from, "body": body}),
        ),
    )
}
