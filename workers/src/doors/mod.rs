//! The workers' side of the doors: one MQTT connection per process that
//! sends unlock commands and, in a process serving `events`, takes its share
//! of every agent's acks and door events (a shared subscription, so several
//! processes split them) and every agent's status, applying each once (by
//! event id, so a broker without shared subscriptions only costs duplicates
//! that are recognised and skipped). Messages are applied by parallel lanes
//! and acknowledged in the order they arrived, as MQTT requires; what a
//! process that died had not acknowledged is applied by a peer ([`peers`]).

mod apply;
mod peers;
mod pickups;
pub mod tracker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use locker_core::backoff::{Outage, Reconnect};
use locker_core::config::DoorsConfig;
use locker_core::exchange::Exchange;
use locker_core::store::doors::Outstanding;
use locker_protocol::{self as mqtt, Command, Grant, MqttEndpoint, Topics, agent_key};
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct DoorLink {
    client: AsyncClient,
    pub topics: Topics,
}

/// What applying incoming messages needs: the exchange, whose rules door
/// events and pickups complete, and the secret agents' keys derive from
/// (to check what they sign).
#[derive(Clone)]
pub struct Applier {
    pub exchange: Exchange,
    pub agent_secret: SecretString,
}

impl Applier {
    fn agent_secret(&self) -> &[u8] {
        self.agent_secret.expose_secret().as_bytes()
    }
}

/// Messages are applied by this many tasks beside the network loop, each
/// door's events (and each agent's status and pickups) by one of them in
/// the order received. Applying is mostly waiting on the database, and a
/// full lane holds up the network loop (commands going out included): with
/// eight, the unlock benchmark's answers waited up to a quarter of a second
/// to be applied while the CPU was not busy; with 32, it is the CPU that
/// limits (docs/benchmarks.md). The database pool still bounds how many
/// apply at once.
const APPLIERS: usize = 32;
/// Messages waiting for an applier before the network loop waits too.
const APPLY_QUEUE: usize = 64;

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
        let (broker, config) = (broker.clone(), config.clone());
        let link = Self {
            client: client.clone(),
            topics: topics.clone(),
        };
        let task = tokio::spawn(async move {
            // Applying waits on the database; sending commands and reading
            // the socket must not wait behind it.
            let (queues, mut appliers) = match &applier {
                Some(applier) => spawn_appliers(applier, &client, &topics),
                None => (Vec::new(), JoinSet::new()),
            };
            // Dropped with this task, as a killed process's would be.
            let mut peers = JoinSet::new();
            if let Some(applier) = &applier {
                let peers_of = peers::Peers {
                    applier: applier.clone(),
                    client: client.clone(),
                    topics: topics.clone(),
                    broker,
                    config,
                };
                peers.spawn(peers_of.run(shutdown.clone()));
            }
            // QoS 1 messages are acknowledged in the order they arrived
            // (MQTT 3.1.1, 4.6), each once applied, whichever lane applied
            // it; a broker may drop a client that does otherwise.
            let (in_order, unacked) = mpsc::unbounded_channel();
            let connection = Arc::new(AtomicU64::new(0));
            appliers.spawn(ack_in_order(client.clone(), unacked, connection.clone()));
            let mut link = Reconnect::new(Outage::new("MQTT broker"));
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => break,
                    event = eventloop.poll() => event,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // What the last connection left unacknowledged comes again.
                        connection.fetch_add(1, Ordering::SeqCst);
                        link.recovered();
                        tracing::info!("connected to the MQTT broker");
                        if applier.is_some()
                            && let Err(error) = subscribe(&client, &topics, shared).await
                        {
                            tracing::warn!(%error, "cannot subscribe to agents' topics");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let (applied, done) = oneshot::channel();
                        let current = connection.load(Ordering::SeqCst);
                        let _ = in_order.send((publish.clone(), current, done));
                        let lane = topics
                            .parse(&publish.topic)
                            .map(|(agent, leaf)| lane(agent, leaf, &publish.payload));
                        match lane.and_then(|n| queues.get(n)) {
                            Some(queue) => tokio::select! {
                                () = shutdown.cancelled() => break,
                                _ = queue.send((publish, applied)) => {}
                            },
                            None => {
                                let _ = applied.send(());
                            }
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
            // Unacknowledged messages come again with the persistent session.
            appliers.abort_all();
            while appliers.join_next().await.is_some() {}
            let _ = client.try_disconnect();
            // Says this process left: a peer adopts what it did not apply.
            while peers.join_next().await.is_some() {}
        });
        (link, task)
    }

    /// Sends a recorded command to its agent (QoS 1), signed with the
    /// agent's key: every copy of a command is the same bytes.
    pub async fn send(&self, config: &DoorsConfig, command: &Outstanding) -> anyhow::Result<()> {
        let key = agent_key(
            config.agent_secret.expose_secret().as_bytes(),
            &command.agent_id,
        );
        let mut signed = Command::signed(
            command.id.clone(),
            command.locker_id,
            command.issued_at,
            command.expires_at,
            key.as_bytes(),
        );
        signed.trace_id.clone_from(&command.trace_id);
        let payload = serde_json::to_vec(&signed)?;
        self.client
            .publish(
                self.topics.commands(&command.agent_id),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .context("cannot queue the command for the broker")
    }
}

impl DoorLink {
    /// Publishes a locker's offline grant (retained, QoS 1), signed with
    /// its agent's key.
    pub async fn send_grant(
        &self,
        config: &DoorsConfig,
        agent_id: &str,
        grant: Grant,
    ) -> anyhow::Result<()> {
        let key = agent_key(config.agent_secret.expose_secret().as_bytes(), agent_id);
        let grant = grant.sign(key.as_bytes());
        let payload = serde_json::to_vec(&grant)?;
        self.client
            .publish(
                self.topics.grant(agent_id, grant.locker_id),
                QoS::AtLeastOnce,
                true,
                payload,
            )
            .await
            .context("cannot queue the grant for the broker")
    }
}

/// Which applier takes a message. A door's events go in the order they
/// were sent, so all of one locker's take one lane; an agent's status and
/// pickups likewise by agent. Answers need no order (the best one is kept,
/// whenever it comes) and spread by their command. Each agent's lockers
/// spread over the lanes: a busy site does not wait behind one lane.
fn lane(agent_id: &str, leaf: &str, payload: &[u8]) -> usize {
    use std::hash::{DefaultHasher, Hash, Hasher};
    #[derive(serde::Deserialize)]
    struct Door {
        locker_id: i64,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        command_id: String,
    }
    let mut hasher = DefaultHasher::new();
    agent_id.hash(&mut hasher);
    // Unreadable ones go by agent: applying reports them.
    match leaf {
        "events" => {
            if let Ok(door) = serde_json::from_slice::<Door>(payload) {
                door.locker_id.hash(&mut hasher);
            }
        }
        "acks" => {
            if let Ok(answer) = serde_json::from_slice::<Answer>(payload) {
                answer.command_id.hash(&mut hasher);
            }
        }
        _ => {}
    }
    (hasher.finish() % APPLIERS as u64) as usize
}

/// A message received, on which connection, and word once it is applied.
type Received = (Publish, u64, oneshot::Receiver<()>);

/// A message for an applier, and where to say it is applied.
type ToApply = (Publish, oneshot::Sender<()>);

/// Acknowledges messages in the order they arrived, each once applied. A
/// message from an earlier connection is not acknowledged: the persistent
/// session delivers it again.
async fn ack_in_order(
    client: AsyncClient,
    mut received: mpsc::UnboundedReceiver<Received>,
    connection: Arc<AtomicU64>,
) {
    while let Some((publish, on, applied)) = received.recv().await {
        if applied.await.is_err() {
            // Its applier stopped (shutdown): neither it nor any later one
            // may be acknowledged.
            return;
        }
        if on == connection.load(Ordering::SeqCst)
            && let Err(error) = client.try_ack(&publish)
        {
            tracing::warn!(%error, "cannot acknowledge an MQTT message");
        }
    }
}

fn spawn_appliers(
    applier: &Applier,
    client: &AsyncClient,
    topics: &Topics,
) -> (Vec<mpsc::Sender<ToApply>>, JoinSet<()>) {
    let mut tasks = JoinSet::new();
    let queues = (0..APPLIERS)
        .map(|_| {
            let (queue, mut incoming) = mpsc::channel::<ToApply>(APPLY_QUEUE);
            let (applier, client, topics) = (applier.clone(), client.clone(), topics.clone());
            tasks.spawn(async move {
                while let Some((publish, applied)) = incoming.recv().await {
                    apply::until_applied(
                        &applier,
                        &client,
                        &topics,
                        &publish.topic,
                        &publish.payload,
                    )
                    .await;
                    let _ = applied.send(());
                }
            });
            queue
        })
        .collect();
    (queues, tasks)
}

/// What a process applying agents' messages subscribes to.
fn filters(topics: &Topics, shared: bool) -> Vec<String> {
    // Every worker process of this deployment joins one group per topic root.
    let group = format!("{}-workers", topics.root().replace('/', "-"));
    let mut filters: Vec<String> = ["acks", "events", "pickups", "collections"]
        .into_iter()
        .map(|leaf| {
            let filter = topics.all(leaf);
            if shared {
                format!("$share/{group}/{filter}")
            } else {
                filter
            }
        })
        .collect();
    // Statuses are retained, which shared subscriptions do not deliver; each
    // process records them all (an idempotent upsert).
    filters.push(topics.all("status"));
    filters
}

async fn subscribe(
    client: &AsyncClient,
    topics: &Topics,
    shared: bool,
) -> Result<(), rumqttc::ClientError> {
    for filter in filters(topics, shared) {
        client.subscribe(filter, QoS::AtLeastOnce).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rumqttc::Request;

    use super::*;

    fn publish(pkid: u16) -> Publish {
        let mut publish = Publish::new("lockerx/agents/a/events", QoS::AtLeastOnce, vec![]);
        publish.pkid = pkid;
        publish
    }

    /// A door's events keep one lane, in the order they came; the lockers
    /// of one agent do not all wait in the same one.
    #[test]
    fn a_doors_events_keep_one_lane_and_an_agents_doors_spread() {
        let event = |id: &str, locker: i64, kind: &str| {
            let event = format!(r#"{{"id":"{id}","locker_id":{locker},"kind":"{kind}","at":1}}"#);
            lane("site-1", "events", event.as_bytes())
        };
        let mut used = std::collections::HashSet::new();
        for locker in 1..=32 {
            let opened = event(&format!("o{locker}"), locker, "door_opened");
            assert_eq!(opened, event(&format!("c{locker}"), locker, "door_closed"));
            used.insert(opened);
        }
        assert!(
            used.len() > APPLIERS / 2,
            "32 doors on {} lanes",
            used.len()
        );
        let status = lane("site-1", "status", br#"{"online":true}"#);
        assert_eq!(status, lane("site-1", "status", br#"{"online":false}"#));
    }

    /// Lanes finish in any order; the acknowledgements leave in the order
    /// the messages came, and none for a message of an earlier connection.
    #[tokio::test]
    async fn messages_are_acknowledged_in_the_order_they_arrived() {
        let (requests_tx, requests) = flume::unbounded();
        let client = AsyncClient::from_senders(requests_tx);
        let (in_order, unacked) = mpsc::unbounded_channel();
        let connection = Arc::new(AtomicU64::new(1));
        tokio::spawn(ack_in_order(client, unacked, connection));
        let mut applied = Vec::new();
        for (pkid, on) in [(7, 0), (1, 1), (2, 1), (3, 1)] {
            let (done, waiting) = oneshot::channel();
            in_order.send((publish(pkid), on, waiting)).unwrap();
            applied.push(done);
        }
        let acked = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            requests
                .try_iter()
                .map(|request| match request {
                    Request::PubAck(ack) => ack.pkid,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        let mut applied = applied.into_iter();
        let (old, first, second, third) = (
            applied.next().unwrap(),
            applied.next().unwrap(),
            applied.next().unwrap(),
            applied.next().unwrap(),
        );
        third.send(()).unwrap();
        old.send(()).unwrap();
        assert_eq!(acked().await, Vec::<u16>::new(), "1 is not applied yet");
        first.send(()).unwrap();
        assert_eq!(acked().await, [1]);
        second.send(()).unwrap();
        assert_eq!(acked().await, [2, 3]);
    }
}
