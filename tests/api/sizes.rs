//! Drops by place and size: the smallest free locker that fits is reserved,
//! racing drops never share one, and a place with none that fits says which
//! sizes are free.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn locker(app: &TestApp, admin: &str, location: &str, size: &str) -> i64 {
    let body = json!({"location": location, "size": size});
    app.locker_with(admin, body).await["id"].as_i64().unwrap()
}

async fn drop_at(app: &TestApp, sender: &str, location: &str, size: &str) -> (StatusCode, Value) {
    app.post(
        "/Items/",
        Some(sender),
        json!({"location": location, "size": size, "name": "Box", "receiver_email": "r@example.com"}),
    )
    .await
}

async fn free_at(app: &TestApp, token: &str, location: &str) -> Value {
    let (status, lockers) = app
        .get(
            &format!("/lockers/by-place?location={location}"),
            Some(token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{lockers}");
    let first = lockers[0]["free_at_place"].clone();
    for locker in lockers.as_array().unwrap() {
        assert_eq!(locker["free_at_place"], first, "one place, one count");
    }
    first
}

#[tokio::test]
async fn the_smallest_free_locker_that_fits_is_taken() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let small = locker(&app, &admin, "Quay", "SMALL").await;
    let resting = locker(&app, &admin, "Quay", "SMALL").await;
    let medium = locker(&app, &admin, "Quay", "MEDIUM").await;
    let large = locker(&app, &admin, "Quay", "LARGE").await;
    let (status, _) = app
        .put(
            &format!("/Admin/{resting}"),
            Some(&admin),
            json!({"status": "OUT_OF_SERVICE"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sender = app.user_token("sizes@example.com").await;
    assert_eq!(
        free_at(&app, &sender, "quay").await,
        json!({"SMALL": 1, "MEDIUM": 1, "LARGE": 1})
    );

    let (status, item) = drop_at(&app, &sender, "  QUAY ", "SMALL").await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["locker_id"], small);
    // No small one left: the next smallest that fits.
    let (_, item) = drop_at(&app, &sender, "Quay", "SMALL").await;
    assert_eq!(item["locker_id"], medium);
    let (_, item) = drop_at(&app, &sender, "Quay", "LARGE").await;
    assert_eq!(item["locker_id"], large);
    assert_eq!(
        free_at(&app, &sender, "Quay").await,
        json!({"SMALL": 0, "MEDIUM": 0, "LARGE": 0})
    );

    let (status, body) = drop_at(&app, &sender, "Quay", "MEDIUM").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("MEDIUM") && detail.contains("SMALL 0, MEDIUM 0, LARGE 0"),
        "{detail}"
    );

    // A freed small locker is offered again, but never to a large item.
    let (status, _) = app
        .delete(&format!("/Admin/{small}/force-clear"), Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = drop_at(&app, &sender, "Quay", "LARGE").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"].as_str().unwrap().contains("SMALL 1"),
        "{body}"
    );
    let (status, item) = drop_at(&app, &sender, "Quay", "SMALL").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(item["locker_id"], small);

    // `locker_id` keeps working.
    let other = locker(&app, &admin, "Elsewhere", "MEDIUM").await;
    let (status, item) = app
        .drop_item(
            &sender,
            &json!(other),
            json!({"receiver_email": "r@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["locker_id"], other);
}

#[tokio::test]
async fn racing_drops_by_place_never_share_a_locker() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut lockers = Vec::new();
    for size in ["SMALL", "SMALL", "MEDIUM", "LARGE", "LARGE"] {
        lockers.push(locker(&app, &admin, "Busy Square", size).await);
    }
    let sender = app.user_token("racer@example.com").await;
    let racers = (0..20).map(|_| drop_at(&app, &sender, "Busy Square", "SMALL"));
    let answers = futures::future::join_all(racers).await;
    let mut taken: Vec<i64> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, item)| item["locker_id"].as_i64().unwrap())
        .collect();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .count();
    taken.sort_unstable();
    assert_eq!(taken, lockers, "each locker once");
    assert_eq!(refused, 15);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM lockers WHERE status = 'OCCUPIED'")
            .await,
        5
    );
}

#[tokio::test]
async fn a_drop_says_where_exactly_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let id = locker(&app, &admin, "Pier", "MEDIUM").await;
    let sender = app.user_token("where@example.com").await;
    let base = json!({"name": "Box", "receiver_email": "r@example.com"});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, field) in [
        (json!({}), "locker_id"),
        (json!({"location": "Pier"}), "size"),
        (
            json!({"locker_id": id, "location": "Pier", "size": "SMALL"}),
            "locker_id",
        ),
        (json!({"locker_id": id, "size": "SMALL"}), "locker_id"),
        (json!({"location": " ", "size": "SMALL"}), "location"),
        (json!({"location": "Pier", "size": "HUGE"}), "body"),
    ] {
        let (status, body) = app
            .post("/Items/", Some(&sender), with(extra.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}: {body}");
        assert!(body.to_string().contains(field), "{extra}: {body}");
    }
    let (status, body) = app
        .post(
            "/Items/",
            Some(&sender),
            with(json!({"location": "Nowhere", "size": "SMALL"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM items").await,
        0,
        "nothing was dropped"
    );
}
