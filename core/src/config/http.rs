use std::time::Duration;

use super::{ConfigError, Env};

/// How the api treats connections: slow or idle clients are closed, and the
/// number of open connections is bounded.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// A request's headers must arrive within this, and an idle keep-alive
    /// connection is closed after it (`HTTP_HEADER_TIMEOUT_SECONDS`, 10).
    pub header_timeout: Duration,
    /// A whole request, body included, within this, or 408
    /// (`HTTP_REQUEST_TIMEOUT_SECONDS`, 30).
    pub request_timeout: Duration,
    /// Connections served at once; more wait to be accepted
    /// (`HTTP_MAX_CONNECTIONS`, 1024).
    pub max_connections: usize,
}

impl HttpConfig {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let positive = |name, default| -> Result<u64, ConfigError> {
            let n: u64 = env.parse_or(name, default, "a positive whole number")?;
            if n == 0 {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
            Ok(n)
        };
        Ok(Self {
            header_timeout: Duration::from_secs(positive("HTTP_HEADER_TIMEOUT_SECONDS", "10")?),
            request_timeout: Duration::from_secs(positive("HTTP_REQUEST_TIMEOUT_SECONDS", "30")?),
            max_connections: positive("HTTP_MAX_CONNECTIONS", "1024")? as usize,
        })
    }
}
