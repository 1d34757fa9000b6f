//! Doors over MQTT: unlock commands to a simulated agent, door events back,
//! the item moving only when the door says so.

use std::time::Duration;

use futures::future::join_all;
use locker_core::store::doors;
use locker_core::{Clock, SystemClock};
use locker_protocol::{Command, agent_key};
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

use crate::helpers::{AGENT_SECRET, TestApp, WAIT};

pub(crate) const RECEIVER: &str = "receiver@example.com";

/// A stack, an admin and a sender, with lockers at "Mall Entrance" whose
/// doors agents drive.
pub(crate) struct Site {
    pub app: TestApp,
    pub admin: String,
    pub sender: String,
}

pub(crate) async fn site() -> Site {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let sender = app.user_token("sender@example.com").await;
    Site { app, admin, sender }
}

impl Site {
    pub async fn locker(&self, agent: &str) -> i64 {
        let (status, locker) = self
            .app
            .post(
                "/Admin/",
                Some(&self.admin),
                json!({"location": "Mall Entrance", "name": "D1", "agent_id": agent}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{locker}");
        locker["id"].as_i64().unwrap()
    }

    pub async fn drop_item(&self, locker: i64) -> Value {
        let (status, item) = self
            .app
            .drop_item(
                &self.sender,
                &json!(locker),
                json!({"receiver_email": RECEIVER}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        item
    }

    /// Drops an item at `locker` and waits until its unlock job is done with
    /// it (the item names its command); the item and the command's id.
    pub async fn dropped_with_command(&self, locker: i64) -> (Value, String) {
        let item = self.drop_item(locker).await;
        let id = item["id"].as_i64().unwrap();
        let command = async || -> Option<String> {
            sqlx::query_scalar("SELECT unlock_command_id FROM items WHERE id = $1")
                .bind(id)
                .fetch_one(self.app.state.db.pool())
                .await
                .unwrap()
        };
        self.app
            .wait_until("command named", || async { command().await.is_some() })
            .await;
        (item, command().await.unwrap())
    }

    pub async fn item(&self, item: &Value) -> Value {
        self.app
            .get(&format!("/Items/{}", item["id"]), Some(&self.admin))
            .await
            .1
    }

    pub async fn locker_view(&self, id: i64) -> Value {
        self.app
            .get(&format!("/lockers/{id}"), Some(&self.admin))
            .await
            .1
    }

    pub async fn wait_status(&self, item: &Value, status: &str) {
        self.app
            .wait_until(&format!("item {} {status}", item["id"]), || async {
                self.item(item).await["status"] == status
            })
            .await;
    }

    pub async fn wait_door(&self, agent: &crate::agents::TestAgent, locker: i64, open: bool) {
        self.app
            .wait_until(&format!("door {locker} open={open}"), || async {
                agent.doors.is_open(locker) == open
            })
            .await;
    }

    /// An item dropped through `agent`'s door and stored, then its
    /// receiver's code taken: the door stands open for the collect.
    pub async fn stored_and_opened_for_collect(
        &self,
        agent: &crate::agents::TestAgent,
        locker: i64,
    ) -> Value {
        let item = self.drop_item(locker).await;
        self.wait_door(agent, locker, true).await;
        agent.doors.close(locker);
        self.wait_status(&item, "STORED").await;
        self.app.request_otp(&json!(locker), RECEIVER).await;
        let code = self.app.email_code(RECEIVER, 1).await;
        assert_eq!(
            self.app.collect(&json!(locker), &code).await.0,
            StatusCode::OK
        );
        self.wait_door(agent, locker, true).await;
        item
    }
}

#[tokio::test]
async fn an_exchange_goes_through_a_real_door() {
    let s = site().await;
    let locker = s.locker("site-1").await;
    let agent = s.app.agent("site-1", &[locker], None).await;
    assert_eq!(s.locker_view(locker).await["agent_online"], true);

    let item = s.drop_item(locker).await;
    assert_eq!(item["status"], "AWAITING_DROP");
    assert!(item["drop_deadline"].is_string());
    s.wait_door(&agent, locker, true).await;
    s.app
        .wait_until("door shown open", || async {
            s.locker_view(locker).await["door"] == "open"
        })
        .await;
    // Finding lockers by place reads them as they are, agent and door too.
    let mut at_place = s
        .app
        .get("/lockers/by-place?location=mall%20entrance", Some(&s.admin))
        .await
        .1;
    let found = at_place[0]
        .as_object_mut()
        .expect("the locker at its place");
    let free = found.remove("free_at_place");
    assert_eq!(Value::Object(found.clone()), s.locker_view(locker).await);
    assert_eq!(free, Some(json!({"SMALL": 0, "MEDIUM": 0, "LARGE": 0})));
    // The sender is still putting the item in: nothing told to the receiver yet.
    assert_eq!(s.item(&item).await["status"], "AWAITING_DROP");
    assert!(s.app.smtp.mails_to(RECEIVER).is_empty());

    agent.doors.close(locker);
    s.wait_status(&item, "STORED").await;
    let told = s.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    // Where to go, as the closing read it.
    let name = item["name"].as_str().unwrap();
    let waiting = format!("\"{name}\" is waiting for you in locker D1 at Mall Entrance until ");
    assert!(told[0].body().contains(&waiting), "{}", told[0].data);

    s.app.request_otp(&json!(locker), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    let (status, body) = s.app.collect(&json!(locker), &code).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["detail"].as_str().unwrap().contains("opening"),
        "{body}"
    );
    assert_eq!(s.item(&item).await["status"], "RELEASING");
    assert_eq!(s.locker_view(locker).await["status"], "OCCUPIED");
    s.wait_door(&agent, locker, true).await;

    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    let view = s.locker_view(locker).await;
    assert_eq!(
        (view["status"].as_str(), view["door"].as_str()),
        (Some("AVAILABLE"), Some("closed"))
    );
    let told = s.app.smtp.wait_for("sender@example.com", 1, WAIT).await;
    let collected = format!("\"{name}\" was collected from the locker at Mall Entrance.");
    assert!(told[0].body().contains(&collected), "{}", told[0].data);
    let acked = s
        .app
        .count("SELECT COUNT(*) FROM commands WHERE ok = 1")
        .await;
    assert_eq!(acked, 2);
    // What a door's closing sends out is traced to the request that opened
    // it: the stored notice to the drop, the collected one to the collect.
    let traced = s
        .app
        .count(
            "SELECT COUNT(DISTINCT c.id) FROM commands c \
             JOIN outbox o ON o.trace_id = c.trace_id AND o.kind = 'notify' \
             WHERE c.trace_id <> ''",
        )
        .await;
    assert_eq!(traced, 2, "each door's notice carries its command's trace");
    // Every job the exchange queued is marked done, once it ran: the doors'
    // too (the drop's unlock, and the collect's unlock with the grant's
    // revocation after it, in one job), whose marks ride on their own
    // writes where the database chains them. The offline grant went out
    // from the deposit notice's worker, which drives doors: no job.
    s.app.drain().await;
    let jobs = s.app.count("SELECT COUNT(*) FROM outbox").await;
    let done = s
        .app
        .count(
            "SELECT COUNT(*) FROM job_runs j JOIN outbox o ON o.id = j.job_id \
             WHERE j.done_at IS NOT NULL",
        )
        .await;
    let doors = s
        .app
        .count("SELECT COUNT(*) FROM outbox WHERE kind = 'unlock'")
        .await;
    assert_eq!((done, doors), (jobs, 2));
    // Each step audited once, by whom, at which locker, newest first.
    let (status, page) = s
        .app
        .get(
            &format!("/Admin/audit?item_id={}", item["id"]),
            Some(&s.admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let steps: Vec<_> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor_email"].as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("item.collected", None),
            ("item.releasing", None),
            ("item.stored", None),
            ("item.dropped", Some("sender@example.com")),
        ]
    );
    for entry in entries {
        assert_eq!(entry["locker_id"], locker, "{entry}");
        assert_eq!(entry["subject"], format!("item:{}", item["id"]));
        assert_eq!(entry["detail"], format!("locker {locker}"));
    }

    agent.stop().await;
    s.app.wait_agent_online("site-1", false).await;
    assert_eq!(s.locker_view(locker).await["agent_online"], false);
}

#[tokio::test]
async fn racing_drops_at_a_door_reserve_it_once_and_unlock_it_once() {
    let s = site().await;
    let locker = s.locker("racing-drops").await;
    let _agent = s.app.agent("racing-drops", &[locker], None).await;
    let at = json!(locker);
    let drops = (0..20).map(|_| {
        s.app
            .drop_item(&s.sender, &at, json!({"receiver_email": RECEIVER}))
    });
    let mut statuses: Vec<_> = join_all(drops).await.into_iter().map(|(s, _)| s).collect();
    statuses.sort();
    statuses.dedup_by(|a, b| a == b);
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    let made = |sql| s.app.count(sql);
    assert_eq!(made("SELECT COUNT(*) FROM items").await, 1);
    assert_eq!(
        made("SELECT COUNT(*) FROM outbox WHERE kind = 'unlock'").await,
        1
    );
    assert_eq!(
        made("SELECT COUNT(*) FROM audit_log WHERE action = 'item.dropped'").await,
        1
    );
}

#[tokio::test]
async fn two_collects_at_a_door_with_the_right_code_open_it_once() {
    let s = site().await;
    let locker = s.locker("racing-collects").await;
    let agent = s.app.agent("racing-collects", &[locker], None).await;
    let item = s.drop_item(locker).await;
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_status(&item, "STORED").await;
    s.app.request_otp(&json!(locker), RECEIVER).await;
    let code = s.app.email_code(RECEIVER, 1).await;
    let at = json!(locker);
    let (a, b) = tokio::join!(s.app.collect(&at, &code), s.app.collect(&at, &code));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::FORBIDDEN]);
    assert_eq!(s.item(&item).await["status"], "RELEASING");
    // The drop's unlock and one collect's, which carries the pass's
    // revocation (the door queue also holds the pass's grant).
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE kind = 'unlock' ORDER BY id")
            .fetch_all(s.app.state.db.pool())
            .await
            .unwrap();
    let unlocks: Vec<Value> = payloads
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap())
        .filter(|job| job.get("purpose").is_some())
        .collect();
    assert_eq!(unlocks.len(), 2, "{payloads:?}");
    let collect = &unlocks[1];
    assert_eq!(
        (
            &collect["item_id"],
            &collect["purpose"],
            &collect["then_grant"]
        ),
        (&item["id"], &json!("collect"), &json!(true))
    );
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'item.releasing'")
            .await,
        1
    );
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
}

/// The queue may hand an unlock job out again long after it ran (a lost
/// acknowledgement): by then its item waits on another door opening, and
/// the old job must neither open the door again nor take the item's wait.
#[tokio::test]
async fn a_drops_unlock_redelivered_during_the_collect_changes_nothing() {
    let s = site().await;
    let locker = s.locker("site-9").await;
    let agent = s.app.agent("site-9", &[locker], None).await;
    let item = s.stored_and_opened_for_collect(&agent, locker).await;

    let (id, payload, trace): (i64, String, String) = sqlx::query_as(
        "SELECT id, payload, trace_id FROM outbox WHERE payload LIKE '%\"purpose\":\"drop\"%'",
    )
    .fetch_one(s.app.state.db.pool())
    .await
    .unwrap();
    let again = locker_core::jobs::Envelope {
        id,
        kind: locker_core::jobs::JobKind::Unlock,
        attempt: 2,
        trace_id: trace,
        payload: serde_json::from_str(&payload).unwrap(),
        enqueued_at: None,
    };
    s.app.queue.publish(&again).await.unwrap();
    s.app.drain().await;

    // The receiver shuts the door on the collect: the item is collected.
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    assert!(s.item(&item).await["unlock_failed_at"].is_null());
    let openings = s
        .app
        .count("SELECT COUNT(*) FROM door_events WHERE kind = 'door_opened'")
        .await;
    assert_eq!(openings, 2, "one opening for the drop, one for the collect");
    agent.stop().await;
}

/// A client of our own on the test's broker, to speak to an agent directly.
pub async fn raw_client(
    app: &TestApp,
    agent: &str,
) -> (AsyncClient, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let broker = app.doors.broker.clone().unwrap();
    let mut options = MqttOptions::new(
        format!("probe-{}", uuid::Uuid::new_v4().simple()),
        broker.host,
        broker.port,
    );
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let acks = format!("{}/agents/{agent}/acks", app.doors.topic_root);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let subscribed = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed.0);
    let sub_client = client.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    sub_client
                        .subscribe(acks.clone(), QoS::AtLeastOnce)
                        .await
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(done) = subscribed_tx.take() {
                        let _ = done.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(serde_json::from_slice(&p.payload).unwrap());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(WAIT, subscribed.1)
        .await
        .unwrap()
        .unwrap();
    (client, rx)
}

#[tokio::test]
async fn forged_expired_and_replayed_commands_are_refused_and_change_nothing() {
    let s = site().await;
    let locker = s.locker("site-2").await;
    let agent = s.app.agent("site-2", &[locker], None).await;
    let (client, mut acks) = raw_client(&s.app, "site-2").await;
    let topic = format!("{}/agents/site-2/commands", s.app.doors.topic_root);
    let key = agent_key(AGENT_SECRET.as_bytes(), "site-2");
    let now = SystemClock.now_millis();

    let mut send = async |payload: Vec<u8>| -> Value {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        tokio::time::timeout(WAIT, acks.recv())
            .await
            .expect("an ack")
            .unwrap()
    };
    let json = |c: &Command| serde_json::to_vec(c).unwrap();

    let forged = Command::signed(
        "forged-1".into(),
        locker,
        now,
        now + 30_000,
        b"not-the-agent-key-at-all-0000000",
    );
    let ack = send(json(&forged)).await;
    assert_eq!(
        ack,
        json!({"command_id": "forged-1", "ok": false, "reason": "bad_signature"})
    );

    let mut tampered = Command::signed(
        "tampered-1".into(),
        locker + 1,
        now,
        now + 30_000,
        key.as_bytes(),
    );
    tampered.locker_id = locker;
    assert_eq!(send(json(&tampered)).await["reason"], "bad_signature");

    let expired = Command::signed(
        "expired-1".into(),
        locker,
        now - 60_000,
        now - 30_000,
        key.as_bytes(),
    );
    assert_eq!(send(json(&expired)).await["reason"], "expired");

    let elsewhere = Command::signed(
        "elsewhere-1".into(),
        locker + 1000,
        now,
        now + 30_000,
        key.as_bytes(),
    );
    assert_eq!(send(json(&elsewhere)).await["reason"], "unknown_locker");

    assert_eq!(send(b"{not json".to_vec()).await["reason"], "malformed");
    assert!(
        !agent.doors.is_open(locker),
        "no refused command opened the door"
    );

    // A genuine command works once; the same bytes again are a replay.
    let genuine = Command::signed(
        "genuine-1".into(),
        locker,
        now,
        now + 30_000,
        key.as_bytes(),
    );
    assert_eq!(
        send(json(&genuine)).await,
        json!({"command_id": "genuine-1", "ok": true})
    );
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_door(&agent, locker, false).await;
    // The agent decides before it answers: the refusal is final.
    assert_eq!(send(json(&genuine)).await["reason"], "replayed");
    assert!(!agent.doors.is_open(locker));

    // Nothing changed on our side: the locker is free, one opening recorded.
    s.app
        .wait_until("one opening and one closing recorded", || async {
            s.app.count("SELECT COUNT(*) FROM door_events").await == 2
        })
        .await;
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM door_events WHERE kind = 'door_opened'")
            .await,
        1
    );
    assert_eq!(s.locker_view(locker).await["status"], "AVAILABLE");
    assert_eq!(s.app.count("SELECT COUNT(*) FROM items").await, 0);
}

#[tokio::test]
async fn a_drop_whose_door_never_opens_is_cancelled_and_the_sender_told() {
    let s = site().await;
    let locker = s.locker("site-3").await;
    let agent = s.app.agent("site-3", &[locker], None).await;
    agent.doors.jam(locker);
    let item = s.drop_item(locker).await;

    // The agent answers door_fault: no retry, the item is flagged for admins.
    s.app
        .wait_until("unlock failure flagged", || async {
            s.item(&item).await["unlock_failed_at"].is_string()
        })
        .await;
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'unlock.failed'")
            .await,
        1
    );
    assert_eq!(s.item(&item).await["status"], "AWAITING_DROP");

    s.app.advance(Duration::from_secs(10 * 60 + 1));
    s.wait_status(&item, "CANCELLED").await;
    assert_eq!(s.locker_view(locker).await["status"], "AVAILABLE");
    let told = s.app.smtp.wait_for("sender@example.com", 1, WAIT).await;
    assert!(
        told[0].header("Subject").unwrap().contains("cancelled"),
        "{}",
        told[0].data
    );
}

#[tokio::test]
async fn an_unanswered_unlock_is_retried_then_reported() {
    let s = site().await;
    let late = s.locker("late-agent").await;
    let ghost = s.locker("ghost-agent").await;
    let waiting = s.drop_item(late).await;
    let stranded = s.drop_item(ghost).await;
    s.app
        .wait_until("both commands sent", || async {
            s.app.count("SELECT COUNT(*) FROM commands").await == 2
        })
        .await;

    // Nobody heard the first copies. The late agent comes up; once an
    // answer is overdue (2 s here) the same command goes again, and runs.
    let agent = s
        .app
        .agent("late-agent", &[late], Some(Duration::from_millis(100)))
        .await;
    s.app.advance(Duration::from_secs(3));
    s.wait_status(&waiting, "STORED").await;
    assert!(s.item(&waiting).await["unlock_failed_at"].is_null());
    let sends = "SELECT sends FROM commands WHERE agent_id = 'ghost-agent'";
    s.app
        .wait_until("the ghost's command sent again", || async {
            s.app.count(sends).await == 2
        })
        .await;
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'unlock.failed'")
            .await,
        0
    );

    // The ghost never answers: once no copy can run (30 s of life and the
    // 10 s allowance), the unlock is reported, once.
    s.app.advance(Duration::from_secs(38));
    s.app
        .wait_until("ghost unlock reported", || async {
            s.item(&stranded).await["unlock_failed_at"].is_string()
        })
        .await;
    assert_eq!(s.item(&stranded).await["status"], "AWAITING_DROP");
    let failures: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'unlock.failed'")
            .fetch_all(s.app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("no answer from agent ghost-agent"),
        "{failures:?}"
    );
    // Sent at 0 s and, its answer overdue, at 3 s; at 41 s no copy could run
    // any more. Waiting on the agent held no job.
    assert_eq!(s.app.count(sends).await, 2);
    let dead = s
        .app
        .queue
        .dead_letters(locker_core::jobs::JobKind::Unlock)
        .await
        .unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    agent.stop().await;
}

/// Every process serving unlocks tracks every command: racing trackers send
/// a copy once per step, and report a failure once.
#[tokio::test]
async fn racing_trackers_take_each_step_of_a_command_once() {
    let s = site().await;
    let locker = s.locker("absent-agent").await;
    let (item, id) = s.dropped_with_command(locker).await;
    let pool = s.app.state.db.pool();
    let due: i64 = sqlx::query_scalar("SELECT next_send_at FROM commands WHERE id = $1")
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap();

    let resends = (0..8).map(|_| doors::reschedule(pool, &id, due, due + 2000, true));
    let taken = join_all(resends).await;
    assert_eq!(taken.iter().filter(|t| *t.as_ref().unwrap()).count(), 1);
    assert_eq!(s.app.count("SELECT sends FROM commands").await, 2);

    let exchange = &s.app.state.exchange;
    let failures = (0..8).map(|_| exchange.unlock_failed(&id, "no answer"));
    let reported = join_all(failures).await;
    assert_eq!(reported.iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'unlock.failed'")
            .await,
        1
    );
    assert!(s.item(&item).await["unlock_failed_at"].is_string());
    // Failed, it is no longer tracked.
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM commands WHERE next_send_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn admins_unlock_doors_for_maintenance() {
    let s = site().await;
    let locker = s.locker("site-6").await;
    let agent = s.app.agent("site-6", &[locker], None).await;
    let path = format!("/Admin/{locker}/unlock");

    assert_eq!(
        s.app.post(&path, Some(&s.sender), json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = s.app.post(&path, Some(&s.admin), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    s.wait_door(&agent, locker, true).await;
    s.app
        .wait_until("door shown open", || async {
            s.locker_view(locker).await["door"] == "open"
        })
        .await;
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'locker.unlocked'")
            .await,
        1
    );

    // Nobody shuts it: after 2 s the agent reports it left open.
    s.app
        .wait_until("left-open reported", || async {
            s.app
                .count("SELECT COUNT(*) FROM audit_log WHERE action = 'door.left_open'")
                .await
                == 1
        })
        .await;
    agent.doors.close(locker);
    s.app
        .wait_until("door shown closed", || async {
            s.locker_view(locker).await["door"] == "closed"
        })
        .await;

    let (_, plain) = s
        .app
        .post("/Admin/", Some(&s.admin), json!({"location": "Library"}))
        .await;
    let (status, _) = s
        .app
        .post(
            &format!("/Admin/{}/unlock", plain["id"]),
            Some(&s.admin),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        s.app
            .post("/Admin/987654/unlock", Some(&s.admin), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    agent.stop().await;
}

/// The sum of a Prometheus series' samples whose labels include `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every metric the README lists moves with one exchange through a door.
/// (The recorder is the process's: other tests add to it too, so each
/// figure must grow by at least this exchange's share.)
#[tokio::test]
async fn metrics_move_with_an_exchange_through_a_door() {
    let metrics = locker_core::metrics::install(None).unwrap();
    let s = site().await;
    let before = metrics.render();
    let locker = s.locker("metered").await;
    let agent = s.app.agent("metered", &[locker], None).await;
    let item = s.stored_and_opened_for_collect(&agent, locker).await;
    agent.doors.close(locker);
    s.wait_status(&item, "COLLECTED").await;
    s.app.smtp.wait_for("sender@example.com", 1, WAIT).await;
    s.app.drain().await;
    let after = metrics.render();

    let grew = |name: &str, labels: &[(&str, &str)], by: f64| {
        let (was, is) = (sample(&before, name, labels), sample(&after, name, labels));
        assert!(is - was >= by, "{name}{labels:?}: {was} -> {is}");
    };
    grew(
        "http_requests_total",
        &[("method", "POST"), ("route", "/Items/"), ("status", "201")],
        1.0,
    );
    grew(
        "http_request_duration_seconds_count",
        &[
            ("route", "/Items/lockers/{locker_id}/collect"),
            ("status", "200"),
        ],
        1.0,
    );
    grew("jobs_total", &[("kind", "otp"), ("outcome", "done")], 1.0);
    grew(
        "jobs_total",
        &[("kind", "unlock"), ("outcome", "done")],
        2.0,
    );
    grew(
        "jobs_total",
        &[("kind", "notify"), ("outcome", "done")],
        2.0,
    );
    grew("job_latency_seconds_count", &[("kind", "notify")], 2.0);
    grew("unlock_round_trip_seconds_count", &[], 2.0);
    grew("door_events_total", &[("kind", "door_opened")], 2.0);
    grew("door_events_total", &[("kind", "door_closed")], 2.0);
    for gauge in ["agents_online", "outbox_backlog"] {
        assert!(
            after.lines().any(|l| l.starts_with(&format!("{gauge} "))),
            "{gauge} is not reported"
        );
    }
    agent.stop().await;
}
