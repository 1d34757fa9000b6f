//! `locker-agent`: runs at a locker site, holds the MQTT session and drives
//! the doors of the lockers it owns (simulated doors unless a driver is
//! built in), with a simulated keypad and scanner on a local socket.
//! `locker-agent enter --locker 3 --pin 12345678` types a code on it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use locker_agent::{Agent, AgentConfig, SimulatedDoors, keypad};
use locker_protocol::{MqttEndpoint, PickupMethod, valid_agent_id};
use locker_runtime::{SystemClock, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Locker Exchange site agent")]
struct Cli {
    /// This agent's id, as lockers name it in `agent_id`.
    #[arg(long, env = "AGENT_ID", value_parser = parse_agent_id)]
    agent_id: String,
    /// The lockers this agent drives, by id: 1,2,3.
    #[arg(long, env = "AGENT_LOCKERS", value_delimiter = ',', required = true)]
    lockers: Vec<i64>,
    /// The broker: mqtt://[user:password@]host[:port].
    #[arg(long, env = "MQTT_URL", value_parser = MqttEndpoint::parse)]
    mqtt_url: MqttEndpoint,
    #[arg(long, env = "MQTT_TOPIC_ROOT", default_value = "lockerx")]
    topic_root: String,
    /// This agent's signing key (`locker-api agent-key --agent-id ID` prints
    /// it); from the environment only.
    #[arg(long, env = "AGENT_SIGNING_KEY", hide_env_values = true)]
    signing_key: String,
    /// Seconds a simulated door stays open before it closes.
    #[arg(long, env = "DOOR_DWELL_SECONDS", default_value_t = 8)]
    door_dwell_seconds: u64,
    /// Where the ids of executed commands are kept, so that a restart never
    /// runs a command a second time.
    #[arg(
        long,
        env = "AGENT_STATE_FILE",
        default_value = "locker-agent-state.json"
    )]
    state_file: std::path::PathBuf,
    /// The simulated keypad and scanner: a local socket `locker-agent enter`
    /// writes to.
    #[arg(long, env = "AGENT_KEYPAD_SOCKET", default_value = "locker-agent.sock")]
    keypad_socket: std::path::PathBuf,
    /// Seconds after which an open door is reported left open.
    #[arg(long, env = "DOOR_LEFT_OPEN_SECONDS", default_value_t = 120)]
    door_left_open_seconds: u64,
    /// Log levels, e.g. info or info,locker_agent=debug.
    #[arg(long, env = "RUST_LOG")]
    rust_log: Option<String>,
    /// text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
}

/// `locker-agent enter`: a code typed on a locker's keypad (or scanned).
#[derive(Parser)]
#[command(about = "Enter a pickup PIN or QR code at a running agent's locker")]
struct EnterCli {
    /// The locker whose keypad it is typed on.
    #[arg(long)]
    locker: i64,
    /// The pickup PIN.
    #[arg(long, required_unless_present = "qr", conflicts_with = "qr")]
    pin: Option<String>,
    /// The text of the pickup QR code, as the scanner reads it.
    #[arg(long)]
    qr: Option<String>,
    /// The running agent's keypad socket.
    #[arg(long, env = "AGENT_KEYPAD_SOCKET", default_value = "locker-agent.sock")]
    keypad_socket: std::path::PathBuf,
}

async fn enter(cli: EnterCli) -> ExitCode {
    let (method, code) = match (cli.pin, cli.qr) {
        (Some(pin), _) => (PickupMethod::Pin, pin),
        (None, Some(qr)) => (PickupMethod::Qr, qr),
        (None, None) => unreachable!("clap requires one"),
    };
    match keypad::enter(&cli.keypad_socket, method, cli.locker, &code).await {
        Ok(answer) => {
            println!("{answer}");
            if matches!(answer.as_str(), "accepted" | "opened_offline") {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!(
                "cannot reach the agent's keypad at {}: {error}",
                cli.keypad_socket.display()
            );
            ExitCode::from(2)
        }
    }
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
    // Reads `.env` into the environment before clap looks at it.
    let _ = dotenvy::dotenv();
    if std::env::args().nth(1).as_deref() == Some("enter") {
        return enter(EnterCli::parse_from(std::env::args().skip(1))).await;
    }
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).expect("clap checked the command line");
    telemetry::init_with("info", cli.rust_log.as_deref(), Some(&cli.log_format));
    // A process list shows flags: the key comes from the environment.
    let problem = if matches.value_source("signing_key") == Some(ValueSource::CommandLine) {
        Some(
            "AGENT_SIGNING_KEY: is a secret: set it in the environment or .env, not on the command line",
        )
    } else if cli.signing_key.len() < 32 {
        Some("AGENT_SIGNING_KEY: must be at least 32 characters long")
    } else {
        None
    };
    if let Some(problem) = problem {
        telemetry::fatal("configuration error", &problem);
        return ExitCode::from(2);
    }
    let lockers = cli.lockers.clone();
    let config = AgentConfig {
        agent_id: cli.agent_id,
        lockers: cli.lockers,
        broker: cli.mqtt_url,
        topic_root: cli.topic_root,
        key: cli.signing_key.into(),
        state_file: Some(cli.state_file),
    };
    let clock = Arc::new(SystemClock);
    let (signals_tx, signals) = tokio::sync::mpsc::unbounded_channel();
    let doors = SimulatedDoors::new(
        signals_tx,
        clock.clone(),
        Some(Duration::from_secs(cli.door_dwell_seconds)),
        Duration::from_secs(cli.door_left_open_seconds),
    );
    tracing::info!(agent_id = %config.agent_id, lockers = ?config.lockers, "locker-agent started");
    let stop = CancellationToken::new();
    let agent = match Agent::new(config, Arc::new(doors), clock) {
        Ok(agent) => {
            let keypads = lockers.iter().map(|id| (*id, agent.keypad())).collect();
            let (path, keypad_stop) = (cli.keypad_socket.clone(), stop.clone());
            tokio::spawn(async move {
                if let Err(error) = keypad::serve(&path, keypads, keypad_stop).await {
                    tracing::error!(%error, path = %path.display(), "keypad socket unavailable");
                }
            });
            tokio::spawn(agent.run(signals, stop.clone()))
        }
        Err(error) => {
            telemetry::fatal("configuration error", &format!("AGENT_STATE_FILE: {error}"));
            return ExitCode::from(2);
        }
    };
    shutdown::signal().await;
    stop.cancel();
    let _ = agent.await;
    tracing::info!("locker-agent stopped");
    ExitCode::SUCCESS
}
