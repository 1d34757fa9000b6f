//! `locker-hasher`: see the library's documentation.

// mimalloc in place of glibc's malloc, as in the api and the workers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use locker_core::config::{Env, HasherConfig, vars};
use locker_core::hashing::Threads;
use locker_core::{shutdown, telemetry};

#[derive(Parser)]
#[command(
    version,
    about = "Locker Exchange hashing service: Argon2id for the api and the workers"
)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = vars::parse(Cli::command(), HasherConfig::VARS);
    vars::init_logging(&matches, "info");
    let env = Env::from_matches(&matches, HasherConfig::VARS);
    let config = match HasherConfig::load(&env) {
        Ok(config) => config,
        Err(error) => {
            telemetry::fatal("configuration error", &error);
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            telemetry::fatal("stopped", &format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(config: HasherConfig) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics_addr {
        locker_core::metrics::install(Some(addr)).context("METRICS_ADDR")?;
        tracing::info!(%addr, "metrics at /metrics");
    }
    let threads = Threads::new()?;
    let (addr, serving) = locker_hasher::start(
        config.listen_addr,
        threads,
        &config.token,
        shutdown::signal(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
    tracing::info!(%addr, "locker-hasher started");
    serving.await??;
    tracing::info!("locker-hasher stopped");
    Ok(())
}
