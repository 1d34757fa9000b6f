//! One backoff for every reconnect and retry loop (backon's exponential
//! backoff with jitter), and one warning per outage rather than one per try
//! and per task.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};

/// Waits of 200 ms, doubling, up to 5 s (a link that is back is used within
/// seconds), for as long as it takes.
pub fn reconnect() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// Tells when a link goes down and when it is back, once each, however many
/// tasks share the link and however many tries it takes. Clones share it.
#[derive(Debug, Clone)]
pub struct Outage {
    what: &'static str,
    down: Arc<AtomicBool>,
}

impl Outage {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            down: Arc::default(),
        }
    }

    pub fn failed(&self, error: &dyn Display, retry_in: Duration) {
        if self.down.swap(true, Ordering::SeqCst) {
            tracing::debug!(link = self.what, %error, ?retry_in, "still unreachable");
        } else {
            tracing::warn!(link = self.what, %error, ?retry_in, "unreachable; retrying with backoff");
        }
    }

    pub fn recovered(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            tracing::info!(link = self.what, "reachable again");
        }
    }
}

/// One task's way back to a link: a backoff of its own, the outage it shares
/// with the link's other tasks.
#[derive(Debug)]
pub struct Reconnect {
    outage: Outage,
    waits: ExponentialBackoff,
}

impl Reconnect {
    pub fn new(outage: Outage) -> Self {
        Self {
            outage,
            waits: reconnect().build(),
        }
    }

    /// Notes a failed try; returns how long to wait before the next.
    pub fn failed(&mut self, error: &dyn Display) -> Duration {
        let wait = self.waits.next().unwrap_or(Duration::from_secs(5));
        self.outage.failed(error, wait);
        wait
    }

    /// The link works: said if it was down, and the backoff starts over.
    pub fn recovered(&mut self) {
        self.outage.recovered();
        self.waits = reconnect().build();
    }
}
