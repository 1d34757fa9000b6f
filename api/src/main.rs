//! `locker-api`: serve the HTTP API, or create the first admin.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use locker_api::Application;
use locker_api::admin_seed::ensure_admin;
use locker_api::state::AppState;
use locker_core::config::{AdminSeed, ApiConfig, Env, Profile};
use locker_core::{SystemClock, shutdown, telemetry};
use secrecy::SecretString;

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
    /// Create an admin account, or promote an existing one. The password comes
    /// from ADMIN_PASSWORD or a prompt, never from the command line.
    CreateAdmin {
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info,sqlx=warn");
    let cli = Cli::parse();
    let env = Env::process();
    let config = match ApiConfig::load(&env, Profile::Production) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::CreateAdmin { email } => create_admin(config, &env, email).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ApiConfig) -> anyhow::Result<()> {
    let app = Application::build(&config, Arc::new(SystemClock)).await?;
    tracing::info!(address = %app.local_addr(), "locker-api listening");
    app.run_until(shutdown::signal()).await
}

async fn create_admin(mut config: ApiConfig, env: &Env, email: String) -> anyhow::Result<()> {
    let password = match env.get("ADMIN_PASSWORD")? {
        Some(password) => password,
        None => {
            let first = rpassword::prompt_password("Password for the new admin: ")?;
            let again = rpassword::prompt_password("Again: ")?;
            anyhow::ensure!(first == again, "the passwords differ");
            first
        }
    };
    // Only this admin: the ADMIN_EMAIL one (if any) is the server's business.
    config.admin = None;
    let seed = AdminSeed {
        email,
        password: Some(SecretString::from(password)),
    };
    let state = AppState::connect(&config, Arc::new(SystemClock)).await?;
    ensure_admin(&state, &seed).await?;
    state.db.close().await;
    println!("admin {} is ready", seed.email);
    Ok(())
}
