//! Applying what agents report: acks to commands, presence, and door events
//! (each applied once by the exchange, with the item step it completes).

use std::time::Duration;

use locker_core::backoff::{self, BackoffBuilder};
use locker_core::exchange::{self, DoorOutcome};
use locker_core::metrics;
use locker_core::store::doors;
use locker_protocol::{Ack, DoorEvent, DoorEventKind, Status, Topics};

use rumqttc::{AsyncClient, QoS};

use super::{Applier, pickups};

/// Applies one message, retrying while the database is unreachable: the
/// message is acknowledged to the broker only afterwards.
pub async fn until_applied(
    applier: &Applier,
    client: &AsyncClient,
    topics: &Topics,
    topic: &str,
    payload: &[u8],
) {
    let Some((agent_id, leaf)) = topics.parse(topic) else {
        return;
    };
    let mut waits = backoff::reconnect().build();
    loop {
        match apply(applier, client, topics, agent_id, leaf, payload).await {
            Ok(()) => return,
            Err(Failure::Malformed(error)) => {
                tracing::warn!(%agent_id, leaf, %error, "malformed message from agent ignored");
                return;
            }
            Err(Failure::Database(error)) => {
                let delay = waits.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(%agent_id, leaf, %error, retry_in = ?delay, "cannot apply agent message");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

enum Failure {
    Malformed(serde_json::Error),
    Database(anyhow::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e.into())
    }
}

impl From<exchange::Error> for Failure {
    fn from(e: exchange::Error) -> Self {
        Self::Database(e.into())
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Self::Malformed(e)
    }
}

async fn apply(
    applier: &Applier,
    client: &AsyncClient,
    topics: &Topics,
    agent_id: &str,
    leaf: &str,
    payload: &[u8],
) -> Result<(), Failure> {
    let exchange = &applier.exchange;
    let pool = exchange.db().pool();
    let now = exchange.now();
    match leaf {
        "acks" => {
            let ack: Ack = serde_json::from_slice(payload)?;
            // Timed by the answer that counts (a resent command's first).
            if let Some(issued) = exchange.unlock_answered(agent_id, &ack).await? {
                metrics::unlock_round_trip(now.saturating_sub(issued) as f64 / 1000.0);
            }
        }
        "status" => {
            let status: Status = serde_json::from_slice(payload)?;
            doors::set_agent_status(pool, agent_id, status.online, now).await?;
            metrics::agents_online(doors::agents_online(pool).await?);
            tracing::info!(%agent_id, online = status.online, "agent status");
        }
        "events" => {
            let event: DoorEvent = serde_json::from_slice(payload)?;
            let outcome = exchange.door_event(agent_id, &event).await?;
            metrics::door_event(event.kind.as_str());
            log(agent_id, &event, &outcome);
        }
        "pickups" | "collections" => {
            let reply = if leaf == "pickups" {
                pickups::entry(applier, agent_id, payload).await
            } else {
                pickups::collection(applier, agent_id, payload).await
            }
            .map_err(Failure::Database)?;
            if let Some(reason) = reply.reason {
                tracing::warn!(%agent_id, id = %reply.id, reason = reason.as_str(), "{leaf} refused");
            }
            let payload = serde_json::to_vec(&reply).expect("replies serialise");
            client
                .publish(topics.replies(agent_id), QoS::AtLeastOnce, false, payload)
                .await
                .map_err(|e| Failure::Database(e.into()))?;
        }
        _ => {}
    }
    Ok(())
}

fn log(agent_id: &str, event: &DoorEvent, outcome: &DoorOutcome) {
    match outcome {
        DoorOutcome::Duplicate => {
            tracing::info!(event_id = %event.id, "door event seen before; not applied again");
        }
        DoorOutcome::NotItsLocker => {
            tracing::warn!(%agent_id, locker_id = event.locker_id, "door event for a locker this agent does not drive");
        }
        DoorOutcome::Applied(Some(item)) => {
            tracing::info!(
                item_id = item.id,
                status = item.status.as_str(),
                "door closed on item"
            );
        }
        DoorOutcome::Applied(None) if event.kind == DoorEventKind::DoorLeftOpen => {
            tracing::warn!(locker_id = event.locker_id, "door left open");
        }
        DoorOutcome::Applied(None) => {}
    }
}
