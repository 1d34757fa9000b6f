//! The transactional outbox: jobs are written beside the state change that
//! implies them, then published by the relay.

use sqlx::{Any, AssertSqlSafe, Executor, Row};

use crate::clock::Millis;
use crate::config::Backend;
use crate::jobs::Job;

/// Adds a job; call it inside the transaction of the change it follows from.
pub async fn enqueue<'e>(
    executor: impl Executor<'e, Database = Any>,
    job: &Job,
    trace_id: &str,
    now: Millis,
) -> Result<i64, sqlx::Error> {
    let payload = serde_json::to_string(job).expect("jobs serialise");
    sqlx::query_scalar(
        "INSERT INTO outbox (kind, payload, trace_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(job.kind().as_str())
    .bind(payload)
    .bind(trace_id.to_owned())
    .bind(now)
    .fetch_one(executor)
    .await
}

#[derive(Debug)]
pub struct Pending {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub trace_id: String,
    pub created_at: i64,
}

/// The oldest unpublished jobs. Inside a transaction, where rows can be
/// locked, they are taken for it and rows another relay holds are passed over.
pub async fn pending<'e>(
    executor: impl Executor<'e, Database = Any>,
    limit: i64,
    backend: Backend,
) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT id, kind, payload, trace_id, created_at FROM outbox WHERE published_at IS NULL \
         ORDER BY id LIMIT $1{}",
        backend.skip_locked()
    )))
    .bind(limit)
    .fetch_all(executor)
    .await?
    .iter()
    .map(pending_from)
    .collect()
}

/// The oldest unpublished jobs, marked published at `now` in the same
/// statement, and locked until the transaction ends (rows another relay
/// holds are passed over): a relay that cannot publish them rolls back and
/// they wait again. PostgreSQL only, where rows can be locked.
pub async fn take_pending<'e>(
    executor: impl Executor<'e, Database = Any>,
    limit: i64,
    now: Millis,
    backend: Backend,
) -> Result<Vec<Pending>, sqlx::Error> {
    debug_assert!(backend.locks_rows());
    let mut taken = sqlx::query(AssertSqlSafe(format!(
        "UPDATE outbox SET published_at = $2 WHERE id IN \
           (SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1{}) \
         RETURNING id, kind, payload, trace_id, created_at",
        backend.skip_locked()
    )))
    .bind(limit)
    .bind(now)
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(|row| pending_from(&row))
    .collect::<Result<Vec<_>, _>>()?;
    // RETURNING keeps no order: jobs go out oldest first.
    taken.sort_by_key(|job| job.id);
    Ok(taken)
}

fn pending_from(row: &sqlx::any::AnyRow) -> Result<Pending, sqlx::Error> {
    Ok(Pending {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        trace_id: row.try_get("trace_id")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn mark_published<'e>(
    executor: impl Executor<'e, Database = Any>,
    ids: &[i64],
    now: Millis,
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    // Integers only: nothing from outside reaches this statement's text.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE outbox SET published_at = $1 WHERE id IN ({list})"
    )))
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Unpublishes jobs handed to an in-process queue that never finished: that
/// queue lives only as long as its process, the outbox outlives it.
pub async fn requeue_unfinished<'e>(
    executor: impl Executor<'e, Database = Any>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL \
           AND id NOT IN (SELECT job_id FROM job_runs WHERE done_at IS NOT NULL)",
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// How many jobs wait to be published.
pub async fn backlog<'e>(executor: impl Executor<'e, Database = Any>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(executor)
        .await
}
