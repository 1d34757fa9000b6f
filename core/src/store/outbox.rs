//! The transactional outbox: jobs are written beside the state change that
//! implies them. The process that commits them hands them to its relay at
//! once ([`OutboxTx`]); rows no process handed over (its process stopped
//! first) are found by the relay's sweep.

use std::ops::{Deref, DerefMut};

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Executor, Row, Transaction};

use crate::clock::Millis;
use crate::config::Backend;
use crate::jobs::{Envelope, Job, JobKind};
use crate::relay::Outgoing;
use crate::store::audit;

/// Adds a job; call it inside the transaction of the change it follows from.
/// Returns the row as the relay publishes it.
pub async fn enqueue<'e>(
    executor: impl Executor<'e, Database = Any>,
    job: &Job,
    trace_id: &str,
    now: Millis,
) -> Result<Pending, sqlx::Error> {
    let held = Held::new(job, trace_id, now);
    held.insert(executor).await
}

/// The payload of the job `with(id)` makes, for an id its statement makes:
/// the text before that id and the text after, for `$before || CAST(id AS
/// TEXT) || $after` in SQL. The id is stood in for by a number found
/// nowhere else in the payload, whatever the job's other fields hold.
pub fn payload_around(with: impl Fn(i64) -> Job) -> (String, String) {
    (0..)
        .map(|n| i64::MIN + n)
        .find_map(|stand_in| {
            let payload = serde_json::to_string(&with(stand_in)).expect("jobs serialise");
            let marker = stand_in.to_string();
            let (before, after) = payload.split_once(&marker)?;
            (!before.contains(&marker) && !after.contains(&marker))
                .then(|| (before.to_owned(), after.to_owned()))
        })
        .expect("a payload holds finitely many numbers")
}

/// A job written by a statement that commits on its own, beside the change
/// it follows from (`WITH change AS (…), queued AS (…) SELECT …`).
pub struct Beside {
    kind: &'static str,
    before: String,
    after: String,
    trace_id: String,
    created_at: Millis,
}

impl Beside {
    /// The job `with(id)` makes, the change's id left to the statement (see
    /// [`payload_around`]).
    pub fn new(with: impl Fn(i64) -> Job, trace_id: &str, now: Millis) -> Self {
        let kind = with(0).kind().as_str();
        let (before, after) = payload_around(with);
        Self {
            kind,
            before,
            after,
            trace_id: trace_id.to_owned(),
            created_at: now,
        }
    }

    /// SQL: `queued AS (…)`, the job written once for each row of `from`,
    /// the id (see [`payload_around`]) read from its column `id`; its
    /// five parameters numbered from `$first`. The statement reads the
    /// job's id and payload as `queued.id` and `queued.payload`.
    pub fn queued(from: &str, id: &str, first: usize) -> String {
        let p = |k: usize| first + k;
        format!(
            "queued AS (INSERT INTO outbox (kind, payload, trace_id, created_at) \
               SELECT ${}, ${} || CAST({id} AS TEXT) || ${}, ${}, ${} FROM {from} \
               RETURNING id, payload)",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4)
        )
    }

    /// Binds the parameters of [`Beside::queued`], after those `query` has.
    pub fn bind<'q>(&self, query: Query<'q, Any, AnyArguments>) -> Query<'q, Any, AnyArguments> {
        query
            .bind(self.kind)
            .bind(self.before.clone())
            .bind(self.after.clone())
            .bind(self.trace_id.clone())
            .bind(self.created_at)
    }

    /// The job as written, from the statement's row (its `job_id` and
    /// `job_payload`).
    pub fn written(self, row: &AnyRow) -> Result<Pending, sqlx::Error> {
        Ok(Pending {
            id: row.try_get("job_id")?,
            kind: self.kind.to_owned(),
            payload: row.try_get("job_payload")?,
            trace_id: self.trace_id,
            created_at: self.created_at,
        })
    }
}

/// A job written with a transaction's commit.
struct Held {
    kind: &'static str,
    payload: String,
    trace_id: String,
    created_at: Millis,
}

impl Held {
    fn new(job: &Job, trace_id: &str, now: Millis) -> Self {
        Self {
            kind: job.kind().as_str(),
            payload: serde_json::to_string(job).expect("jobs serialise"),
            trace_id: trace_id.to_owned(),
            created_at: now,
        }
    }

    async fn insert<'e>(
        self,
        executor: impl Executor<'e, Database = Any>,
    ) -> Result<Pending, sqlx::Error> {
        self.insert_audited(executor, Vec::new()).await
    }

    /// Inserts the job and, in the same statement, `audits` (PostgreSQL
    /// only, where a `WITH` clause may write).
    async fn insert_audited<'e>(
        self,
        executor: impl Executor<'e, Database = Any>,
        audits: Vec<audit::Held>,
    ) -> Result<Pending, sqlx::Error> {
        let with = if audits.is_empty() {
            String::new()
        } else {
            // Numbered after the job's four parameters.
            format!("WITH audited AS ({}) ", audit::insert_sql(&audits, 5))
        };
        let query = sqlx::query(AssertSqlSafe(format!(
            "{with}INSERT INTO outbox (kind, payload, trace_id, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id"
        )))
        .bind(self.kind)
        .bind(self.payload.clone())
        .bind(self.trace_id.clone())
        .bind(self.created_at);
        let row = audit::bind_all(query, audits).fetch_one(executor).await?;
        let id = row.try_get(0)?;
        Ok(self.written(id))
    }

    fn written(self, id: i64) -> Pending {
        Pending {
            id,
            kind: self.kind.to_owned(),
            payload: self.payload,
            trace_id: self.trace_id,
            created_at: self.created_at,
        }
    }
}

/// A write transaction that may queue jobs and audit its change. Both are
/// written with the commit: where writes chain (PostgreSQL), the audit rows
/// ride in the statement of the first job, so a transition pays one round
/// trip for them all, not one each. Once committed, the jobs go to the
/// relay of this process, which publishes them without looking for them in
/// the database. It reads and writes as the connection it wraps.
pub struct OutboxTx {
    tx: Transaction<'static, Any>,
    chains: bool,
    jobs: Vec<Held>,
    audits: Vec<audit::Held>,
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Writing the jobs and audit rows held for the commit failed: nothing
    /// of the transaction was kept.
    #[error(transparent)]
    Write(sqlx::Error),
    /// The commit itself failed: the change may or may not have been kept.
    #[error(transparent)]
    Commit(sqlx::Error),
}

impl From<CommitError> for sqlx::Error {
    fn from(error: CommitError) -> Self {
        match error {
            CommitError::Write(error) | CommitError::Commit(error) => error,
        }
    }
}

impl OutboxTx {
    pub fn new(tx: Transaction<'static, Any>, backend: Backend) -> Self {
        Self {
            tx,
            chains: backend.chains_writes(),
            jobs: Vec::new(),
            audits: Vec::new(),
        }
    }

    /// Queues a job with this transaction's change.
    pub fn enqueue(&mut self, job: &Job, trace_id: &str, now: Millis) {
        self.jobs.push(Held::new(job, trace_id, now));
    }

    /// Audits this transaction's change.
    pub fn audit(&mut self, entry: audit::Entry<'_>) {
        self.audits.push(entry.into());
    }

    /// Writes what was held, commits, then hands the jobs written to
    /// `relay`. Should either fail, nothing is handed over.
    pub async fn commit(mut self, relay: &Outgoing) -> Result<(), CommitError> {
        let written = self.write_held().await.map_err(CommitError::Write)?;
        self.tx.commit().await.map_err(CommitError::Commit)?;
        relay.committed(written);
        Ok(())
    }

    async fn write_held(&mut self) -> Result<Vec<Pending>, sqlx::Error> {
        let mut jobs = std::mem::take(&mut self.jobs).into_iter();
        let audits = std::mem::take(&mut self.audits);
        let mut written = Vec::with_capacity(jobs.len());
        match jobs.next() {
            Some(first) if self.chains => {
                written.push(first.insert_audited(&mut *self.tx, audits).await?);
            }
            first => {
                if let Some(first) = first {
                    written.push(first.insert(&mut *self.tx).await?);
                }
                audit::record_all(&mut *self.tx, audits).await?;
            }
        }
        for job in jobs {
            written.push(job.insert(&mut *self.tx).await?);
        }
        Ok(written)
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

impl Pending {
    /// The job's first try, as it is published; `None` (said in the log)
    /// for a row no worker could run.
    pub fn envelope(&self) -> Option<Envelope> {
        let kind = JobKind::parse(&self.kind);
        let payload = serde_json::from_str(&self.payload);
        match (kind, payload) {
            (Some(kind), Ok(payload)) => Some(Envelope {
                id: self.id,
                kind,
                attempt: 1,
                trace_id: self.trace_id.clone(),
                payload,
                enqueued_at: Some(self.created_at),
            }),
            _ => {
                tracing::error!(job_id = self.id, kind = %self.kind, "outbox row cannot be published; skipped");
                None
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{UnlockJob, UnlockPurpose};

    fn unlock(locker_id: i64, item_id: i64) -> Job {
        Job::Unlock(UnlockJob {
            locker_id,
            item_id: Some(item_id),
            purpose: UnlockPurpose::Drop,
            then_grant: false,
        })
    }

    #[test]
    fn a_payload_around_an_id_is_the_job_with_that_id() {
        let (before, after) = payload_around(|id| unlock(7, id));
        for id in [1, 42, 1_000_000_007, i64::MAX] {
            let written = format!("{before}{id}{after}");
            assert_eq!(written, serde_json::to_string(&unlock(7, id)).unwrap());
            let read: Job = serde_json::from_str(&written).unwrap();
            assert!(matches!(read, Job::Unlock(UnlockJob { item_id: Some(i), .. }) if i == id));
        }
    }

    #[test]
    fn what_else_a_job_holds_never_takes_the_id_s_place() {
        // Another field holds the first stand-in (a stranger's locker id,
        // or a contact written with its digits).
        let (before, after) = payload_around(|id| unlock(i64::MIN, id));
        assert_eq!(
            format!("{before}5{after}"),
            serde_json::to_string(&unlock(i64::MIN, 5)).unwrap()
        );
        let contact = format!("{}{}@example.com", i64::MIN, i64::MIN + 1);
        let otp = |item_id| {
            Job::Otp(crate::jobs::OtpJob {
                item_id,
                contact: contact.clone(),
            })
        };
        let (before, after) = payload_around(otp);
        assert_eq!(
            format!("{before}9{after}"),
            serde_json::to_string(&otp(9)).unwrap()
        );
    }
}
