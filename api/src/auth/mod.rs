//! Who is calling: password hashing, signed tokens, and the extractors that
//! turn a bearer token into a user.

pub mod cache;
mod extract;
pub mod session;
pub mod tokens;

pub use cache::SessionCache;
pub(crate) use extract::user_of;
pub use extract::{Admin, Caller};
pub use tokens::{TokenKeys, TokenKind};
