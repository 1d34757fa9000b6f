use futures::future::join_all;
use locker_api::admin_seed::ensure_admin;
use locker_core::config::AdminSeed;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, PASSWORD, TestApp, access};

#[tokio::test]
async fn signup_returns_the_user_without_the_hash() {
    let app = TestApp::spawn().await;
    let (status, user) = app.signup("  John ", " John@Example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["name"], "John");
    assert_eq!(user["email"], "john@example.com");
    assert_eq!(user["role"], "user");
    assert!(user["id"].is_i64());
    let keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
    assert!(
        keys.iter()
            .all(|k| !k.contains("password") && !k.contains("hash")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_whatever_its_case() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.signup("A", "dup@example.com", PASSWORD).await.0,
        StatusCode::CREATED
    );
    let (status, body) = app.signup("B", "DUP@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "Email already registered");
}

#[tokio::test]
async fn invalid_signups_name_the_field_and_create_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"name": "A", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"name": "   ", "email": "a@example.com", "password": PASSWORD}),
            "name",
        ),
        (
            json!({"name": "x".repeat(101), "email": "a@example.com", "password": PASSWORD}),
            "name",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": "short"}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/Auth/signup", None, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let errors = answer["detail"].as_array().expect("a list of field errors");
        assert_eq!(errors.len(), 1, "{answer}");
        assert_eq!(errors[0]["loc"], json!(["body", field]), "{answer}");
    }
    let (status, answer) = app
        .post(
            "/Auth/signup",
            None,
            json!({"name": "A", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("email"),
        "{answer}"
    );
    // None of those left an account behind.
    assert_eq!(
        app.signup("A", "a@example.com", PASSWORD).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn twenty_concurrent_signups_with_one_email_create_one_account() {
    let app = TestApp::spawn().await;
    let attempts = (0..20).map(|i| {
        let app = &app;
        async move {
            app.signup(&format!("Racer {i}"), "race@example.com", PASSWORD)
                .await
                .0
        }
    });
    let statuses = join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
}

#[tokio::test]
async fn login_hands_out_bearer_tokens() {
    let app = TestApp::spawn().await;
    app.signup("A", "a@example.com", PASSWORD).await;
    let pair = app.login("A@EXAMPLE.COM", PASSWORD).await;
    assert_eq!(pair["token_type"], "bearer");
    assert_eq!(pair["expires_in"], 15 * 60);
    assert!(pair["refresh_token"].is_string());
    let (status, me) = app.get("/Auth/me", Some(&access(&pair))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "a@example.com");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.signup("A", "a@example.com", PASSWORD).await;
    let wrong = app
        .post(
            "/Auth/login",
            None,
            json!({"email": "a@example.com", "password": "wrong-password"}),
        )
        .await;
    let unknown = app
        .post(
            "/Auth/login",
            None,
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    let malformed = app
        .post(
            "/Auth/login",
            None,
            json!({"email": "nobody", "password": PASSWORD}),
        )
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
}

#[tokio::test]
async fn me_needs_a_token() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/Auth/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Not authenticated");
    assert_eq!(
        app.get("/Auth/me", Some("garbage")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn only_admins_list_users() {
    let app = TestApp::spawn().await;
    let user = app.user_token("u@example.com").await;
    let admin = app.admin_token().await;

    let (status, users) = app.get("/Auth/", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let emails: Vec<_> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].clone())
        .collect();
    assert_eq!(emails, [json!(ADMIN_EMAIL), json!("u@example.com")]);
    let (status, page) = app.get("/Auth/?limit=1&offset=1", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["email"], "u@example.com");

    assert_eq!(
        app.get("/Auth/", Some(&user)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get("/Auth/", None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_account_a_stranger_signed_up_never_becomes_admin_with_their_password() {
    let app = TestApp::spawn().await;
    // A stranger signs up first with the email the operator will name.
    let squatter = app.user_token("boss@example.com").await;
    let without = AdminSeed {
        email: "Boss@Example.com".into(),
        password: None,
    };
    let error = ensure_admin(&app.state.db, &app.state.hasher, &without, 0)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("is an existing user account"),
        "{error}"
    );
    assert_eq!(
        app.get("/Auth/", Some(&squatter)).await.0,
        StatusCode::FORBIDDEN,
        "not promoted"
    );

    // With the operator's password, the account is taken over.
    let seed = AdminSeed {
        email: "Boss@Example.com".into(),
        password: Some("operator-password-1".to_owned().into()),
    };
    ensure_admin(&app.state.db, &app.state.hasher, &seed, 0)
        .await
        .unwrap();
    // As from an operator's command in another process: an api that
    // remembers the session hears of its end by notice (well within the
    // memory's own 60 s).
    app.wait_until("the stranger's login is over", || async {
        app.get("/Auth/me", Some(&squatter)).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let (status, _) = app
        .post(
            "/Auth/login",
            None,
            json!({"email": "boss@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the stranger's password is gone"
    );
    let admin = access(&app.login("boss@example.com", "operator-password-1").await);
    assert_eq!(app.get("/Auth/", Some(&admin)).await.0, StatusCode::OK);

    // A restart naming it again changes nothing.
    let again = AdminSeed {
        email: "boss@example.com".into(),
        password: Some("another-password-2".to_owned().into()),
    };
    ensure_admin(&app.state.db, &app.state.hasher, &again, 0)
        .await
        .unwrap();
    app.login("boss@example.com", "operator-password-1").await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'admin.taken_over'")
            .await,
        1
    );
}

#[tokio::test]
async fn admin_seed_without_a_password_cannot_create_an_account() {
    let app = TestApp::spawn().await;
    let seed = AdminSeed {
        email: "new-admin@example.com".into(),
        password: None,
    };
    let error = ensure_admin(&app.state.db, &app.state.hasher, &seed, 0)
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("ADMIN_PASSWORD:"), "{error}");
    let seed = AdminSeed {
        email: "new-admin@example.com".into(),
        password: Some("admin-password-1".to_owned().into()),
    };
    ensure_admin(&app.state.db, &app.state.hasher, &seed, 0)
        .await
        .unwrap();
    let token = access(&app.login("new-admin@example.com", "admin-password-1").await);
    assert_eq!(app.get("/Auth/", Some(&token)).await.0, StatusCode::OK);
}
