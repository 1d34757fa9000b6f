//! `locker-workers`: consumes jobs. `--queues` picks which kinds this process
//! serves, so each kind of work scales on its own; several processes may
//! serve the same queue.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use locker_core::config::{Env, Profile, WorkersConfig};
use locker_core::hashing::Hasher;
use locker_core::jobs::JobKind;
use locker_core::queue::JobQueue;
use locker_core::store::job_runs::Claims;
use locker_core::{Db, SystemClock, shutdown, telemetry};
use locker_workers::channels::Notifier;
use locker_workers::{WorkerContext, spawn};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Locker Exchange job workers")]
struct Cli {
    /// Comma-separated job kinds to serve: otp, notify.
    #[arg(long, env = "WORKER_QUEUES", value_delimiter = ',', default_value = "otp,notify", value_parser = parse_kind)]
    queues: Vec<JobKind>,
    /// Jobs of each kind run at the same time in this process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
}

fn parse_kind(name: &str) -> Result<JobKind, String> {
    JobKind::parse(name.trim()).ok_or_else(|| {
        let known: Vec<_> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        format!(
            "unknown queue {name:?}; expected one of {}",
            known.join(", ")
        )
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info,sqlx=warn,lapin=warn");
    // Reads `.env` into the environment before clap looks at it.
    let env = Env::process();
    let cli = Cli::parse();
    let config = match WorkersConfig::load(&env, Profile::Production) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match run(config, cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: WorkersConfig, cli: Cli) -> anyhow::Result<()> {
    let db = Db::connect(&config.database).await?;
    let ctx = Arc::new(WorkerContext {
        claims: Claims::default(),
        db: db.clone(),
        hasher: Hasher::new()?,
        notifier: Notifier::new(&config.notify, false)?,
        clock: Arc::new(SystemClock),
        otp_expiry: config.exchange.otp_expiry,
        retry_delays: config.queue.retry_delays.clone(),
    });
    let queue = JobQueue::from_config(&config.queue);
    let stop = CancellationToken::new();
    let mut workers = spawn(ctx, queue, &cli.queues, cli.concurrency, stop.clone());
    let names: Vec<_> = cli.queues.iter().map(|k| k.as_str()).collect();
    tracing::info!(
        queues = names.join(","),
        concurrency = cli.concurrency,
        "locker-workers started"
    );
    shutdown::signal().await;
    stop.cancel();
    while workers.join_next().await.is_some() {}
    db.close().await;
    tracing::info!("locker-workers stopped");
    Ok(())
}
