//! Locker Exchange workers: take jobs from the queue and do their effects
//! (issue one-time codes, send email and SMS), each job at most once.

pub mod channels;
pub mod jobs;
pub mod messages;
pub mod runner;

pub use runner::{JobError, WorkerContext, spawn};
