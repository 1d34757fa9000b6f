use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, Env, Profile};
use locker_protocol::MqttEndpoint;

/// How workers reach the doors: the MQTT broker, the topic root, and the
/// secret every agent's signing key is derived from.
#[derive(Debug, Clone)]
pub struct DoorsConfig {
    /// `None` under `cargo run` without `MQTT_URL`: the embedded broker.
    pub broker: Option<MqttEndpoint>,
    pub topic_root: String,
    pub agent_secret: SecretString,
    /// How long a command may wait to be executed.
    pub command_ttl: Duration,
    /// How long an unlock waits for the agent's answer before it is retried.
    pub ack_timeout: Duration,
    /// Split agents' events among worker processes with `$share/...`
    /// subscriptions (`MQTT_SHARED_SUBSCRIPTIONS`, default true). The embedded
    /// broker runs without: it drops messages on shared subscriptions.
    pub shared_subscriptions: bool,
    /// This process's MQTT client id: stable across restarts, so its
    /// persistent session (and what was sent while it was down) is found again.
    pub client_id: String,
}

impl DoorsConfig {
    pub fn load(env: &Env, profile: Profile) -> Result<Self, ConfigError> {
        let broker = match (env.get("MQTT_URL")?, profile) {
            (Some(url), _) => {
                Some(MqttEndpoint::parse(&url).map_err(|p| ConfigError::new("MQTT_URL", p))?)
            }
            (None, Profile::Development) => None,
            (None, Profile::Production) => {
                return Err(ConfigError::new("MQTT_URL", "is required but not set"));
            }
        };
        let agent_secret = env.secret("AGENT_SIGNING_SECRET", profile, || {
            "development-agent-signing-secret-not-for-production".into()
        })?;
        let topic_root = env
            .get("MQTT_TOPIC_ROOT")?
            .unwrap_or_else(|| "lockerx".into());
        if topic_root.contains(['+', '#']) || topic_root.is_empty() {
            return Err(ConfigError::new(
                "MQTT_TOPIC_ROOT",
                "must be a plain topic prefix without + or #",
            ));
        }
        let seconds = |name, default| -> Result<Duration, ConfigError> {
            let n: u64 = env.parse_or(name, default, "a positive whole number of seconds")?;
            if n == 0 {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
            Ok(Duration::from_secs(n))
        };
        let client_id = match env.get("WORKER_ID")? {
            Some(id) => id,
            None => format!("workers-{}", host_name()),
        };
        Ok(Self {
            broker,
            topic_root,
            agent_secret,
            command_ttl: seconds("UNLOCK_COMMAND_TTL_SECONDS", "30")?,
            ack_timeout: seconds("UNLOCK_ACK_TIMEOUT_SECONDS", "10")?,
            shared_subscriptions: env.parse_or(
                "MQTT_SHARED_SUBSCRIPTIONS",
                "true",
                "true or false",
            )?,
            client_id,
        })
    }
}

/// The machine's (or container's) name, for a stable client id.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}
