//! The MQTT protocol between the workers and the locker agents
//! (`docs/mqtt-protocol.md` is its reference): topics, messages, signatures,
//! and connection settings.

mod connect;
mod messages;
mod topics;

pub use connect::{MqttEndpoint, client, options};
pub use messages::{
    Ack, AckReason, Command, CommandKind, DoorEvent, DoorEventKind, Status, agent_key,
};
pub use topics::Topics;
