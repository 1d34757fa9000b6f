//! Typed configuration, read once at start. `vars` lists every variable (the
//! original product's names) for clap, which takes each from a flag, the
//! environment or a `.env` file; the loaders here turn them into types and
//! report every missing or malformed value of a start at once.

mod auth;
mod database;
mod doors;
mod env;
mod exchange;
mod hashing;
mod http;
mod notify;
mod queue;
pub mod vars;

use std::net::SocketAddr;

pub use auth::{AdminSeed, AuthConfig, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, JwtAlgorithm};
pub use database::{Backend, DatabaseConfig};
pub use doors::DoorsConfig;
pub use env::{ConfigError, Env, Problems};
pub use exchange::{ExchangeConfig, RateLimits};
pub use hashing::{HasherConfig, HashingConfig, HashingService};
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

/// Everything the workers need: `notify` only when they send codes or
/// messages, `doors` only when they serve unlocks or door events.
#[derive(Debug, Clone)]
pub struct WorkersConfig {
    pub metrics_addr: Option<SocketAddr>,
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    pub notify: Option<NotifyConfig>,
    pub exchange: ExchangeConfig,
    pub doors: Option<DoorsConfig>,
    pub hashing: HashingConfig,
}

/// Which parts of the work a worker process serves.
#[derive(Debug, Clone, Copy)]
pub struct WorkerShare {
    /// Codes and messages (otp, notify): SMTP, Twilio, `OTP_SECRET`.
    pub messages: bool,
    /// Unlocks and door events: the broker and `AGENT_SIGNING_SECRET`.
    pub doors: bool,
}

impl WorkersConfig {
    pub const VARS: &[&[vars::Var]] = &[
        vars::DATABASE,
        vars::QUEUE,
        vars::NOTIFY,
        vars::EXCHANGE,
        vars::DOORS,
        vars::HASHING,
        vars::METRICS,
        vars::LOGGING,
    ];

    pub fn load(env: &Env, profile: Profile, share: WorkerShare) -> Result<Self, Problems> {
        let database = DatabaseConfig::load(env, profile);
        let queue = QueueConfig::load(env, profile);
        let notify = share.messages.then(|| NotifyConfig::load(env, profile));
        let exchange = ExchangeConfig::load(env);
        let doors = share.doors.then(|| DoorsConfig::load(env, profile));
        let hashing = HashingConfig::load(env);
        let metrics_addr = metrics_addr(env);
        env.finish((|| {
            Some(Self {
                metrics_addr: metrics_addr?,
                database: database?,
                queue: queue?,
                notify: match notify {
                    Some(notify) => Some(notify?),
                    None => None,
                },
                exchange: exchange?,
                doors: match doors {
                    Some(doors) => Some(doors?),
                    None => None,
                },
                hashing: hashing?,
            })
        })())
    }
}

/// Everything the API process needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub metrics_addr: Option<SocketAddr>,
    pub database: DatabaseConfig,
    pub listen_addr: SocketAddr,
    pub auth: AuthConfig,
    pub admin: Option<AdminSeed>,
    pub exchange: ExchangeConfig,
    /// The outbox relay in the api process publishes here.
    pub queue: QueueConfig,
    pub http: HttpConfig,
    pub hashing: HashingConfig,
}

impl ApiConfig {
    pub const VARS: &[&[vars::Var]] = &[
        vars::DATABASE,
        vars::HTTP,
        vars::AUTH,
        vars::ADMIN,
        vars::EXCHANGE,
        vars::QUEUE,
        vars::HASHING,
        vars::METRICS,
        vars::LOGGING,
    ];

    pub fn load(env: &Env, profile: Profile) -> Result<Self, Problems> {
        env.finish(Self::load_part(env, profile))
    }

    /// The API's part of a larger configuration (`cargo run`'s): problems
    /// are noted in `env` for the caller's `finish`.
    pub fn load_part(env: &Env, profile: Profile) -> Option<Self> {
        let database = DatabaseConfig::load(env, profile);
        let listen_addr = env.parse("LISTEN_ADDR", "an address like 127.0.0.1:8000");
        let auth = AuthConfig::load(env, profile);
        let admin = AdminSeed::load(env, profile);
        let exchange = ExchangeConfig::load(env);
        let queue = QueueConfig::load(env, profile);
        let http = HttpConfig::load(env);
        let hashing = HashingConfig::load(env);
        let metrics_addr = metrics_addr(env);
        Some(Self {
            metrics_addr: metrics_addr?,
            database: database?,
            listen_addr: listen_addr?,
            auth: auth?,
            admin,
            exchange: exchange?,
            queue: queue?,
            http: http?,
            hashing: hashing?,
        })
    }
}

/// `Some(None)` when metrics are not served.
fn metrics_addr(env: &Env) -> Option<Option<SocketAddr>> {
    match env.get("METRICS_ADDR") {
        Some(_) => env
            .parse("METRICS_ADDR", "an address like 0.0.0.0:9464")
            .map(Some),
        None => Some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_a_start_is_reported_at_once() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "mysql://db"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("ALGORITHM", "none"),
            ("AMQP_URL", "http://rabbit"),
            ("OTP_EXPIRY_MINUTES", "soon"),
        ]);
        let problems = ApiConfig::load(&env, Profile::Production).unwrap_err();
        let mut names = problems.names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "ACCESS_SECRET_KEY",
                "ALGORITHM",
                "AMQP_URL",
                "DATABASE_URL",
                "HTTP_MAX_CONNECTIONS",
                "OTP_EXPIRY_MINUTES",
                "REFRESH_SECRET_KEY",
            ],
            "{problems}"
        );
    }

    /// `--help` lists `VARS`; every variable a loader reads must be among them.
    #[test]
    fn help_lists_every_variable_the_loaders_read() {
        let listed = |groups: &[&[vars::Var]]| -> std::collections::BTreeSet<&str> {
            groups
                .iter()
                .flat_map(|g| g.iter().map(|v| v.name))
                .collect()
        };
        // Every optional channel configured, so each of its variables is read.
        let env = Env::from_pairs([
            ("SMTP_HOST", "mail"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("MQTT_URL", "mqtt://broker"),
        ]);
        let _ = ApiConfig::load(&env, Profile::Production);
        let unlisted: Vec<_> = env
            .names_read()
            .difference(&listed(ApiConfig::VARS))
            .copied()
            .collect();
        assert!(unlisted.is_empty(), "locker-api reads {unlisted:?}");

        let env = Env::from_pairs([
            ("SMTP_HOST", "mail"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("MQTT_URL", "mqtt://broker"),
        ]);
        let all = WorkerShare {
            messages: true,
            doors: true,
        };
        let _ = WorkersConfig::load(&env, Profile::Production, all);
        let read = env.names_read();
        let unlisted: Vec<_> = read
            .difference(&listed(WorkersConfig::VARS))
            .copied()
            .collect();
        assert!(unlisted.is_empty(), "locker-workers reads {unlisted:?}");
        assert!(read.contains("SMTP_PASSWORD") && read.contains("WORKER_ID"));
    }

    #[test]
    fn the_example_file_lists_every_variable() {
        let example = include_str!("../../../.env.example");
        let missing: Vec<_> = vars::ALL
            .iter()
            .chain([vars::HASHER].iter())
            .flat_map(|g| g.iter())
            .filter(|v| {
                !example.lines().any(|line| {
                    line.trim_start_matches('#')
                        .starts_with(&format!("{}=", v.name))
                })
            })
            .map(|v| v.name)
            .collect();
        assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    }

    /// A worker is asked only for the settings of the work it serves.
    #[test]
    fn workers_need_only_the_settings_of_their_share() {
        let load = |messages, doors| {
            let env = Env::from_pairs([
                ("DATABASE_URL", "postgres://db/x"),
                ("AMQP_URL", "amqp://rabbit"),
            ]);
            let share = WorkerShare { messages, doors };
            match WorkersConfig::load(&env, Profile::Production, share) {
                Ok(_) => vec![],
                Err(problems) => problems.names(),
            }
        };
        assert_eq!(load(true, false), ["OTP_SECRET"]);
        assert_eq!(load(false, true), ["MQTT_URL", "AGENT_SIGNING_SECRET"]);
        assert_eq!(
            load(true, true),
            ["OTP_SECRET", "MQTT_URL", "AGENT_SIGNING_SECRET"]
        );
    }
}
