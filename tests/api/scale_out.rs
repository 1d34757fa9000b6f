//! More than one of each process on one PostgreSQL, RabbitMQ and Mosquitto:
//! two apis (each with its outbox relay) and two sets of workers share the
//! work; one of each is killed mid-run and the batch still completes, with no
//! job done twice, no door opened twice, and limits counted across processes;
//! the dead workers' MQTT session is adopted by the survivor.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, WAIT};

const EXCHANGES: usize = 6;

fn require_services() {
    for name in ["TEST_DATABASE_URL", "TEST_AMQP_URL", "TEST_MQTT_URL"] {
        assert!(
            std::env::var(name).is_ok_and(|v| !v.is_empty()),
            "{name} must name its service for this test"
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL, RabbitMQ and Mosquitto: run with TEST_* set and --include-ignored"]
async fn two_of_each_process_share_the_work_and_survive_losing_one() {
    require_services();
    let mut app = TestApp::spawn_with(&[("OTP_RATE_PER_CONTACT", "3")]).await;
    let other = app.another_stack("b").await;
    let b = format!("http://{}", other.addr);
    let a = app.base.clone();
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;

    let mut lockers = Vec::new();
    for i in 0..EXCHANGES {
        let (status, locker) = app
            .post(
                "/Admin/",
                Some(&admin),
                json!({"location": format!("Hall {i}"), "agent_id": "scale-site"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{locker}");
        lockers.push(locker["id"].as_i64().unwrap());
    }
    let agent = app
        .agent("scale-site", &lockers, Some(Duration::from_millis(150)))
        .await;
    let receiver = |i: usize| format!("r{i}@example.com");

    // Drops through both apis, then one api and one set of workers die at once.
    let mut items = Vec::new();
    for (i, locker) in lockers.iter().enumerate() {
        let base = if i % 2 == 0 { &a } else { &b };
        let body = json!({"locker_id": locker, "name": format!("Parcel {i}"), "receiver_email": receiver(i)});
        let (status, item) = app
            .request_to(base, Method::POST, "/Items/", Some(&sender), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        items.push(item["id"].as_i64().unwrap());
    }
    app.kill().await;

    // The survivor relays what the dead api wrote, and does all the rest.
    for i in 0..EXCHANGES {
        app.smtp.wait_for(&receiver(i), 1, WAIT).await;
    }
    for (i, locker) in lockers.iter().enumerate() {
        let path = format!("/Items/lockers/{locker}/request-otp");
        let (status, _) = app
            .request_to(
                &b,
                Method::POST,
                &path,
                None,
                Some(json!({"contact": receiver(i)})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let code = app.email_code(&receiver(i), 1).await;
        let path = format!("/Items/lockers/{locker}/collect");
        let (status, body) = app
            .request_to(&b, Method::POST, &path, None, Some(json!({"otp": code})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app.smtp
        .wait_matching("sender@example.com", EXCHANGES, WAIT, |m| {
            m.header("Subject").is_some_and(|s| s.contains("collected"))
        })
        .await;

    // The dead workers fell silent: the survivor adopted their MQTT session.
    let dead = app.doors.client_id.clone();
    app.wait_until("the dead workers' session adopted", || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM worker_sessions WHERE client_id = $1")
            .bind(&dead)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            == 0
    })
    .await;

    // The dead one comes back; whatever it held is done by now or by it.
    app.restart().await;
    app.drain_with(&[&other]).await;
    let item_status = |id: i64| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM items WHERE id = $1")
                .bind(id)
                .fetch_one(app.state.db.pool())
                .await
                .unwrap()
        }
    };
    for id in &items {
        assert_eq!(item_status(*id).await, "COLLECTED");
    }
    // Every job ran to completion once; nothing was given up on.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox").await,
        app.count("SELECT COUNT(*) FROM job_runs WHERE done_at IS NOT NULL")
            .await
    );
    for kind in locker_core::jobs::JobKind::ALL {
        assert!(
            app.queue.dead_letters(kind).await.unwrap().is_empty(),
            "{kind:?}"
        );
    }
    // One email of each kind per person, one opening per unlock.
    for i in 0..EXCHANGES {
        assert_eq!(app.smtp.mails_to(&receiver(i)).len(), 2, "{}", receiver(i));
    }
    assert_eq!(app.smtp.mails_to("sender@example.com").len(), EXCHANGES);
    let openings: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.id, COUNT(e.id) FROM commands c \
         LEFT JOIN door_events e ON e.command_id = c.id AND e.kind = 'door_opened' GROUP BY c.id",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(openings.len(), 2 * EXCHANGES);
    assert!(openings.iter().all(|(_, n)| *n == 1), "{openings:?}");
    let opened: HashMap<i64, u32> = lockers
        .iter()
        .map(|l| (*l, agent.doors.openings(*l)))
        .collect();
    assert!(opened.values().all(|n| *n == 2), "{opened:?}");
    agent.stop().await;
    other.shutdown().await;
}

/// A request budget and a code's tries are counted in the database, so
/// spreading requests over two apis buys nothing.
#[tokio::test]
#[ignore = "needs PostgreSQL, RabbitMQ and Mosquitto: run with TEST_* set and --include-ignored"]
async fn limits_hold_across_api_processes() {
    require_services();
    let app = TestApp::spawn_with(&[("OTP_RATE_PER_CONTACT", "3")]).await;
    let other = app.another_stack("b").await;
    let bases = [app.base.clone(), format!("http://{}", other.addr)];
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let place = app.locker(&admin, "Library").await;
    app.drop_item(
        &sender,
        &place["id"],
        json!({"receiver_email": "r@example.com"}),
    )
    .await;
    let request_otp = format!("/Items/lockers/{}/request-otp", place["id"]);
    let collect = format!("/Items/lockers/{}/collect", place["id"]);

    let mut answers = Vec::new();
    for i in 0..4 {
        let (status, _) = app
            .request_to(
                &bases[i % 2],
                Method::POST,
                &request_otp,
                None,
                Some(json!({"contact": "r@example.com"})),
            )
            .await;
        answers.push(status);
    }
    assert_eq!(
        answers,
        [
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Three requests, three code jobs: the newest one's code stands (an
    // older job that runs later issues nothing).
    let newest: i64 = sqlx::query_scalar("SELECT MAX(id) FROM outbox WHERE kind = 'otp'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let named = format!("<job-{newest}@");
    let mails = app
        .smtp
        .wait_matching("r@example.com", 1, WAIT, |m| {
            m.header("Message-ID")
                .is_some_and(|id| id.starts_with(&named))
        })
        .await;
    let code = locker_testkit::digits(&mails[0].body(), 6).expect("a code");
    app.drain_with(&[&other]).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for i in 0..5 {
        let (status, body): (StatusCode, Value) = app
            .request_to(
                &bases[i % 2],
                Method::POST,
                &collect,
                None,
                Some(json!({"otp": wrong})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    // Five wrong tries over two apis spent the code.
    let (status, _) = app
        .request_to(
            &bases[1],
            Method::POST,
            &collect,
            None,
            Some(json!({"otp": code})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    other.shutdown().await;
}

/// An api remembers the sessions it found live; a logout through another api
/// ends the session there too, told by PostgreSQL's `NOTIFY` (the memory's
/// own lifetime, 60 s, is longer than this test waits).
#[tokio::test]
#[ignore = "needs PostgreSQL, RabbitMQ and Mosquitto: run with TEST_* set and --include-ignored"]
async fn a_logout_through_one_api_ends_the_session_in_every_api() {
    require_services();
    let app = TestApp::spawn().await;
    let other = app.another_stack("b").await;
    let b = format!("http://{}", other.addr);
    app.signup("A", "a@example.com", crate::helpers::PASSWORD)
        .await;
    let pair = app.login("a@example.com", crate::helpers::PASSWORD).await;
    let access = crate::helpers::access(&pair);
    let me = || app.request_to(&b, Method::GET, "/Auth/me", Some(&access), None);
    for _ in 0..3 {
        assert_eq!(me().await.0, StatusCode::OK);
    }

    let (status, _) = app
        .post(
            "/Auth/logout",
            None,
            json!({"refresh_token": crate::helpers::refresh(&pair)}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.wait_until("the other api refuses the ended session", || async {
        me().await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    other.shutdown().await;
}

/// A console page open on one api hears of a change made through another,
/// by PostgreSQL's `NOTIFY`.
#[tokio::test]
#[ignore = "needs PostgreSQL, RabbitMQ and Mosquitto: run with TEST_* set and --include-ignored"]
async fn a_console_on_one_api_sees_changes_made_through_another() {
    require_services();
    let app = TestApp::spawn().await;
    let other = app.another_stack("b").await;
    let mut visitor = crate::console::Visitor::at(&format!("http://{}", other.addr));
    visitor
        .sign_in(crate::helpers::ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD)
        .await;
    let mut events = visitor.events().await;
    events.wait_for("event: ready").await;
    // Listening begins counted as a change; let it pass.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let admin = app.admin_token().await;
    app.locker(&admin, "Made Elsewhere").await;
    events.wait_for("event: change").await;
    other.shutdown().await;
}

/// An api keeps what `GET /lockers/by-place` answered (for up to 60 s,
/// longer than this test waits), yet every change is seen through it: made
/// through another api, written straight to the database as the workers
/// do, an agent going offline, and a change made while its notices were
/// not heard, and its own.
#[tokio::test]
#[ignore = "needs PostgreSQL, RabbitMQ and Mosquitto: run with TEST_* set and --include-ignored"]
async fn places_read_through_one_api_follow_changes_made_anywhere() {
    require_services();
    let app = TestApp::spawn().await;
    let other = app.another_stack("b").await;
    let b = format!("http://{}", other.addr);
    let admin = app.admin_token().await;
    let locker = app
        .locker_with(
            &admin,
            json!({"location": "Kept Hall", "agent_id": "kept-site"}),
        )
        .await;
    let id = locker["id"].as_i64().unwrap();
    let _agent = app.agent("kept-site", &[id], None).await;
    let at_b = || read_place(&app, &b, &admin, "kept%20hall");
    app.wait_until("the agent online through b", || async {
        at_b().await[0]["agent_online"] == true
    })
    .await;
    // Read again: what b keeps, as its metrics say.
    let metrics = locker_core::metrics::install(None).unwrap();
    let kept = || {
        let text = metrics.render();
        crate::doors::sample(&text, "by_place_answers_total", &[("source", "kept")])
    };
    let before = kept();
    app.wait_until("an answer b kept", || async {
        at_b().await[0]["status"] == "AVAILABLE" && kept() > before
    })
    .await;

    // Through the other api.
    let path = format!("/Admin/{id}");
    let out = json!({"status": "OUT_OF_SERVICE"});
    assert_eq!(app.put(&path, Some(&admin), out).await.0, StatusCode::OK);
    app.wait_until("a's change through b", || async {
        at_b().await[0]["status"] == "OUT_OF_SERVICE"
    })
    .await;

    // Straight in the database, as a worker writes.
    let pool = app.state.db.pool();
    let free = "UPDATE lockers SET status = 'AVAILABLE' WHERE id = $1";
    sqlx::query(free).bind(id).execute(pool).await.unwrap();
    app.wait_until("a worker's change through b", || async {
        at_b().await[0]["free_at_place"]["MEDIUM"] == 1
    })
    .await;

    // The agent's presence, which every place of its lockers shows.
    let offline = "UPDATE agents SET online = 0 WHERE id = 'kept-site'";
    sqlx::query(offline).execute(pool).await.unwrap();
    app.wait_until("the agent offline through b", || async {
        at_b().await[0]["agent_online"] == false
    })
    .await;

    // While b's notices are not heard: its listening connections are cut,
    // and the change made meanwhile is still seen once it listens again.
    assert_eq!(at_b().await[0]["name"], Value::Null);
    // Each api hears sessions, places, the console and the outbox on one
    // connection.
    let listening = "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'LISTEN%'";
    let listening: i64 = sqlx::query_scalar(listening).fetch_one(pool).await.unwrap();
    assert_eq!(
        listening, 2,
        "one listening connection for each of two apis"
    );
    let cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
               WHERE datname = current_database() AND query LIKE 'LISTEN%places%'";
    let cut: Vec<bool> = sqlx::query_scalar(cut).fetch_all(pool).await.unwrap();
    assert!(!cut.is_empty(), "no api listened for places");
    let name = "UPDATE lockers SET name = 'Renamed' WHERE id = $1";
    sqlx::query(name).bind(id).execute(pool).await.unwrap();
    app.wait_until("the change made unheard", || async {
        at_b().await[0]["name"] == "Renamed"
    })
    .await;

    // A locker added through b itself.
    let (status, _) = app
        .request_to(
            &b,
            Method::POST,
            "/Admin/",
            Some(&admin),
            Some(json!({"location": "kept  hall"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.wait_until("b's own change through b", || async {
        at_b().await.as_array().map(Vec::len) == Some(2)
    })
    .await;
    other.shutdown().await;
}

/// A place's lockers as `base` answers them.
async fn read_place(app: &TestApp, base: &str, token: &str, place: &str) -> Value {
    let path = format!("/lockers/by-place?location={place}");
    let (status, body) = app
        .request_to(base, Method::GET, &path, Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}
