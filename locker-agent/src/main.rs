//! `locker-agent`: runs at a locker site, holds the broker session and drives
//! the doors of the lockers it owns.

use std::process::ExitCode;

use clap::Parser;
use locker_core::config::Env;
use locker_core::domain::valid_agent_id;
use locker_core::{shutdown, telemetry};

#[derive(Parser)]
#[command(version, about = "Locker Exchange site agent")]
struct Cli {
    /// This agent's id, as lockers name it in `agent_id`.
    #[arg(long, env = "AGENT_ID", value_parser = parse_agent_id)]
    agent_id: String,
    /// The MQTT broker.
    #[arg(long, env = "MQTT_URL", default_value = "mqtt://127.0.0.1:1883")]
    mqtt_url: String,
}

fn parse_agent_id(id: &str) -> Result<String, String> {
    if valid_agent_id(id) {
        Ok(id.to_owned())
    } else {
        Err("1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init("info");
    // Reads `.env` into the environment before clap looks at it.
    Env::process();
    let cli = Cli::parse();
    tracing::info!(agent_id = %cli.agent_id, mqtt_url = %cli.mqtt_url, "locker-agent started");
    shutdown::signal().await;
    tracing::info!("locker-agent stopped");
    ExitCode::SUCCESS
}
