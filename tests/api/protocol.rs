//! docs/mqtt-protocol.md as a contract: an agent written from it alone opens
//! each door at most once, whatever the server retries or the broker
//! redelivers; and every message the server sends or takes matches the JSON
//! Schemas published beside it.

use std::time::Duration;

use locker_protocol::agent_key;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::doc_agent::DocAgent;
use crate::helpers::{AGENT_SECRET, TestApp, WAIT};
use crate::pickup::{Pass, not, pass_in};

async fn locker_for(app: &TestApp, admin: &str, agent: &str) -> i64 {
    let (status, locker) = app
        .post(
            "/Admin/",
            Some(admin),
            json!({"location": "Station", "agent_id": agent}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{locker}");
    locker["id"].as_i64().unwrap()
}

fn doc_agent(app: &TestApp, id: &str, locker: i64) -> DocAgent {
    let broker = app.doors.broker.clone().expect("test broker");
    app.sessions
        .client_ids
        .lock()
        .unwrap()
        .push(format!("agent-{id}"));
    DocAgent::new(
        id,
        &[locker],
        &agent_key(AGENT_SECRET.as_bytes(), id),
        &app.doors.topic_root,
        &broker.host,
        broker.port,
        app.clock.clone(),
    )
}

/// A test app with one locker whose door the agent `agent_id` drives.
struct Site {
    app: TestApp,
    admin: String,
    sender: String,
    agent_id: String,
    locker: i64,
}

async fn site() -> Site {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    let agent_id = format!("doc-{}", uuid::Uuid::new_v4().simple());
    let locker = locker_for(&app, &admin, &agent_id).await;
    Site {
        app,
        admin,
        sender,
        agent_id,
        locker,
    }
}

/// The agent written from the document, connected.
async fn online(app: &TestApp, agent_id: &str, locker: i64) -> DocAgent {
    let mut agent = doc_agent(app, agent_id, locker);
    agent.start();
    app.wait_agent_online(agent_id, true).await;
    agent
}

async fn item(app: &TestApp, admin: &str, id: &Value) -> Value {
    app.get(&format!("/Items/{id}"), Some(admin)).await.1
}

/// The agent runs the first copy and dies before it can say so; the server
/// retries while it is away, longer than the command lives; the agent comes
/// back having forgotten the id, as the document allows, and receives every
/// queued copy. The door opened once, and the drop completes.
#[tokio::test]
async fn an_agent_to_the_letter_never_opens_a_door_twice_across_retries_and_restarts() {
    let Site {
        app,
        admin,
        sender,
        agent_id,
        locker,
    } = site().await;
    let mut agent = online(&app, &agent_id, locker).await;

    agent.memory.lock().unwrap().crash_after_next_unlock = true;
    let (status, dropped) = app
        .drop_item(
            &sender,
            &json!(locker),
            json!({"receiver_email": "r@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dropped}");
    app.wait_until("the agent runs the unlock and dies", || async {
        agent.crashed()
    })
    .await;
    agent.kill().await;
    // Time passes while the server sends the command again, 20 s on.
    app.advance(Duration::from_secs(20));
    app.wait_until("the command sent again", || async {
        app.count("SELECT sends FROM commands").await == 2
    })
    .await;
    // The agent stays away until its memory of the command may lapse: 30 s
    // of life and the 10 s allowance after the first issue. No copy can run
    // any more, none answered: the unlock is reported.
    app.advance(Duration::from_secs(21));
    app.wait_until("unlock reported failed", || async {
        item(&app, &admin, &dropped["id"]).await["unlock_failed_at"].is_string()
    })
    .await;
    agent.start();
    app.wait_agent_online(&agent_id, true).await;

    // The opening it could not report arrives, and clears the failure.
    app.wait_until("door opening applied", || async {
        item(&app, &admin, &dropped["id"]).await["unlock_failed_at"].is_null()
    })
    .await;
    app.wait_until("every queued copy answered", || async {
        let m = agent.memory.lock().unwrap();
        m.received.len() >= 2 && m.acks.len() == m.received.len() - 1
    })
    .await;
    app.drain().await;
    {
        let memory = agent.memory.lock().unwrap();
        assert_eq!(memory.opens.get(&locker), Some(&1), "opened once");
        // Every copy is the first one, byte for byte.
        let first = &memory.received[0];
        assert!(
            memory.received.iter().all(|c| c == first),
            "{:?}",
            memory.received
        );
        assert!(
            memory.acks.iter().all(|a| a["reason"] == "expired"),
            "{:?}",
            memory.acks
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM commands").await, 1);
    agent.kill().await;
}

/// Within the time it remembers the id, a returning agent answers the queued
/// copies `replayed`, and the server takes that as the unlock done.
#[tokio::test]
async fn a_copy_answered_replayed_completes_the_unlock() {
    let Site {
        app,
        admin,
        agent_id,
        locker,
        ..
    } = site().await;
    let mut agent = online(&app, &agent_id, locker).await;
    agent.memory.lock().unwrap().crash_after_next_unlock = true;

    let (status, _) = app
        .post(&format!("/Admin/{locker}/unlock"), Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.wait_until("the agent runs the unlock and dies", || async {
        agent.crashed()
    })
    .await;
    agent.kill().await;
    // Its answer is overdue (2 s here): the server sends the command again,
    // queued for the agent while it is away.
    app.advance(Duration::from_secs(3));
    app.wait_until("the command sent again", || async {
        app.count("SELECT sends FROM commands").await == 2
    })
    .await;
    // Back while the command can still run.
    agent.start();
    app.wait_until("a copy answered replayed", || async {
        agent
            .memory
            .lock()
            .unwrap()
            .acks
            .iter()
            .any(|a| a["reason"] == "replayed")
    })
    .await;
    app.wait_until("unlock settled as done", || async {
        app.count("SELECT COUNT(*) FROM commands WHERE reason = 'replayed'")
            .await
            == 1
    })
    .await;
    app.drain().await;
    assert_eq!(agent.memory.lock().unwrap().opens.get(&locker), Some(&1));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'unlock.failed'")
            .await,
        0
    );
    assert!(
        app.queue
            .dead_letters(locker_core::jobs::JobKind::Unlock)
            .await
            .unwrap()
            .is_empty()
    );
    agent.kill().await;
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/docs/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, message: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(message)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{message} does not match: {errors:?}");
}

/// What the server sends, what our agent answers and reports, all match the
/// published schemas; and messages the schemas allow (extra fields, no
/// `command_id`, `null`, no `at`) are taken as they should be.
#[tokio::test]
async fn messages_on_the_wire_match_the_published_schemas() {
    let Site {
        app,
        sender,
        agent_id,
        locker,
        ..
    } = site().await;
    let mut agent = online(&app, &agent_id, locker).await;

    let (command, ack, event, status) = (
        schema("command"),
        schema("ack"),
        schema("door-event"),
        schema("status"),
    );
    app.drop_item(
        &sender,
        &json!(locker),
        json!({"receiver_email": "r@example.com"}),
    )
    .await;
    app.wait_until("the command answered", || async {
        !agent.memory.lock().unwrap().acks.is_empty()
    })
    .await;
    {
        let memory = agent.memory.lock().unwrap();
        for sent in &memory.received {
            assert_valid(&command, sent);
        }
        for answer in &memory.acks {
            assert_valid(&ack, answer);
        }
    }
    // Every refusal reason our agent can give is one the schema knows.
    for reason in locker_protocol::AckReason::ALL {
        let refusal = serde_json::to_value(locker_protocol::Ack {
            command_id: "c".into(),
            ok: false,
            reason: Some(reason),
        })
        .unwrap();
        assert_valid(&ack, &refusal);
    }
    assert!(!ack.is_valid(&json!({"command_id": "c", "ok": false})));
    assert!(!ack.is_valid(&json!({"command_id": "c", "ok": true, "reason": "expired"})));

    // What an agent may send, at the edges of the schemas, is applied.
    let (client, _acks) = crate::doors::raw_client(&app, &agent_id).await;
    let topic = |leaf: &str| format!("{}/agents/{agent_id}/{leaf}", app.doors.topic_root);
    let messages = [
        (
            "events",
            json!({"id": "e-minimal", "locker_id": locker, "kind": "door_left_open", "at": 1}),
        ),
        (
            "events",
            json!({"id": "e-null", "locker_id": locker, "kind": "door_opened", "at": 2,
                   "command_id": null, "firmware": "1.2.3"}),
        ),
    ];
    for (leaf, message) in &messages {
        assert_valid(&event, message);
        client
            .publish(
                topic(leaf),
                rumqttc::QoS::AtLeastOnce,
                false,
                message.to_string(),
            )
            .await
            .unwrap();
    }
    let bare_status = json!({"online": false});
    assert_valid(&status, &bare_status);
    assert_valid(&status, &json!({"online": true, "at": 5}));
    app.wait_until("minimal events applied", || async {
        app.count("SELECT COUNT(*) FROM door_events WHERE id IN ('e-minimal', 'e-null')")
            .await
            == 2
    })
    .await;
    client
        .publish(
            topic("status"),
            rumqttc::QoS::AtLeastOnce,
            true,
            bare_status.to_string(),
        )
        .await
        .unwrap();
    app.wait_agent_online(&agent_id, false).await;
    assert_valid(
        &event,
        &json!({"id": "x", "locker_id": 1, "kind": "door_closed", "at": 3}),
    );
    assert!(!event.is_valid(&json!({"id": "x", "locker_id": 1, "kind": "door_ajar", "at": 3})));
    agent.kill().await;
}

/// Answers to copies of one command arrive late and in any order: the best
/// one stands, and an unlock that ran is not left reported failed.
#[tokio::test]
async fn the_best_answer_to_a_command_stands_whatever_the_order() {
    let Site {
        app,
        admin,
        sender,
        agent_id,
        locker,
    } = site().await;
    let (client, _acks) = crate::doors::raw_client(&app, &agent_id).await;
    let (_, dropped) = app
        .drop_item(
            &sender,
            &json!(locker),
            json!({"receiver_email": "r@example.com"}),
        )
        .await;
    // Nobody answers: once no copy can run, the unlock is reported.
    app.wait_until("command sent", || async {
        app.count("SELECT COUNT(*) FROM commands").await == 1
    })
    .await;
    app.advance(Duration::from_secs(41));
    app.wait_until("unlock reported failed", || async {
        item(&app, &admin, &dropped["id"]).await["unlock_failed_at"].is_string()
    })
    .await;
    let id: String = sqlx::query_scalar("SELECT id FROM commands")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let topic = format!("{}/agents/{agent_id}/acks", app.doors.topic_root);
    let answer = |ack: Value| {
        let (client, topic) = (client.clone(), topic.clone());
        async move {
            client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, ack.to_string())
                .await
                .unwrap();
        }
    };
    let recorded = || async {
        sqlx::query_as::<_, (Option<i64>, Option<String>)>("SELECT ok, reason FROM commands")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
    };
    answer(json!({"command_id": id, "ok": false, "reason": "expired"})).await;
    app.wait_until("expired recorded", || async {
        recorded().await == (Some(0), Some("expired".into()))
    })
    .await;
    answer(json!({"command_id": id, "ok": true})).await;
    app.wait_until("ok outranks expired", || async {
        recorded().await == (Some(1), None)
    })
    .await;
    assert!(item(&app, &admin, &dropped["id"]).await["unlock_failed_at"].is_null());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'unlock.confirmed'")
            .await,
        1
    );
    for late in [
        json!({"command_id": id, "ok": false, "reason": "replayed"}),
        json!({"command_id": id, "ok": false, "reason": "expired"}),
        json!({"command_id": id, "ok": false, "reason": "door_fault"}),
    ] {
        answer(late).await;
    }
    // A status published after them is applied after them: once it is in,
    // they are too.
    let marker = json!({"online": true, "at": 4242});
    client
        .publish(
            format!("{}/agents/{agent_id}/status", app.doors.topic_root),
            rumqttc::QoS::AtLeastOnce,
            false,
            marker.to_string(),
        )
        .await
        .unwrap();
    app.wait_until("the later answers applied", || async {
        let at: Option<i64> = sqlx::query_scalar("SELECT status_at FROM agents WHERE id = $1")
            .bind(agent_id.clone())
            .fetch_optional(app.state.db.pool())
            .await
            .unwrap();
        at.is_some()
    })
    .await;
    assert_eq!(recorded().await, (Some(1), None), "ok still stands");
    assert!(item(&app, &admin, &dropped["id"]).await["unlock_failed_at"].is_null());
}

/// "Pickup at the locker", to the letter: an agent written from the document
/// sends a PIN while its link is up and the server opens the door with an
/// ordinary command; with its link cut, it checks the PIN against the grant
/// it kept, opens, and reports the collection when back, applied once. Every
/// message either way matches its schema.
#[tokio::test]
async fn an_agent_to_the_letter_picks_up_by_pin_online_and_while_offline() {
    let Site {
        app,
        admin,
        sender,
        agent_id,
        locker,
    } = site().await;
    let (proxy, via) = app.broker_proxy().await;
    app.sessions
        .client_ids
        .lock()
        .unwrap()
        .push(format!("agent-{agent_id}"));
    let mut agent = DocAgent::new(
        &agent_id,
        &[locker],
        &agent_key(AGENT_SECRET.as_bytes(), &agent_id),
        &app.doors.topic_root,
        &via.host,
        via.port,
        app.clock.clone(),
    );
    agent.start();
    app.wait_agent_online(&agent_id, true).await;
    let opens = |n: u32| {
        let memory = agent.memory.clone();
        move || {
            let memory = memory.clone();
            async move { memory.lock().unwrap().opens.get(&locker).copied() == Some(n) }
        }
    };
    let status = |id: Value, want: &'static str| {
        let (app, admin) = (&app, &admin);
        move || {
            let id = id.clone();
            async move { item(app, admin, &id).await["status"] == want }
        }
    };

    // Online: the PIN goes to the server; the door opens on its command.
    let (first, pass) = stored_with_pass(&app, &admin, &sender, &agent, locker, 1).await;
    assert_eq!(
        agent.enter(locker, "pin", &not(&pass.pin)).await,
        "wrong_code"
    );
    assert_eq!(agent.enter(locker, "pin", &pass.pin).await, "accepted");
    app.wait_until("the pickup's door open", opens(2)).await;
    agent.close_door(locker).await;
    app.wait_until("collected", status(first["id"].clone(), "COLLECTED"))
        .await;
    app.wait_until("the grant revoked", || async {
        agent.memory.lock().unwrap().grants[&locker]["state"] == "revoked"
    })
    .await;

    // Offline: the kept grant decides; the collection is applied once back.
    let (second, pass) = stored_with_pass(&app, &admin, &sender, &agent, locker, 2).await;
    proxy.cut();
    app.wait_until("the agent sees its link down", || async {
        !agent.memory.lock().unwrap().link_up
    })
    .await;
    assert_eq!(
        agent.enter(locker, "pin", &not(&pass.pin)).await,
        "wrong code"
    );
    assert_eq!(agent.enter(locker, "pin", &pass.pin).await, "opened");
    assert_eq!(
        agent.enter(locker, "pin", &pass.pin).await,
        "nothing to collect"
    );
    agent.close_door(locker).await;
    assert_eq!(item(&app, &admin, &second["id"]).await["status"], "STORED");
    proxy.restore();
    app.wait_until(
        "collected offline",
        status(second["id"].clone(), "COLLECTED"),
    )
    .await;
    app.wait_until("the collection answered", || async {
        agent.memory.lock().unwrap().collections.is_empty()
    })
    .await;
    app.drain().await;
    assert_eq!(app.smtp.mails_to("sender@example.com").len(), 2);
    assert_eq!(agent.memory.lock().unwrap().opens[&locker], 4);

    let (entry, collection, reply, grant) = (
        schema("pickup-entry"),
        schema("collection"),
        schema("reply"),
        schema("grant"),
    );
    let memory = std::mem::take(&mut *agent.memory.lock().unwrap());
    for sent in &memory.sent {
        let shape = if sent.get("item_id").is_some() {
            &collection
        } else {
            &entry
        };
        assert_valid(shape, sent);
    }
    let entries = memory
        .sent
        .iter()
        .filter(|m| m.get("code").is_some())
        .count();
    assert_eq!(entries, 2, "two entries while online");
    let mut reported: Vec<_> = memory
        .sent
        .iter()
        .filter_map(|m| m.get("item_id"))
        .collect();
    reported.dedup();
    assert_eq!(
        reported,
        [&second["id"]],
        "one collection (perhaps sent again)"
    );
    for answer in &memory.replies {
        assert_valid(&reply, answer);
    }
    assert_valid(&grant, &memory.grants[&locker]);
    agent.kill().await;
}

/// Drops the `nth` item for one receiver at the document agent's locker and
/// closes the door once it has opened: the item stored, its notice read and
/// its grant kept by the agent.
async fn stored_with_pass(
    app: &TestApp,
    admin: &str,
    sender: &str,
    agent: &DocAgent,
    locker: i64,
    nth: usize,
) -> (Value, Pass) {
    const RECEIVER: &str = "pin@example.com";
    let opened = |memory: &crate::doc_agent::Memory| memory.opens.get(&locker).copied();
    let before = opened(&agent.memory.lock().unwrap()).unwrap_or(0);
    let (status, dropped) = app
        .drop_item(sender, &json!(locker), json!({"receiver_email": RECEIVER}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dropped}");
    app.wait_until("the drop's door open", || async {
        opened(&agent.memory.lock().unwrap()) == Some(before + 1)
    })
    .await;
    agent.close_door(locker).await;
    app.wait_until("stored", || async {
        item(app, admin, &dropped["id"]).await["status"] == "STORED"
    })
    .await;
    let notices = app.smtp.wait_for(RECEIVER, nth, WAIT).await;
    let pass = pass_in(&notices[nth - 1].body());
    app.wait_until("the grant kept", || async {
        let memory = agent.memory.lock().unwrap();
        memory
            .grants
            .get(&locker)
            .is_some_and(|g| g["item_id"] == dropped["id"] && g["state"] == "granted")
    })
    .await;
    (dropped, pass)
}
