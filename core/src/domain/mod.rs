//! Domain types: validated at the edge, impossible to build invalid.

mod contact;
mod email;
mod item;
mod locker;
mod user;

pub use contact::{Contact, Phone};
pub use email::Email;
pub use item::{Item, ItemMove, ItemStatus};
pub use locker::{DoorState, Locker, LockerMove, LockerSize, LockerStatus, place_key};
pub use user::{Role, User};
