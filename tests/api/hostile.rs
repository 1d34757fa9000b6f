//! What a stranger sends on purpose: control characters in every text field,
//! and the limits that must stop abuse without locking real people out or
//! telling who a locker's receiver is.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Asserts a 422 that names `field`, and returns nothing else to check.
fn refused(field: &str, (status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
    assert!(
        body["detail"]
            .as_array()
            .is_some_and(|d| d
                .iter()
                .any(|e| e["loc"].as_array().unwrap().last().unwrap() == field)),
        "{field}: {body}"
    );
}

#[tokio::test]
async fn control_characters_are_refused_in_every_text_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let place = app.locker(&admin, "Library").await;
    let id = &place["id"];

    for bad in ["nul\u{0}byte", "two\r\nlines", "bell\u{7}"] {
        refused(
            "name",
            app.post(
                "/Auth/signup",
                None,
                json!({"name": bad, "email": "new@example.com", "password": "StrongPassword@123"}),
            )
            .await,
        );
        refused(
            "email",
            app.post(
                "/Auth/signup",
                None,
                json!({"name": "New", "email": format!("new{bad}@example.com"), "password": "StrongPassword@123"}),
            )
            .await,
        );
        refused(
            "location",
            app.post("/Admin/", Some(&admin), json!({"location": bad}))
                .await,
        );
        refused(
            "name",
            app.post(
                "/Admin/",
                Some(&admin),
                json!({"location": "Hall", "name": bad}),
            )
            .await,
        );
        refused(
            "location",
            app.put(
                &format!("/Admin/{id}"),
                Some(&admin),
                json!({"location": bad}),
            )
            .await,
        );
        refused(
            "name",
            app.put(&format!("/Admin/{id}"), Some(&admin), json!({"name": bad}))
                .await,
        );
        refused(
            "name",
            app.post(
                "/Items/",
                Some(&sender),
                json!({"locker_id": id, "name": bad, "receiver_email": "r@example.com"}),
            )
            .await,
        );
        refused(
            "description",
            app.post(
                "/Items/",
                Some(&sender),
                json!({"locker_id": id, "name": "Book", "description": bad, "receiver_email": "r@example.com"}),
            )
            .await,
        );
        refused(
            "receiver_email",
            app.post(
                "/Items/",
                Some(&sender),
                json!({"locker_id": id, "name": "Book", "receiver_email": format!("r{bad}@example.com")}),
            )
            .await,
        );
        let query = format!(
            "/lockers/by-place?location={}",
            bad.replace('\u{0}', "%00")
                .replace('\r', "%0D")
                .replace('\n', "%0A")
                .replace('\u{7}', "%07")
        );
        refused("location", app.get(&query, Some(&sender)).await);
        refused(
            "contact",
            app.post(
                &format!("/Items/lockers/{id}/request-otp"),
                None,
                json!({"contact": format!("r{bad}@example.com")}),
            )
            .await,
        );
    }
    // Nothing was written by any of them.
    assert_eq!(app.count("SELECT COUNT(*) FROM items").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM lockers").await, 1);
    let (_, view) = app.get(&format!("/lockers/{id}"), Some(&admin)).await;
    assert_eq!(view["location"], "Library");
    // A receiver on a single-label domain cannot get mail.
    refused(
        "receiver_email",
        app.post(
            "/Items/",
            Some(&sender),
            json!({"locker_id": id, "name": "Book", "receiver_email": "a@localhost"}),
        )
        .await,
    );
}

/// Strangers asking for codes with random numbers at a locker spend their
/// own budgets, not the receiver's.
#[tokio::test]
async fn strangers_cannot_lock_the_receiver_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let place = app.locker(&admin, "Library").await;
    app.drop_item(
        &sender,
        &place["id"],
        json!({"receiver_phone": "+14155552671"}),
    )
    .await;
    for i in 0..12 {
        let (status, _) = app
            .request_otp(&place["id"], &format!("+1415555{:04}", 3000 + i))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, _) = app.request_otp(&place["id"], "+14155552671").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = app.sms_code("+14155552671", 1).await;
    assert_eq!(app.collect(&place["id"], &code).await.0, StatusCode::OK);
}

/// Whether a contact is the receiver of a locker's item shows nowhere: the
/// same answers to the same requests, and the same work (one Argon2 check
/// per wrong code, code or no code).
#[tokio::test]
async fn nobody_learns_who_the_receiver_is() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let mut seen = Vec::new();
    for contact in ["real@example.com", "guess@example.com"] {
        let place = app.locker(&admin, "Library").await;
        app.drop_item(
            &sender,
            &place["id"],
            json!({"receiver_email": "real@example.com"}),
        )
        .await;
        let mut answers = Vec::new();
        let mut work = Vec::new();
        for _ in 0..2 {
            answers.push(app.request_otp(&place["id"], contact).await.0);
            app.drain().await;
            for _ in 0..5 {
                let before = app.state.hasher.verifications();
                answers.push(app.collect(&place["id"], "000000").await.0);
                work.push(app.state.hasher.verifications() - before);
            }
        }
        answers.push(app.request_otp(&place["id"], contact).await.0);
        seen.push((answers, work));
    }
    assert_eq!(seen[0], seen[1], "receiver vs stranger");
    let (answers, work) = &seen[0];
    assert_eq!(answers.last(), Some(&StatusCode::ACCEPTED));
    assert_eq!(answers[answers.len() - 2], StatusCode::TOO_MANY_REQUESTS);
    assert!(work.iter().all(|n| *n == 1), "{work:?}");
}

/// Counters of ended windows are forgotten: refused and random requests do
/// not grow the table for ever.
#[tokio::test]
async fn spent_rate_limit_counters_are_forgotten() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let place = app.locker(&admin, "Library").await;
    for i in 0..5 {
        app.request_otp(&place["id"], &format!("stranger{i}@example.com"))
            .await;
    }
    let counters = app.count("SELECT COUNT(*) FROM rate_limits").await;
    assert!(counters >= 6, "{counters}");
    assert_eq!(
        locker_api::limits::forget_spent(&app.state).await.unwrap(),
        0
    );
    // Past the longest window (the 15-minute cool-down), all are spent.
    app.advance(std::time::Duration::from_secs(31 * 60));
    app.request_otp(&place["id"], "fresh@example.com").await;
    // (The client's counter was counted again in the new window: it stays.)
    let forgotten = locker_api::limits::forget_spent(&app.state).await.unwrap();
    assert_eq!(forgotten as i64, counters - 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM rate_limits").await, 2);
}

/// Password guessing meets a limit per account (short, so its owner is not
/// kept out for long) and per client address; unknown accounts alike.
#[tokio::test]
async fn password_guessing_is_limited_without_locking_the_owner_out_for_long() {
    let app = TestApp::spawn().await;
    app.user_token("owner@example.com").await;
    let attempt = |email: &str, password: &str| {
        app.post(
            "/Auth/login",
            None,
            json!({"email": email, "password": password}),
        )
    };
    for _ in 0..10 {
        assert_eq!(
            attempt("owner@example.com", "wrong-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, body) = attempt("owner@example.com", crate::helpers::PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // An unknown account is counted the same way.
    for _ in 0..10 {
        assert_eq!(
            attempt("nobody@example.com", "wrong-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt("nobody@example.com", "wrong-password").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // From this client address, the twentieth wrong password was the last.
    assert_eq!(
        attempt("third@example.com", "wrong-password").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Minutes later the owner logs in.
    app.advance(std::time::Duration::from_secs(10 * 60));
    assert_eq!(
        attempt("owner@example.com", crate::helpers::PASSWORD)
            .await
            .0,
        StatusCode::OK
    );
}

/// Reads until the server closes the connection; true when it did within `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Clients that never finish their headers, or hold a connection idle, are
/// closed; and only so many connections are served at once.
#[tokio::test]
async fn slow_and_idle_clients_are_closed_and_connections_bounded() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(&[
        ("HTTP_HEADER_TIMEOUT_SECONDS", "1"),
        ("HTTP_MAX_CONNECTIONS", "2"),
    ])
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let generous = std::time::Duration::from_secs(5);

    // Headers that never end.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A keep-alive connection that goes quiet after one request.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    // Both slots are taken: a third client waits for one to be freed.
    let third = tokio::spawn({
        let client = app.client.clone();
        let url = format!("{}/healthz", app.base);
        async move { client.get(url).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served beyond the connection limit");

    assert!(
        closed_within(&mut slow, generous).await,
        "slow headers not cut"
    );
    assert!(
        closed_within(&mut idle, generous).await,
        "idle connection kept"
    );
    let status = tokio::time::timeout(generous, third)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

/// A body that trickles in never finishes: the request is answered 408.
#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&[("HTTP_REQUEST_TIMEOUT_SECONDS", "1")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /Auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"detail\""), "{text}");
}

/// Headers browsers and caches act on; oversized requests refused as JSON.
#[tokio::test]
async fn answers_carry_safe_headers_and_oversized_requests_get_json() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(format!("{}/Auth/login", app.base))
        .json(&json!({"email": crate::helpers::ADMIN_EMAIL, "password": crate::helpers::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let resp = app
        .client
        .get(format!("{}/lockers/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");

    let long = format!(
        "{}/lockers/by-place?location={}",
        app.base,
        "a".repeat(9000)
    );
    let resp = app.client.get(long).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::URI_TOO_LONG);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");

    let mut request = app.client.get(format!("{}/lockers/", app.base));
    for i in 0..20 {
        request = request.header(format!("x-filler-{i}"), "f".repeat(1000));
    }
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
}

/// Numbers at the ends of the range, and contacts that spell them, are
/// answered as any others: a job's payload is written around the id its
/// statement makes, and what a stranger sends never takes that id's place.
#[tokio::test]
async fn ids_and_contacts_at_the_ends_of_the_numbers_are_answered() {
    let app = TestApp::spawn().await;
    let sender = app.user_token("edges@example.com").await;
    let receiver = format!("{}{}@example.com", i64::MIN, i64::MIN + 1);
    for locker in [i64::MIN, i64::MIN + 1, 0, i64::MAX] {
        let (status, body) = app
            .drop_item(&sender, &json!(locker), json!({"receiver_email": receiver}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{locker}: {body}");
        assert_eq!(body["detail"], "Locker not found");
        let (status, body) = app.request_otp(&json!(locker), &receiver).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{locker}: {body}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM items").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 0);
}
