//! Unlock commands and their answers, agents' presence, and door events
//! (each recorded once, by its id).

use sqlx::{Any, Executor, Row};

use crate::clock::Millis;
use crate::jobs::UnlockPurpose;
use locker_protocol::{Ack, DoorEvent};

pub struct NewCommand<'a> {
    pub id: &'a str,
    pub agent_id: &'a str,
    pub locker_id: i64,
    pub item_id: Option<i64>,
    pub purpose: UnlockPurpose,
    pub issued_at: Millis,
    pub trace_id: &'a str,
}

/// Records a command about to be sent; sending it again keeps the first row.
pub async fn record_command<'e>(
    executor: impl Executor<'e, Database = Any>,
    command: NewCommand<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO commands (id, agent_id, locker_id, item_id, purpose, issued_at, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(command.id.to_owned())
    .bind(command.agent_id.to_owned())
    .bind(command.locker_id)
    .bind(command.item_id)
    .bind(command.purpose.as_str())
    .bind(command.issued_at)
    .bind(command.trace_id.to_owned())
    .execute(executor)
    .await?;
    Ok(())
}

/// Stores an agent's answer; the first answer to a command stands.
pub async fn record_ack<'e>(
    executor: impl Executor<'e, Database = Any>,
    agent_id: &str,
    ack: &Ack,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let reason = ack.reason.map(|r| {
        serde_json::to_value(r)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    });
    let done = sqlx::query(
        "UPDATE commands SET acked_at = $3, ok = $4, reason = $5 \
         WHERE id = $1 AND agent_id = $2 AND acked_at IS NULL",
    )
    .bind(ack.command_id.clone())
    .bind(agent_id.to_owned())
    .bind(now)
    .bind(i64::from(ack.ok))
    .bind(reason)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The agent's answer to a command, once it came: `(ok, reason)`.
pub async fn answer<'e>(
    executor: impl Executor<'e, Database = Any>,
    command_id: &str,
) -> Result<Option<(bool, Option<String>)>, sqlx::Error> {
    let row = sqlx::query("SELECT ok, reason FROM commands WHERE id = $1 AND acked_at IS NOT NULL")
        .bind(command_id.to_owned())
        .fetch_optional(executor)
        .await?;
    row.map(|r| Ok((r.try_get::<i64, _>("ok")? != 0, r.try_get("reason")?)))
        .transpose()
}

/// Records an agent's presence unless a newer report is already in.
pub async fn set_agent_status<'e>(
    executor: impl Executor<'e, Database = Any>,
    agent_id: &str,
    online: bool,
    at: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agents (id, online, status_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET online = excluded.online, status_at = excluded.status_at \
         WHERE agents.status_at <= excluded.status_at",
    )
    .bind(agent_id.to_owned())
    .bind(i64::from(online))
    .bind(at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records a door event; false when it was recorded before (a redelivery).
pub async fn record_event<'e>(
    executor: impl Executor<'e, Database = Any>,
    agent_id: &str,
    event: &DoorEvent,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO door_events (id, agent_id, locker_id, kind, at, command_id, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id.clone())
    .bind(agent_id.to_owned())
    .bind(event.locker_id)
    .bind(event.kind.as_str())
    .bind(event.at)
    .bind(event.command_id.clone())
    .bind(now)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The agent that drives a locker's door, if any.
pub async fn agent_of<'e>(
    executor: impl Executor<'e, Database = Any>,
    locker_id: i64,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar("SELECT agent_id FROM lockers WHERE id = $1")
        .bind(locker_id)
        .fetch_optional(executor)
        .await
}

/// The trace id of the request behind a command.
pub async fn trace_of<'e>(
    executor: impl Executor<'e, Database = Any>,
    command_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT trace_id FROM commands WHERE id = $1")
        .bind(command_id.to_owned())
        .fetch_optional(executor)
        .await
}
