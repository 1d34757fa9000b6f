//! `locker-workers`: consumes jobs. `--queues` picks which kinds this process
//! serves, so each kind of work scales on its own.

use std::process::ExitCode;

use clap::Parser;
use locker_core::config::{DatabaseConfig, Env, Profile};
use locker_core::{Db, shutdown, telemetry};

/// The job kinds a worker can serve.
const QUEUES: [&str; 4] = ["otp", "notify", "unlock", "events"];

#[derive(Parser)]
#[command(version, about = "Locker Exchange job workers")]
struct Cli {
    /// Comma-separated job kinds to serve: otp, notify, unlock, events.
    #[arg(long, env = "WORKER_QUEUES", value_delimiter = ',', default_value = "otp,notify,unlock,events",
          value_parser = clap::builder::PossibleValuesParser::new(QUEUES))]
    queues: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info,sqlx=warn");
    // Reads `.env` into the environment before clap looks at it.
    let env = Env::process();
    let cli = Cli::parse();
    let database = match DatabaseConfig::load(&env, Profile::Production) {
        Ok(database) => database,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&database, &cli.queues).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(database: &DatabaseConfig, queues: &[String]) -> anyhow::Result<()> {
    let db = Db::connect(database).await?;
    tracing::info!(queues = queues.join(","), "locker-workers started");
    shutdown::signal().await;
    db.close().await;
    tracing::info!("locker-workers stopped");
    Ok(())
}
