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
//! | cancel unopened drops, expire | `deadlines.rs` | the sweeper |
//! | force-clear, out of service, remote unlock, locker edits | `admin.rs` | `/Admin` |

mod admin;
mod codes;
mod deadlines;
mod doors;
mod drop;
mod notices;

use std::sync::Arc;

use crate::clock::Millis;
use crate::config::ExchangeConfig;
use crate::hashing::Hasher;
use crate::relay::RelayWaker;
use crate::{Clock, Db};

pub use admin::LockerEdit;
pub use codes::Collected;
pub use doors::DoorOutcome;
pub use drop::Parcel;

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
    /// A status change or deletion asked of a locker that holds an item.
    #[error("locker holds an item")]
    LockerOccupied,
    #[error("locker has no agent to drive its door")]
    NoDoor,
    /// No usable code, or not this one. Never says which.
    #[error("invalid or expired code")]
    InvalidCode,
    /// Too many wrong codes on the item: no code is taken before `until`.
    #[error("too many wrong codes")]
    CoolingDown { until: Millis, now: Millis },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The exchange over its database: cheap to clone, one per process.
#[derive(Clone)]
pub struct Exchange {
    db: Db,
    clock: Arc<dyn Clock>,
    rules: Arc<ExchangeConfig>,
    hasher: Hasher,
    /// Nudged after a commit that wrote jobs, so a relay in this process
    /// publishes them at once.
    relay: RelayWaker,
}

impl Exchange {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        rules: ExchangeConfig,
        hasher: Hasher,
        relay: RelayWaker,
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

    pub fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// When an item stored now must be collected by.
    fn collect_by(&self, now: Millis) -> Millis {
        now + self.rules.pickup_window.as_millis() as Millis
    }
}
