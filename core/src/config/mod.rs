//! Typed configuration, read once at start from the environment (and a `.env`
//! file). The names are the original product's; a missing or malformed value is
//! one error naming the variable.

mod auth;
mod database;
mod doors;
mod env;
mod exchange;
mod http;
mod notify;
mod queue;

use std::net::SocketAddr;

pub use auth::{AdminSeed, AuthConfig, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, JwtAlgorithm};
pub use database::{Backend, DatabaseConfig};
pub use doors::DoorsConfig;
pub use env::{ConfigError, Env};
pub use exchange::{ExchangeConfig, RateLimits};
pub use http::HttpConfig;
pub use notify::{NotifyConfig, SmtpConfig, SmtpTls, TWILIO_API_BASE, TwilioConfig};
pub use queue::{QueueConfig, QueueType};

/// Which defaults apply when a value is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo run`: a SQLite file, throwaway signing keys, a development admin.
    Development,
    /// The deployed binaries: secrets and the database must be given.
    Production,
}

/// Everything the workers need.
#[derive(Debug, Clone)]
pub struct WorkersConfig {
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    pub notify: NotifyConfig,
    pub exchange: ExchangeConfig,
    pub doors: DoorsConfig,
}

impl WorkersConfig {
    pub fn load(env: &Env, profile: Profile) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::load(env, profile)?,
            queue: QueueConfig::load(env, profile)?,
            notify: NotifyConfig::load(env, profile)?,
            exchange: ExchangeConfig::load(env)?,
            doors: DoorsConfig::load(env, profile)?,
        })
    }
}

/// Everything the API process needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database: DatabaseConfig,
    pub listen_addr: SocketAddr,
    pub auth: AuthConfig,
    pub admin: Option<AdminSeed>,
    pub exchange: ExchangeConfig,
    /// The outbox relay in the api process publishes here.
    pub queue: QueueConfig,
    pub http: HttpConfig,
}

pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8000";

impl ApiConfig {
    pub fn load(env: &Env, profile: Profile) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::load(env, profile)?,
            listen_addr: env.parse_or(
                "LISTEN_ADDR",
                DEFAULT_LISTEN_ADDR,
                "an address like 127.0.0.1:8000",
            )?,
            auth: AuthConfig::load(env, profile)?,
            admin: AdminSeed::load(env, profile)?,
            exchange: ExchangeConfig::load(env)?,
            queue: QueueConfig::load(env, profile)?,
            http: HttpConfig::load(env)?,
        })
    }
}
