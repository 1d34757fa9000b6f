//! The locker agent: runs at a locker site, holds the MQTT session, checks
//! and executes unlock commands, and reports what the doors do.

pub mod agent;
pub mod check;
pub mod door;
mod kept;
pub mod keypad;
pub mod pickups;

pub use agent::{Agent, AgentConfig, EntryOutcome, Keypad};
pub use door::{Door, DoorSignal, SimulatedDoors};
