//! What every Locker Exchange binary shares: configuration, the database and its
//! stores, the domain types, and the runtime plumbing (telemetry, shutdown, clock).

pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod exchange;
pub mod hashing;
pub mod jobs;
pub mod metrics;
pub mod queue;
pub mod relay;
pub mod store;

pub use clock::{Clock, SystemClock};
pub use db::Db;
pub use locker_runtime::{backoff, shutdown, telemetry};
