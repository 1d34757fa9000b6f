//! Jobs taken up and done. A worker claims a job before its effect and marks
//! it done after; a duplicate delivery of the same job waits for the claim,
//! then finds it done and has no effect.
//!
//! On PostgreSQL a claim is a lease written on the job's row, not a lock
//! held in an open transaction: a job that sends email or SMS waits on the
//! provider, and a transaction held across that wait kept a connection from
//! everything else the process does (a stalled mail server emptied the pool
//! and the doors' work waited behind it). A lease runs out on its own when
//! its worker dies, so the job is taken up again by its next delivery; a
//! live worker renews it while the work goes on.
//!
//! A job's claim and its own writes before its done mark (a code stored, a
//! pass kept, a grant's read) commit without waiting for the disk
//! ([`lazy_commit`](crate::db::lazy_commit)); the done mark waits, and with
//! it everything written before it. A crash of the database can lose only
//! writes of a job not yet marked done, which its next delivery makes
//! again, as it would after a crash of the worker: the code and the pass
//! are derived from the job and the item, the same on every try. Only the
//! done mark is followed by the broker's acknowledgement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Db;
use crate::clock::{self, Millis};
use crate::db::{lazy_commit, postgres_now_ms};
use crate::jobs::JobKind;

/// How long a claim on PostgreSQL keeps a job to its worker unless renewed:
/// also how long a job whose worker died waits for its next delivery.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often a worker renews its lease while the job's work goes on.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often a duplicate delivery looks again while another holds the job.
const WAIT_STEP: Duration = Duration::from_millis(100);
/// Marks job `$job` (of kind `$kind`) done at `$now`: once, or once for each
/// row of a `FROM` that follows. A door job's mark joins a statement of its
/// work.
macro_rules! mark_done {
    ($job:literal, $kind:literal, $now:literal) => {
        concat!(
            "INSERT INTO job_runs (job_id, kind, done_at) SELECT CAST(",
            $job,
            " AS BIGINT), ",
            $kind,
            ", ",
            $now
        )
    };
}
/// A job marked done again (a redelivery's work) keeps the last time.
macro_rules! on_done_again {
    () => {
        " ON CONFLICT (job_id) DO UPDATE SET done_at = excluded.done_at"
    };
}
pub(crate) use {mark_done, on_done_again};
/// Takes the job's row for a lease of `$3` ms unless it is done or another's
/// lease on it still runs; committed lazily (see the module's notes).
const CLAIM: &str = concat!(
    "INSERT INTO job_runs (job_id, kind, claimed_until) SELECT $1, $2, ",
    postgres_now_ms!(),
    " + $3 FROM ",
    lazy_commit!(),
    " ON CONFLICT (job_id) DO UPDATE SET claimed_until = excluded.claimed_until \
     WHERE job_runs.done_at IS NULL \
       AND (job_runs.claimed_until IS NULL OR job_runs.claimed_until < ",
    postgres_now_ms!(),
    ") RETURNING claimed_until"
);
/// Extends the lease `$2` by `$3` ms from now while it is still ours.
const RENEW: &str = concat!(
    "UPDATE job_runs SET claimed_until = ",
    postgres_now_ms!(),
    " + $3 WHERE job_id = $1 AND claimed_until = $2 AND done_at IS NULL \
     RETURNING claimed_until"
);

/// Hands out claims on jobs.
#[derive(Clone, Default)]
pub struct Claims {
    /// Where the database cannot lock rows (SQLite, serving one process),
    /// jobs in flight are locked here, so a slow send never holds its single
    /// write lock.
    local: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
}

pub enum Claim {
    /// Someone already did it.
    Done,
    /// Ours to do; finish it once the effect is done, or release it on a
    /// failure. Dropped unfinished (a crash), the job is free again once its
    /// lease runs out.
    Mine(Guard),
}

/// The claim could not be renewed before its lease ran out (the database
/// out of reach): another delivery may take the job, so the work stops.
#[derive(Debug, thiserror::Error)]
#[error("the claim on the job ran out before its work ended")]
pub struct LeaseLost;

pub struct Guard {
    job_id: i64,
    kind: JobKind,
    hold: Hold,
}

enum Hold {
    /// The job's row carries our lease, until this (database clock, ms).
    Lease { db: Db, until: i64 },
    Local {
        db: Db,
        _lock: tokio::sync::OwnedMutexGuard<()>,
        claims: Claims,
    },
}

impl Claims {
    pub async fn claim(&self, db: &Db, job_id: i64, kind: JobKind) -> Result<Claim, sqlx::Error> {
        if db.backend().locks_rows() {
            claim_row(db, job_id, kind).await
        } else {
            self.claim_local(db, job_id, kind).await
        }
    }

    /// The job's row in memory: the database serves this process alone.
    async fn claim_local(&self, db: &Db, job_id: i64, kind: JobKind) -> Result<Claim, sqlx::Error> {
        let lock = self
            .local
            .lock()
            .expect("claims lock")
            .entry(job_id)
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        if is_done(db, job_id).await? {
            self.forget(job_id);
            return Ok(Claim::Done);
        }
        Ok(Claim::Mine(Guard {
            job_id,
            kind,
            hold: Hold::Local {
                db: db.clone(),
                _lock: guard,
                claims: self.clone(),
            },
        }))
    }

    fn forget(&self, job_id: i64) {
        let mut local = self.local.lock().expect("claims lock");
        // Only when no other delivery of the job is waiting on the lock.
        if local
            .get(&job_id)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            local.remove(&job_id);
        }
    }
}

impl Guard {
    /// Runs `work` while holding the claim, renewing its lease; stops the
    /// work (drops it) when the lease cannot be kept.
    pub async fn hold_while<T>(&mut self, work: impl Future<Output = T>) -> Result<T, LeaseLost> {
        let Hold::Lease { db, until } = &mut self.hold else {
            return Ok(work.await);
        };
        let job_id = self.job_id;
        let renewing = async {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                // An attempt that could end after the lease is not made.
                if renewed.elapsed() + RENEW_EVERY > LEASE {
                    return LeaseLost;
                }
                let started = tokio::time::Instant::now();
                match tokio::time::timeout(RENEW_EVERY, renew(db, job_id, *until)).await {
                    Ok(Ok(Some(next))) => {
                        *until = next;
                        renewed = started;
                    }
                    // Ran out and taken by another delivery.
                    Ok(Ok(None)) => return LeaseLost,
                    Ok(Err(error)) => tracing::warn!(%error, "cannot renew a job's claim"),
                    Err(_) => tracing::warn!("renewing a job's claim took too long"),
                }
            }
        };
        tokio::select! {
            done = work => Ok(done),
            lost = renewing => Err(lost),
        }
    }

    /// Records the job done and lets any duplicate through (to find it done).
    pub async fn finish(self, now: Millis) -> Result<(), sqlx::Error> {
        match self.hold {
            Hold::Lease { db, .. } => {
                sqlx::query(
                    "UPDATE job_runs SET done_at = $2, claimed_until = NULL WHERE job_id = $1",
                )
                .bind(self.job_id)
                .bind(now)
                .execute(db.pool())
                .await?;
                Ok(())
            }
            Hold::Local { db, _lock, claims } => {
                record_done(db.pool(), self.job_id, self.kind, now).await?;
                claims.forget(self.job_id);
                Ok(())
            }
        }
    }

    /// Gives the job up undone (its work failed): the next delivery may take
    /// it at once instead of waiting out the lease.
    pub async fn release(self) -> Result<(), sqlx::Error> {
        match self.hold {
            Hold::Lease { db, until } => {
                // Only our own lease: one that ran out may be another's now.
                sqlx::query(
                    "UPDATE job_runs SET claimed_until = NULL \
                     WHERE job_id = $1 AND claimed_until = $2 AND done_at IS NULL",
                )
                .bind(self.job_id)
                .bind(until)
                .execute(db.pool())
                .await?;
                Ok(())
            }
            Hold::Local { _lock, claims, .. } => {
                // Forgotten while still held, as in `finish`: a waiting
                // delivery keeps the lock it waits on.
                claims.forget(self.job_id);
                Ok(())
            }
        }
    }
}

/// Extends our lease (`until`); `None` when it is no longer ours.
async fn renew(db: &Db, job_id: i64, until: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(RENEW)
        .bind(job_id)
        .bind(until)
        .bind(clock::millis(LEASE))
        .fetch_optional(db.pool())
        .await
}

/// A lease on the job's row, taken in one statement that holds no
/// transaction open: the row is written with our lease, or given a new one
/// when the last ran out, unless the job is done. Otherwise another delivery
/// holds it: wait until it is done or free.
async fn claim_row(db: &Db, job_id: i64, kind: JobKind) -> Result<Claim, sqlx::Error> {
    loop {
        let taken: Option<i64> = sqlx::query_scalar(CLAIM)
            .bind(job_id)
            .bind(kind.as_str())
            .bind(clock::millis(LEASE))
            .fetch_optional(db.pool())
            .await?;
        if let Some(until) = taken {
            return Ok(Claim::Mine(Guard {
                job_id,
                kind,
                hold: Hold::Lease {
                    db: db.clone(),
                    until,
                },
            }));
        }
        if is_done(db, job_id).await? {
            return Ok(Claim::Done);
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// Records a job done, claimed or not (one statement).
pub async fn record_done<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    job_id: i64,
    kind: JobKind,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO job_runs (job_id, kind, done_at) VALUES ($1, $2, $3)",
        on_done_again!()
    ))
    .bind(job_id)
    .bind(kind.as_str())
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// True when a delivery of the job finished it.
async fn is_done(db: &Db, job_id: i64) -> Result<bool, sqlx::Error> {
    let done: Option<Option<i64>> =
        sqlx::query_scalar("SELECT done_at FROM job_runs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(done.flatten().is_some())
}
