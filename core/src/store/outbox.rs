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
    .into_iter()
    .map(|row| {
        Ok(Pending {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            payload: row.try_get("payload")?,
            trace_id: row.try_get("trace_id")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .collect()
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
