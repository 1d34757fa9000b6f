//! Storage: one module per table group, SQL shared by both backends.
//!
//! Single statements take any executor (pool or transaction); every state
//! change is one conditional statement, so concurrent requests have exactly
//! one winner.

pub mod audit;
pub mod codes;
pub mod doors;
pub mod items;
pub mod job_runs;
pub mod lockers;
pub mod outbox;
pub mod overview;
pub mod pickups;
pub mod rate_limits;
pub mod sessions;
pub mod users;
pub mod worker_sessions;

/// A stored value outside what its column may hold.
pub(crate) fn decode_error(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unexpected value {value:?}").into(),
    }
}
