//! What every Locker Exchange binary shares: configuration, the database and its
//! stores, the domain types, and the runtime plumbing (telemetry, shutdown, clock).

pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod exchange;
pub mod hashing;
pub mod jobs;
pub mod mqtt;
pub mod queue;
pub mod relay;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use clock::{Clock, SystemClock};
pub use db::Db;
