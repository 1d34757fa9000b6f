use std::time::Duration;

use super::{Env, Profile};

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
    pub fn load(env: &Env, profile: Profile) -> Option<Self> {
        let amqp_url = match profile {
            Profile::Development => env.get("AMQP_URL"),
            Profile::Production => env.required("AMQP_URL"),
        };
        let amqp_url = match amqp_url {
            Some(url)
                if !(url.starts_with("amqp://") || url.starts_with("amqps://"))
                    || url.parse::<lapin::uri::AMQPUri>().is_err() =>
            {
                env.problem("AMQP_URL", "expected amqp://user:password@host:5672/%2f");
                None
            }
            url => Some(url),
        };
        let prefix = env.required("AMQP_QUEUE_PREFIX").filter(|prefix| {
            let plain = prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !plain {
                env.problem(
                    "AMQP_QUEUE_PREFIX",
                    "letters, digits, '-', '_' and '.' only",
                );
            }
            plain
        });
        let retry_delays = env.required("JOB_RETRY_DELAYS_MS").and_then(|raw| {
            let delays = raw
                .split(',')
                .map(|ms| {
                    ms.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms > 0)
                        .map(Duration::from_millis)
                })
                .collect::<Option<Vec<_>>>();
            if delays.is_none() {
                env.problem(
                    "JOB_RETRY_DELAYS_MS",
                    format!("expected positive milliseconds separated by commas, got {raw:?}"),
                );
            }
            delays
        });
        let queue_type = match env.get("AMQP_QUEUE_TYPE").as_deref() {
            None | Some("quorum") => Some(QueueType::Quorum),
            Some("classic") => Some(QueueType::Classic),
            Some(_) => {
                env.problem("AMQP_QUEUE_TYPE", "expected quorum or classic");
                None
            }
        };
        Some(Self {
            amqp_url: amqp_url?,
            prefix: prefix?,
            retry_delays: retry_delays?,
            queue_type: queue_type?,
        })
    }

    /// Tries before a job is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.retry_delays.len() as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole URL is checked at start, so a typo in it is a refused start
    /// naming `AMQP_URL`, not a failure when the first job goes out.
    #[test]
    fn an_amqp_url_that_does_not_parse_is_refused_at_start() {
        for url in [
            "amqp://rabbit:port/%2f",
            "amqp://guest:guest@rabbit:5672/%2f?heartbeat=soon",
        ] {
            let env = Env::from_pairs([("AMQP_URL", url)]);
            let problems = env
                .finish(QueueConfig::load(&env, Profile::Production))
                .unwrap_err();
            assert_eq!(problems.names(), ["AMQP_URL"], "{url}: {problems}");
        }
        let env = Env::from_pairs([(
            "AMQP_URL",
            "amqp://guest:guest@rabbit:5672/%2f?heartbeat=20",
        )]);
        let config = env
            .finish(QueueConfig::load(&env, Profile::Production))
            .expect("a valid URL with its own heartbeat");
        assert!(config.amqp_url.is_some());
    }
}
