//! The agent's MQTT side: a persistent session; a retained online status and
//! a last will saying offline; unlock commands checked (signature, expiry,
//! replay, ownership) before a door is driven; an ack for every command; door
//! events published at QoS 1 and kept while the broker is away.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use locker_protocol::{
    self as mqtt, Ack, AckReason, Command, DoorEvent, MqttEndpoint, Status, Topics,
};
use locker_runtime::Clock;
use locker_runtime::backoff::{Outage, Reconnect};
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::check::CommandCheck;
use crate::door::{Door, DoorSignal};

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
    pub state_file: Option<PathBuf>,
}

/// Events and acks buffered in memory while the broker is unreachable.
const OUTBOX_CAPACITY: usize = 10_000;

pub struct Agent {
    config: AgentConfig,
    door: Arc<dyn Door>,
    clock: Arc<dyn Clock>,
    topics: Topics,
    check: CommandCheck,
}

enum Incoming {
    Connected,
    Command(Vec<u8>),
}

impl Agent {
    /// Fails when the state file exists but cannot be read.
    pub fn new(
        config: AgentConfig,
        door: Arc<dyn Door>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            topics: Topics::new(&config.topic_root),
            check: CommandCheck::new(
                config.key.expose_secret().as_bytes(),
                config.lockers.iter().copied(),
                config.state_file.clone(),
            )?,
            config,
            door,
            clock,
        })
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
        let leaving = shutdown.clone();
        let poller = tokio::spawn(async move {
            let mut link = Reconnect::new(Outage::new("MQTT broker"));
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        link.recovered();
                        let _ = incoming_tx.send(Incoming::Connected);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish)))
                        if publish.topic == commands_topic =>
                    {
                        let _ = incoming_tx.send(Incoming::Command(publish.payload.to_vec()));
                    }
                    Ok(_) => {}
                    // The broker closing the link we asked to end is no news.
                    Err(_) if leaving.is_cancelled() => break,
                    // Door events wait in the outbox until the link is back.
                    Err(error) => {
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
                    Incoming::Connected => self.on_connect(&client).await,
                    Incoming::Command(payload) => self.on_command(&client, &payload).await,
                },
                Some(signal) = signals.recv() => self.report(&client, signal).await,
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
        if let Err(error) = client
            .subscribe(self.topics.commands(id), QoS::AtLeastOnce)
            .await
        {
            tracing::warn!(%error, "cannot subscribe to commands");
        }
        let _ = publish(client, &self.topics.status(id), &online, true).await;
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
