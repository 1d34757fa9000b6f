//! What every Locker Exchange process runs on, server or site agent alike:
//! the clock, logging, and graceful shutdown.

pub mod backoff;
pub mod clock;
pub mod shutdown;
pub mod telemetry;

pub use clock::{Clock, Millis, SystemClock};
