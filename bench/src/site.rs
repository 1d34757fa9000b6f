//! The benchmark's own locker site: simulated agents over MQTT, with doors
//! that note when an unlock reached them and close when told.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use locker_agent::{Agent, AgentConfig, Door, SimulatedDoors};
use locker_core::{Clock, SystemClock};
use locker_protocol::{MqttEndpoint, agent_key};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Simulated doors that remember when each was last unlocked.
#[derive(Clone)]
pub struct TimedDoors {
    pub doors: SimulatedDoors,
    unlocked: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl Door for TimedDoors {
    fn unlock(&self, locker_id: i64, command_id: &str) -> Result<(), String> {
        // Noted once the door is open, so whoever waits for it can close it.
        let opened = self.doors.unlock(locker_id, command_id);
        self.unlocked
            .lock()
            .expect("lock")
            .insert(locker_id, Instant::now());
        opened
    }
}

impl TimedDoors {
    /// Waits until `locker`'s door is unlocked after `since`; returns when.
    pub async fn unlocked_after(
        &self,
        locker: i64,
        since: Instant,
        within: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.unlocked.lock().expect("lock").get(&locker).copied()
                && at >= since
            {
                return Ok(at);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "locker {locker} not unlocked within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

pub struct Site {
    /// The doors of each locker.
    pub doors: HashMap<i64, TimedDoors>,
    stop: CancellationToken,
    agents: JoinSet<()>,
}

impl Site {
    /// One agent per entry of `agents` (agent id → its lockers).
    pub fn start(
        broker: &MqttEndpoint,
        topic_root: &str,
        secret: &str,
        agents: &HashMap<String, Vec<i64>>,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let stop = CancellationToken::new();
        let mut set = JoinSet::new();
        let mut doors = HashMap::new();
        for (agent_id, lockers) in agents {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let timed = TimedDoors {
                doors: SimulatedDoors::new(tx, clock.clone(), None, Duration::from_secs(3600)),
                unlocked: Arc::default(),
            };
            for locker in lockers {
                doors.insert(*locker, timed.clone());
            }
            let config = AgentConfig {
                agent_id: agent_id.clone(),
                lockers: lockers.clone(),
                broker: broker.clone(),
                topic_root: topic_root.to_owned(),
                key: agent_key(secret.as_bytes(), agent_id).into(),
                state_file: None,
            };
            let agent = Agent::new(config, Arc::new(timed), clock.clone()).expect("no state file");
            set.spawn(agent.run(rx, stop.clone()));
        }
        Self {
            doors,
            stop,
            agents: set,
        }
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.agents.join_next().await.is_some() {}
    }
}
