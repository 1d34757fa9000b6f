use std::time::Duration;

use super::Env;

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
    pub fn load(env: &Env) -> Option<Self> {
        let seconds = |name| env.positive(name, " of seconds").map(Duration::from_secs);
        let header_timeout = seconds("HTTP_HEADER_TIMEOUT_SECONDS");
        let request_timeout = seconds("HTTP_REQUEST_TIMEOUT_SECONDS");
        let max_connections = env.positive("HTTP_MAX_CONNECTIONS", "");
        Some(Self {
            header_timeout: header_timeout?,
            request_timeout: request_timeout?,
            max_connections: max_connections? as usize,
        })
    }
}
