use std::time::Duration;

use super::{ConfigError, Env, Profile};

/// Where jobs travel: RabbitMQ when `AMQP_URL` is set, else (under `cargo
/// run` only) an in-process queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub amqp_url: Option<String>,
    /// Prefix of every queue name, so several deployments (or test runs) can
    /// share a broker.
    pub prefix: String,
    /// Delay before each retry of a failed job; a job is tried once more than
    /// there are delays, then dead-lettered.
    pub retry_delays: Vec<Duration>,
    /// RabbitMQ's queue type for every queue (`AMQP_QUEUE_TYPE`).
    pub queue_type: QueueType,
}

/// `quorum` (the default: replicated, survives the loss of a broker node in
/// a cluster, never loses a confirmed message) or `classic` (one node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    Quorum,
    Classic,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

pub const DEFAULT_RETRY_DELAYS_MS: &str = "1000,5000,30000,120000";

impl QueueConfig {
    pub fn load(env: &Env, profile: Profile) -> Result<Self, ConfigError> {
        let amqp_url = env.get("AMQP_URL")?;
        if amqp_url.is_none() && profile == Profile::Production {
            return Err(ConfigError::new("AMQP_URL", "is required but not set"));
        }
        if let Some(url) = &amqp_url
            && !(url.starts_with("amqp://") || url.starts_with("amqps://"))
        {
            return Err(ConfigError::new(
                "AMQP_URL",
                "expected amqp://user:password@host:5672/%2f",
            ));
        }
        let prefix = env
            .get("AMQP_QUEUE_PREFIX")?
            .unwrap_or_else(|| "lockerx".into());
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ConfigError::new(
                "AMQP_QUEUE_PREFIX",
                "letters, digits, '-', '_' and '.' only",
            ));
        }
        let raw = env
            .get("JOB_RETRY_DELAYS_MS")?
            .unwrap_or_else(|| DEFAULT_RETRY_DELAYS_MS.into());
        let retry_delays = raw
            .split(',')
            .map(|ms| {
                ms.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ConfigError::new(
                    "JOB_RETRY_DELAYS_MS",
                    format!("expected positive milliseconds separated by commas, got {raw:?}"),
                )
            })?;
        let queue_type = match env.get("AMQP_QUEUE_TYPE")?.as_deref() {
            None | Some("quorum") => QueueType::Quorum,
            Some("classic") => QueueType::Classic,
            Some(_) => {
                return Err(ConfigError::new(
                    "AMQP_QUEUE_TYPE",
                    "expected quorum or classic",
                ));
            }
        };
        Ok(Self {
            amqp_url,
            prefix,
            retry_delays,
            queue_type,
        })
    }

    /// Tries before a job is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.retry_delays.len() as u32 + 1
    }
}
