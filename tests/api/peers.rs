//! A worker process that dies holding agents' messages it had received and
//! not yet applied: the broker keeps them in its session, and a peer that
//! finds it silent adopts the session and applies them.

use std::time::Duration;

use futures::future::join_all;
use locker_core::Db;
use locker_core::config::DatabaseConfig;
use locker_core::store::worker_sessions;
use locker_core::{Clock, SystemClock};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::doors::{raw_client, sample, site};
use crate::helpers::{TestDb, WAIT};

const SILENCE: Duration = Duration::from_secs(30);

/// Of peers racing for a silent process's session, one gets it; a live
/// process, or the claimer itself, is never claimed; a process heard from
/// again takes its session back from the claim; one that left on purpose
/// is claimable at once.
#[tokio::test]
async fn a_silent_workers_session_goes_to_one_peer_and_a_live_ones_to_none() {
    let database = TestDb::create().await;
    let db = Db::connect(&DatabaseConfig::parse(&database.url).unwrap())
        .await
        .unwrap();
    let claim = |by: &'static str| worker_sessions::claim_silent(&db, by, SILENCE, SILENCE);
    for id in ["w-live", "w-gone", "w-0"] {
        worker_sessions::heard_from(&db, id).await.unwrap();
    }
    assert_eq!(claim("w-0").await.unwrap(), None, "no one is silent yet");
    worker_sessions::left(&db, "w-0").await.unwrap();
    assert_eq!(claim("w-0").await.unwrap(), None, "never its own session");

    worker_sessions::left(&db, "w-gone").await.unwrap();
    let adopters = ["w-1", "w-2", "w-3", "w-4", "w-5", "w-6", "w-7", "w-8"];
    let won: Vec<_> = join_all(adopters.map(claim))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = adopters
        .iter()
        .zip(&won)
        .filter(|(_, got)| got.as_deref() == Some("w-gone"))
        .map(|(by, _)| *by)
        .collect();
    assert_eq!(winners.len(), 1, "{won:?}");
    assert!(
        won.iter().flatten().all(|id| id != "w-live"),
        "a live process's session is no one's: {won:?}"
    );
    // "w-0" left too: claimed by one of the eight, once.
    assert_eq!(won.iter().flatten().filter(|id| *id == "w-0").count(), 1);
    assert_eq!(claim("w-9").await.unwrap(), None, "both claims still run");

    // "w-gone" comes back before its adopter is done: the claim is void and
    // recording the adoption does not forget the process.
    worker_sessions::heard_from(&db, "w-gone").await.unwrap();
    worker_sessions::adopted(&db, "w-gone", winners[0])
        .await
        .unwrap();
    let gone_known = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM worker_sessions WHERE client_id = 'w-gone'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap()
            == 1
    };
    assert!(gone_known().await);
    worker_sessions::left(&db, "w-gone").await.unwrap();
    assert_eq!(claim("w-9").await.unwrap().as_deref(), Some("w-gone"));
    worker_sessions::adopted(&db, "w-gone", "w-9")
        .await
        .unwrap();
    assert!(!gone_known().await, "adopted and forgotten");
    db.close().await;
}

/// A worker of the deployment's shared subscription, as far as the broker
/// can tell: it takes its share of door events and never acknowledges one.
async fn dying_worker(
    broker: &locker_protocol::MqttEndpoint,
    client_id: &str,
    filter: String,
) -> (
    AsyncClient,
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_clean_session(false);
    options.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let (received, taken) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed, ready) = tokio::sync::oneshot::channel();
    let mut subscribed = Some(subscribed);
    let subscriber = client.clone();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    subscriber
                        .subscribe(filter.clone(), QoS::AtLeastOnce)
                        .await
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(done) = subscribed.take() {
                        let _ = done.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let event: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                    let _ = received.send(event["id"].as_str().unwrap().to_owned());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(WAIT, ready).await.unwrap().unwrap();
    (client, task, taken)
}

/// A worker dies holding door events it received and never applied; its
/// peer finds it silent, adopts its session, applies every one of them, and
/// leaves nothing behind in it.
#[tokio::test]
#[ignore = "needs Mosquitto: run with TEST_MQTT_URL set and --include-ignored"]
async fn door_events_a_dead_worker_held_are_applied_by_its_peer() {
    assert!(
        std::env::var("TEST_MQTT_URL").is_ok_and(|v| !v.is_empty()),
        "TEST_MQTT_URL must name a broker with shared subscriptions for this test"
    );
    const EVENTS: usize = 8;
    let metrics = locker_core::metrics::install(None).unwrap();
    let adopted = || {
        let text = metrics.render();
        (
            sample(
                &text,
                "worker_sessions_adopted_total",
                &[("outcome", "adopted")],
            ),
            sample(&text, "adopted_messages_total", &[]),
        )
    };
    let (sessions_before, messages_before) = adopted();
    let s = site().await;
    let locker = s.locker("site-peer").await;
    let root = s.app.doors.topic_root.clone();
    let broker = s.app.doors.broker.clone().unwrap();
    let dying_id = format!("{}-dying", s.app.doors.client_id);
    s.app
        .sessions
        .client_ids
        .lock()
        .unwrap()
        .push(dying_id.clone());
    let group = format!("{}-workers", root.replace('/', "-"));
    let filter = format!("$share/{group}/{root}/agents/+/events");
    let (_dying, dying_task, mut taken) = dying_worker(&broker, &dying_id, filter).await;
    // Alive, as far as its peers can tell, until it dies.
    let db = s.app.state.db.clone();
    let id = dying_id.clone();
    let heartbeat = tokio::spawn(async move {
        loop {
            worker_sessions::heard_from(&db, &id).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let (agent, _acks) = raw_client(&s.app, "site-peer").await;
    let topic = format!("{root}/agents/site-peer/events");
    let start = SystemClock.now_millis();
    for n in 0..EVENTS {
        let kind = if n % 2 == 0 {
            "door_opened"
        } else {
            "door_closed"
        };
        let at = start + i64::try_from(n).unwrap();
        let event = json!({"id": format!("held-{n}"), "locker_id": locker, "kind": kind, "at": at});
        agent
            .publish(topic.clone(), QoS::AtLeastOnce, false, event.to_string())
            .await
            .unwrap();
    }
    // Every event is either applied by the live worker or held by the dying one.
    let mut held = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Ok(id) = taken.try_recv() {
            held.push(id);
        }
        let applied = s.app.count("SELECT COUNT(*) FROM door_events").await;
        if usize::try_from(applied).unwrap() + held.len() == EVENTS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{applied} applied and {} held of {EVENTS}",
            held.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!held.is_empty(), "the broker gave the dying worker none");
    heartbeat.abort();
    dying_task.abort();
    let _ = dying_task.await;

    // Silent for the peer timeout (3 s in tests), then adopted.
    s.app
        .wait_until("the held events applied by the peer", || async {
            s.app.count("SELECT COUNT(*) FROM door_events").await == EVENTS as i64
        })
        .await;
    assert_eq!(
        s.locker_view(locker).await["door"],
        "closed",
        "the newest report stands"
    );
    s.app
        .wait_until("the adoption recorded", || async {
            s.app
                .count("SELECT COUNT(*) FROM worker_sessions WHERE client_id LIKE '%-dying'")
                .await
                == 0
        })
        .await;
    // Other tests add to the process's metrics too: these grew by at least this.
    let (sessions, messages) = adopted();
    assert!(
        sessions > sessions_before,
        "{sessions_before} -> {sessions}"
    );
    assert!(
        messages - messages_before >= held.len() as f64,
        "{messages_before} -> {messages}, {} held",
        held.len()
    );

    // The session holds nothing more: its id connecting again gets nothing,
    // and it is no longer in the group.
    let mut options = MqttOptions::new(&dying_id, broker.host.clone(), broker.port);
    options.set_clean_session(false);
    let (_again, mut eventloop) = AsyncClient::new(options, 10);
    let redelivered = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                return p.topic;
            }
        }
    })
    .await;
    assert!(redelivered.is_err(), "still held: {redelivered:?}");
}
