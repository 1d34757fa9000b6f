//! What the doors report: each door event is applied once (by its id) and
//! completes the step of the item waiting on the command that unlocked the
//! door: a drop becomes `STORED` when the door closes on it, a release
//! `COLLECTED`. And an unlock that never happened, flagged for admins.

use locker_protocol::{Ack, AckReason, DoorEvent, DoorEventKind};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::notices::{self, COLLECTED_ACTION, RETURNED_ACTION, STORED_ACTION, item_entry};
use super::{Error, Exchange, Result, statement};
use crate::clock::{Millis, human};
use crate::domain::{DoorState, Item, ItemMove, ItemStatus, LockerStatus};
use crate::jobs::{Job, JobKind, Message, NotifyJob};
use crate::store::doors::{AnswerStored, AnswerTo};
use crate::store::items::{ITEM_COLUMNS, WHEREABOUTS_COLUMNS, from_row, whereabouts_joins};
use crate::store::outbox::{OutboxTx, Pending};
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
        let chains = self.db.backend().chains_writes();
        if event.kind == DoorEventKind::DoorOpened && chains {
            let mut conn = self.db.pool().acquire().await?;
            return Ok(
                match door_opened_at_once(&mut conn, agent_id, event, now).await? {
                    Head::Skipped(outcome) => outcome,
                    Head::Applied { .. } => DoorOutcome::Applied(None),
                },
            );
        }
        let collect_by = self.collect_by(now);
        if event.kind == DoorEventKind::DoorClosed && chains {
            return self
                .door_closed_at_once(agent_id, event, collect_by, now)
                .await;
        }
        let mut tx = self.begin().await?;
        let head = door_steps(&mut tx, agent_id, event, collect_by, now).await?;
        let closed = match head {
            Head::Applied { closed } => closed,
            Head::Skipped(outcome) => {
                tx.commit(&self.relay).await?;
                return Ok(outcome);
            }
        };
        let item = match closed {
            Some(row) => Some(self.item_closed_in(&mut tx, &row, collect_by, now).await?),
            None => None,
        };
        tx.commit(&self.relay).await?;
        Ok(DoorOutcome::Applied(item.map(Box::new)))
    }

    /// The door closed on an item (`row`, from [`close_item`]), which has
    /// completed its step. A stored item's receiver is told where it is; a
    /// collected one leaves the locker.
    async fn item_closed_in(
        &self,
        tx: &mut OutboxTx,
        row: &AnyRow,
        collect_by: Millis,
        now: Millis,
    ) -> Result<Item> {
        let item = from_row(row)?;
        // The request behind the unlock, read in the same statement.
        let trace: String = row
            .try_get::<Option<String>, _>("command_trace")?
            .unwrap_or_default();
        if item.status == ItemStatus::Stored {
            let until = Some(collect_by);
            notices::tell_receiver_stored(tx, &item, until, true, &trace, now).await?;
            tx.audit(item_entry(now, None, STORED_ACTION, &item));
        } else {
            notices::leave(tx, &item, &trace, now).await?;
        }
        Ok(item)
    }

    /// A door's closing where writes chain, as [`Exchange::door_event`]
    /// makes it through [`door_steps`] and [`Exchange::item_closed_in`],
    /// in one statement that commits on its own: the event, the door, the
    /// item's step, then what follows from it (the receiver's notices of a
    /// stored item; for one taken out, its locker freed and its sender's
    /// notice), audited. The notices' payloads are the jobs' own JSON with
    /// the item's values set in (see [`closing_sql`]).
    async fn door_closed_at_once(
        &self,
        agent_id: &str,
        event: &DoorEvent,
        collect_by: Millis,
        now: Millis,
    ) -> Result<DoorOutcome> {
        let notice = |message| {
            let job = Job::Notify(NotifyJob {
                to: String::new(),
                message,
            });
            serde_json::to_string(&job).expect("jobs serialise")
        };
        let (item, location, locker) = (String::new(), String::new(), String::new());
        let stored = notice(Message::ItemStored {
            item: item.clone(),
            location: location.clone(),
            locker,
            until: Some(human(collect_by)),
            pickup: Some(0),
        });
        let collected = notice(Message::ItemCollected {
            item: item.clone(),
            location: location.clone(),
        });
        let returned = notice(Message::ItemReturned { item, location });
        let query = sqlx::query(statement!("{}", closing_sql()));
        let rows = doors::bind_event(query, agent_id, event, now)
            .bind(DoorState::Closed.as_str())
            .bind(collect_by)
            .bind(stored)
            .bind(collected)
            .bind(returned)
            .fetch_all(self.db.pool())
            .await?;
        let first = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        if let Some(Head::Skipped(outcome)) = skipped(first)? {
            return Ok(outcome);
        }
        if first.try_get::<Option<i64>, _>("id")?.is_none() {
            return Ok(DoorOutcome::Applied(None));
        }
        let item = from_row(first)?;
        let trace: String = first
            .try_get::<Option<String>, _>("command_trace")?
            .unwrap_or_default();
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(id) = row.try_get::<Option<i64>, _>("job_id")? {
                jobs.push(Pending {
                    id,
                    kind: JobKind::Notify.as_str().to_owned(),
                    payload: row.try_get("job_payload")?,
                    trace_id: trace.clone(),
                    created_at: now,
                });
            }
        }
        self.relay.committed(jobs);
        Ok(DoorOutcome::Applied(Some(Box::new(item))))
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

/// A door event's writes one statement at a time: the event recorded,
/// the door's state where the agent drives it, then what its kind does.
async fn door_steps(
    tx: &mut AnyConnection,
    agent_id: &str,
    event: &DoorEvent,
    collect_by: Millis,
    now: Millis,
) -> Result<Head> {
    if !doors::record_event(&mut *tx, agent_id, event, now).await? {
        return Ok(Head::Skipped(DoorOutcome::Duplicate));
    }
    let door = match event.kind {
        DoorEventKind::DoorClosed => DoorState::Closed,
        DoorEventKind::DoorOpened | DoorEventKind::DoorLeftOpen => DoorState::Open,
    };
    // Recorded only where the agent drives the door (one statement).
    if !lockers::set_door(&mut *tx, event.locker_id, agent_id, door, event.at).await? {
        return Ok(Head::Skipped(DoorOutcome::NotItsLocker));
    }
    let command = event.command_id.as_deref().unwrap_or_default();
    match event.kind {
        DoorEventKind::DoorOpened => {
            door_opened(&mut *tx, agent_id, event.locker_id, command, event.at).await?;
        }
        DoorEventKind::DoorClosed => {
            let closed = sqlx::query(statement!("{}", close_item("$1", "$2", "$3", "$4")))
                .bind(event.locker_id)
                .bind(command.to_owned())
                .bind(collect_by)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            return Ok(Head::Applied { closed });
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
        }
    }
    Ok(Head::Applied { closed: None })
}

/// A door event's writes up to its item's step.
enum Head {
    /// Seen before, or from an agent that does not drive the locker.
    Skipped(DoorOutcome),
    /// Applied; a closing returns the row of the item whose step it
    /// completed (see [`close_item`]).
    Applied { closed: Option<AnyRow> },
}

/// The statement that completes the step of the item in `locker` waiting on
/// the unlock `command` when its door closes, given where each value is
/// bound: a drop is `STORED` (to be collected by `collect_by`), a release
/// `COLLECTED` or `RETURNED`. It returns the item, and the trace id of the
/// request behind the command (`command_trace`).
fn close_item(locker: &str, command: &str, collect_by: &str, now: &str) -> String {
    let next = ItemMove::DoorClosed.sql_next();
    let stored = ItemStatus::Stored.as_str();
    let collected = ItemStatus::Collected.as_str();
    let returned = ItemStatus::Returned.as_str();
    format!(
        "UPDATE items SET status = {next}, \
           stored_at = CASE WHEN {next} = '{stored}' THEN {now} ELSE stored_at END, \
           collect_by = CASE WHEN {next} = '{stored}' THEN {collect_by} ELSE collect_by END, \
           collected_at = CASE WHEN {next} IN ('{collected}', '{returned}') \
             THEN {now} ELSE collected_at END, \
           door_opened_at = NULL, unlock_failed_at = NULL, updated_at = {now} \
         WHERE locker_id = {locker} AND unlock_command_id = {command} AND {leaves} \
         RETURNING {ITEM_COLUMNS}, sender_id, \
           (SELECT trace_id FROM commands WHERE id = {command}) AS command_trace",
        leaves = ItemMove::DoorClosed.sql_leaves(),
    )
}

/// [`Exchange::door_closed_at_once`]'s statement. Each write in a `WITH`
/// runs once, whether or not the final `SELECT` reads it, and each sees
/// what the one before returned: nothing is written for an event seen
/// before, only the event for one from an agent that does not drive the
/// locker, and nothing past the door when no item waited on its command.
/// The locker's row is locked first (`held`, where the agent drives it,
/// as a door's opening takes it first), then the item moves, then the row
/// is written once (the door, and the locker freed when the item left it
/// for good): a statement writes a row once.
/// Bound: the event as [`doors::bind_event`] binds it, the door's state
/// (`$8`), the deadline of an item stored (`$9`), then the JSON of the
/// notices sent for an item stored (`$10`), collected (`$11`) and returned
/// (`$12`), each with its values empty. One row for each notice queued (at
/// least one): the counts of `recorded` and `driven`, the item with its
/// whereabouts, the notice's `job_id` and `job_payload`.
fn closing_sql() -> String {
    let stored = ItemStatus::Stored.as_str();
    let collected = ItemStatus::Collected.as_str();
    let returned = ItemStatus::Returned.as_str();
    // A notice's values set into its JSON; `told` is its row.
    let notice = |fields: &[(&str, &str)]| {
        fields.iter().fold(
            "CAST(told.template AS jsonb)".to_owned(),
            |json, (path, value)| format!("jsonb_set({json}, '{{{path}}}', to_jsonb({value}))"),
        )
    };
    format!(
        "WITH recorded AS ({record} RETURNING locker_id), \
         held AS (SELECT id FROM lockers \
           WHERE id = (SELECT locker_id FROM recorded) AND agent_id = $2 FOR UPDATE), \
         closed AS ({close}), \
         driven AS (UPDATE lockers SET {door}, \
             status = CASE WHEN {freed} THEN '{available}' ELSE status END, \
             updated_at = CASE WHEN {freed} THEN $7 ELSE updated_at END \
           WHERE id = (SELECT id FROM held) RETURNING id), \
         placed AS (SELECT closed.*, {WHEREABOUTS_COLUMNS} FROM closed {joins}), \
         told AS ( \
           SELECT $10 AS template, contact AS to_whom, placed.* FROM placed \
             CROSS JOIN (SELECT receiver_phone AS contact FROM placed \
               UNION ALL SELECT receiver_email FROM placed) AS contacts \
           WHERE status = '{stored}' AND contact IS NOT NULL AND place_location IS NOT NULL \
           UNION ALL \
           SELECT CASE status WHEN '{returned}' THEN $12 ELSE $11 END, place_sender_email, placed.* \
           FROM placed WHERE status IN ('{collected}', '{returned}') \
             AND place_sender_email IS NOT NULL AND place_location IS NOT NULL), \
         queued AS (INSERT INTO outbox (kind, payload, trace_id, created_at) \
           SELECT '{notify}', CAST(CASE told.status WHEN '{stored}' THEN {stored_notice} \
               ELSE {taken_notice} END AS TEXT), \
             COALESCE(told.command_trace, ''), $7 FROM told RETURNING id, payload), \
         audited AS (INSERT INTO audit_log \
             (at, actor_id, action, subject, detail, reason, locker_id, item_id) \
           SELECT $7, NULL, CASE status WHEN '{stored}' THEN '{STORED_ACTION}' \
               WHEN '{returned}' THEN '{RETURNED_ACTION}' ELSE '{COLLECTED_ACTION}' END, \
             'item:' || CAST(id AS TEXT), 'locker ' || CAST(COALESCE(locker_id, 0) AS TEXT), \
             NULL, locker_id, id \
           FROM closed) \
         SELECT (SELECT COUNT(*) FROM recorded) AS recorded, \
           (SELECT COUNT(*) FROM driven) AS driven, placed.*, \
           queued.id AS job_id, queued.payload AS job_payload \
         FROM (SELECT 1) AS one LEFT JOIN placed ON TRUE LEFT JOIN queued ON TRUE",
        record = doors::insert_door_event!(),
        close = close_item("(SELECT id FROM held)", "$6", "$9", "$7"),
        door = lockers::door_assignments!("$8", "$5"),
        freed = format!(
            "status = '{occupied}' AND EXISTS (SELECT 1 FROM closed \
               WHERE closed.status IN ('{collected}', '{returned}'))",
            occupied = LockerStatus::Occupied.as_str(),
        ),
        joins = whereabouts_joins("closed"),
        available = LockerStatus::Available.as_str(),
        notify = JobKind::Notify.as_str(),
        stored_notice = notice(&[
            ("to", "told.to_whom"),
            ("message,item", "told.name"),
            ("message,location", "told.place_location"),
            ("message,locker", "told.place_locker_name"),
            ("message,pickup", "told.id"),
        ]),
        taken_notice = notice(&[
            ("to", "told.to_whom"),
            ("message,item", "told.name"),
            ("message,location", "told.place_location"),
        ]),
    )
}

/// An opening where writes chain: its writes as [`door_steps`] makes them,
/// and its command settled (as [`door_opened`] does), in one statement
/// (see [`closing_sql`]), so no transaction is needed around it.
async fn door_opened_at_once(
    conn: &mut AnyConnection,
    agent_id: &str,
    event: &DoorEvent,
    now: Millis,
) -> Result<Head> {
    // Usually the command's answer came first and settled it: then
    // `settled` writes nothing.
    let query = sqlx::query(statement!(
        "{head}, opened AS ({open}), \
           settled AS (UPDATE commands SET next_send_at = NULL \
             WHERE id = $6 AND agent_id = $2 AND next_send_at IS NOT NULL) \
         SELECT (SELECT COUNT(*) FROM recorded) AS recorded, \
           (SELECT COUNT(*) FROM driven) AS driven",
        head = record_and_drive(),
        open = open_item("(SELECT id FROM driven)", "$6", "$5"),
    ));
    let row = doors::bind_event(query, agent_id, event, now)
        .bind(DoorState::Open.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(skipped(&row)?.unwrap_or(Head::Applied { closed: None }))
}

/// The first writes of a door event as one statement: `recorded` (the
/// event bound as [`doors::bind_event`] binds it, unless seen before), then
/// `driven` (the door's state bound at `$8`, where the agent drives it).
fn record_and_drive() -> String {
    format!(
        "WITH recorded AS ({record} RETURNING locker_id), \
         driven AS (UPDATE lockers SET {door} \
           WHERE id = (SELECT locker_id FROM recorded) AND agent_id = $2 RETURNING id)",
        record = doors::insert_door_event!(),
        door = lockers::door_assignments!("$8", "$5"),
    )
}

/// A door event seen before, or from an agent that does not drive its
/// locker, as the counts of a statement's `recorded` and `driven` tell.
fn skipped(row: &AnyRow) -> Result<Option<Head>> {
    let recorded: i64 = row.try_get("recorded")?;
    let driven: i64 = row.try_get("driven")?;
    Ok(match (recorded, driven) {
        (0, _) => Some(Head::Skipped(DoorOutcome::Duplicate)),
        (_, 0) => Some(Head::Skipped(DoorOutcome::NotItsLocker)),
        _ => None,
    })
}

/// The door of the item waiting on `command` opened: a drop whose door has
/// opened is no longer cancelled when its window runs out.
async fn door_opened(
    conn: &mut AnyConnection,
    agent_id: &str,
    locker_id: i64,
    command: &str,
    at: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(statement!("{}", open_item("$1", "$2", "$3")))
        .bind(locker_id)
        .bind(command.to_owned())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    // It ran: nothing more to send.
    doors::settle_command(&mut *conn, command, agent_id).await
}

/// The statement that marks the item in `locker` waiting on the unlock
/// `command` as having its door opened `at` (given where each is bound).
fn open_item(locker: &str, command: &str, at: &str) -> String {
    format!(
        "UPDATE items SET door_opened_at = COALESCE(door_opened_at, {at}), unlock_failed_at = NULL \
         WHERE locker_id = {locker} AND unlock_command_id = {command} AND {leaves}",
        leaves = ItemMove::DoorClosed.sql_leaves(),
    )
}
