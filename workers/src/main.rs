//! `locker-workers`: consumes jobs and applies what the doors report.
//! `--queues` picks this process's share of the work, so each kind scales on
//! its own; several processes may serve the same queue.

// mimalloc in place of glibc's malloc: measured in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use locker_core::config::vars;
use locker_core::config::{Env, Profile, WorkerShare, WorkersConfig};
use locker_core::exchange::Exchange;
use locker_core::hashing::Hasher;
use locker_core::jobs::JobKind;
use locker_core::queue::JobQueue;
use locker_core::relay::{Outgoing, Relay};
use locker_core::store::job_runs::Claims;
use locker_core::{Db, SystemClock, shutdown, telemetry};
use locker_workers::channels::Notifier;
use locker_workers::doors::{Applier, DoorLink, tracker};
use locker_workers::{Doors, WorkerContext, run_here, spawn, sweeper};
use tokio_util::sync::CancellationToken;

/// A share of the work: a job queue, or `events` (door events, acks, agent
/// status, and the deadline sweep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Jobs(JobKind),
    Events,
}

#[derive(Parser)]
#[command(version, about = "Locker Exchange job workers")]
struct Cli {
    /// Comma-separated shares of the work: otp, notify, unlock, events.
    #[arg(long, env = "WORKER_QUEUES", value_delimiter = ',', default_value = "otp,notify,unlock,events", value_parser = parse_role)]
    queues: Vec<Role>,
    /// Jobs of each kind run at the same time in this process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// Seconds between deadline sweeps (with `events`).
    #[arg(long, env = "SWEEP_SECONDS", default_value_t = 15)]
    sweep_seconds: u64,
}

fn parse_role(name: &str) -> Result<Role, String> {
    match name.trim() {
        "events" => Ok(Role::Events),
        other => JobKind::parse(other).map(Role::Jobs).ok_or_else(|| {
            format!("unknown queue {other:?}; expected otp, notify, unlock or events")
        }),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = vars::parse(Cli::command(), WorkersConfig::VARS);
    vars::init_logging(&matches, "info,sqlx=warn,lapin=warn");
    let cli = Cli::from_arg_matches(&matches).expect("clap checked the command line");
    let env = Env::from_matches(&matches, WorkersConfig::VARS);
    // Settings are asked for only where this process's share uses them.
    let serves = |wanted: &[Role]| cli.queues.iter().any(|r| wanted.contains(r));
    let share = WorkerShare {
        messages: serves(&[Role::Jobs(JobKind::Otp), Role::Jobs(JobKind::Notify)]),
        doors: serves(&[Role::Jobs(JobKind::Unlock), Role::Events]),
    };
    let config = match WorkersConfig::load(&env, Profile::Production, share) {
        Ok(config) => config,
        Err(error) => {
            telemetry::fatal("configuration error", &error);
            return ExitCode::from(2);
        }
    };
    match run(config, cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            telemetry::fatal("stopped", &format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(config: WorkersConfig, cli: Cli) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics_addr {
        locker_core::metrics::install(Some(addr)).context("METRICS_ADDR")?;
        tracing::info!(%addr, "metrics at /metrics");
    }
    if config
        .notify
        .as_ref()
        .is_some_and(|n| n.public_url.is_none())
    {
        tracing::warn!(
            "PUBLIC_URL is not set: deposit notices carry the pickup PIN but no link to the pickup page"
        );
    }
    let db = Db::connect(&config.database).await?;
    let clock = Arc::new(SystemClock);
    let stop = CancellationToken::new();
    let kinds: Vec<JobKind> = cli
        .queues
        .iter()
        .filter_map(|r| match r {
            Role::Jobs(kind) => Some(*kind),
            Role::Events => None,
        })
        .collect();
    let events = cli.queues.contains(&Role::Events);
    let hasher = Hasher::from_config(&config.hashing)?;
    // Jobs written here (a door closed on an item, a deadline passed) are
    // run here when this process serves their kind, else published by its
    // own relay.
    let outgoing = Outgoing::default();
    let (committing, here) = outgoing.running_here(&kinds, cli.concurrency);
    let exchange = Exchange::new(
        db.clone(),
        clock.clone(),
        config.exchange.clone(),
        hasher.clone(),
        committing,
    );
    let applier = events.then(|| Applier {
        exchange: exchange.clone(),
        agent_secret: config
            .doors
            .as_ref()
            .expect("events need the doors' settings")
            .agent_secret
            .clone(),
    });
    let (doors, link_task) = match &config.doors {
        Some(doors) => {
            let broker = doors.broker.as_ref().expect("production requires MQTT_URL");
            let (link, task) = DoorLink::start(doors, broker, applier, stop.clone());
            let config = doors.clone();
            (Some(Doors { link, config }), Some(task))
        }
        None => (None, None),
    };
    let ctx = Arc::new(WorkerContext {
        claims: Claims::default(),
        db: db.clone(),
        hasher,
        notifier: config
            .notify
            .as_ref()
            .map(|notify| Notifier::new(notify, false))
            .transpose()?,
        code_secret: config.notify.as_ref().map(|n| n.code_secret.clone()),
        public_url: config.notify.as_ref().and_then(|n| n.public_url.clone()),
        clock: clock.clone(),
        exchange,
        retry_delays: config.queue.retry_delays.clone(),
        in_hand: Default::default(),
        doors,
    });
    let queue = JobQueue::from_config(&config.queue);
    let mut workers = spawn(
        ctx.clone(),
        queue.clone(),
        &kinds,
        cli.concurrency,
        stop.clone(),
    );
    workers.spawn(run_here(
        ctx.clone(),
        queue.clone(),
        outgoing.clone(),
        here,
        stop.clone(),
    ));
    workers.spawn(Relay::new(db.clone(), queue, clock, outgoing).run(stop.clone()));
    if kinds.contains(&JobKind::Unlock) {
        workers.spawn(tracker::run(ctx.clone(), stop.clone()));
    }
    if events {
        let every = Duration::from_secs(cli.sweep_seconds.max(1));
        let sweep_stop = stop.clone();
        workers.spawn(async move { sweeper::run(&ctx, every, sweep_stop).await });
    }
    let names: Vec<_> = cli
        .queues
        .iter()
        .map(|r| match r {
            Role::Jobs(kind) => kind.as_str(),
            Role::Events => "events",
        })
        .collect();
    tracing::info!(
        queues = names.join(","),
        concurrency = cli.concurrency,
        "locker-workers started"
    );
    shutdown::signal().await;
    stop.cancel();
    while workers.join_next().await.is_some() {}
    if let Some(task) = link_task {
        let _ = task.await;
    }
    db.close().await;
    tracing::info!("locker-workers stopped");
    Ok(())
}
