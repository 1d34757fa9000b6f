use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn lockers_list_with_pagination() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = app.user_token("u@example.com").await;
    for place in ["Mall Entrance", "Metro Station A", "Library"] {
        app.locker(&admin, place).await;
    }
    let (status, all) = app.get("/lockers/", Some(&user)).await;
    assert_eq!(status, StatusCode::OK);
    let places: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["location"].clone())
        .collect();
    assert_eq!(
        places,
        [
            json!("Mall Entrance"),
            json!("Metro Station A"),
            json!("Library")
        ]
    );

    let (_, page) = app.get("/lockers/?limit=2&offset=1", Some(&user)).await;
    let places: Vec<_> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["location"].clone())
        .collect();
    assert_eq!(places, [json!("Metro Station A"), json!("Library")]);

    for bad in ["limit=0", "limit=201", "limit=abc", "offset=-1"] {
        let (status, body) = app.get(&format!("/lockers/?{bad}"), Some(&user)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["detail"][0]["loc"][0], "query", "{body}");
    }
    assert_eq!(app.get("/lockers/", None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn by_place_ignores_case_and_spacing_and_filters_by_status() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = app.user_token("u@example.com").await;
    let a = app.locker(&admin, "Mall Entrance").await;
    let b = app.locker(&admin, "mall  entrance").await;
    app.locker(&admin, "Mall Entrance East").await;
    let path = format!("/Admin/{}", b["id"]);
    assert_eq!(
        app.put(&path, Some(&admin), json!({"status": "OUT_OF_SERVICE"}))
            .await
            .0,
        StatusCode::OK
    );

    let (status, found) = app
        .get(
            "/lockers/by-place?location=%20%20MALL%20ENTRANCE%20",
            Some(&user),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].clone())
        .collect();
    assert_eq!(ids, [a["id"].clone(), b["id"].clone()]);

    let (_, available) = app
        .get(
            "/lockers/by-place?location=mall%20entrance&status=AVAILABLE",
            Some(&user),
        )
        .await;
    let ids: Vec<_> = available
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].clone())
        .collect();
    assert_eq!(ids, [a["id"].clone()]);

    let (_, nowhere) = app
        .get("/lockers/by-place?location=Airport", Some(&user))
        .await;
    assert_eq!(nowhere, json!([]));

    for bad in [
        "",
        "?location=",
        "?location=%20%20",
        "?location=Mall&status=BROKEN",
    ] {
        let (status, body) = app
            .get(&format!("/lockers/by-place{bad}"), Some(&user))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    assert_eq!(
        app.get("/lockers/by-place?location=Mall", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn one_locker_by_id() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = app.user_token("u@example.com").await;
    let locker = app.locker(&admin, "Library").await;

    let (status, got) = app
        .get(&format!("/lockers/{}", locker["id"]), Some(&user))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, locker);
    let (status, body) = app.get("/lockers/999999", Some(&user)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Locker not found");
    assert_eq!(
        app.get("/lockers/abc", Some(&user)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get(&format!("/lockers/{}", locker["id"]), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// On PostgreSQL, finding lockers by place has connections of its own, a
/// quarter of `DATABASE_POOL_SIZE`: with every other connection taken,
/// places are still found, and the process never holds more than it was
/// given.
#[tokio::test]
#[ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set and --include-ignored"]
async fn reads_by_place_keep_connections_of_their_own() {
    use std::time::Duration;

    use locker_core::Db;
    use locker_core::config::DatabaseConfig;
    use locker_core::db::Reads;
    use locker_core::store::lockers;

    let database = crate::helpers::TestDb::postgres_required().await;
    let config = DatabaseConfig {
        pool_size: 8,
        acquire_timeout: Duration::from_millis(500),
        ..DatabaseConfig::parse(&database.url).unwrap()
    };
    let db = Db::connect_serving_reads(&config).await.unwrap();
    let Reads::Postgres(reads) = db.reads() else {
        panic!("PostgreSQL's own driver for reads");
    };

    let mut writes = Vec::new();
    for _ in 0..6 {
        writes.push(db.pool().acquire().await.expect("six for writes"));
    }
    assert!(
        db.pool().acquire().await.is_err(),
        "a seventh would go beyond the eight given"
    );
    let (found, free) = lockers::at_place(db.reads(), "Mall Entrance", None, 10, 0)
        .await
        .expect("a place found with every write connection taken");
    assert!(found.is_empty());
    assert_eq!(free, lockers::FreeBySize::default());

    let held = (
        reads.acquire().await.unwrap(),
        reads.acquire().await.unwrap(),
    );
    assert!(
        reads.acquire().await.is_err(),
        "a third read connection would go beyond the eight given"
    );
    drop((held, writes));
    db.close().await;
}
