//! Jobs taken up and done. A worker claims a job before its effect and marks
//! it done after; a duplicate delivery of the same job waits for the claim,
//! then finds it done and has no effect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::{Any, Transaction};

use crate::Db;
use crate::clock::Millis;
use crate::jobs::JobKind;

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
    /// Ours to do; finish it once the effect is done. Dropped unfinished (an
    /// error, a crash), the job stays open for the next delivery.
    Mine(Guard),
}

pub struct Guard {
    job_id: i64,
    kind: JobKind,
    hold: Hold,
}

enum Hold {
    /// The job's row, locked until the transaction ends.
    Row(Transaction<'static, Any>),
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
    /// Records the job done and lets any duplicate through (to find it done).
    pub async fn finish(self, now: Millis) -> Result<(), sqlx::Error> {
        match self.hold {
            Hold::Row(mut tx) => {
                sqlx::query("UPDATE job_runs SET done_at = $2 WHERE job_id = $1")
                    .bind(self.job_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            Hold::Local { db, _lock, claims } => {
                record_done(&db, self.job_id, self.kind, now).await?;
                claims.forget(self.job_id);
                Ok(())
            }
        }
    }
}

/// The job's row, locked by a transaction held until the job is done, so
/// processes sharing the database never run one job side by side.
async fn claim_row(db: &Db, job_id: i64, kind: JobKind) -> Result<Claim, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    // One statement inserts the row or locks the one there: on a conflict
    // PostgreSQL waits for another delivery's claim to end and returns the
    // row as that left it.
    let done: Option<i64> = sqlx::query_scalar(
        "INSERT INTO job_runs (job_id, kind) VALUES ($1, $2) \
         ON CONFLICT (job_id) DO UPDATE SET kind = excluded.kind RETURNING done_at",
    )
    .bind(job_id)
    .bind(kind.as_str())
    .fetch_one(&mut *tx)
    .await?;
    Ok(match done {
        Some(_) => Claim::Done,
        None => Claim::Mine(Guard {
            job_id,
            kind,
            hold: Hold::Row(tx),
        }),
    })
}

/// Records a job done, claimed or not (one statement).
pub async fn record_done(
    db: &Db,
    job_id: i64,
    kind: JobKind,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_runs (job_id, kind, done_at) VALUES ($1, $2, $3) \
         ON CONFLICT (job_id) DO UPDATE SET done_at = excluded.done_at",
    )
    .bind(job_id)
    .bind(kind.as_str())
    .bind(now)
    .execute(db.pool())
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
