//! The Locker Exchange HTTP API: thin handlers that authenticate, validate,
//! write state, and answer.

pub mod admin_seed;
pub mod app;
pub mod auth;
pub mod error;
pub mod extract;
pub mod routes;
pub mod state;

pub use app::Application;
