//! `locker-api`: serve the HTTP API, or create the first admin.

// mimalloc in place of glibc's malloc: measured in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use locker_api::Application;
use locker_api::admin_seed::ensure_admin;
use locker_core::config::vars::{self, Var};
use locker_core::config::{AdminSeed, ApiConfig, DatabaseConfig, Env, Profile};
use locker_core::hashing::Hasher;
use locker_core::queue::JobQueue;
use locker_core::relay::Relay;
use locker_core::{Clock, Db};
use locker_core::{SystemClock, shutdown, telemetry};
use locker_protocol::agent_key;
use locker_protocol::valid_agent_id;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "The Locker Exchange HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create an admin account, or take over a user account with that email
    /// (its password replaced, its sessions ended). The password comes from
    /// ADMIN_PASSWORD or a prompt, never from the command line.
    CreateAdmin {
        #[arg(long)]
        email: String,
    },
    /// Print an agent's signing key (derived from AGENT_SIGNING_SECRET), to
    /// configure that agent with as AGENT_SIGNING_KEY.
    AgentKey {
        #[arg(long)]
        agent_id: String,
    },
}

/// The settings each way of running reads, listed by its `--help`.
const SERVE: &[&[Var]] = ApiConfig::VARS;
const CREATE_ADMIN: &[&[Var]] = &[vars::DATABASE, vars::ADMIN_PASSWORD_ONLY, vars::LOGGING];
const AGENT_KEY: &[&[Var]] = &[vars::AGENT_SIGNING_SECRET_ONLY, vars::LOGGING];

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::command()
        .mut_subcommand("serve", |c| c.args(vars::args(SERVE, false)))
        .mut_subcommand("create-admin", |c| c.args(vars::args(CREATE_ADMIN, false)))
        .mut_subcommand("agent-key", |c| c.args(vars::args(AGENT_KEY, false)));
    let top = vars::parse(command, SERVE);
    let (matches, groups) = match top.subcommand() {
        Some(("create-admin", sub)) => (sub, CREATE_ADMIN),
        Some(("agent-key", sub)) => (sub, AGENT_KEY),
        Some((_, sub)) => (sub, SERVE),
        None => (&top, SERVE),
    };
    vars::init_logging(matches, "info,sqlx=warn,lapin=warn");
    let cli = Cli::from_arg_matches(&top).expect("clap checked the command line");
    let env = Env::from_matches(matches, groups);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match ApiConfig::load(&env, Profile::Production) {
            Ok(config) => serve(config).await,
            Err(problems) => {
                telemetry::fatal("configuration error", &problems);
                return ExitCode::from(2);
            }
        },
        Command::CreateAdmin { email } => create_admin(&env, email).await,
        Command::AgentKey { agent_id } => print_agent_key(&env, &agent_id),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            telemetry::fatal("stopped", &format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ApiConfig) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics_addr {
        locker_core::metrics::install(Some(addr)).context("METRICS_ADDR")?;
        tracing::info!(%addr, "metrics at /metrics");
    }
    let clock = Arc::new(SystemClock);
    let app = Application::build(&config, clock.clone()).await?;
    let state = app.state().clone();
    // The outbox relay runs beside the server: jobs written here are
    // published from here, and wait in the outbox while RabbitMQ is away.
    let relay = Relay::new(
        state.db.clone(),
        JobQueue::from_config(&config.queue),
        clock,
        state.relay.clone(),
    );
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay.run(stop.clone()));
    tracing::info!(address = %app.local_addr(), "locker-api listening");
    let served = app.run_until(shutdown::signal()).await;
    stop.cancel();
    let _ = relay.await;
    state.db.close().await;
    served
}

fn print_agent_key(env: &Env, agent_id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        valid_agent_id(agent_id),
        "--agent-id: 1 to 64 letters, digits, '-', '_' or '.'"
    );
    let secret = env.secret("AGENT_SIGNING_SECRET", Profile::Production, String::new);
    let secret = env.finish(secret)?;
    println!("{}", agent_key(secret.expose_secret().as_bytes(), agent_id));
    Ok(())
}

async fn create_admin(env: &Env, email: String) -> anyhow::Result<()> {
    let database = env.finish(DatabaseConfig::load(env, Profile::Production))?;
    let password = match env.get("ADMIN_PASSWORD") {
        Some(password) => password,
        None => {
            let first = rpassword::prompt_password("Password for the new admin: ")?;
            let again = rpassword::prompt_password("Again: ")?;
            anyhow::ensure!(first == again, "the passwords differ");
            first
        }
    };
    let seed = AdminSeed {
        email,
        password: Some(SecretString::from(password)),
    };
    let db = Db::connect(&database).await?;
    ensure_admin(&db, &Hasher::new()?, &seed, SystemClock.now_millis()).await?;
    db.close().await;
    println!("admin {} is ready", seed.email);
    Ok(())
}
