//! Every variable the binaries read, with its help and default: the one list
//! that `--help` prints (each as a flag with an `env` fallback, by clap) and
//! that the loaders take their defaults from.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};

/// One setting: its variable (the original product's name where it had one),
/// what it does, and its default when that does not depend on the binary.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub help: &'static str,
    pub default: Option<&'static str>,
    /// Its value is never shown (`--help` prints the environment's values).
    pub secret: bool,
}

const fn var(name: &'static str, default: Option<&'static str>, help: &'static str) -> Var {
    Var {
        name,
        help,
        default,
        secret: false,
    }
}

const fn secret(name: &'static str, help: &'static str) -> Var {
    Var {
        name,
        help,
        default: None,
        secret: true,
    }
}

pub const DATABASE: &[Var] = &[
    var(
        "DATABASE_URL",
        None,
        "postgres://user:password@host:5432/db or sqlite://file.db. Required by the \
         production binaries; `cargo run` uses sqlite://locker-exchange.db",
    ),
    var(
        "DATABASE_POOL_SIZE",
        Some("16"),
        "Connections each process keeps open to PostgreSQL (SQLite uses 4: one writer, readers beside it)",
    ),
    var(
        "DATABASE_ACQUIRE_TIMEOUT_SECONDS",
        Some("5"),
        "How long a request waits for a free connection before it is answered 503",
    ),
];

pub const AUTH: &[Var] = &[
    secret(
        "ACCESS_SECRET_KEY",
        "Signs access tokens; at least 32 bytes. Required in production; `cargo run` \
         makes one per start",
    ),
    secret(
        "REFRESH_SECRET_KEY",
        "Signs refresh tokens; at least 32 bytes, different from ACCESS_SECRET_KEY",
    ),
    var(
        "ALGORITHM",
        Some("HS256"),
        "Token signature: HS256, HS384 or HS512",
    ),
    var(
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        Some("15"),
        "Lifetime of an access token",
    ),
    var(
        "REFRESH_TOKEN_EXPIRE_MINUTES",
        Some("10080"),
        "Lifetime of a login",
    ),
];

const ADMIN_PASSWORD: Var = secret(
    "ADMIN_PASSWORD",
    "The admin's password; an existing user account is made admin only with it",
);

pub const ADMIN: &[Var] = &[
    var(
        "ADMIN_EMAIL",
        None,
        "An administrator made at start (`cargo run`: admin@example.com)",
    ),
    ADMIN_PASSWORD,
];

/// `locker-api create-admin`: the password, else a prompt.
pub const ADMIN_PASSWORD_ONLY: &[Var] = &[ADMIN_PASSWORD];

pub const HTTP: &[Var] = &[
    var(
        "LISTEN_ADDR",
        Some("127.0.0.1:8000"),
        "Where the API listens",
    ),
    var(
        "HTTP_HEADER_TIMEOUT_SECONDS",
        Some("10"),
        "A client that has not sent its headers by then, or sits idle that long, is closed",
    ),
    var(
        "HTTP_REQUEST_TIMEOUT_SECONDS",
        Some("30"),
        "A whole request, body included, is answered within this, or 408",
    ),
    var(
        "HTTP_MAX_CONNECTIONS",
        Some("1024"),
        "Connections served at once; more wait to be accepted",
    ),
];

pub const EXCHANGE: &[Var] = &[
    var(
        "OTP_EXPIRY_MINUTES",
        Some("5"),
        "Lifetime of a one-time code",
    ),
    var(
        "OTP_COOLDOWN_MINUTES",
        Some("15"),
        "Wait after 10 wrong codes in a row on one item",
    ),
    var(
        "OTP_RATE_WINDOW_MINUTES",
        Some("10"),
        "The window the rate limits count in",
    ),
    var(
        "OTP_RATE_PER_LOCKER",
        Some("10"),
        "Codes issued per locker and window (the receiver's requests)",
    ),
    var(
        "OTP_RATE_PER_CLIENT",
        Some("20"),
        "request-otp calls per client address and window",
    ),
    var(
        "OTP_RATE_PER_CONTACT",
        Some("5"),
        "request-otp calls per contact and client address, per window",
    ),
    var(
        "COLLECT_RATE_PER_CLIENT",
        Some("30"),
        "Collect attempts per client address and window",
    ),
    var(
        "DROP_WINDOW_MINUTES",
        Some("10"),
        "Time a sender has to open the door for a drop",
    ),
    var(
        "PICKUP_HOURS",
        Some("72"),
        "Time the receiver has to collect",
    ),
    var(
        "PICKUP_REMINDER_HOURS",
        Some("24"),
        "How long before the pickup deadline the receiver is reminded",
    ),
    var(
        "PICKUP_EXTENSION_HOURS",
        Some("24"),
        "How much one extension by the sender adds to the pickup deadline",
    ),
    var(
        "PICKUP_EXTENSIONS_MAX",
        Some("1"),
        "How many times a sender may extend an item's pickup deadline (0: never)",
    ),
    var(
        "PHONE_DEFAULT_REGION",
        None,
        "Country (e.g. US) of numbers written without +country code",
    ),
];

pub const QUEUE: &[Var] = &[
    var(
        "AMQP_URL",
        None,
        "RabbitMQ, amqp://user:password@host:5672/%2f. Required by the production \
         binaries; `cargo run` queues jobs in-process",
    ),
    var(
        "AMQP_QUEUE_PREFIX",
        Some("lockerx"),
        "Prefix of every queue's name",
    ),
    var(
        "AMQP_QUEUE_TYPE",
        Some("quorum"),
        "quorum (replicated) or classic",
    ),
    var(
        "JOB_RETRY_DELAYS_MS",
        Some(super::queue::DEFAULT_RETRY_DELAYS_MS),
        "Waits before each retry of a failed job; after the last it is dead-lettered",
    ),
];

pub const NOTIFY: &[Var] = &[
    secret(
        "OTP_SECRET",
        "One-time codes are derived from it (at least 32 bytes). Required by workers serving otp or notify",
    ),
    var(
        "PUBLIC_URL",
        None,
        "Where people reach the api, e.g. https://lockers.example.com: the deposit notice \
         links to its pickup page (/pickup/...). Unset, the notice carries the PIN only \
         (`cargo run`: http://127.0.0.1:8000)",
    ),
    var(
        "SMTP_HOST",
        None,
        "Email leaves through this server; unset, `cargo run` prints email",
    ),
    var(
        "SMTP_PORT",
        None,
        "Default 587 with starttls, 465 with tls, 25 with none",
    ),
    var("SMTP_TLS", Some("starttls"), "starttls, tls or none"),
    var("SMTP_USERNAME", None, "SMTP login, with SMTP_PASSWORD"),
    secret("SMTP_PASSWORD", "SMTP password, with SMTP_USERNAME"),
    var(
        "EMAIL_FROM",
        None,
        "The sender of every email, e.g. lockers@example.com (with SMTP_HOST)",
    ),
    var(
        "TWILIO_ACCOUNT_SID",
        None,
        "SMS leave through Twilio; unset, `cargo run` prints them",
    ),
    secret("TWILIO_AUTH_TOKEN", "Twilio auth token"),
    var(
        "TWILIO_PHONE_NUMBER",
        None,
        "The number SMS come from, international form",
    ),
    var(
        "TWILIO_API_BASE",
        Some(super::TWILIO_API_BASE),
        "Twilio's API address",
    ),
];

const AGENT_SIGNING_SECRET: Var = secret(
    "AGENT_SIGNING_SECRET",
    "Agents' signing keys derive from it (at least 32 bytes). Required by workers serving \
     unlock or events",
);

/// `locker-api agent-key`.
pub const AGENT_SIGNING_SECRET_ONLY: &[Var] = &[AGENT_SIGNING_SECRET];

pub const DOORS: &[Var] = &[
    var(
        "MQTT_URL",
        None,
        "The broker the agents use, mqtt://user:password@host:1883. Required by \
         workers serving unlock or events; `cargo run` starts one of its own",
    ),
    var(
        "MQTT_TOPIC_ROOT",
        Some("lockerx"),
        "First level of every topic",
    ),
    AGENT_SIGNING_SECRET,
    var(
        "UNLOCK_COMMAND_TTL_SECONDS",
        Some("30"),
        "An unlock command is void this long after it is first sent",
    ),
    var(
        "UNLOCK_ACK_TIMEOUT_SECONDS",
        Some("10"),
        "Wait for an agent's answer before sending the command again",
    ),
    var(
        "MQTT_SHARED_SUBSCRIPTIONS",
        Some("true"),
        "Share door events among worker processes ($share); true or false",
    ),
    var(
        "WORKER_ID",
        None,
        "This process's MQTT client id (default workers-<host name>)",
    ),
    var(
        "WORKER_PEER_TIMEOUT_SECONDS",
        Some("30"),
        "Silence after which a peer adopts a worker's MQTT session and applies what it left",
    ),
];

const HASHER_TOKEN: Var = secret(
    "HASHER_TOKEN",
    "Shared by locker-hasher and the processes that call it (at least 32 bytes). Required \
     by locker-hasher, and with HASHER_URL",
);

/// Where the api and the workers hash passwords and codes.
pub const HASHING: &[Var] = &[
    var(
        "HASHER_URL",
        None,
        "A locker-hasher to run Argon2 on, e.g. http://hasher:8100, so hashing can be given \
         a lower CPU weight than the door work; unset, each process hashes on its own threads",
    ),
    HASHER_TOKEN,
];

/// `locker-hasher`.
pub const HASHER: &[Var] = &[
    var(
        "HASHER_LISTEN_ADDR",
        Some("127.0.0.1:8100"),
        "Where locker-hasher listens (keep it on a private network)",
    ),
    HASHER_TOKEN,
];

pub const METRICS: &[Var] = &[var(
    "METRICS_ADDR",
    None,
    "Serve Prometheus metrics at http://ADDR/metrics, a port apart from the API \
     (e.g. 0.0.0.0:9464); unset, none are served",
)];

/// `cargo run` only.
pub const DEVELOPMENT: &[Var] = &[
    var(
        "MQTT_EMBEDDED_ADDR",
        Some("127.0.0.1:1884"),
        "Where the embedded MQTT broker listens (without MQTT_URL)",
    ),
    var(
        "DOOR_DWELL_SECONDS",
        Some("8"),
        "A simulated door closes this long after it opens",
    ),
];

pub const LOGGING: &[Var] = &[
    var(
        "RUST_LOG",
        None,
        "Log levels, e.g. info or info,locker_core=debug",
    ),
    var("LOG_FORMAT", Some("text"), "text or json"),
];

/// The clap arguments for `groups`: `--database-url` reads `DATABASE_URL`.
/// `global` lets them follow any subcommand.
pub fn args(groups: &[&[Var]], global: bool) -> Vec<Arg> {
    groups
        .iter()
        .flat_map(|group| group.iter())
        .map(|var| {
            let flag: &'static str = var.name.to_ascii_lowercase().replace('_', "-").leak();
            let mut arg = Arg::new(var.name)
                .long(flag)
                .env(var.name)
                .value_name("VALUE")
                .help(if var.secret {
                    format!("{} (environment only)", var.help)
                } else {
                    var.help.to_owned()
                })
                .hide_env_values(var.secret)
                .global(global)
                .help_heading("Settings (flag or environment variable)");
            if let Some(default) = var.default {
                arg = arg.default_value(default);
            }
            arg
        })
        .collect()
}

/// Every group: what `cargo run`, which runs every part, reads.
pub const ALL: &[&[Var]] = &[
    DATABASE,
    HTTP,
    AUTH,
    ADMIN,
    EXCHANGE,
    QUEUE,
    NOTIFY,
    DOORS,
    HASHING,
    METRICS,
    DEVELOPMENT,
    LOGGING,
];

/// The default of `name`, when it has one.
pub fn default_of(name: &str) -> Option<&'static str> {
    ALL.iter()
        .chain([HASHER].iter())
        .flat_map(|group| group.iter())
        .find(|var| var.name == name)
        .and_then(|var| var.default)
}

/// The values clap found (flag, environment, `.env` or default) for `groups`,
/// and the secrets given as flags, which anyone listing processes could read.
pub fn values(
    matches: &ArgMatches,
    groups: &[&[Var]],
) -> (Vec<(&'static str, String)>, Vec<&'static str>) {
    let mut found = Vec::new();
    let mut exposed = Vec::new();
    for var in groups.iter().flat_map(|group| group.iter()) {
        if let Some(value) = matches.try_get_one::<String>(var.name).ok().flatten() {
            found.push((var.name, value.clone()));
        }
        if var.secret && matches.value_source(var.name) == Some(ValueSource::CommandLine) {
            exposed.push(var.name);
        }
    }
    (found, exposed)
}

/// Reads `.env` into the environment (what is set already wins), then the
/// command line of `command` with `groups` added as settings.
pub fn parse(command: clap::Command, groups: &[&[Var]]) -> ArgMatches {
    let _ = dotenvy::dotenv();
    command.args(args(groups, false)).get_matches()
}

/// Starts logging as `RUST_LOG` and `LOG_FORMAT` in `matches` say.
pub fn init_logging(matches: &ArgMatches, default_filter: &str) {
    let get = |name| {
        matches
            .try_get_one::<String>(name)
            .ok()
            .flatten()
            .map(String::as_str)
    };
    crate::telemetry::init_with(default_filter, get("RUST_LOG"), get("LOG_FORMAT"));
}
