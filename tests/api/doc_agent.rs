//! A locker agent written from docs/mqtt-protocol.md alone, doing exactly
//! what it asks and no more: it keeps executed command ids only until the
//! document allows it to forget them, in memory that survives its "restarts"
//! (as the document requires), and it signs nothing with our code: the HMAC
//! is computed from the document's description. Its clock is the test's.
//! It also takes pickup codes at its lockers ("Pickup at the locker"): sent
//! to the server while its link is up, checked against its grants while it
//! is down.

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
    /// A CONNACK and no connection error since.
    pub link_up: bool,
    /// The last grant kept for each locker, as received.
    pub grants: HashMap<i64, Value>,
    /// Wrong codes entered offline against each locker's grant.
    offline_failures: HashMap<i64, i64>,
    /// Offline collections not yet answered, as sent.
    pub collections: Vec<Value>,
    /// Every entry and collection published, and every reply received.
    pub sent: Vec<Value>,
    pub replies: Vec<Value>,
    /// The command (or collection) whose unlock opened each door.
    opened_by: HashMap<i64, String>,
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
    client: Option<AsyncClient>,
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
            client: None,
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
        self.client = Some(client.clone());
        let me = Served {
            lockers: self.lockers.clone(),
            key: self.key.clone(),
            commands: self.topic("commands"),
            acks: self.topic("acks"),
            events: self.topic("events"),
            status: self.topic("status"),
            replies: self.topic("replies"),
            grants: self.topic("grants/"),
            collections: self.topic("collections"),
            clock: self.clock.clone(),
            memory: self.memory.clone(),
            client,
        };
        self.memory.lock().unwrap().crashed = false;
        self.task = Some(tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        me.memory.lock().unwrap().link_up = true;
                        me.on_connect().await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == me.commands => {
                        if !me.on_command(&p.payload).await {
                            return; // crashed: the connection drops without a goodbye
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == me.replies => {
                        me.on_reply(&p.payload);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic.starts_with(&me.grants) => {
                        me.on_grant(&p.payload);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        me.memory.lock().unwrap().link_up = false;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }

    /// Someone shuts the door of `locker`: a `door_closed` carrying the id
    /// of what opened it, published now or kept until the link is back.
    pub async fn close_door(&self, locker: i64) {
        let now = self.clock.now_millis();
        let event = {
            let mut memory = self.memory.lock().unwrap();
            let opened_by = memory.opened_by.remove(&locker);
            let event = json!({"id": uuid::Uuid::new_v4().to_string(), "locker_id": locker,
                               "kind": "door_closed", "at": now, "command_id": opened_by});
            if !memory.link_up {
                memory.pending_events.push(event);
                return;
            }
            event
        };
        self.client
            .as_ref()
            .unwrap()
            .publish(
                self.topic("events"),
                QoS::AtLeastOnce,
                false,
                event.to_string(),
            )
            .await
            .unwrap();
    }

    /// A code typed (`pin`) or scanned (`qr`) at `locker`: what the person
    /// at the locker is shown.
    pub async fn enter(&self, locker: i64, method: &str, code: &str) -> String {
        let now = self.clock.now_millis();
        let id = uuid::Uuid::new_v4().to_string();
        if !self.memory.lock().unwrap().link_up {
            return self.enter_offline(locker, method, code, now, id);
        }
        let sig = hmac_hex(
            self.key.as_bytes(),
            &format!("pickup\n{id}\n{locker}\n{method}\n{code}\n{now}"),
        );
        let entry = json!({"id": id, "locker_id": locker, "method": method, "code": code,
                           "at": now, "sig": sig});
        self.memory.lock().unwrap().sent.push(entry.clone());
        self.client
            .as_ref()
            .unwrap()
            .publish(
                self.topic("pickups"),
                QoS::AtLeastOnce,
                false,
                entry.to_string(),
            )
            .await
            .unwrap();
        // Up to 10 s for the reply.
        for _ in 0..200 {
            let reply = self
                .memory
                .lock()
                .unwrap()
                .replies
                .iter()
                .find(|r| r["id"] == id.as_str())
                .cloned();
            if let Some(reply) = reply {
                return match reply["reason"].as_str() {
                    None if reply["ok"] == true => "accepted".into(),
                    reason => reason.unwrap_or("malformed").into(),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        "try again".into()
    }

    /// "Entering a code while the link is down", steps 1 to 4.
    fn enter_offline(&self, locker: i64, method: &str, code: &str, now: i64, id: String) -> String {
        let mut memory = self.memory.lock().unwrap();
        let Some(grant) = memory.grants.get(&locker).cloned() else {
            return "nothing to collect".into();
        };
        if grant["state"] != "granted" || now > grant["expires_at"].as_i64().unwrap() {
            return "nothing to collect".into();
        }
        let failures = memory.offline_failures.get(&locker).copied().unwrap_or(0);
        if failures >= grant["max_attempts"].as_i64().unwrap() {
            return "too many tries".into();
        }
        let salt = grant["salt"].as_str().unwrap();
        let expected = grant[if method == "pin" {
            "pin_hash"
        } else {
            "qr_hash"
        }]
        .as_str()
        .unwrap();
        if !hmac_matches(salt.as_bytes(), code, expected) {
            memory.offline_failures.insert(locker, failures + 1);
            return "wrong code".into();
        }
        let item_id = grant["item_id"].as_i64().unwrap();
        let sig = hmac_hex(
            self.key.as_bytes(),
            &format!("collected\n{id}\n{locker}\n{item_id}\n{method}\n{now}"),
        );
        let collection = json!({"id": id, "locker_id": locker, "item_id": item_id,
                                "method": method, "at": now, "sig": sig});
        memory.collections.push(collection);
        memory.grants.get_mut(&locker).unwrap()["state"] = json!("revoked");
        memory.offline_failures.remove(&locker);
        // The latch is released; the opening is reported when the link is back.
        *memory.opens.entry(locker).or_default() += 1;
        memory.opened_by.insert(locker, id.clone());
        let event = json!({"id": uuid::Uuid::new_v4().to_string(), "locker_id": locker,
                           "kind": "door_opened", "at": now, "command_id": id});
        memory.pending_events.push(event);
        "opened".into()
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
    replies: String,
    /// The grants topics' prefix.
    grants: String,
    collections: String,
    clock: ManualClock,
    memory: Arc<Mutex<Memory>>,
    client: AsyncClient,
}

impl Served {
    async fn on_connect(&self) {
        for topic in [
            self.commands.clone(),
            self.replies.clone(),
            format!("{}+", self.grants),
        ] {
            self.client
                .subscribe(topic, QoS::AtLeastOnce)
                .await
                .unwrap();
        }
        let online = json!({"online": true, "at": self.clock.now_millis()});
        self.publish(&self.status, &online, true).await;
        let (collections, pending) = {
            let mut memory = self.memory.lock().unwrap();
            let collections = memory.collections.clone();
            memory.sent.extend(collections.iter().cloned());
            (collections, std::mem::take(&mut memory.pending_events))
        };
        for collection in collections {
            self.publish(&self.collections, &collection, false).await;
        }
        for event in pending {
            self.publish(&self.events, &event, false).await;
        }
    }

    fn on_reply(&self, payload: &[u8]) {
        let reply: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        let mut memory = self.memory.lock().unwrap();
        memory.collections.retain(|c| c["id"] != reply["id"]);
        memory.replies.push(reply);
    }

    /// "Grants": kept when genuine, ours, and not older than the one kept.
    fn on_grant(&self, payload: &[u8]) {
        let Ok(g) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let (Some(locker), Some(item), Some(state), Some(sig)) = (
            g["locker_id"].as_i64(),
            g["item_id"].as_i64(),
            g["state"].as_str(),
            g["sig"].as_str(),
        ) else {
            return;
        };
        let signed = format!(
            "grant\n{locker}\n{item}\n{state}\n{}\n{}\n{}\n{}\n{}",
            g["salt"].as_str().unwrap_or_default(),
            g["pin_hash"].as_str().unwrap_or_default(),
            g["qr_hash"].as_str().unwrap_or_default(),
            g["expires_at"],
            g["max_attempts"]
        );
        if !hmac_matches(self.key.as_bytes(), &signed, sig) || !self.lockers.contains(&locker) {
            return;
        }
        let mut memory = self.memory.lock().unwrap();
        let newer = match memory.grants.get(&locker) {
            None => true,
            Some(kept) => {
                let kept_item = kept["item_id"].as_i64().unwrap();
                item > kept_item || (item == kept_item && kept["state"] == "granted")
            }
        };
        if newer {
            if memory
                .grants
                .get(&locker)
                .is_none_or(|kept| kept["item_id"] != item)
            {
                memory.offline_failures.remove(&locker);
            }
            memory.grants.insert(locker, g);
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
                memory.opened_by.insert(locker, id.clone());
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
        if !hmac_matches(self.key.as_bytes(), &signed, sig) {
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

/// HMAC-SHA256 of `text` under `key`, in lower-case hex.
fn hmac_hex(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when `hex` is the HMAC-SHA256 of `text` under `key` (constant time).
fn hmac_matches(key: &[u8], text: &str, hex: &str) -> bool {
    if hex.len() != 64 {
        return false;
    }
    let bytes: Option<Vec<u8>> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(text.as_bytes());
    bytes.is_some_and(|b| mac.verify_slice(&b).is_ok())
}
