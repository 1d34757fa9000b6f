//! The transactional outbox: jobs are written beside the state change that
//! implies them. The process that commits them hands them to its relay at
//! once ([`OutboxTx`]); rows no process handed over (its process stopped
//! first) are found by the relay's sweep.

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection, AssertSqlSafe, Executor, Row, Transaction};

use crate::clock::Millis;
use crate::config::Backend;
use crate::jobs::Job;
use crate::relay::Outgoing;

/// Adds a job; call it inside the transaction of the change it follows from.
/// Returns the row as the relay publishes it.
pub async fn enqueue<'e>(
    executor: impl Executor<'e, Database = Any>,
    job: &Job,
    trace_id: &str,
    now: Millis,
) -> Result<Pending, sqlx::Error> {
    let kind = job.kind().as_str();
    let payload = serde_json::to_string(job).expect("jobs serialise");
    let id = sqlx::query_scalar(
        "INSERT INTO outbox (kind, payload, trace_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(kind)
    .bind(payload.clone())
    .bind(trace_id.to_owned())
    .bind(now)
    .fetch_one(executor)
    .await?;
    Ok(Pending {
        id,
        kind: kind.to_owned(),
        payload,
        trace_id: trace_id.to_owned(),
        created_at: now,
    })
}

/// A write transaction that may queue jobs: when it commits, the jobs it
/// wrote go to the relay of this process, which publishes them without
/// looking for them in the database. It reads and writes as the
/// connection it wraps.
pub struct OutboxTx {
    tx: Transaction<'static, Any>,
    written: Vec<Pending>,
}

impl OutboxTx {
    pub fn new(tx: Transaction<'static, Any>) -> Self {
        Self {
            tx,
            written: Vec::new(),
        }
    }

    /// Queues a job with this transaction's change.
    pub async fn enqueue(
        &mut self,
        job: &Job,
        trace_id: &str,
        now: Millis,
    ) -> Result<i64, sqlx::Error> {
        let row = enqueue(&mut *self.tx, job, trace_id, now).await?;
        let id = row.id;
        self.written.push(row);
        Ok(id)
    }

    /// Commits, then hands the jobs written to `relay`. Should the commit
    /// fail, nothing is handed over.
    pub async fn commit(self, relay: &Outgoing) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        relay.committed(self.written);
        Ok(())
    }
}

impl Deref for OutboxTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for OutboxTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub trace_id: String,
    pub created_at: i64,
}

/// The oldest unpublished jobs up to id `through`. Inside a transaction,
/// where rows can be locked, they are taken for it and rows another relay
/// holds are passed over.
pub async fn pending<'e>(
    executor: impl Executor<'e, Database = Any>,
    through: i64,
    limit: i64,
    backend: Backend,
) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT id, kind, payload, trace_id, created_at FROM outbox \
         WHERE published_at IS NULL AND id <= $1 ORDER BY id LIMIT $2{}",
        backend.skip_locked()
    )))
    .bind(through)
    .bind(limit)
    .fetch_all(executor)
    .await?
    .iter()
    .map(pending_from)
    .collect()
}

/// The oldest unpublished jobs up to id `through`, marked published at
/// `now` in the same statement, and locked until the transaction ends (rows
/// another relay holds are passed over): a relay that cannot publish them
/// rolls back and they wait again. PostgreSQL only, where rows can be locked.
pub async fn take_pending<'e>(
    executor: impl Executor<'e, Database = Any>,
    through: i64,
    limit: i64,
    now: Millis,
    backend: Backend,
) -> Result<Vec<Pending>, sqlx::Error> {
    debug_assert!(backend.locks_rows());
    let mut taken = sqlx::query(AssertSqlSafe(format!(
        "UPDATE outbox SET published_at = $3 WHERE id IN \
           (SELECT id FROM outbox WHERE published_at IS NULL AND id <= $1 \
            ORDER BY id LIMIT $2{}) \
         RETURNING id, kind, payload, trace_id, created_at",
        backend.skip_locked()
    )))
    .bind(through)
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

/// Stamps jobs published, each at its own time, in one statement; a job
/// stamped already keeps its first stamp.
pub async fn mark_published<'e>(
    executor: impl Executor<'e, Database = Any>,
    published: &[(i64, Millis)],
) -> Result<(), sqlx::Error> {
    if published.is_empty() {
        return Ok(());
    }
    // Integers only: nothing from outside reaches this statement's text,
    // sent as it is (a text that changes each time is not worth preparing).
    let mut when = String::new();
    let mut ids = String::new();
    for (n, (id, at)) in published.iter().enumerate() {
        when.push_str(&format!(" WHEN {id} THEN {at}"));
        ids.push_str(&format!("{}{id}", if n == 0 { "" } else { "," }));
    }
    sqlx::raw_sql(AssertSqlSafe(format!(
        "UPDATE outbox SET published_at = CASE id{when} END \
         WHERE id IN ({ids}) AND published_at IS NULL"
    )))
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

/// The newest job's id (0 for none), and how many jobs wait to be published.
pub async fn survey<'e>(
    executor: impl Executor<'e, Database = Any>,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE(MAX(id), 0), \
                (SELECT COUNT(*) FROM outbox WHERE published_at IS NULL) FROM outbox",
    )
    .fetch_one(executor)
    .await
}

/// How many jobs wait to be published.
pub async fn backlog<'e>(executor: impl Executor<'e, Database = Any>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(executor)
        .await
}
