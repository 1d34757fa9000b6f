//! What the doors report: each door event is applied once (by its id) and
//! completes the step of the item waiting on the command that unlocked the
//! door: a drop becomes `STORED` when the door closes on it, a release
//! `COLLECTED`. And an unlock that never happened, flagged for admins.

use locker_protocol::{Ack, AckReason, DoorEvent, DoorEventKind};
use sqlx::{AnyConnection, Row};

use super::notices::{self, item_entry};
use super::{Error, Exchange, Result, statement};
use crate::clock::Millis;
use crate::domain::{DoorState, Item, ItemMove, ItemStatus};
use crate::store::doors::{AnswerStored, AnswerTo};
use crate::store::items::{ITEM_COLUMNS, from_row};
use crate::store::{audit, doors, lockers};

/// What a door event did.
#[derive(Debug)]
pub enum DoorOutcome {
    /// Seen before (a redelivery): nothing done again.
    Duplicate,
    /// From an agent that does not drive that locker: recorded, not applied.
    NotItsLocker,
    /// The door's state is recorded; an item's step completed, if one waited.
    Applied(Option<Box<Item>>),
}

impl Exchange {
    /// Applies a door event from `agent_id`, once.
    pub async fn door_event(&self, agent_id: &str, event: &DoorEvent) -> Result<DoorOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if !doors::record_event(&mut *tx, agent_id, event, now).await? {
            tx.commit().await.map_err(Error::Commit)?;
            return Ok(DoorOutcome::Duplicate);
        }
        let door = match event.kind {
            DoorEventKind::DoorClosed => DoorState::Closed,
            DoorEventKind::DoorOpened | DoorEventKind::DoorLeftOpen => DoorState::Open,
        };
        // Recorded only where the agent drives the door (one statement).
        if !lockers::set_door(&mut *tx, event.locker_id, agent_id, door, event.at).await? {
            tx.commit().await.map_err(Error::Commit)?;
            return Ok(DoorOutcome::NotItsLocker);
        }
        let command = event.command_id.as_deref().unwrap_or_default();
        let item = match event.kind {
            DoorEventKind::DoorOpened => {
                door_opened(&mut tx, event.locker_id, command, event.at).await?;
                None
            }
            DoorEventKind::DoorClosed => {
                self.door_closed(&mut tx, event.locker_id, command, now)
                    .await?
            }
            DoorEventKind::DoorLeftOpen => {
                let entry = audit::Entry {
                    at: now,
                    actor_id: None,
                    action: "door.left_open",
                    subject: format!("locker:{}", event.locker_id),
                    detail: format!("agent {agent_id}"),
                    reason: None,
                };
                audit::record(&mut *tx, entry).await?;
                None
            }
        };
        tx.commit().await.map_err(Error::Commit)?;
        if item.is_some() {
            self.relay.wake();
        }
        Ok(DoorOutcome::Applied(item.map(Box::new)))
    }

    /// The door closed: the item waiting on `command` completes its step. A
    /// stored item's receiver is told where it is; a collected one leaves the
    /// locker.
    async fn door_closed(
        &self,
        tx: &mut AnyConnection,
        locker_id: i64,
        command: &str,
        now: Millis,
    ) -> Result<Option<Item>> {
        let collect_by = self.collect_by(now);
        let row = sqlx::query(statement!(
            "UPDATE items SET status = {next}, \
               stored_at = CASE WHEN {next} = '{stored}' THEN $4 ELSE stored_at END, \
               collect_by = CASE WHEN {next} = '{stored}' THEN $3 ELSE collect_by END, \
               collected_at = CASE WHEN {next} IN ('{collected}', '{returned}') \
                 THEN $4 ELSE collected_at END, \
               door_opened_at = NULL, unlock_failed_at = NULL, updated_at = $4 \
             WHERE locker_id = $1 AND unlock_command_id = $2 AND {leaves} \
             RETURNING {ITEM_COLUMNS}, \
               (SELECT trace_id FROM commands WHERE id = $2) AS command_trace",
            next = ItemMove::DoorClosed.sql_next(),
            leaves = ItemMove::DoorClosed.sql_leaves(),
            stored = ItemStatus::Stored.as_str(),
            collected = ItemStatus::Collected.as_str(),
            returned = ItemStatus::Returned.as_str(),
        ))
        .bind(locker_id)
        .bind(command.to_owned())
        .bind(collect_by)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let item = from_row(&row)?;
        // The request behind the unlock, read in the same statement.
        let trace: String = row
            .try_get::<Option<String>, _>("command_trace")?
            .unwrap_or_default();
        if item.status == ItemStatus::Stored {
            notices::tell_receiver_stored(tx, &item, Some(collect_by), true, &trace, now).await?;
            audit::record(&mut *tx, item_entry(now, None, "item.stored", &item)).await?;
        } else {
            notices::leave(tx, &item, &trace, now).await?;
        }
        Ok(Some(item))
    }

    /// An agent's answer to an unlock command. One that says it did not run
    /// reports the unlock failed (once). One that says it ran after the
    /// unlock was reported failed (its answer was late) clears the flag: an
    /// executed unlock is never left reported failed. When the answer is
    /// stored (it is the first, or better than the one in), the time its
    /// command was first sent.
    pub async fn unlock_answered(&self, agent_id: &str, ack: &Ack) -> Result<Option<Millis>> {
        let now = self.now();
        let ran = ack.ok || ack.reason == Some(AckReason::Replayed);
        // Nearly every answer: the command ran, and was not reported failed.
        // Storing it is all there is to do: one statement, no transaction.
        if ran {
            let stored =
                doors::record_ack(self.db.pool(), agent_id, ack, AnswerTo::NotFailed, now).await?;
            if let AnswerStored::Yes { issued_at, .. } = stored {
                return Ok(Some(issued_at));
            }
        }
        let mut tx = self.db.begin().await?;
        let stored = doors::record_ack(&mut *tx, agent_id, ack, AnswerTo::Any, now).await?;
        // Only an unlock reported failed has an item flagged.
        let was_failed = matches!(
            stored,
            AnswerStored::Yes {
                was_failed: true,
                ..
            }
        );
        if was_failed && ran {
            let cleared: Vec<i64> = sqlx::query_scalar(
                "UPDATE items SET unlock_failed_at = NULL, updated_at = $2 \
                 WHERE unlock_command_id = $1 AND unlock_failed_at IS NOT NULL RETURNING id",
            )
            .bind(ack.command_id.clone())
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for item_id in cleared {
                let entry = audit::Entry {
                    at: now,
                    actor_id: None,
                    action: "unlock.confirmed",
                    subject: format!("item:{item_id}"),
                    detail: format!("command {} ran after all", ack.command_id),
                    reason: None,
                };
                audit::record(&mut *tx, entry).await?;
            }
        } else if stored != AnswerStored::No && !ran {
            let reason = ack.reason.map_or("no reason", AckReason::as_str);
            let why = format!("agent {agent_id} refused: {reason}");
            command_failed(&mut tx, &ack.command_id, &why, now).await?;
        }
        tx.commit().await.map_err(Error::Commit)?;
        Ok(match stored {
            AnswerStored::Yes { issued_at, .. } => Some(issued_at),
            AnswerStored::No => None,
        })
    }

    /// A command can no longer run and no answer said it ran: the door did
    /// not open. The item stays as it is, flagged for admins, and the failure
    /// audited, once however many trackers notice.
    pub async fn unlock_failed(&self, command_id: &str, why: &str) -> Result<bool> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let failed = command_failed(&mut tx, command_id, why, now).await?;
        tx.commit().await.map_err(Error::Commit)?;
        Ok(failed)
    }
}

/// Marks `command` failed, flags its item and audits it; false when it was
/// already failed.
async fn command_failed(
    tx: &mut AnyConnection,
    command_id: &str,
    why: &str,
    now: Millis,
) -> Result<bool> {
    let Some((locker_id, item_id, purpose)) =
        doors::fail_command(&mut *tx, command_id, now).await?
    else {
        return Ok(false);
    };
    if let Some(item_id) = item_id {
        sqlx::query("UPDATE items SET unlock_failed_at = $2, updated_at = $2 WHERE id = $1")
            .bind(item_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    let entry = audit::Entry {
        at: now,
        actor_id: None,
        action: "unlock.failed",
        subject: format!("locker:{locker_id}"),
        detail: format!("{purpose} for item {item_id:?}: {why}"),
        reason: None,
    };
    audit::record(&mut *tx, entry).await?;
    tracing::error!(locker_id, ?item_id, command_id, why, "unlock failed");
    Ok(true)
}

/// The door of the item waiting on `command` opened: a drop whose door has
/// opened is no longer cancelled when its window runs out.
async fn door_opened(
    conn: &mut AnyConnection,
    locker_id: i64,
    command: &str,
    at: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(statement!(
        "UPDATE items SET door_opened_at = COALESCE(door_opened_at, $3), unlock_failed_at = NULL \
         WHERE locker_id = $1 AND unlock_command_id = $2 AND {}",
        ItemMove::DoorClosed.sql_leaves()
    ))
    .bind(locker_id)
    .bind(command.to_owned())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    // It ran: nothing more to send.
    doors::settle_command(&mut *conn, command).await
}
