//! Real protocol peers for tests and benchmarks: an SMTP server that keeps
//! what it receives, an HTTP server that checks requests the way Twilio's
//! Messages API does, and a TCP proxy that cuts the path to a service.

pub mod proxy;
pub mod smtp;
pub mod twilio;

pub use proxy::TcpProxy;
pub use smtp::{Mail, SmtpSink};
pub use twilio::{Sms, TwilioFake};

/// The first run of `n` ASCII digits in `text` that stands on its own.
pub fn digits(text: &str, n: usize) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == n)
        .map(str::to_owned)
}
