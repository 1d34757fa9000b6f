//! Who is calling: password hashing, signed tokens, and the extractors that
//! turn a bearer token into a user.

mod extract;
pub mod session;
pub mod tokens;

pub use extract::{Admin, Caller};
pub use tokens::{TokenKeys, TokenKind};
