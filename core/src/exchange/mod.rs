//! The exchange's rules, in one place: every transition of an item or a
//! locker is one method of [`Exchange`], which owns its conditional SQL (read
//! from the move tables in [`crate::domain`]), the jobs it implies and its
//! audit entry, all in one transaction. The api's handlers, the door-event
//! applier and the deadline sweeper each call one of them.
//!
//! | transition | file | caller |
//! |---|---|---|
//! | drop an item | `drop.rs` | `POST /Items/` |
//! | door opened / closed / left open | `doors.rs` | door events from agents |
//! | request a code, collect with it | `codes.rs` | `request-otp`, `collect` |
//! | unlock failed | `doors.rs` | the unlock job |
//! | cancel unopened drops, expire, remind, extend | `deadlines.rs` | the sweeper, `/Items/{id}/extend` |
//! | pickup PIN or QR at the locker, offline pickup | `pickups.rs` | agents' entries and reports |
//! | force-clear, out of service, remote unlock, locker edits | `admin.rs` | `/Admin` |

mod admin;
mod codes;
mod deadlines;
mod doors;
mod drop;
mod notices;
mod pickups;
mod release;

use std::sync::Arc;

use crate::clock::Millis;
use crate::config::ExchangeConfig;
use crate::hashing::Hasher;
use crate::relay::Outgoing;
use crate::store::outbox::{CommitError, OutboxTx};
use crate::{Clock, Db};

pub use admin::LockerEdit;
pub use codes::Collected;
pub use doors::DoorOutcome;
pub use drop::{Destination, Parcel};
pub use notices::Actor;
pub use pickups::{Entered, OfflineOutcome};

/// A statement assembled once from the transition tables and kept for the
/// life of the process (so it is as cheap as a literal).
macro_rules! statement {
    ($($format:tt)*) => {{
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!($($format)*));
        SQL.as_str()
    }};
}
use statement;

/// Why a transition was refused. Each maps to one answer a person sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such locker")]
    LockerNotFound,
    /// Out of service, or holding someone else's item.
    #[error("locker is not available")]
    LockerNotAvailable,
    #[error("locker holds no item")]
    LockerEmpty,
    /// No such item, or not the caller's.
    #[error("no such item")]
    ItemNotFound,
    /// The item is not waiting in its locker.
    #[error("the item is not waiting in its locker")]
    NotWaiting,
    /// The sender has extended the deadline as often as allowed.
    #[error("the deadline was already extended {0} times")]
    NoMoreExtensions(i64),
    /// A drop by place at a place with no lockers.
    #[error("no lockers at that place")]
    PlaceNotFound,
    /// A drop by place where no available locker is big enough.
    #[error("no free locker fits {size:?}; free: {free}")]
    NoneFits {
        size: crate::domain::LockerSize,
        free: crate::store::lockers::FreeBySize,
    },
    /// A status change or deletion asked of a locker that holds an item.
    #[error("locker holds an item")]
    LockerOccupied,
    #[error("locker has no agent to drive its door")]
    NoDoor,
    /// No usable code, or not this one. Never says which.
    #[error("invalid or expired code")]
    InvalidCode,
    /// The request's gate refused it: the position of the first limit of
    /// the gate that did. Nothing else was done.
    #[error("too many requests")]
    Limited(usize),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The connection failed while committing: the change may or may not
    /// have been kept.
    #[error("the outcome of a commit is unknown: {0}")]
    Commit(sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error of a statement that commits on its own: when its
    /// connection was lost, whether it was kept is unknown.
    fn unknown_if_lost(error: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            Self::Commit(error)
        } else {
            Self::Database(error)
        }
    }
}

impl From<CommitError> for Error {
    fn from(error: CommitError) -> Self {
        match error {
            // Nothing was kept: as any failed write, tried once more when
            // the connection was lost.
            CommitError::Write(error) => Self::Database(error),
            CommitError::Commit(error) => Self::Commit(error),
        }
    }
}

/// Runs a transition, and once more when it failed only because its
/// database connection was lost before it committed: nothing it did was
/// kept, and its conditional statements make a second run safe. A failure
/// at the commit itself is never run again (the first may have been kept).
async fn once_more<T, F, Fut>(transition: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    match transition().await {
        Err(Error::Database(error)) if crate::db::is_unavailable(&error) => {
            tracing::warn!(%error, "database connection lost; trying once more");
            transition().await
        }
        done => done,
    }
}

/// The exchange over its database: cheap to clone, one per process.
#[derive(Clone)]
pub struct Exchange {
    db: Db,
    clock: Arc<dyn Clock>,
    rules: Arc<ExchangeConfig>,
    hasher: Hasher,
    /// Handed the jobs of each commit, so the relay of this process
    /// publishes them at once.
    relay: Outgoing,
}

impl Exchange {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        rules: ExchangeConfig,
        hasher: Hasher,
        relay: Outgoing,
    ) -> Self {
        Self {
            db,
            clock,
            rules: Arc::new(rules),
            hasher,
            relay,
        }
    }

    pub fn rules(&self) -> &ExchangeConfig {
        &self.rules
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Where jobs committed outside the exchange's own transitions go.
    pub fn relay(&self) -> &Outgoing {
        &self.relay
    }

    /// The same exchange, its commits' jobs handed to `relay`.
    pub fn with_relay(&self, relay: Outgoing) -> Self {
        Self {
            relay,
            ..self.clone()
        }
    }

    /// A write transaction whose jobs go to the relay once it commits.
    async fn begin(&self) -> std::result::Result<OutboxTx, sqlx::Error> {
        Ok(OutboxTx::new(self.db.begin().await?, self.db.backend()))
    }

    pub fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// When an item stored now must be collected by.
    fn collect_by(&self, now: Millis) -> Millis {
        now + self.rules.pickup_window.as_millis() as Millis
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn lost() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    }

    #[tokio::test]
    async fn a_connection_lost_before_commit_is_tried_once_more() {
        let runs = AtomicU32::new(0);
        let done = once_more(|| async {
            match runs.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Error::Database(lost())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(done.unwrap(), 7);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn only_once_and_never_after_a_commit_or_a_refusal() {
        for first in [
            || Error::Commit(lost()),
            || Error::LockerNotAvailable,
            || Error::Database(sqlx::Error::RowNotFound),
        ] {
            let runs = AtomicU32::new(0);
            let done: Result<()> = once_more(|| async {
                runs.fetch_add(1, Ordering::SeqCst);
                Err(first())
            })
            .await;
            assert!(done.is_err());
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
        let runs = AtomicU32::new(0);
        let done: Result<()> = once_more(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(Error::Database(lost()))
        })
        .await;
        assert!(matches!(done, Err(Error::Database(_))));
        assert_eq!(runs.load(Ordering::SeqCst), 2, "tried twice, not more");
    }
}
