//! What jobs need to do their work, shared by every consumer of a process.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use locker_core::config::DoorsConfig;
use locker_core::exchange::Exchange;
use locker_core::hashing::Hasher;
use locker_core::store::job_runs::Claims;
use locker_core::{Clock, Db};
use secrecy::SecretString;

use crate::channels::Notifier;
use crate::doors::DoorLink;
use crate::error::JobError;

/// The link to the doors and its settings.
pub struct Doors {
    pub link: DoorLink,
    pub config: DoorsConfig,
}

/// What jobs need to do their work.
pub struct WorkerContext {
    pub db: Db,
    pub claims: Claims,
    pub hasher: Hasher,
    /// Email and SMS, where this process sends codes or messages.
    pub notifier: Option<Notifier>,
    /// What one-time codes are derived from (`OTP_SECRET`), likewise.
    pub code_secret: Option<SecretString>,
    /// Where people reach the api (`PUBLIC_URL`), for pickup links.
    pub public_url: Option<String>,
    pub clock: Arc<dyn Clock>,
    /// Every transition of items and lockers.
    pub exchange: Exchange,
    /// The MQTT side, where this process drives doors.
    pub doors: Option<Doors>,
    /// Delay before each retry; its length + 1 is the number of tries.
    pub retry_delays: Vec<Duration>,
    /// Deliveries taken and not yet settled, across this process's consumers.
    pub in_hand: Arc<AtomicUsize>,
}

impl WorkerContext {
    /// Email and SMS; only a process serving otp or notify has them.
    pub fn notifier(&self) -> Result<&Notifier, JobError> {
        self.notifier.as_ref().ok_or_else(|| {
            JobError::Permanent(
                "this worker sends no messages (it serves neither otp nor notify)".into(),
            )
        })
    }

    pub fn code_secret(&self) -> Result<&SecretString, JobError> {
        self.code_secret.as_ref().ok_or_else(|| {
            JobError::Permanent("this worker issues no codes (it does not serve otp)".into())
        })
    }
}
