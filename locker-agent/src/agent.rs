//! The agent's MQTT side: a persistent session; a retained online status and
//! a last will saying offline; unlock commands checked (signature, expiry,
//! replay, ownership) before a door is driven; an ack for every command; door
//! events published at QoS 1 and kept while the broker is away. And pickups
//! at the locker: a code from the keypad or the scanner goes to the server
//! while the link is up, and is checked against the locker's grant while it
//! is down (the collection reported when the link is back).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use locker_protocol::{
    self as mqtt, Ack, AckReason, Command, DoorEvent, Grant, MqttEndpoint, OfflineCollection,
    PickupEntry, PickupMethod, Reply, ReplyReason, Status, Topics,
};
use locker_runtime::Clock;
use locker_runtime::backoff::{Outage, Reconnect};
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::check::CommandCheck;
use crate::door::{Door, DoorSignal};
use crate::pickups::{OfflineRefusal, Pickups};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub agent_id: String,
    /// The lockers whose doors this agent drives.
    pub lockers: Vec<i64>,
    pub broker: MqttEndpoint,
    pub topic_root: String,
    /// This agent's signing key (64 hex characters, used as ASCII bytes).
    pub key: SecretString,
    /// Where the ids of executed commands are kept across restarts; `None`
    /// keeps them in memory only (a process whose doors restart with it).
    /// Pickup grants and unreported offline collections are kept beside it
    /// (the same name, with `.pickups` before the extension).
    pub state_file: Option<PathBuf>,
}

/// How long a code entered while online waits for the server's reply.
const REPLY_WAIT: Duration = Duration::from_secs(10);

/// What became of a code entered at a locker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOutcome {
    /// The server took it: the door's unlock command follows.
    Accepted,
    /// The site is offline: the locker's grant took it and the door opened;
    /// the collection is reported when the link is back.
    OpenedOffline,
    /// The server refused it.
    Refused(ReplyReason),
    /// The site is offline and the locker's grant refused it.
    RefusedOffline(OfflineRefusal),
    /// The link is up but no reply came in time: try again.
    NoAnswer,
    /// The latch did not release.
    DoorFault,
    /// The agent is not running.
    Unavailable,
}

impl EntryOutcome {
    /// In words, for a display or a log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::OpenedOffline => "opened_offline",
            Self::Refused(reason) => reason.as_str(),
            Self::RefusedOffline(refusal) => refusal.as_str(),
            Self::NoAnswer => "no_answer",
            Self::DoorFault => "door_fault",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The locker's keypad and scanner: where codes are entered.
#[derive(Clone)]
pub struct Keypad {
    entries: mpsc::Sender<KeyEntry>,
}

struct KeyEntry {
    locker_id: i64,
    method: PickupMethod,
    code: String,
    answer: oneshot::Sender<EntryOutcome>,
}

impl Keypad {
    /// Enters a code at `locker_id` and waits for what became of it.
    pub async fn enter(&self, locker_id: i64, method: PickupMethod, code: &str) -> EntryOutcome {
        let (answer, outcome) = oneshot::channel();
        let entry = KeyEntry {
            locker_id,
            method,
            code: code.to_owned(),
            answer,
        };
        if self.entries.send(entry).await.is_err() {
            return EntryOutcome::Unavailable;
        }
        outcome.await.unwrap_or(EntryOutcome::Unavailable)
    }
}

/// Events and acks buffered in memory while the broker is unreachable.
const OUTBOX_CAPACITY: usize = 10_000;

pub struct Agent {
    config: AgentConfig,
    door: Arc<dyn Door>,
    clock: Arc<dyn Clock>,
    topics: Topics,
    check: CommandCheck,
    pickups: Pickups,
    keypad: Keypad,
    entries: mpsc::Receiver<KeyEntry>,
    /// The link to the broker is up (a CONNACK, and no error since).
    online: bool,
    /// Entries sent to the server, waiting for its reply.
    waiting: HashMap<String, oneshot::Sender<EntryOutcome>>,
}

enum Incoming {
    Connected,
    Disconnected,
    Command(Vec<u8>),
    Reply(Vec<u8>),
    Grant(Vec<u8>),
    /// An entry's wait for its reply is over.
    ReplyDue(String),
}

impl Agent {
    /// Fails when the state file exists but cannot be read.
    pub fn new(
        config: AgentConfig,
        door: Arc<dyn Door>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        let key = config.key.expose_secret().as_bytes();
        let pickups_file = config.state_file.as_ref().map(|path| {
            let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("json");
            path.with_extension(format!("pickups.{extension}"))
        });
        let (keypad, entries) = mpsc::channel(16);
        Ok(Self {
            topics: Topics::new(&config.topic_root),
            check: CommandCheck::new(
                key,
                config.lockers.iter().copied(),
                config.state_file.clone(),
            )?,
            pickups: Pickups::new(key, config.lockers.iter().copied(), pickups_file)?,
            keypad: Keypad { entries: keypad },
            entries,
            online: false,
            waiting: HashMap::new(),
            config,
            door,
            clock,
        })
    }

    /// The keypad and scanner of this agent's lockers.
    pub fn keypad(&self) -> Keypad {
        self.keypad.clone()
    }

    /// Runs until `shutdown`, then says offline and disconnects.
    pub async fn run(
        mut self,
        mut signals: mpsc::UnboundedReceiver<DoorSignal>,
        shutdown: CancellationToken,
    ) {
        let id = self.config.agent_id.clone();
        let offline = serde_json::to_vec(&Status {
            online: false,
            at: 0,
        })
        .expect("status serialises");
        let will = LastWill::new(self.topics.status(&id), offline, QoS::AtLeastOnce, true);
        let options = mqtt::options(&self.config.broker, &format!("agent-{id}"), Some(will));
        let (client, mut eventloop) = mqtt::client(options, OUTBOX_CAPACITY);

        let (incoming_tx, mut incoming) = mpsc::unbounded_channel();
        let commands_topic = self.topics.commands(&id);
        let replies_topic = self.topics.replies(&id);
        let grants_prefix = self.topics.grant(&id, 0).trim_end_matches('0').to_owned();
        let leaving = shutdown.clone();
        let to_self = incoming_tx.clone();
        let poller = tokio::spawn(async move {
            let mut link = Reconnect::new(Outage::new("MQTT broker"));
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        link.recovered();
                        let _ = incoming_tx.send(Incoming::Connected);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let payload = publish.payload.to_vec();
                        let message = if publish.topic == commands_topic {
                            Incoming::Command(payload)
                        } else if publish.topic == replies_topic {
                            Incoming::Reply(payload)
                        } else if publish.topic.starts_with(&grants_prefix) {
                            Incoming::Grant(payload)
                        } else {
                            continue;
                        };
                        let _ = incoming_tx.send(message);
                    }
                    Ok(_) => {}
                    // The broker closing the link we asked to end is no news.
                    Err(_) if leaving.is_cancelled() => break,
                    // Door events wait in the outbox until the link is back.
                    Err(error) => {
                        let _ = incoming_tx.send(Incoming::Disconnected);
                        let delay = link.failed(&error);
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });

        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(message) = incoming.recv() => match message {
                    Incoming::Connected => {
                        self.online = true;
                        self.on_connect(&client).await;
                    }
                    Incoming::Disconnected => self.online = false,
                    Incoming::Command(payload) => self.on_command(&client, &payload).await,
                    Incoming::Reply(payload) => self.on_reply(&payload),
                    Incoming::Grant(payload) => self.on_grant(&payload),
                    Incoming::ReplyDue(id) => {
                        if let Some(answer) = self.waiting.remove(&id) {
                            let _ = answer.send(EntryOutcome::NoAnswer);
                        }
                    }
                },
                Some(signal) = signals.recv() => self.report(&client, signal).await,
                Some(entry) = self.entries.recv() => self.on_entry(&client, entry, &to_self).await,
            }
        }
        let offline = Status {
            online: false,
            at: self.clock.now_millis(),
        };
        let _ = publish(&client, &self.topics.status(&id), &offline, true).await;
        let _ = client.disconnect().await;
        // Let the eventloop flush the goodbye.
        tokio::time::sleep(Duration::from_millis(100)).await;
        poller.abort();
    }

    async fn on_connect(&self, client: &AsyncClient) {
        let id = &self.config.agent_id;
        tracing::info!(agent_id = %id, "connected to the broker");
        let online = Status {
            online: true,
            at: self.clock.now_millis(),
        };
        for topic in [
            self.topics.commands(id),
            self.topics.replies(id),
            self.topics.grants(id),
        ] {
            if let Err(error) = client.subscribe(topic, QoS::AtLeastOnce).await {
                tracing::warn!(%error, "cannot subscribe to the server's topics");
            }
        }
        let _ = publish(client, &self.topics.status(id), &online, true).await;
        // Collections let through while offline, until the server answers.
        for report in self.pickups.unreported() {
            let _ = publish(client, &self.topics.collections(id), report, false).await;
        }
    }

    /// A code from the keypad or the scanner: to the server while the link
    /// is up, to the locker's grant while it is down.
    async fn on_entry(
        &mut self,
        client: &AsyncClient,
        entry: KeyEntry,
        to_self: &mpsc::UnboundedSender<Incoming>,
    ) {
        let now = self.clock.now_millis();
        let id = uuid::Uuid::new_v4().to_string();
        if !self.config.lockers.contains(&entry.locker_id) {
            let _ = entry
                .answer
                .send(EntryOutcome::Refused(ReplyReason::UnknownLocker));
            return;
        }
        if self.online {
            let signed = PickupEntry::signed(
                id.clone(),
                entry.locker_id,
                entry.method,
                entry.code,
                now,
                self.config.key.expose_secret().as_bytes(),
            );
            let topic = self.topics.pickups(&self.config.agent_id);
            if publish(client, &topic, &signed, false).await.is_err() {
                let _ = entry.answer.send(EntryOutcome::NoAnswer);
                return;
            }
            self.waiting.retain(|_, answer| !answer.is_closed());
            self.waiting.insert(id.clone(), entry.answer);
            let to_self = to_self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REPLY_WAIT).await;
                let _ = to_self.send(Incoming::ReplyDue(id));
            });
            return;
        }
        let outcome =
            match self
                .pickups
                .check_offline(entry.locker_id, entry.method, &entry.code, now, id)
            {
                Err(error) => {
                    tracing::error!(%error, "cannot record the offline pickup; not opened");
                    EntryOutcome::DoorFault
                }
                Ok(Err(refusal)) => EntryOutcome::RefusedOffline(refusal),
                Ok(Ok(report)) => self.open_offline(&report),
            };
        tracing::info!(
            locker_id = entry.locker_id,
            method = entry.method.as_str(),
            outcome = outcome.as_str(),
            "code entered while offline"
        );
        let _ = entry.answer.send(outcome);
    }

    /// Releases the latch for a collection already recorded.
    fn open_offline(&mut self, report: &OfflineCollection) -> EntryOutcome {
        match self.door.unlock(report.locker_id, &report.id) {
            Ok(()) => EntryOutcome::OpenedOffline,
            Err(fault) => {
                tracing::error!(locker_id = report.locker_id, %fault, "door fault");
                if let Err(error) = self.pickups.not_collected(report) {
                    tracing::error!(%error, "cannot take the offline pickup back");
                }
                EntryOutcome::DoorFault
            }
        }
    }

    fn on_reply(&mut self, payload: &[u8]) {
        let Ok(reply) = serde_json::from_slice::<Reply>(payload) else {
            tracing::warn!("malformed reply from the server ignored");
            return;
        };
        if let Some(answer) = self.waiting.remove(&reply.id) {
            let outcome = match reply.reason {
                None if reply.ok => EntryOutcome::Accepted,
                Some(reason) => EntryOutcome::Refused(reason),
                None => EntryOutcome::Refused(ReplyReason::Malformed),
            };
            let _ = answer.send(outcome);
            return;
        }
        match self.pickups.reported(&reply.id) {
            Ok(true) => tracing::info!(report_id = %reply.id, "offline pickup reported"),
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "cannot forget a reported pickup"),
        }
    }

    fn on_grant(&mut self, payload: &[u8]) {
        let Ok(grant) = serde_json::from_slice::<Grant>(payload) else {
            // An empty retained message clears a topic: nothing to take.
            return;
        };
        let (locker_id, item_id, state) = (grant.locker_id, grant.item_id, grant.state);
        match self.pickups.on_grant(grant) {
            Ok(true) => {
                tracing::info!(locker_id, item_id, state = state.as_str(), "pickup grant");
            }
            Ok(false) => tracing::info!(locker_id, item_id, "stale or foreign grant ignored"),
            Err(error) => tracing::error!(%error, "cannot keep the grant"),
        }
    }

    async fn on_command(&mut self, client: &AsyncClient, payload: &[u8]) {
        let (command_id, verdict) = match serde_json::from_slice::<Command>(payload) {
            Ok(command) if !command.well_formed() => (command.id, Err(AckReason::Malformed)),
            Ok(command) => {
                let verdict = self.check_and_execute(&command);
                (command.id, verdict)
            }
            Err(_) => {
                let id = serde_json::from_slice::<serde_json::Value>(payload)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (id, Err(AckReason::Malformed))
            }
        };
        match verdict {
            Ok(()) => tracing::info!(%command_id, "unlock executed"),
            Err(reason) => tracing::warn!(%command_id, ?reason, "command refused"),
        }
        let ack = Ack {
            command_id,
            ok: verdict.is_ok(),
            reason: verdict.err(),
        };
        let _ = publish(
            client,
            &self.topics.acks(&self.config.agent_id),
            &ack,
            false,
        )
        .await;
    }

    /// Refuses what is forged, stale, replayed or not ours; otherwise unlocks.
    fn check_and_execute(&mut self, command: &Command) -> Result<(), AckReason> {
        let now = self.clock.now_millis();
        self.check.admit(command, now)?;
        if let Err(error) = self.check.executed(command, now) {
            tracing::error!(%error, "cannot record the command; not executed");
            return Err(AckReason::DoorFault);
        }
        if let Err(fault) = self.door.unlock(command.locker_id, &command.id) {
            tracing::error!(locker_id = command.locker_id, %fault, "door fault");
            if let Err(error) = self.check.not_executed(command) {
                tracing::error!(%error, "cannot take the command back");
            }
            return Err(AckReason::DoorFault);
        }
        Ok(())
    }

    async fn report(&self, client: &AsyncClient, signal: DoorSignal) {
        let event = DoorEvent {
            id: uuid::Uuid::new_v4().to_string(),
            locker_id: signal.locker_id,
            kind: signal.kind,
            at: signal.at,
            command_id: signal.command_id,
        };
        tracing::info!(
            locker_id = event.locker_id,
            kind = event.kind.as_str(),
            "door event"
        );
        if let Err(error) = publish(
            client,
            &self.topics.events(&self.config.agent_id),
            &event,
            false,
        )
        .await
        {
            tracing::error!(%error, "door event could not be queued");
        }
    }
}

async fn publish<T: serde::Serialize>(
    client: &AsyncClient,
    topic: &str,
    message: &T,
    retain: bool,
) -> Result<(), rumqttc::ClientError> {
    let payload = serde_json::to_vec(message).expect("messages serialise");
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
}
