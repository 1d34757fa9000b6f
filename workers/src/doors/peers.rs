//! What a worker process leaves behind when it dies. A process acknowledges
//! an agent's message only once it is applied, and the broker keeps what it
//! received but had not acknowledged in its session, for that client id
//! alone: Mosquitto does not hand a shared subscription's unacknowledged
//! messages to another member of the group. So each process serving events
//! says it is alive (`worker_sessions`), and a peer that finds one silent
//! adopts its session: connects with its client id, applies what the broker
//! delivers again, acknowledges it, unsubscribes the session from agents'
//! topics (so nothing more waits there), and lets it go. If the process
//! comes back meanwhile, the broker hands it its session and the adoption
//! ends; what was not acknowledged goes to the process, and anything applied
//! twice is recognised by its id.

use std::time::Duration;

use anyhow::Context;
use locker_core::config::DoorsConfig;
use locker_core::metrics;
use locker_core::store::worker_sessions;
use locker_protocol::{self as mqtt, MqttEndpoint, Topics};
use rumqttc::{AsyncClient, Event, Packet};
use tokio_util::sync::CancellationToken;

use super::{Applier, apply, filters};

/// How long an adoption waits for the broker to connect or answer.
const PATIENCE: Duration = Duration::from_secs(10);
/// Once unsubscribed, a session silent this long has given all it kept.
const QUIET: Duration = Duration::from_secs(1);

/// One process's view of its peers.
pub(super) struct Peers {
    pub applier: Applier,
    /// This process's own connection: replies to pickups found in an
    /// adopted session leave through it.
    pub client: AsyncClient,
    pub topics: Topics,
    pub broker: MqttEndpoint,
    pub config: DoorsConfig,
}

impl Peers {
    /// Says this process is alive, and adopts silent peers' sessions, until
    /// `shutdown`; then says it left, so a peer adopts its session at once.
    /// Adopting does not hold up saying so: a process busy adopting is not
    /// silent.
    pub async fn run(self, shutdown: CancellationToken) {
        let db = self.applier.exchange.db().clone();
        let every = (self.config.peer_timeout / 3).max(Duration::from_millis(200));
        let alive = async {
            loop {
                if let Err(error) = worker_sessions::heard_from(&db, &self.config.client_id).await {
                    tracing::warn!(%error, "cannot record that this worker is alive");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        };
        let adopting = async {
            loop {
                self.adopt_silent(&shutdown).await;
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        };
        tokio::join!(alive, adopting);
        if let Err(error) = worker_sessions::left(&db, &self.config.client_id).await {
            tracing::warn!(%error, "cannot record that this worker left");
        }
    }

    async fn adopt_silent(&self, shutdown: &CancellationToken) {
        let db = self.applier.exchange.db();
        while !shutdown.is_cancelled() {
            let peer = match worker_sessions::claim_silent(
                db,
                &self.config.client_id,
                self.config.peer_timeout,
                self.config.peer_timeout,
            )
            .await
            {
                Ok(Some(peer)) => peer,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot look for silent workers");
                    return;
                }
            };
            match self.adopt(&peer, shutdown).await {
                Ok(applied) => {
                    metrics::session_adopted(Some(applied));
                    tracing::info!(peer = %peer, applied, "adopted a silent worker's MQTT session");
                    if let Err(error) =
                        worker_sessions::adopted(db, &peer, &self.config.client_id).await
                    {
                        tracing::warn!(%error, peer = %peer, "cannot record an adoption");
                    }
                }
                // The claim runs out with its lease; then it is tried again.
                Err(error) => {
                    metrics::session_adopted(None);
                    tracing::warn!(peer = %peer, error = format!("{error:#}"), "cannot adopt a silent worker's MQTT session");
                }
            }
        }
    }

    /// Takes `peer`'s session and applies what it holds: how many messages.
    async fn adopt(&self, peer: &str, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        let mut options = mqtt::options(&self.broker, peer, None);
        options.set_manual_acks(true);
        let (client, mut eventloop) = mqtt::client(options, 100);
        // Unsubscriptions still unanswered; `None` until connected.
        let mut unanswered: Option<usize> = None;
        let mut applied = 0;
        loop {
            let drained = unanswered == Some(0);
            let event = tokio::select! {
                () = shutdown.cancelled() => anyhow::bail!("stopped before the session was drained"),
                event = tokio::time::timeout(if drained { QUIET } else { PATIENCE }, eventloop.poll()) => event,
            };
            match event {
                Err(_) if drained => break,
                Err(_) => anyhow::bail!("the broker did not answer within {PATIENCE:?}"),
                // Taken over by the process itself, or the broker is gone.
                Ok(Err(error)) => return Err(error).context("lost the adopted session"),
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    if !ack.session_present {
                        break;
                    }
                    let filters = filters(&self.topics, self.config.shared_subscriptions);
                    unanswered = Some(filters.len());
                    for filter in filters {
                        client.unsubscribe(filter).await?;
                    }
                }
                Ok(Ok(Event::Incoming(Packet::UnsubAck(_)))) => {
                    unanswered = unanswered.map(|n| n.saturating_sub(1));
                }
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    // Every process records every status itself; an old one
                    // applied now would undo a newer one.
                    let status = self
                        .topics
                        .parse(&publish.topic)
                        .is_some_and(|(_, leaf)| leaf == "status");
                    if !status {
                        let applying = apply::until_applied(
                            &self.applier,
                            &self.client,
                            &self.topics,
                            &publish.topic,
                            &publish.payload,
                        );
                        tokio::select! {
                            () = shutdown.cancelled() => anyhow::bail!("stopped before the session was drained"),
                            () = applying => applied += 1,
                        }
                    }
                    client.ack(&publish).await?;
                }
                Ok(Ok(_)) => {}
            }
        }
        // The acknowledgements leave before the disconnection.
        client.disconnect().await?;
        let _ =
            tokio::time::timeout(PATIENCE, async { while eventloop.poll().await.is_ok() {} }).await;
        Ok(applied)
    }
}
