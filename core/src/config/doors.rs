use std::time::Duration;

use secrecy::SecretString;

use super::{Env, Profile};
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
    /// How long an unanswered command waits before it is sent again.
    pub ack_timeout: Duration,
    /// Split agents' events among worker processes with `$share/...`
    /// subscriptions (`MQTT_SHARED_SUBSCRIPTIONS`, default true). The embedded
    /// broker runs without: it drops messages on shared subscriptions.
    pub shared_subscriptions: bool,
    /// This process's MQTT client id: stable across restarts, so its
    /// persistent session (and what was sent while it was down) is found again.
    pub client_id: String,
    /// How long a worker process may be silent before a peer adopts its
    /// MQTT session to apply what it received and never acknowledged.
    pub peer_timeout: Duration,
}

impl DoorsConfig {
    pub fn load(env: &Env, profile: Profile) -> Option<Self> {
        let url = match profile {
            Profile::Development => env.get("MQTT_URL"),
            Profile::Production => env.required("MQTT_URL"),
        };
        let broker = url.map(|url| {
            MqttEndpoint::parse(&url)
                .map_err(|problem| env.problem("MQTT_URL", problem))
                .ok()
        });
        let agent_secret = env.secret("AGENT_SIGNING_SECRET", profile, || {
            "development-agent-signing-secret-not-for-production".into()
        });
        let topic_root = env.required("MQTT_TOPIC_ROOT").filter(|root| {
            let plain = !root.contains(['+', '#']);
            if !plain {
                env.problem(
                    "MQTT_TOPIC_ROOT",
                    "must be a plain topic prefix without + or #",
                );
            }
            plain
        });
        let seconds = |name| env.positive(name, " of seconds").map(Duration::from_secs);
        let command_ttl = seconds("UNLOCK_COMMAND_TTL_SECONDS");
        let ack_timeout = seconds("UNLOCK_ACK_TIMEOUT_SECONDS");
        let peer_timeout = seconds("WORKER_PEER_TIMEOUT_SECONDS");
        let shared_subscriptions = env.parse("MQTT_SHARED_SUBSCRIPTIONS", "true or false");
        let client_id = env
            .get("WORKER_ID")
            .unwrap_or_else(|| format!("workers-{}", host_name()));
        Some(Self {
            broker: match broker {
                Some(parsed) => Some(parsed?),
                None => None,
            },
            topic_root: topic_root?,
            agent_secret: agent_secret?,
            command_ttl: command_ttl?,
            ack_timeout: ack_timeout?,
            shared_subscriptions: shared_subscriptions?,
            client_id,
            peer_timeout: peer_timeout?,
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
