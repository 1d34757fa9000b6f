//! Unlock commands and their answers, agents' presence, and door events
//! (each recorded once, by its id).

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Executor, Row};

use crate::clock::Millis;
use crate::config::Backend;
use crate::jobs::{JobKind, UnlockPurpose};
use crate::store::items::name_command;
use crate::store::job_runs::{mark_done, on_done_again};
use locker_protocol::{Ack, AckReason, DoorEvent, DoorEventKind};

pub struct NewCommand<'a> {
    pub id: &'a str,
    /// The unlock job it is issued by.
    pub job_id: i64,
    /// Whether recording it ends the job (where writes chain, the job is
    /// marked done with it): not when the job has more to do after.
    pub ends_job: bool,
    pub locker_id: i64,
    pub item_id: Option<i64>,
    pub purpose: UnlockPurpose,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub trace_id: &'a str,
}

/// A command as recorded: the agent it is for and its lifetime as first
/// issued, and whether it is still waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub agent_id: String,
    pub issued_at: Millis,
    pub expires_at: Millis,
    /// Neither answered, nor seen opening a door, nor reported failed.
    pub outstanding: bool,
    /// Its item (if it is for one) already names it as its unlock command.
    pub item_named: bool,
    /// Its job was marked done with it: the job's part ends once the
    /// command is recorded, since the tracker sends it until answered.
    pub job_done: bool,
}

/// Records a command (`$1` its id, `$2` its locker, `$3` its item, `$4`
/// purpose, `$5` issued, `$6` expires, `$7` trace id, `$8` next send) for
/// the agent that drives its locker, unless recorded before; returns the
/// agent.
macro_rules! insert_command {
    () => {
        "INSERT INTO commands (id, agent_id, locker_id, item_id, purpose, issued_at, expires_at, \
           trace_id, next_send_at) \
         SELECT $1, agent_id, id, $3, $4, $5, $6, $7, $8 FROM lockers \
         WHERE id = $2 AND agent_id IS NOT NULL \
         ON CONFLICT (id) DO NOTHING RETURNING agent_id"
    };
}

/// Records a command for the agent that drives its locker the first time it
/// is issued (tracked from then on, to be sent again at `resend_at`) and
/// returns it as first recorded: a command issued again (a redelivered job)
/// is the same command, for the same agent, never a longer-lived one. `None`
/// when it was never recorded and its locker is gone or has no agent.
pub async fn issue_command(
    conn: &mut sqlx::AnyConnection,
    command: NewCommand<'_>,
    resend_at: Millis,
    backend: Backend,
) -> Result<Option<Issued>, sqlx::Error> {
    // The first time (nearly always): one statement, the agent read with it;
    // where writes chain, the item is named its unlock command in it too,
    // and the job marked done if this ends it.
    let sql = if backend.chains_writes() {
        concat!(
            "WITH issued AS (",
            insert_command!(),
            "), named AS (UPDATE items SET ",
            name_command!("$1"),
            " WHERE id = $3 AND EXISTS (SELECT 1 FROM issued)), done AS (",
            mark_done!("$9", "$10", "$5"),
            " FROM issued WHERE $11 = 1",
            on_done_again!(),
            ") SELECT agent_id FROM issued"
        )
    } else {
        insert_command!()
    };
    let agent_id: Option<String> = sqlx::query_scalar(sql)
        .bind(command.id.to_owned())
        .bind(command.locker_id)
        .bind(command.item_id)
        .bind(command.purpose.as_str())
        .bind(command.issued_at)
        .bind(command.expires_at)
        .bind(command.trace_id.to_owned())
        .bind(resend_at)
        .bind(command.job_id)
        .bind(JobKind::Unlock.as_str())
        .bind(i64::from(command.ends_job))
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(agent_id) = agent_id {
        return Ok(Some(Issued {
            agent_id,
            issued_at: command.issued_at,
            expires_at: command.expires_at,
            outstanding: true,
            item_named: backend.chains_writes(),
            job_done: backend.chains_writes() && command.ends_job,
        }));
    }
    let row = sqlx::query(
        "SELECT agent_id, issued_at, expires_at, CASE WHEN next_send_at IS NOT NULL AND acked_at IS NULL \
         AND failed_at IS NULL THEN 1 ELSE 0 END AS outstanding FROM commands WHERE id = $1",
    )
    .bind(command.id.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let issued_at: Millis = row.try_get("issued_at")?;
    // Rows from before lifetimes were recorded: as issued with today's ttl.
    let expires_at: Option<Millis> = row.try_get("expires_at")?;
    Ok(Some(Issued {
        agent_id: row.try_get("agent_id")?,
        issued_at,
        expires_at: expires_at.unwrap_or(issued_at + (command.expires_at - command.issued_at)),
        outstanding: row.try_get::<i64, _>("outstanding")? != 0,
        item_named: false,
        job_done: false,
    }))
}

/// A command waiting for an answer, as recorded.
#[derive(Debug, Clone)]
pub struct Outstanding {
    pub id: String,
    pub agent_id: String,
    pub locker_id: i64,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub trace_id: String,
    pub next_send_at: Millis,
}

/// Outstanding commands whose next step is due at `now`, oldest first.
pub async fn due_commands<'e>(
    executor: impl Executor<'e, Database = Any>,
    now: Millis,
    limit: i64,
) -> Result<Vec<Outstanding>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, agent_id, locker_id, issued_at, COALESCE(expires_at, issued_at) AS expires_at, \
         trace_id, next_send_at FROM commands \
         WHERE next_send_at IS NOT NULL AND next_send_at <= $1 ORDER BY next_send_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Outstanding {
                id: r.try_get("id")?,
                agent_id: r.try_get("agent_id")?,
                locker_id: r.try_get("locker_id")?,
                issued_at: r.try_get("issued_at")?,
                expires_at: r.try_get("expires_at")?,
                trace_id: r.try_get("trace_id")?,
                next_send_at: r.try_get("next_send_at")?,
            })
        })
        .collect()
}

/// Moves a due command's next step from `due` to `next`, counting a send
/// when `sending`; false when another tracker (or an answer) moved it first,
/// so each step is taken once.
pub async fn reschedule<'e>(
    executor: impl Executor<'e, Database = Any>,
    command_id: &str,
    due: Millis,
    next: Millis,
    sending: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE commands SET next_send_at = $3, sends = sends + $4 \
         WHERE id = $1 AND next_send_at = $2",
    )
    .bind(command_id.to_owned())
    .bind(due)
    .bind(next)
    .bind(i64::from(sending))
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Stops tracking a command that ran, as the agent it was sent to says
/// (its door was seen opening).
pub async fn settle_command<'e>(
    executor: impl Executor<'e, Database = Any>,
    command_id: &str,
    agent_id: &str,
) -> Result<(), sqlx::Error> {
    // Usually its answer came first and did it: then nothing is written.
    sqlx::query(
        "UPDATE commands SET next_send_at = NULL \
         WHERE id = $1 AND agent_id = $2 AND next_send_at IS NOT NULL",
    )
    .bind(command_id.to_owned())
    .bind(agent_id.to_owned())
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks a command failed unless it already is: what it was for, once.
pub async fn fail_command<'e>(
    executor: impl Executor<'e, Database = Any>,
    command_id: &str,
    now: Millis,
) -> Result<Option<(i64, Option<i64>, String)>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE commands SET failed_at = $2, next_send_at = NULL \
         WHERE id = $1 AND failed_at IS NULL RETURNING locker_id, item_id, purpose",
    )
    .bind(command_id.to_owned())
    .bind(now)
    .fetch_optional(executor)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("locker_id")?,
            r.try_get("item_id")?,
            r.try_get("purpose")?,
        ))
    })
    .transpose()
}

/// What an answer says about a command, best last: a late copy's `expired`
/// says least; a refusal says the copy did not run; `ok` or `replayed` say
/// the command ran. Every copy of a command is the same, so the best answer
/// to any of them is the command's.
fn rank_sql(ok: &str, reason: &str) -> String {
    format!(
        "CASE WHEN {ok} = 1 OR {reason} = '{replayed}' THEN 2 \
              WHEN {reason} = '{expired}' THEN 0 ELSE 1 END",
        replayed = AckReason::Replayed.as_str(),
        expired = AckReason::Expired.as_str(),
    )
}

/// What storing an answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerStored {
    /// A better (or the same) answer was in: nothing changed.
    No,
    /// Stored; `was_failed` when the command had been reported failed, and
    /// when the command was first sent.
    Yes { was_failed: bool, issued_at: Millis },
}

/// Which commands [`record_ack`] may store an answer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerTo {
    Any,
    /// Only a command not reported failed: one whose answer needs nothing
    /// more stored beside it.
    NotFailed,
}

/// Stores an agent's answer unless a better one is in.
pub async fn record_ack<'e>(
    executor: impl Executor<'e, Database = Any>,
    agent_id: &str,
    ack: &Ack,
    to: AnswerTo,
    now: Millis,
) -> Result<AnswerStored, sqlx::Error> {
    fn sql(only: &str) -> String {
        format!(
            "UPDATE commands SET acked_at = $3, ok = $4, reason = $5, next_send_at = NULL \
             WHERE id = $1 AND agent_id = $2 AND (acked_at IS NULL OR {} < {}){only} \
             RETURNING failed_at, issued_at",
            rank_sql("ok", "reason"),
            rank_sql("$4", "$5"),
        )
    }
    static ANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sql(""));
    static NOT_FAILED: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| sql(" AND failed_at IS NULL"));
    let sql = match to {
        AnswerTo::Any => ANY.as_str(),
        AnswerTo::NotFailed => NOT_FAILED.as_str(),
    };
    let stored: Option<(Option<Millis>, Millis)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(ack.command_id.clone())
        .bind(agent_id.to_owned())
        .bind(now)
        .bind(i64::from(ack.ok))
        .bind(ack.reason.map(AckReason::as_str))
        .fetch_optional(executor)
        .await?;
    Ok(match stored {
        None => AnswerStored::No,
        Some((failed_at, issued_at)) => AnswerStored::Yes {
            was_failed: failed_at.is_some(),
            issued_at,
        },
    })
}

/// The best answer to a command so far: `(ok, reason)`.
pub async fn answer<'e>(
    executor: impl Executor<'e, Database = Any>,
    command_id: &str,
) -> Result<Option<(bool, Option<AckReason>)>, sqlx::Error> {
    let row = sqlx::query("SELECT ok, reason FROM commands WHERE id = $1 AND acked_at IS NOT NULL")
        .bind(command_id.to_owned())
        .fetch_optional(executor)
        .await?;
    row.map(|r| {
        let reason: Option<String> = r.try_get("reason")?;
        Ok((
            r.try_get::<i64, _>("ok")? != 0,
            reason.as_deref().and_then(AckReason::parse),
        ))
    })
    .transpose()
}

/// True when a door reported opening under `command_id`: the command ran,
/// whether or not its answer ever arrives.
pub async fn opened_under<'e>(
    executor: impl Executor<'e, Database = Any>,
    command_id: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM door_events WHERE command_id = $1 AND kind = $2 LIMIT 1")
            .bind(command_id.to_owned())
            .bind(DoorEventKind::DoorOpened.as_str())
            .fetch_optional(executor)
            .await?;
    Ok(found.is_some())
}

/// How many agents last said they are online.
pub async fn agents_online<'e>(
    executor: impl Executor<'e, Database = Any>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE online = 1")
        .fetch_one(executor)
        .await
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

/// Records a door event (`$1` id, `$2` agent, `$3` locker, `$4` kind, `$5`
/// when, `$6` its command, `$7` when received) unless recorded before.
macro_rules! insert_door_event {
    () => {
        "INSERT INTO door_events (id, agent_id, locker_id, kind, at, command_id, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING"
    };
}
pub(crate) use insert_door_event;

/// Binds a door event from `agent_id`, received `now`, where
/// [`insert_door_event!`] takes it.
pub(crate) fn bind_event<'q>(
    query: Query<'q, Any, AnyArguments>,
    agent_id: &str,
    event: &DoorEvent,
    now: Millis,
) -> Query<'q, Any, AnyArguments> {
    query
        .bind(event.id.clone())
        .bind(agent_id.to_owned())
        .bind(event.locker_id)
        .bind(event.kind.as_str())
        .bind(event.at)
        .bind(event.command_id.clone())
        .bind(now)
}

/// Records a door event; false when it was recorded before (a redelivery).
pub async fn record_event<'e>(
    executor: impl Executor<'e, Database = Any>,
    agent_id: &str,
    event: &DoorEvent,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = bind_event(sqlx::query(insert_door_event!()), agent_id, event, now)
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
