//! `cargo run`: the whole Locker Exchange stack in one process on embedded
//! defaults (a SQLite file, an in-process job queue, throwaway signing keys, a
//! development admin, messages printed here unless SMTP/Twilio are set).
//! The same code the production binaries run; only the defaults differ.

use std::process::ExitCode;
use std::sync::Arc;

use locker_core::config::{
    ApiConfig, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Env, NotifyConfig, Profile,
};
use locker_core::{SystemClock, shutdown, telemetry};
use locker_exchange::{Stack, StackOptions};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info,sqlx=warn,lapin=warn");
    let env = Env::process();
    let loaded = ApiConfig::load(&env, Profile::Development)
        .and_then(|api| Ok((api, NotifyConfig::load(&env)?)));
    let (config, notify) = match loaded {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match run(config, notify, &env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ApiConfig, notify: NotifyConfig, env: &Env) -> anyhow::Result<()> {
    let options = StackOptions {
        notify,
        console_fallback: true,
        worker_concurrency: 2,
    };
    let stack = Stack::start(&config, options, Arc::new(SystemClock)).await?;
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
        "\nLocker Exchange is running (database: {db}; jobs: {queue})\n\
         \x20 API          {base}\n\
         \x20 Swagger UI   {base}/docs\n\
         \x20 ReDoc        {base}/redoc\n\
         \x20 Admin login  {admin_email} / {admin_password}\n\
         \x20   curl -s {base}/Auth/login -H 'content-type: application/json' \\\n\
         \x20     -d '{{\"email\":\"{admin_email}\",\"password\":\"{admin_password}\"}}'\n\
         Email and SMS print here unless SMTP_HOST / TWILIO_* are set.\n\
         Tokens are signed with keys made at start unless ACCESS_SECRET_KEY and\n\
         REFRESH_SECRET_KEY are set, so a restart logs everyone out. Ctrl-C stops.\n",
        db = config.database.url,
    );
    shutdown::signal().await;
    stack.shutdown().await;
    Ok(())
}
