use locker_core::domain::LockerMove;
use locker_core::store::{audit, lockers};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Puts a locker in OCCUPIED the way a sender's drop does.
async fn occupy(app: &TestApp, locker: &Value) {
    let id = locker["id"].as_i64().unwrap();
    let now = app.clock.now_millis();
    let moved = lockers::apply(app.state.db.pool(), id, LockerMove::Reserve, now)
        .await
        .unwrap();
    assert!(moved);
}

use locker_core::Clock;

#[tokio::test]
async fn admins_create_lockers_available_and_medium_by_default() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, locker) = app
        .post(
            "/Admin/",
            Some(&admin),
            json!({"location": " Mall Entrance "}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{locker}");
    assert_eq!(locker["location"], "Mall Entrance");
    assert_eq!(locker["status"], "AVAILABLE");
    assert_eq!(locker["size"], "MEDIUM");
    assert_eq!(locker["name"], Value::Null);
    assert_eq!(locker["agent_id"], Value::Null);

    let (status, full) = app
        .post(
            "/Admin/",
            Some(&admin),
            json!({"location": "Library", "name": "B2", "size": "LARGE", "agent_id": "library-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (
            full["name"].as_str(),
            full["size"].as_str(),
            full["agent_id"].as_str()
        ),
        (Some("B2"), Some("LARGE"), Some("library-1"))
    );
    let actions = audit::actions_for(app.state.db.pool(), &format!("locker:{}", full["id"]))
        .await
        .unwrap();
    assert_eq!(actions, ["locker.created"]);
}

#[tokio::test]
async fn only_admins_manage_lockers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = app.user_token("u@example.com").await;
    let locker = app.locker(&admin, "Library").await;
    let path = format!("/Admin/{}", locker["id"]);
    let body = json!({"location": "Somewhere"});

    assert_eq!(
        app.post("/Admin/", Some(&user), body.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.put(&path, Some(&user), body.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&path, Some(&user)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post("/Admin/", None, body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.put(&path, None, body).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.delete(&path, None).await.0, StatusCode::UNAUTHORIZED);
    // Nothing changed.
    let (_, all) = app.get("/lockers/", Some(&user)).await;
    assert_eq!(all, json!([locker]));
}

#[tokio::test]
async fn invalid_lockers_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let cases = [
        (json!({"location": "   "}), "location"),
        (json!({"location": "x".repeat(201)}), "location"),
        (
            json!({"location": "Library", "agent_id": "site/1"}),
            "agent_id",
        ),
        (
            json!({"location": "Library", "name": "n".repeat(101)}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/Admin/", Some(&admin), body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            answer["detail"][0]["loc"],
            json!(["body", field]),
            "{answer}"
        );
    }
    let (status, answer) = app
        .post(
            "/Admin/",
            Some(&admin),
            json!({"location": "Library", "size": "HUGE"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("size"),
        "{answer}"
    );
    let (_, all) = app.get("/lockers/", Some(&admin)).await;
    assert_eq!(all, json!([]));
}

#[tokio::test]
async fn admins_edit_lockers_field_by_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, locker) = app
        .post(
            "/Admin/",
            Some(&admin),
            json!({"location": "Library", "name": "B2", "agent_id": "lib"}),
        )
        .await;
    let path = format!("/Admin/{}", locker["id"]);

    let (status, edited) = app
        .put(
            &path,
            Some(&admin),
            json!({"location": "City Library", "size": "SMALL"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["location"], "City Library");
    assert_eq!(edited["size"], "SMALL");
    assert_eq!(edited["name"], "B2", "fields left out stay");
    assert_eq!(edited["agent_id"], "lib");

    let (_, cleared) = app
        .put(&path, Some(&admin), json!({"agent_id": null, "name": "C3"}))
        .await;
    assert_eq!(cleared["agent_id"], Value::Null);
    assert_eq!(cleared["name"], "C3");

    let (_, off) = app
        .put(&path, Some(&admin), json!({"status": "OUT_OF_SERVICE"}))
        .await;
    assert_eq!(off["status"], "OUT_OF_SERVICE");
    let (_, on) = app
        .put(&path, Some(&admin), json!({"status": "AVAILABLE"}))
        .await;
    assert_eq!(on["status"], "AVAILABLE");

    let (status, body) = app
        .put(&path, Some(&admin), json!({"status": "OCCUPIED"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "status"]));
    assert_eq!(
        app.put("/Admin/999999", Some(&admin), json!({"name": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let actions = audit::actions_for(app.state.db.pool(), &format!("locker:{}", locker["id"]))
        .await
        .unwrap();
    assert_eq!(actions.len(), 5, "{actions:?}");
}

#[tokio::test]
async fn an_occupied_locker_keeps_its_status_and_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let locker = app.locker(&admin, "Library").await;
    let path = format!("/Admin/{}", locker["id"]);
    occupy(&app, &locker).await;

    let (status, body) = app
        .put(&path, Some(&admin), json!({"status": "OUT_OF_SERVICE"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app.delete(&path, Some(&admin)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("force-clear"));

    let (_, still) = app
        .get(&format!("/lockers/{}", locker["id"]), Some(&admin))
        .await;
    assert_eq!(still["status"], "OCCUPIED");
    // A correction of its name is fine.
    let (status, renamed) = app.put(&path, Some(&admin), json!({"name": "Fixed"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["status"], "OCCUPIED");
}

#[tokio::test]
async fn admins_delete_empty_lockers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let locker = app.locker(&admin, "Library").await;
    let path = format!("/Admin/{}", locker["id"]);
    let (status, body) = app.delete(&path, Some(&admin)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        app.get(&format!("/lockers/{}", locker["id"]), Some(&admin))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, Some(&admin)).await.0,
        StatusCode::NOT_FOUND
    );
    let actions = audit::actions_for(app.state.db.pool(), &format!("locker:{}", locker["id"]))
        .await
        .unwrap();
    assert_eq!(actions, ["locker.created", "locker.deleted"]);
}

#[tokio::test]
async fn a_status_change_racing_an_occupation_never_overrides_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for _ in 0..10 {
        let locker = app.locker(&admin, "Race Place").await;
        let id = locker["id"].as_i64().unwrap();
        let path = format!("/Admin/{id}");
        let now = app.clock.now_millis();
        let (edit, occupied) = tokio::join!(
            app.put(&path, Some(&admin), json!({"status": "OUT_OF_SERVICE"})),
            lockers::apply(app.state.db.pool(), id, LockerMove::Reserve, now),
        );
        let occupied = occupied.unwrap();
        let (_, after) = app.get(&format!("/lockers/{id}"), Some(&admin)).await;
        // Exactly one of the two won, and the locker shows the winner.
        match (edit.0, occupied) {
            (StatusCode::OK, false) => assert_eq!(after["status"], "OUT_OF_SERVICE"),
            (StatusCode::CONFLICT, true) => assert_eq!(after["status"], "OCCUPIED"),
            other => panic!("both or neither won: {other:?}, now {after}"),
        }
    }
}
