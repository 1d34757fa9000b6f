//! A locker agent written from docs/mqtt-protocol.md alone, doing exactly
//! what it asks and no more: it keeps executed command ids only until the
//! document allows it to forget them, in memory that survives its "restarts"
//! (as the document requires), and it signs nothing with our code: the HMAC
//! is computed from the document's description. Its clock is the test's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use locker_core::Clock;
use locker_core::clock::ManualClock;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinHandle;

/// The document's clock allowance `A`.
const ALLOWANCE_MS: i64 = 10_000;

/// What survives the agent's restarts: its executed ids, the events it could
/// not publish yet, and what the test wants to know.
#[derive(Default)]
pub struct Memory {
    /// id -> expires_at of every command executed and not yet forgettable.
    executed: HashMap<String, i64>,
    /// Events raised while disconnected, published in order on reconnection.
    pending_events: Vec<Value>,
    /// How many times each locker's latch was released.
    pub opens: HashMap<i64, u32>,
    /// Every command payload received, as sent.
    pub received: Vec<Value>,
    /// Every ack sent.
    pub acks: Vec<Value>,
    /// Crash right after releasing the next latch: no ack, no event sent.
    pub crash_after_next_unlock: bool,
    crashed: bool,
}

pub struct DocAgent {
    pub id: String,
    lockers: Vec<i64>,
    key: String,
    root: String,
    host: String,
    port: u16,
    clock: ManualClock,
    pub memory: Arc<Mutex<Memory>>,
    task: Option<JoinHandle<()>>,
}

impl DocAgent {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: &str,
        lockers: &[i64],
        key: &str,
        root: &str,
        host: &str,
        port: u16,
        clock: ManualClock,
    ) -> Self {
        Self {
            id: id.to_owned(),
            lockers: lockers.to_vec(),
            key: key.to_owned(),
            root: root.to_owned(),
            host: host.to_owned(),
            port,
            clock,
            memory: Arc::default(),
            task: None,
        }
    }

    fn topic(&self, leaf: &str) -> String {
        format!("{}/agents/{}/{leaf}", self.root, self.id)
    }

    /// Connects ("Identity and connection") and serves commands until it
    /// crashes or is killed.
    pub fn start(&mut self) {
        let mut options = MqttOptions::new(format!("agent-{}", self.id), &self.host, self.port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(15));
        options.set_last_will(LastWill::new(
            self.topic("status"),
            json!({"online": false, "at": 0}).to_string(),
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let me = Served {
            lockers: self.lockers.clone(),
            key: self.key.clone(),
            commands: self.topic("commands"),
            acks: self.topic("acks"),
            events: self.topic("events"),
            status: self.topic("status"),
            clock: self.clock.clone(),
            memory: self.memory.clone(),
            client,
        };
        self.memory.lock().unwrap().crashed = false;
        self.task = Some(tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => me.on_connect().await,
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == me.commands => {
                        if !me.on_command(&p.payload).await {
                            return; // crashed: the connection drops without a goodbye
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }));
    }

    /// Gone without a goodbye (power cut): the broker keeps its session.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn crashed(&self) -> bool {
        self.memory.lock().unwrap().crashed
    }
}

struct Served {
    lockers: Vec<i64>,
    key: String,
    commands: String,
    acks: String,
    events: String,
    status: String,
    clock: ManualClock,
    memory: Arc<Mutex<Memory>>,
    client: AsyncClient,
}

impl Served {
    async fn on_connect(&self) {
        self.client
            .subscribe(&self.commands, QoS::AtLeastOnce)
            .await
            .unwrap();
        let online = json!({"online": true, "at": self.clock.now_millis()});
        self.publish(&self.status, &online, true).await;
        let pending = std::mem::take(&mut self.memory.lock().unwrap().pending_events);
        for event in pending {
            self.publish(&self.events, &event, false).await;
        }
    }

    /// Checks one command as "Checking a command" lists; false when the agent
    /// crashed on it.
    async fn on_command(&self, payload: &[u8]) -> bool {
        let now = self.clock.now_millis();
        let command: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        self.memory.lock().unwrap().received.push(command.clone());
        let id = command["id"].as_str().unwrap_or_default().to_owned();
        let verdict = self.check(&command, now);
        if verdict.is_ok() {
            let locker = command["locker_id"].as_i64().unwrap();
            let crash = {
                let mut memory = self.memory.lock().unwrap();
                // Step 8: record, then release the latch.
                let expires_at = command["expires_at"].as_i64().unwrap();
                memory.executed.insert(id.clone(), expires_at);
                *memory.opens.entry(locker).or_default() += 1;
                let event = json!({"id": uuid::Uuid::new_v4().to_string(), "locker_id": locker,
                                   "kind": "door_opened", "at": now, "command_id": id});
                memory.pending_events.push(event);
                std::mem::take(&mut memory.crash_after_next_unlock)
            };
            if crash {
                self.memory.lock().unwrap().crashed = true;
                return false;
            }
            let events = std::mem::take(&mut self.memory.lock().unwrap().pending_events);
            for event in events {
                self.publish(&self.events, &event, false).await;
            }
        }
        let ack = match verdict {
            Ok(()) => json!({"command_id": id, "ok": true}),
            Err(reason) => json!({"command_id": id, "ok": false, "reason": reason}),
        };
        self.memory.lock().unwrap().acks.push(ack.clone());
        self.publish(&self.acks, &ack, false).await;
        true
    }

    fn check(&self, c: &Value, now: i64) -> Result<(), &'static str> {
        // 1. every required field, of its type
        let (Some(id), Some(kind), Some(locker), Some(issued), Some(expires), Some(sig)) = (
            c["id"].as_str(),
            c["type"].as_str(),
            c["locker_id"].as_i64(),
            c["issued_at"].as_i64(),
            c["expires_at"].as_i64(),
            c["sig"].as_str(),
        ) else {
            return Err("malformed");
        };
        if id.is_empty() || id.len() > 128 || sig.len() != 64 {
            return Err("malformed");
        }
        // 2. the signature, over the documented bytes, with the key's ASCII bytes
        let signed = format!("{id}\n{kind}\n{locker}\n{issued}\n{expires}");
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        let sig_bytes: Option<Vec<u8>> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&sig[i..i + 2], 16).ok())
            .collect();
        if sig_bytes.is_none_or(|s| mac.verify_slice(&s).is_err()) {
            return Err("bad_signature");
        }
        // 3. - 4.
        if kind != "unlock" {
            return Err("unsupported_type");
        }
        if !self.lockers.contains(&locker) {
            return Err("unknown_locker");
        }
        // 5. executed before, remembered no longer than the document asks
        let mut memory = self.memory.lock().unwrap();
        memory
            .executed
            .retain(|_, expires_at| now <= *expires_at + ALLOWANCE_MS);
        if memory.executed.contains_key(id) {
            return Err("replayed");
        }
        // 6. - 7.
        if issued > now + ALLOWANCE_MS {
            return Err("clock_skew");
        }
        if now > expires {
            return Err("expired");
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, message: &Value, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, message.to_string())
            .await
            .unwrap();
    }
}
