//! Locker Exchange workers: take jobs from the queue and do their effects
//! (issue one-time codes, send email and SMS, unlock doors), each job at most
//! once; apply what the doors report; sweep deadlines.

pub mod channels;
pub mod context;
pub mod doors;
pub mod error;
pub mod jobs;
pub mod messages;
pub mod runner;
pub mod sweeper;

pub use context::{Doors, WorkerContext};
pub use error::JobError;
pub use runner::{run_here, spawn};
