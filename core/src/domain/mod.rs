//! Domain types: validated at the edge, impossible to build invalid.

mod email;
mod locker;
mod user;

pub use email::Email;
pub use locker::{Locker, LockerSize, LockerStatus, place_key, valid_agent_id};
pub use user::{Role, User};
