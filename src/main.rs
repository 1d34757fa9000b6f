//! `cargo run`: the whole Locker Exchange stack in one process on embedded
//! defaults: a SQLite file, an in-process job queue, an embedded MQTT broker
//! with simulated agents for a few seeded lockers, throwaway signing keys, a
//! development admin, and messages printed here unless SMTP/Twilio are set.
//! The same code the production binaries run; only the defaults differ.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use locker_core::config::vars::{self, Var};
use locker_core::config::{
    ApiConfig, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, DoorsConfig, Env, NotifyConfig, Profile,
};
use locker_core::{SystemClock, shutdown, telemetry};
use locker_exchange::{Stack, StackOptions, broker, dev};
use tokio_util::sync::CancellationToken;

/// Everything the stack in one process reads.
const SETTINGS: &[&[Var]] = vars::ALL;

/// The whole Locker Exchange stack in one process, on embedded defaults:
/// a SQLite file, an in-process job queue, an embedded MQTT broker with
/// simulated agents, and email and SMS printed here. Every setting below
/// is optional.
#[derive(Parser)]
#[command(version)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = vars::parse(Cli::command(), SETTINGS);
    // rumqttd logs every ended connection, a clean one too, as an error.
    vars::init_logging(
        &matches,
        "info,sqlx=warn,lapin=warn,rumqttd=warn,rumqttd::server::broker=off",
    );
    let env = Env::from_matches(&matches, SETTINGS);
    let api = ApiConfig::load_part(&env, Profile::Development);
    let notify = NotifyConfig::load(&env, Profile::Development);
    let doors = DoorsConfig::load(&env, Profile::Development);
    let embedded = env.parse("MQTT_EMBEDDED_ADDR", "an address like 127.0.0.1:1884");
    let dwell = env.positive("DOOR_DWELL_SECONDS", " of seconds");
    let loaded = env.finish((|| Some((api?, notify?, doors?, embedded?, dwell?)))());
    let (config, notify, doors, embedded, dwell) = match loaded {
        Ok(config) => config,
        Err(problems) => {
            telemetry::fatal("configuration error", &problems);
            return ExitCode::from(2);
        }
    };
    let admin_password_set = env.get("ADMIN_PASSWORD").is_some();
    match run(config, notify, doors, embedded, dwell, admin_password_set).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            telemetry::fatal("stopped", &format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(
    config: ApiConfig,
    notify: NotifyConfig,
    mut doors: DoorsConfig,
    embedded: SocketAddr,
    dwell: u64,
    admin_password_set: bool,
) -> anyhow::Result<()> {
    let broker = match &doors.broker {
        Some(broker) => broker.clone(),
        None => {
            // One worker process, and rumqttd drops messages on `$share` filters.
            doors.shared_subscriptions = false;
            broker::start(embedded)?
        }
    };
    doors.broker = Some(broker.clone());
    let options = StackOptions {
        notify,
        doors: doors.clone(),
        sweep_every: Duration::from_secs(5),
        console_fallback: true,
        worker_concurrency: 2,
        split_workers: false,
    };
    if let Some(addr) = config.metrics_addr {
        locker_core::metrics::install(Some(addr)).context("METRICS_ADDR")?;
    }
    let clock = Arc::new(SystemClock);
    let stack = Stack::start(&config, options, clock.clone()).await?;
    dev::seed(&stack.state.db, clock.as_ref()).await?;
    let agents_stop = CancellationToken::new();
    let mut agents = dev::start_agents(
        &stack.state.db,
        &doors,
        &broker,
        clock,
        Duration::from_secs(dwell),
        agents_stop.clone(),
    )
    .await?;
    let base = format!("http://{}", stack.addr);
    let admin_email = config
        .admin
        .as_ref()
        .map_or(DEV_ADMIN_EMAIL, |a| a.email.as_str());
    let admin_password = if admin_password_set {
        "(the ADMIN_PASSWORD you set)"
    } else {
        DEV_ADMIN_PASSWORD
    };
    let queue = config.queue.amqp_url.as_deref().unwrap_or("in-process");
    println!(
        "\nLocker Exchange is running (database: {db}; jobs: {queue}; MQTT: {mqtt}:{port})\n\
         \x20 API          {base}\n\
         \x20 Swagger UI   {base}/docs\n\
         \x20 ReDoc        {base}/redoc\n\
         \x20 Console      {base}/console (sign in as the admin)\n\
         \x20 Admin login  {admin_email} / {admin_password}\n\
         \x20   curl -s {base}/Auth/login -H 'content-type: application/json' \\\n\
         \x20     -d '{{\"email\":\"{admin_email}\",\"password\":\"{admin_password}\"}}'\n\
         Email and SMS print here unless SMTP_HOST / TWILIO_* are set. Simulated\n\
         agents drive the doors: a door opens on unlock and closes {dwell} s later.\n\
         Tokens are signed with keys made at start unless ACCESS_SECRET_KEY and\n\
         REFRESH_SECRET_KEY are set, so a restart logs everyone out. Ctrl-C stops.\n",
        db = config.database.url,
        mqtt = broker.host,
        port = broker.port,
    );
    shutdown::signal().await;
    agents_stop.cancel();
    while agents.join_next().await.is_some() {}
    stack.shutdown().await;
    Ok(())
}
