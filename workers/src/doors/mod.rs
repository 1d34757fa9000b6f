//! The workers' side of the doors: one MQTT connection per process that
//! sends unlock commands and, in a process serving `events`, takes its share
//! of every agent's acks and door events (a shared subscription, so several
//! processes split them) and every agent's status, applying each once (by
//! event id, so a broker without shared subscriptions only costs duplicates
//! that are recognised and skipped).

mod apply;

use std::sync::Arc;

use anyhow::Context;
use locker_core::backoff::{Outage, Reconnect};
use locker_core::config::DoorsConfig;
use locker_core::exchange::Exchange;
use locker_protocol::{self as mqtt, Command, MqttEndpoint, Topics};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct DoorLink {
    client: AsyncClient,
    pub topics: Topics,
    /// Signalled whenever this process records an ack, so an unlock waiting
    /// for its answer looks at once instead of at its next poll.
    pub acks: Arc<Notify>,
}

/// What applying incoming messages needs: the exchange, whose rules door
/// events complete.
#[derive(Clone)]
pub struct Applier {
    pub exchange: Exchange,
}

impl DoorLink {
    /// Connects (and keeps reconnecting) with a persistent session. With an
    /// `applier`, subscribes to acks, events and status and applies them.
    pub fn start(
        config: &DoorsConfig,
        broker: &MqttEndpoint,
        applier: Option<Applier>,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let mut options = mqtt::options(broker, &config.client_id, None);
        // Acknowledge a message only once it is applied: a crash before that
        // gets it delivered again.
        options.set_manual_acks(true);
        let (client, mut eventloop) = mqtt::client(options, 1000);
        let topics = Topics::new(&config.topic_root);
        let shared = config.shared_subscriptions;
        let acks = Arc::new(Notify::new());
        let link = Self {
            client: client.clone(),
            topics: topics.clone(),
            acks: acks.clone(),
        };
        let task = tokio::spawn(async move {
            let mut link = Reconnect::new(Outage::new("MQTT broker"));
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => break,
                    event = eventloop.poll() => event,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        link.recovered();
                        tracing::info!("connected to the MQTT broker");
                        if applier.is_some()
                            && let Err(error) = subscribe(&client, &topics, shared).await
                        {
                            tracing::warn!(%error, "cannot subscribe to agents' topics");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if let Some(applier) = &applier {
                            apply::until_applied(
                                applier,
                                &topics,
                                &publish.topic,
                                &publish.payload,
                            )
                            .await;
                        }
                        if let Err(error) = client.try_ack(&publish) {
                            tracing::warn!(%error, "cannot acknowledge an MQTT message");
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let delay = link.failed(&error);
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(delay) => {}
                        }
                    }
                }
            }
            let _ = client.try_disconnect();
        });
        (link, task)
    }

    /// Sends a command to an agent (QoS 1).
    pub async fn send(&self, agent_id: &str, command: &Command) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(command)?;
        self.client
            .publish(
                self.topics.commands(agent_id),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .context("cannot queue the command for the broker")
    }
}

async fn subscribe(
    client: &AsyncClient,
    topics: &Topics,
    shared: bool,
) -> Result<(), rumqttc::ClientError> {
    // Every worker process of this deployment joins one group per topic root.
    let group = format!("{}-workers", topics.root().replace('/', "-"));
    for leaf in ["acks", "events"] {
        let filter = topics.all(leaf);
        let filter = if shared {
            format!("$share/{group}/{filter}")
        } else {
            filter
        };
        client.subscribe(filter, QoS::AtLeastOnce).await?;
    }
    // Statuses are retained, which shared subscriptions do not deliver; each
    // process records them all (an idempotent upsert).
    client
        .subscribe(topics.all("status"), QoS::AtLeastOnce)
        .await
}
