//! PostgreSQL out of reach: every request that needs it answers 503 with
//! `Retry-After` (never a 500), changes nothing, and all is well once the
//! database is back. The path is cut with a proxy; the server stays up.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestApp};

#[tokio::test]
#[ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set and --include-ignored"]
async fn with_the_database_out_of_reach_requests_answer_503_and_change_nothing() {
    let app =
        TestApp::spawn_behind_database_proxy(&[("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "2")]).await;
    let proxy = app.proxy.clone().unwrap();
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let place = app.locker(&admin, "Library").await;
    let drop_body =
        json!({"locker_id": place["id"], "name": "Book", "receiver_email": "r@example.com"});

    proxy.cut();
    let requests = [
        (
            Method::POST,
            "/Auth/login".to_owned(),
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
            None,
        ),
        (
            Method::POST,
            "/Items/".to_owned(),
            Some(drop_body.clone()),
            Some(&sender),
        ),
        (Method::GET, "/lockers/".to_owned(), None, Some(&sender)),
        (
            Method::POST,
            format!("/Items/lockers/{}/request-otp", place["id"]),
            Some(json!({"contact": "r@example.com"})),
            None,
        ),
        (
            Method::POST,
            format!("/Items/lockers/{}/collect", place["id"]),
            Some(json!({"otp": "123456"})),
            None,
        ),
    ];
    for (method, path, body, token) in requests {
        let started = Instant::now();
        let mut request = app
            .client
            .request(method.clone(), format!("{}{path}", app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert!(
            response.headers().contains_key("retry-after"),
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["detail"].is_string(), "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{method} {path} answered late"
        );
    }

    proxy.restore();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM items").await,
        0,
        "nothing half-written"
    );
    let (status, item) = app.post("/Items/", Some(&sender), drop_body).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let (status, _) = app
        .post(
            "/Auth/login",
            None,
            json!({"email": "sender@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
