//! How a job fails: the runner settles it by this (retry or dead-letter);
//! jobs and the channels they send through return it.

#[derive(Debug)]
pub enum JobError {
    /// Worth trying again later (network, 5xx, database busy).
    Transient(anyhow::Error),
    /// Will never succeed (bad address, provider refused): dead-letter now.
    Permanent(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(e) => write!(f, "{e:#}"),
            Self::Permanent(reason) => f.write_str(reason),
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::Transient(anyhow::Error::new(e).context("database"))
    }
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        Self::Transient(e)
    }
}

impl From<locker_core::exchange::Error> for JobError {
    fn from(e: locker_core::exchange::Error) -> Self {
        Self::Transient(anyhow::Error::new(e).context("exchange"))
    }
}
