use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ACCESS_SECRET, PASSWORD, TestApp, access, refresh};

async fn logged_in(app: &TestApp) -> Value {
    app.signup("A", "a@example.com", PASSWORD).await;
    app.login("a@example.com", PASSWORD).await
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    app.get("/Auth/me", Some(token)).await.0
}

async fn refreshed(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.post("/Auth/refresh", None, json!({"refresh_token": token}))
        .await
}

#[tokio::test]
async fn refresh_rotates_and_spends_the_old_token() {
    let app = TestApp::spawn().await;
    let first = logged_in(&app).await;
    let (status, second) = refreshed(&app, &refresh(&first)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["token_type"], "bearer");
    assert_ne!(refresh(&second), refresh(&first));
    assert_eq!(me(&app, &access(&second)).await, StatusCode::OK);
    // The new refresh token works in its turn.
    let (status, third) = refreshed(&app, &refresh(&second)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me(&app, &access(&third)).await, StatusCode::OK);
}

#[tokio::test]
async fn a_spent_refresh_token_shown_again_ends_the_login() {
    let app = TestApp::spawn().await;
    let first = logged_in(&app).await;
    let (_, second) = refreshed(&app, &refresh(&first)).await;

    let (status, body) = refreshed(&app, &refresh(&first)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].is_string());
    // Every token of that login is now dead, the thief's and the owner's.
    assert_eq!(
        refreshed(&app, &refresh(&second)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&app, &access(&second)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &access(&first)).await, StatusCode::UNAUTHORIZED);
    // Another login of the same account is untouched.
    let other = app.login("a@example.com", PASSWORD).await;
    assert_eq!(me(&app, &access(&other)).await, StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_login() {
    let app = TestApp::spawn().await;
    let pair = logged_in(&app).await;
    // In use (and so remembered live) until the logout.
    assert_eq!(me(&app, &access(&pair)).await, StatusCode::OK);
    assert_eq!(me(&app, &access(&pair)).await, StatusCode::OK);
    let (status, _) = app
        .post(
            "/Auth/logout",
            None,
            json!({"refresh_token": refresh(&pair)}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &access(&pair)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refreshed(&app, &refresh(&pair)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .post("/Auth/logout", None, json!({"refresh_token": "nonsense"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn access_and_refresh_tokens_cannot_stand_in_for_each_other() {
    let app = TestApp::spawn().await;
    let pair = logged_in(&app).await;
    assert_eq!(me(&app, &refresh(&pair)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refreshed(&app, &access(&pair)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn expired_access_tokens_are_refused_and_refresh_still_works() {
    let app = TestApp::spawn().await;
    let pair = logged_in(&app).await;
    app.advance(Duration::from_secs(14 * 60));
    assert_eq!(me(&app, &access(&pair)).await, StatusCode::OK);
    app.advance(Duration::from_secs(2 * 60));
    assert_eq!(me(&app, &access(&pair)).await, StatusCode::UNAUTHORIZED);
    let (status, fresh) = refreshed(&app, &refresh(&pair)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me(&app, &access(&fresh)).await, StatusCode::OK);
    // A refresh token outlives its week by nothing.
    app.advance(Duration::from_secs(7 * 24 * 3600 + 60));
    assert_eq!(
        refreshed(&app, &refresh(&fresh)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

fn split(token: &str) -> (String, Value, String) {
    let parts: Vec<_> = token.split('.').collect();
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    (parts[0].to_owned(), claims, parts[2].to_owned())
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let admin_id = {
        let admin = app.admin_token().await;
        app.get("/Auth/me", Some(&admin)).await.1["id"]
            .as_i64()
            .unwrap()
    };
    let pair = logged_in(&app).await;
    let token = access(&pair);
    let (header, claims, signature) = split(&token);
    assert_eq!(me(&app, &token).await, StatusCode::OK);

    // alg: none, no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    assert_eq!(me(&app, &none).await, StatusCode::UNAUTHORIZED);

    // Claims changed to another user, signature kept.
    let mut elevated = claims.clone();
    elevated["sub"] = json!(admin_id.to_string());
    let tampered = format!("{header}.{}.{signature}", b64(&elevated));
    assert_eq!(me(&app, &tampered).await, StatusCode::UNAUTHORIZED);

    // Signed with a key that is not ours.
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"not-the-server-key-but-long-enough-000"),
    )
    .unwrap();
    assert_eq!(me(&app, &wrong_key).await, StatusCode::UNAUTHORIZED);

    // Our key, but an algorithm the server does not accept.
    let other_alg = encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(ACCESS_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(me(&app, &other_alg).await, StatusCode::UNAUTHORIZED);

    // Our key and algorithm, expired claims.
    let mut old = claims.clone();
    old["exp"] = json!(claims["iat"].as_i64().unwrap() - 60);
    let expired = encode(
        &Header::new(Algorithm::HS256),
        &old,
        &EncodingKey::from_secret(ACCESS_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(me(&app, &expired).await, StatusCode::UNAUTHORIZED);

    // Our key and algorithm, issued an hour from now.
    let mut future = claims.clone();
    future["iat"] = json!(claims["iat"].as_i64().unwrap() + 3600);
    future["exp"] = json!(claims["exp"].as_i64().unwrap() + 3600);
    let from_the_future = encode(
        &Header::new(Algorithm::HS256),
        &future,
        &EncodingKey::from_secret(ACCESS_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(me(&app, &from_the_future).await, StatusCode::UNAUTHORIZED);

    // The control: the same route re-signed correctly works, so the refusals above are about the forgery.
    let resigned = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(ACCESS_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(me(&app, &resigned).await, StatusCode::OK);
}

/// The authentication scheme is case-insensitive; anything but Bearer is not.
#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case() {
    let app = TestApp::spawn().await;
    let token = app.user_token("case@example.com").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let resp = app
            .client
            .get(format!("{}/Auth/me", app.base))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{scheme}");
    }
    for header in [
        format!("Basic {token}"),
        format!("Bearer{token}"),
        token.clone(),
    ] {
        let resp = app
            .client
            .get(format!("{}/Auth/me", app.base))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
}
