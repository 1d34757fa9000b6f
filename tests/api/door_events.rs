//! Door events from agents: each applied once by its id, whatever sends it
//! again or races it, only from the agent that drives the door, and the
//! newest report of a door kept.

use std::time::Duration;

use futures::future::join_all;
use locker_core::exchange::DoorOutcome;
use locker_core::{Clock, SystemClock};
use locker_protocol::{DoorEvent, DoorEventKind};
use rumqttc::QoS;
use serde_json::json;

use crate::doors::{RECEIVER, raw_client, site};
use crate::helpers::WAIT;

/// A door's state is what its own agent last saw: a report about a locker
/// another agent drives is kept but changes nothing, and a report older
/// than the one shown does not overwrite it.
#[tokio::test]
async fn door_reports_count_only_from_the_lockers_agent_and_newest_first() {
    let s = site().await;
    let mine = s.locker("site-7").await;
    let theirs = s.locker("site-8").await;
    let (client, _acks) = raw_client(&s.app, "site-7").await;
    let topic = format!("{}/agents/site-7/events", s.app.doors.topic_root);
    let now = SystemClock.now_millis();
    let mut sent = 0;
    let mut report = async |id: &str, locker: i64, kind: &str, at: i64| {
        let event = json!({"id": id, "locker_id": locker, "kind": kind, "at": at});
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, event.to_string())
            .await
            .unwrap();
        sent += 1;
        let recorded = sent;
        s.app
            .wait_until(&format!("report {id} recorded"), || async {
                s.app.count("SELECT COUNT(*) FROM door_events").await == recorded
            })
            .await;
    };
    let door = async |locker: i64| s.locker_view(locker).await["door"].clone();
    let before = door(theirs).await;

    report("e-1", theirs, "door_opened", now).await;
    report("e-1b", theirs, "door_closed", now + 1).await;
    assert_eq!(
        door(theirs).await,
        before,
        "another agent's door is not mine to report"
    );

    report("e-2", mine, "door_opened", now).await;
    assert_eq!(door(mine).await, "open");
    report("e-3", mine, "door_closed", now - 10_000).await;
    assert_eq!(
        door(mine).await,
        "open",
        "an older report does not overwrite a newer one"
    );
    report("e-4", mine, "door_closed", now + 1).await;
    assert_eq!(door(mine).await, "closed");
}

/// The same door event applied by several at once (copies of one message,
/// in processes sharing the database): one applies it, the rest find it
/// applied, and the item moves and its receiver is told once.
#[tokio::test]
async fn racing_copies_of_a_door_event_apply_it_once() {
    let s = site().await;
    let locker = s.locker("racing-agent").await;
    let (item, command) = s.dropped_with_command(locker).await;
    let exchange = &s.app.state.exchange;
    let now = SystemClock.now_millis();
    for (n, kind) in [DoorEventKind::DoorOpened, DoorEventKind::DoorClosed]
        .into_iter()
        .enumerate()
    {
        let event = DoorEvent {
            id: format!("racing-{n}"),
            locker_id: locker,
            kind,
            at: now + n as i64,
            command_id: Some(command.clone()),
        };
        let copies = (0..8).map(|_| exchange.door_event("racing-agent", &event));
        let outcomes: Vec<DoorOutcome> = join_all(copies)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let applied = outcomes
            .iter()
            .filter(|o| matches!(o, DoorOutcome::Applied(_)))
            .count();
        let seen = outcomes
            .iter()
            .filter(|o| matches!(o, DoorOutcome::Duplicate))
            .count();
        assert_eq!((applied, seen), (1, 7), "{kind:?}: {outcomes:?}");
    }
    assert_eq!(s.item(&item).await["status"], "STORED");
    assert_eq!(s.locker_view(locker).await["door"], "closed");
    s.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    s.app.drain().await;
    assert_eq!(s.app.smtp.mails_to(RECEIVER).len(), 1);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'item.stored'")
            .await,
        1
    );
}

/// An admin clears a locker while its door closes on the item being
/// dropped: both take the locker before the item, so neither waits on the
/// other in a circle (PostgreSQL would end one with a deadlock error, the
/// admin's a 500). Whichever comes first, the item ends `CLEARED` and the
/// locker free.
#[tokio::test]
async fn clearing_a_locker_as_its_door_closes_never_deadlocks() {
    use locker_core::exchange::Actor;

    let s = site().await;
    let locker = s.locker("clearing-agent").await;
    let exchange = &s.app.state.exchange;
    for round in 0..16 {
        let (item, command) = s.dropped_with_command(locker).await;
        let event = closing(format!("clearing-{round}"), locker, command);
        let (closed, cleared) = tokio::join!(
            exchange.door_event("clearing-agent", &event),
            exchange.force_clear(Actor::default(), locker, "race"),
        );
        applied(closed, round);
        let cleared = cleared.unwrap_or_else(|e| panic!("round {round}: clearing: {e:?}"));
        assert_eq!(cleared.id, item["id"].as_i64().unwrap());
        assert_eq!(s.item(&item).await["status"], "CLEARED", "round {round}");
        assert_eq!(s.locker_view(locker).await["status"], "AVAILABLE");
    }
}

/// A drop's window runs out as its door closes on it (its opening never
/// reported): the sweep that cancels it and the closing take the locker
/// before the item alike, and neither fails. Whichever comes first wins:
/// the item is `STORED`, or `CANCELLED` (by this sweep or the stack's own)
/// and the locker free.
#[tokio::test]
async fn a_drop_cancelled_as_its_door_closes_never_deadlocks() {
    let s = site().await;
    let locker = s.locker("sweeping-agent").await;
    let exchange = &s.app.state.exchange;
    for round in 0..16 {
        let (item, command) = s.dropped_with_command(locker).await;
        // Its window ran out.
        sqlx::query("UPDATE items SET drop_deadline = 0 WHERE id = $1")
            .bind(item["id"].as_i64().unwrap())
            .execute(s.app.state.db.pool())
            .await
            .unwrap();
        let event = closing(format!("sweeping-{round}"), locker, command);
        let (closed, cancelled) = tokio::join!(
            exchange.door_event("sweeping-agent", &event),
            exchange.cancel_unopened_drops(),
        );
        applied(closed, round);
        let cancelled = cancelled.unwrap_or_else(|e| panic!("round {round}: sweep: {e:?}"));
        // The stack's own sweeper may be the one that cancels it.
        let status = s.item(&item).await["status"].clone();
        if status == "STORED" {
            assert!(cancelled.is_empty(), "round {round}: {cancelled:?}");
            // Cleared, to free the locker for the next round.
            let by = locker_core::exchange::Actor::default();
            exchange
                .force_clear(by, locker, "next round")
                .await
                .unwrap();
        } else {
            assert_eq!(status, "CANCELLED", "round {round}");
        }
        assert_eq!(s.locker_view(locker).await["status"], "AVAILABLE");
    }
}

/// An agent reports a pickup it let through offline as the door closes on
/// the same item, released online: both take the locker before the item,
/// and neither fails. The item is `COLLECTED` once, the locker free.
#[tokio::test]
async fn an_offline_collection_as_its_door_closes_never_deadlocks() {
    use locker_core::exchange::OfflineOutcome;
    use locker_protocol::{OfflineCollection, PickupMethod};

    let s = site().await;
    let locker = s.locker("offline-agent").await;
    let exchange = &s.app.state.exchange;
    let now = SystemClock.now_millis();
    for round in 0..16 {
        let (item, command) = s.dropped_with_command(locker).await;
        let id = item["id"].as_i64().unwrap();
        // Stored, then released to its receiver: the door opened on it.
        sqlx::query("UPDATE items SET status = 'RELEASING', collect_by = $2 WHERE id = $1")
            .bind(id)
            .bind(now + 3_600_000)
            .execute(s.app.state.db.pool())
            .await
            .unwrap();
        let event = closing(format!("offline-{round}"), locker, command);
        let report = OfflineCollection {
            id: format!("collected-{round}"),
            locker_id: locker,
            item_id: id,
            method: PickupMethod::Pin,
            at: now,
            sig: String::new(),
        };
        let (closed, collected) = tokio::join!(
            exchange.door_event("offline-agent", &event),
            exchange.collected_offline("offline-agent", &report, "race"),
        );
        applied(closed, round);
        let collected = collected.unwrap_or_else(|e| panic!("round {round}: report: {e:?}"));
        assert!(
            matches!(
                collected,
                OfflineOutcome::Collected(_) | OfflineOutcome::Refused
            ),
            "{collected:?}"
        );
        assert_eq!(s.item(&item).await["status"], "COLLECTED", "round {round}");
        assert_eq!(s.locker_view(locker).await["status"], "AVAILABLE");
    }
}

/// The report that `locker`'s door closed after the unlock `command`.
fn closing(id: String, locker: i64, command: String) -> DoorEvent {
    DoorEvent {
        id,
        locker_id: locker,
        kind: DoorEventKind::DoorClosed,
        at: SystemClock.now_millis(),
        command_id: Some(command),
    }
}

/// A closing raced in `round` was applied, whatever it found.
fn applied(closed: Result<DoorOutcome, locker_core::exchange::Error>, round: usize) {
    match closed {
        Ok(DoorOutcome::Applied(_)) => {}
        other => panic!("round {round}: closing: {other:?}"),
    }
}

/// An agent's report that the door opened tells the command ran, though
/// its answer never came: the command is no longer tracked, so it is never
/// sent again nor reported failed.
#[tokio::test]
async fn a_door_seen_opening_settles_its_command_without_an_answer() {
    let s = site().await;
    let locker = s.locker("quiet-agent").await;
    let (_, command) = s.dropped_with_command(locker).await;
    let tracked = "SELECT COUNT(*) FROM commands WHERE next_send_at IS NOT NULL";
    assert_eq!(s.app.count(tracked).await, 1, "sent and not answered");
    let event = DoorEvent {
        id: "quiet-1".into(),
        locker_id: locker,
        kind: DoorEventKind::DoorOpened,
        at: SystemClock.now_millis(),
        command_id: Some(command),
    };
    let outcome = s.app.state.exchange.door_event("quiet-agent", &event).await;
    assert!(
        matches!(outcome, Ok(DoorOutcome::Applied(None))),
        "{outcome:?}"
    );
    assert_eq!(s.app.count(tracked).await, 0, "settled by the opening");
    let opened = "SELECT COUNT(*) FROM items WHERE door_opened_at IS NOT NULL";
    assert_eq!(s.app.count(opened).await, 1);
    // Long past its answer's time and its life, nothing more happens.
    s.app.advance(std::time::Duration::from_secs(120));
    s.app.drain().await;
    assert_eq!(s.app.count("SELECT sends FROM commands").await, 1);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'unlock.failed'")
            .await,
        0
    );
}

#[tokio::test]
async fn an_agent_cut_off_mid_exchange_reports_its_door_when_back() {
    let s = site().await;
    let locker = s.locker("site-4").await;
    let (proxy, via) = s.app.broker_proxy().await;
    let agent = s.app.agent_via("site-4", &[locker], None, via).await;
    let item = s.drop_item(locker).await;
    s.wait_door(&agent, locker, true).await;

    proxy.cut();
    s.app.wait_agent_online("site-4", false).await;
    // The sender shuts the door while the site is offline.
    agent.doors.close(locker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.item(&item).await["status"], "AWAITING_DROP");

    proxy.restore();
    s.wait_status(&item, "STORED").await;
    s.app.wait_agent_online("site-4", true).await;
    s.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    agent.stop().await;
}

#[tokio::test]
async fn door_events_sent_while_workers_are_down_are_applied_once_when_back() {
    let mut s = site().await;
    let locker = s.locker("site-5").await;
    let agent = s.app.agent("site-5", &[locker], None).await;
    let item = s.drop_item(locker).await;
    s.wait_door(&agent, locker, true).await;
    s.app
        .wait_until("opening recorded", || async {
            s.app
                .count("SELECT COUNT(*) FROM door_events WHERE kind = 'door_opened'")
                .await
                == 1
        })
        .await;

    s.app.kill().await;
    agent.doors.close(locker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.app.restart().await;

    s.wait_status(&item, "STORED").await;
    s.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    s.app.drain().await;
    assert_eq!(s.app.smtp.mails_to(RECEIVER).len(), 1);
    assert_eq!(s.app.count("SELECT COUNT(*) FROM door_events").await, 2);
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'item.stored'")
            .await,
        1
    );
    agent.stop().await;
}

/// An agent may send an event again (its retry after a lost PUBACK, a
/// broker's redelivery): the same event, by its id, is applied once.
#[tokio::test]
async fn a_door_event_sent_again_is_applied_once() {
    let s = site().await;
    let locker = s.locker("resending-agent").await;
    let agent = s.app.agent("resending-agent", &[locker], None).await;
    let item = s.drop_item(locker).await;
    s.wait_door(&agent, locker, true).await;
    agent.doors.close(locker);
    s.wait_status(&item, "STORED").await;
    s.app.smtp.wait_for(RECEIVER, 1, WAIT).await;
    s.app.drain().await;

    let sent: Vec<(String, i64, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, locker_id, kind, at, command_id FROM door_events ORDER BY at, kind DESC",
    )
    .fetch_all(s.app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(sent.len(), 2, "the opening and the closing");
    let (client, _acks) = raw_client(&s.app, "resending-agent").await;
    let topic = format!("{}/agents/resending-agent/events", s.app.doors.topic_root);
    for (id, locker_id, kind, at, command_id) in &sent {
        let event = json!({"id": id, "locker_id": locker_id, "kind": kind, "at": at,
                           "command_id": command_id});
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, event.to_string())
            .await
            .unwrap();
    }
    // A marker after them on the same door's lane: once it is recorded,
    // the copies before it have been applied (or not).
    let marker = json!({"id": "marker", "locker_id": locker, "kind": "door_closed",
                        "at": SystemClock.now_millis()});
    client
        .publish(topic, QoS::AtLeastOnce, false, marker.to_string())
        .await
        .unwrap();
    s.app
        .wait_until("marker recorded", || async {
            s.app
                .count("SELECT COUNT(*) FROM door_events WHERE id = 'marker'")
                .await
                == 1
        })
        .await;
    s.app.drain().await;

    assert_eq!(s.app.count("SELECT COUNT(*) FROM door_events").await, 3);
    assert_eq!(s.item(&item).await["status"], "STORED");
    assert_eq!(
        s.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'item.stored'")
            .await,
        1
    );
    assert_eq!(
        s.app.smtp.mails_to(RECEIVER).len(),
        1,
        "the receiver is told once"
    );
    agent.stop().await;
}
