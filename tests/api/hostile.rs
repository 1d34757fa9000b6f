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
