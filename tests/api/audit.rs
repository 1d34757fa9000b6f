//! `GET /Admin/audit`: the log searched by locker, item, actor, action and
//! time, paged newest first; for admins only.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, TestApp};

fn actions(page: &Value) -> Vec<&str> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn admins_search_the_log_by_locker_item_actor_action_and_time() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let here = app.locker(&admin, "Audit Hall").await;
    let elsewhere = app.locker(&admin, "Elsewhere").await;
    let (status, _) = app
        .put(
            &format!("/Admin/{}", here["id"]),
            Some(&admin),
            json!({"name": "A1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sender = app.user_token("audit-sender@example.com").await;
    let (status, item) = app
        .drop_item(
            &sender,
            &here["id"],
            json!({"receiver_email": "r@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");

    // By locker: its own entries and its item's, newest first.
    let (status, page) = app
        .get(
            &format!("/Admin/audit?locker_id={}", here["id"]),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        actions(&page),
        ["item.dropped", "locker.updated", "locker.created"]
    );
    let dropped = &page["entries"][0];
    assert_eq!(dropped["item_id"], item["id"]);
    assert_eq!(dropped["subject"], format!("item:{}", item["id"]));
    let created = &page["entries"][2];
    assert_eq!(created["actor_email"], ADMIN_EMAIL);
    assert_eq!(page["next_before"], Value::Null);

    // By item, by action family, by actor.
    let (_, page) = app
        .get(
            &format!("/Admin/audit?item_id={}", item["id"]),
            Some(&admin),
        )
        .await;
    assert_eq!(actions(&page), ["item.dropped"]);
    let (_, page) = app.get("/Admin/audit?action=locker", Some(&admin)).await;
    assert_eq!(
        actions(&page),
        ["locker.updated", "locker.created", "locker.created"]
    );
    let (_, page) = app
        .get("/Admin/audit?action=locker.created&limit=1", Some(&admin))
        .await;
    assert_eq!(page["entries"][0]["locker_id"], elsewhere["id"]);
    let next = page["next_before"]
        .as_i64()
        .expect("a full page has a next");
    let (_, older) = app
        .get(
            &format!("/Admin/audit?action=locker.created&limit=1&before={next}"),
            Some(&admin),
        )
        .await;
    assert_eq!(older["entries"][0]["locker_id"], here["id"]);
    let admin_id = created["actor_id"].as_i64().unwrap();
    let (_, page) = app
        .get(
            &format!("/Admin/audit?actor_id={admin_id}&action=item"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        actions(&page),
        Vec::<&str>::new(),
        "the sender dropped, not the admin"
    );

    // By time: nothing after a time in the future; everything before it.
    let (_, page) = app
        .get("/Admin/audit?since=2999-01-01T00:00", Some(&admin))
        .await;
    assert_eq!(actions(&page).len(), 0);
    let (_, page) = app
        .get(
            &format!(
                "/Admin/audit?until=2999-01-01T00:00:00Z&locker_id={}",
                here["id"]
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(actions(&page).len(), 3);
}

#[tokio::test]
async fn bad_filters_are_refused_and_only_admins_may_look() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for query in [
        "since=yesterday",
        "limit=0",
        "limit=201",
        "locker_id=x",
        "action=",
    ] {
        let (status, body) = app
            .get(&format!("/Admin/audit?{query}"), Some(&admin))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["detail"].is_array() || body["detail"].is_string(),
            "{body}"
        );
    }
    let user = app.user_token("curious@example.com").await;
    let (status, body) = app.get("/Admin/audit", Some(&user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app.get("/Admin/audit", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn filters_with_control_characters_are_refused_not_sent_to_the_database() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for query in [
        "action=locker%00",
        "actor_email=a%00b@example.com",
        "action=%0A",
    ] {
        let (status, body) = app
            .get(&format!("/Admin/audit?{query}"), Some(&admin))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
    }
}
