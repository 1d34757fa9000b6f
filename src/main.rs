//! `cargo run`: the whole Locker Exchange stack in one process on embedded
//! defaults: a SQLite file, an in-process job queue, an embedded MQTT broker
//! with simulated agents for a few seeded lockers, throwaway signing keys, a
//! development admin, and messages printed here unless SMTP/Twilio are set.
//! The same code the production binaries run; only the defaults differ.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use locker_core::config::{
    ApiConfig, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, DoorsConfig, Env, NotifyConfig, Profile,
};
use locker_core::{SystemClock, shutdown, telemetry};
use locker_exchange::{Stack, StackOptions, broker, dev};
use tokio_util::sync::CancellationToken;

/// Mosquitto usually holds 1883; the embedded broker takes the next port.
const EMBEDDED_BROKER: &str = "127.0.0.1:1884";

#[tokio::main]
async fn main() -> ExitCode {
    // rumqttd logs every ended connection, a clean one too, as an error.
    telemetry::init("info,sqlx=warn,lapin=warn,rumqttd=warn,rumqttd::server::broker=off");
    let env = Env::process();
    let loaded = ApiConfig::load(&env, Profile::Development).and_then(|api| {
        let embedded: SocketAddr = env.parse_or(
            "MQTT_EMBEDDED_ADDR",
            EMBEDDED_BROKER,
            "an address like 127.0.0.1:1884",
        )?;
        let doors = DoorsConfig::load(&env, Profile::Development)?;
        Ok((
            api,
            NotifyConfig::load(&env, Profile::Development)?,
            doors,
            embedded,
        ))
    });
    let (config, notify, doors, embedded) = match loaded {
        Ok(config) => config,
        Err(error) => {
            telemetry::fatal("configuration error", &error);
            return ExitCode::from(2);
        }
    };
    match run(config, notify, doors, embedded, &env).await {
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
    env: &Env,
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
    };
    let clock = Arc::new(SystemClock);
    let stack = Stack::start(&config, options, clock.clone()).await?;
    dev::seed(&stack.state.db, clock.as_ref()).await?;
    let dwell: u64 = env.parse_or("DOOR_DWELL_SECONDS", "8", "a whole number of seconds")?;
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
    let admin_password = if env.get("ADMIN_PASSWORD")?.is_some() {
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
