//! `cargo run`: the whole Locker Exchange stack in one process on embedded
//! defaults (a SQLite file, throwaway signing keys, a development admin).
//! The same code the production binaries run; only the defaults differ.

use std::process::ExitCode;
use std::sync::Arc;

use locker_api::Application;
use locker_core::config::{ApiConfig, DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Env, Profile};
use locker_core::{SystemClock, shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info,sqlx=warn");
    let env = Env::process();
    let config = match ApiConfig::load(&env, Profile::Development) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match run(config, &env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ApiConfig, env: &Env) -> anyhow::Result<()> {
    let app = Application::build(&config, Arc::new(SystemClock)).await?;
    let base = format!("http://{}", app.local_addr());
    let admin_email = config
        .admin
        .as_ref()
        .map_or(DEV_ADMIN_EMAIL, |a| a.email.as_str());
    let admin_password = if env.get("ADMIN_PASSWORD")?.is_some() {
        "(the ADMIN_PASSWORD you set)"
    } else {
        DEV_ADMIN_PASSWORD
    };
    println!(
        "\nLocker Exchange is running (database: {db})\n\
         \x20 API          {base}\n\
         \x20 Swagger UI   {base}/docs\n\
         \x20 ReDoc        {base}/redoc\n\
         \x20 Admin login  {admin_email} / {admin_password}\n\
         \x20   curl -s {base}/Auth/login -H 'content-type: application/json' \\\n\
         \x20     -d '{{\"email\":\"{admin_email}\",\"password\":\"{admin_password}\"}}'\n\
         Tokens are signed with keys made at start unless ACCESS_SECRET_KEY and\n\
         REFRESH_SECRET_KEY are set, so a restart logs everyone out. Ctrl-C stops.\n",
        db = config.database.url,
    );
    app.run_until(shutdown::signal()).await
}
