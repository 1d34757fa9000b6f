//! Hashing on a service of its own (`locker-hasher`, named by `HASHER_URL`):
//! logins, sign-ups and codes go through it; with it out of reach a collect
//! is answered 503 without spending one of the code's tries, and a code
//! asked for meanwhile is sent once it is back. The path to the service is
//! cut with a proxy; the service itself stays up.

use std::time::Duration;

use locker_core::hashing::Threads;
use locker_testkit::proxy::TcpProxy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::doors::sample;
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};

const TOKEN: &str = "hasher-token-for-tests-0123456789abcdef";
const RECEIVER: &str = "receiver@example.com";
const LATER: &str = "later@example.com";

/// A hashing service on a port of its own, reached through a proxy.
async fn hasher_behind_proxy() -> TcpProxy {
    let any_port = "127.0.0.1:0".parse().unwrap();
    let token = TOKEN.to_owned().into();
    let (addr, _) = locker_hasher::start(
        any_port,
        Threads::new().unwrap(),
        &token,
        std::future::pending(),
    )
    .await
    .unwrap();
    TcpProxy::start(addr).await
}

async fn item_status(app: &TestApp, sender: &str, item: &Value) -> Value {
    let (_, item) = app
        .get(&format!("/Items/{}", item["id"]), Some(sender))
        .await;
    item["status"].clone()
}

#[tokio::test]
async fn with_the_hashing_service_out_of_reach_nothing_is_checked_and_nothing_is_lost() {
    let metrics = locker_core::metrics::install(None).unwrap();
    let proxy = hasher_behind_proxy().await;
    let url = format!("http://{}", proxy.addr);
    let app = TestApp::spawn_with(&[
        ("HASHER_URL", url.as_str()),
        ("HASHER_TOKEN", TOKEN),
        ("JOB_RETRY_DELAYS_MS", "300,600,1200,2400"),
    ])
    .await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    assert!(
        proxy.connections() > 0,
        "the admin's login and the sign-up went to the service"
    );
    let first = app.locker(&admin, "Library").await;
    let second = app.locker(&admin, "Library").await;
    let (status, item) = app
        .drop_item(&sender, &first["id"], json!({"receiver_email": RECEIVER}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let (status, _) = app.request_otp(&first["id"], RECEIVER).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = app.email_code(RECEIVER, 1).await;

    let before = metrics.render();
    proxy.cut();
    // More tries than a code allows (5): none is counted, none is checked.
    for _ in 0..7 {
        let (status, body) = app.collect(&first["id"], &code).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("try again")),
            "{body}"
        );
    }
    let (status, body) = app
        .post(
            "/Auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(item_status(&app, &sender, &item).await, "STORED");
    // Seen by an operator: the calls that found the service out of reach.
    // (The recorder is the process's: other tests may add to it.)
    let unavailable = [("op", "verify"), ("outcome", "unavailable")];
    let after = metrics.render();
    let (was, is) = (
        sample(&before, "hashes_total", &unavailable),
        sample(&after, "hashes_total", &unavailable),
    );
    assert!(
        is - was >= 8.0,
        "hashes_total{unavailable:?}: {was} -> {is}"
    );

    // A code asked for now waits for the service: its job fails and is retried.
    let (status, later) = app
        .drop_item(&sender, &second["id"], json!({"receiver_email": LATER}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    let (status, _) = app.request_otp(&second["id"], LATER).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let codes_sent = |to| {
        app.smtp
            .mails_to(to)
            .iter()
            .filter(|m| m.header("Subject").is_some_and(|s| s.contains("code")))
            .count()
    };
    assert_eq!(codes_sent(LATER), 0, "no code without its hash stored");

    proxy.restore();
    let (status, body) = app.collect(&first["id"], &code).await;
    assert_eq!(status, StatusCode::OK, "the code kept its tries: {body}");
    assert_eq!(item_status(&app, &sender, &item).await, "COLLECTED");
    let later_code = app.email_code(LATER, 1).await;
    assert_eq!(codes_sent(LATER), 1, "sent once");
    let (status, body) = app.collect(&second["id"], &later_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(item_status(&app, &sender, &later).await, "COLLECTED");
    // The service's own threads timed each hash (it runs in this process).
    let verified = [("op", "verify")];
    let (was, is) = (
        sample(&before, "hash_duration_seconds_count", &verified),
        sample(&metrics.render(), "hash_duration_seconds_count", &verified),
    );
    assert!(is - was >= 2.0, "verifications timed: {was} -> {is}");
}
