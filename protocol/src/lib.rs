//! The MQTT protocol between the exchange's workers and the locker agents, as
//! `docs/mqtt-protocol.md` defines it: topics, messages, signatures and key
//! derivation, agent ids, and the client settings both sides connect with.
//!
//! It carries none of the server's dependencies, so a site agent links only
//! what it speaks.

mod agent_id;
mod connect;
mod messages;
mod pickups;
pub mod signing;
mod topics;

pub use agent_id::valid_agent_id;
pub use connect::{MqttEndpoint, client, options};
pub use messages::{
    Ack, AckReason, CLOCK_ALLOWANCE_MS, Command, CommandKind, DoorEvent, DoorEventKind, Status,
};
pub use pickups::{
    Grant, GrantState, OfflineCollection, PickupEntry, PickupMethod, Reply, ReplyReason, pass_hash,
};
pub use signing::agent_key;
pub use topics::Topics;
