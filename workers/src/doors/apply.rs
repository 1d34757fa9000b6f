//! Applying what agents report: acks to commands, presence, and door events,
//! each door event once (by its id) with the item transition it completes.

use std::time::Duration;

use locker_core::domain::{DoorState, ItemStatus};
use locker_core::exchange::{self, item_entry};
use locker_core::jobs::Message;
use locker_core::store::{audit, doors, items, lockers};
use locker_protocol::{Ack, DoorEvent, DoorEventKind, Status, Topics};

use super::Applier;

/// Applies one message, retrying while the database is unreachable: the
/// message is acknowledged to the broker only afterwards.
pub async fn until_applied(applier: &Applier, topics: &Topics, topic: &str, payload: &[u8]) {
    let Some((agent_id, leaf)) = topics.parse(topic) else {
        return;
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match apply(applier, agent_id, leaf, payload).await {
            Ok(()) => return,
            Err(Failure::Malformed(error)) => {
                tracing::warn!(%agent_id, leaf, %error, "malformed message from agent ignored");
                return;
            }
            Err(Failure::Database(error)) => {
                tracing::warn!(%agent_id, leaf, %error, retry_in = ?delay, "cannot apply agent message");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

enum Failure {
    Malformed(serde_json::Error),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Self::Malformed(e)
    }
}

async fn apply(
    applier: &Applier,
    agent_id: &str,
    leaf: &str,
    payload: &[u8],
) -> Result<(), Failure> {
    let now = applier.clock.now_millis();
    match leaf {
        "acks" => {
            let ack: Ack = serde_json::from_slice(payload)?;
            doors::record_ack(applier.db.pool(), agent_id, &ack, now).await?;
        }
        "status" => {
            let status: Status = serde_json::from_slice(payload)?;
            doors::set_agent_status(applier.db.pool(), agent_id, status.online, now).await?;
            tracing::info!(%agent_id, online = status.online, "agent status");
        }
        "events" => {
            let event: DoorEvent = serde_json::from_slice(payload)?;
            door_event(applier, agent_id, &event).await?;
        }
        _ => {}
    }
    Ok(())
}

async fn door_event(
    applier: &Applier,
    agent_id: &str,
    event: &DoorEvent,
) -> Result<(), sqlx::Error> {
    let now = applier.clock.now_millis();
    let mut tx = applier.db.begin().await?;
    if !doors::record_event(&mut *tx, agent_id, event, now).await? {
        tracing::info!(event_id = %event.id, "door event seen before; not applied again");
        return tx.commit().await;
    }
    if doors::agent_of(&mut *tx, event.locker_id)
        .await?
        .flatten()
        .as_deref()
        != Some(agent_id)
    {
        tracing::warn!(%agent_id, locker_id = event.locker_id, "door event for a locker this agent does not drive");
        return tx.commit().await;
    }
    let door = match event.kind {
        DoorEventKind::DoorClosed => DoorState::Closed,
        DoorEventKind::DoorOpened | DoorEventKind::DoorLeftOpen => DoorState::Open,
    };
    lockers::set_door(&mut *tx, event.locker_id, door, event.at).await?;
    let command = event.command_id.as_deref().unwrap_or_default();
    match event.kind {
        DoorEventKind::DoorOpened => {
            items::door_opened(&mut *tx, event.locker_id, command, event.at).await?
        }
        DoorEventKind::DoorClosed => {
            let collect_by = now + applier.exchange.pickup_window.as_millis() as i64;
            if let Some(item) =
                items::door_closed(&mut tx, event.locker_id, command, collect_by, now).await?
            {
                let trace = doors::trace_of(&mut *tx, command)
                    .await?
                    .unwrap_or_default();
                if item.status == ItemStatus::Stored {
                    exchange::tell_receiver_stored(&mut tx, &item, Some(collect_by), &trace, now)
                        .await?;
                    audit::record(&mut *tx, item_entry(now, None, "item.stored", &item)).await?;
                } else {
                    exchange::vacate(
                        &mut tx,
                        &item,
                        "item.collected",
                        None,
                        &trace,
                        now,
                        |item, location| Message::ItemCollected { item, location },
                    )
                    .await?;
                }
                tracing::info!(
                    item_id = item.id,
                    status = item.status.as_str(),
                    "door closed on item"
                );
                tx.commit().await?;
                applier.relay.wake();
                return Ok(());
            }
        }
        DoorEventKind::DoorLeftOpen => {
            tracing::warn!(locker_id = event.locker_id, "door left open");
            audit::record(
                &mut *tx,
                audit::Entry {
                    at: now,
                    actor_id: None,
                    action: "door.left_open",
                    subject: format!("locker:{}", event.locker_id),
                    detail: format!("agent {agent_id}"),
                },
            )
            .await?;
        }
    }
    tx.commit().await
}
