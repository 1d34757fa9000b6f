//! The development stack's site: a few places with lockers on first start,
//! and a simulated agent for every agent the lockers name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use locker_agent::{Agent, AgentConfig, SimulatedDoors, keypad};
use locker_core::config::DoorsConfig;
use locker_core::domain::LockerSize;
use locker_core::store::lockers::{self, NewLocker};
use locker_core::{Clock, Db};
use locker_protocol::{MqttEndpoint, agent_key};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Places, lockers and agents a fresh development database starts with.
const SEED: [(&str, &str, &[&str]); 2] = [
    ("Mall Entrance", "mall-entrance", &["A1", "A2", "A3"]),
    ("Metro Station A", "metro-a", &["B1", "B2"]),
];

/// Adds the seed lockers when there are none yet.
pub async fn seed(db: &Db, clock: &dyn Clock) -> anyhow::Result<()> {
    if !lockers::list(db.pool(), 1, 0).await?.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for (place, agent, names) in SEED {
        for name in names {
            let locker = NewLocker {
                location: place.into(),
                name: Some((*name).into()),
                size: LockerSize::Medium,
                agent_id: Some(agent.into()),
            };
            lockers::insert(&mut tx, locker, clock.now_millis()).await?;
        }
    }
    tx.commit().await?;
    tracing::info!("seeded development lockers");
    Ok(())
}

/// Starts one simulated agent per agent id the lockers name.
pub async fn start_agents(
    db: &Db,
    doors: &DoorsConfig,
    broker: &MqttEndpoint,
    clock: Arc<dyn Clock>,
    dwell: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinSet<()>> {
    let mut by_agent: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for locker in lockers::list(db.pool(), 10_000, 0).await? {
        if let Some(agent) = locker.agent_id {
            by_agent.entry(agent).or_default().push(locker.id);
        }
    }
    let mut agents = JoinSet::new();
    let mut keypads = keypad::Keypads::new();
    for (agent_id, lockers) in by_agent {
        let key = agent_key(doors.agent_secret.expose_secret().as_bytes(), &agent_id);
        let (signals_tx, signals) = tokio::sync::mpsc::unbounded_channel();
        let simulated = SimulatedDoors::new(
            signals_tx,
            clock.clone(),
            Some(dwell),
            Duration::from_secs(120),
        );
        let config = AgentConfig {
            agent_id: agent_id.clone(),
            lockers: lockers.clone(),
            broker: broker.clone(),
            topic_root: doors.topic_root.clone(),
            key: key.into(),
            // The simulated doors restart with the stack that runs them.
            state_file: None,
        };
        tracing::info!(%agent_id, ?lockers, "simulated agent");
        let agent = Agent::new(config, Arc::new(simulated), clock.clone())?;
        keypads.extend(lockers.iter().map(|id| (*id, agent.keypad())));
        agents.spawn(agent.run(signals, shutdown.clone()));
    }
    // Every simulated site's keypad and scanner on one local socket:
    // `cargo run -p locker-agent -- enter --locker ID --pin PIN`.
    let socket = PathBuf::from(KEYPAD_SOCKET);
    agents.spawn(async move {
        if let Err(error) = keypad::serve(&socket, keypads, shutdown).await {
            tracing::warn!(%error, "the simulated keypads' socket is unavailable");
        }
    });
    Ok(agents)
}

/// Where `cargo run`'s simulated keypads listen: `locker-agent enter`'s default.
const KEYPAD_SOCKET: &str = "locker-agent.sock";
