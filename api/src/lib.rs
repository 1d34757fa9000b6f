//! The Locker Exchange HTTP API: thin handlers that authenticate, validate,
//! write state, and answer.

pub mod admin_seed;
pub mod app;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod guard;
pub mod heard_cache;
pub mod limits;
pub mod routes;
pub mod serve;
pub mod state;
pub mod text;
pub mod trace;

pub use app::Application;
