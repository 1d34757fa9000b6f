//! Simulated site agents for the tests, on the test's broker and topic root.

use std::sync::Arc;
use std::time::Duration;

use locker_agent::{Agent, AgentConfig, Keypad, SimulatedDoors};
use locker_protocol::{MqttEndpoint, agent_key};
use locker_testkit::TcpProxy;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::helpers::{AGENT_SECRET, TestApp, WAIT};

pub struct TestAgent {
    pub doors: SimulatedDoors,
    /// The locker's keypad and scanner.
    pub keypad: Keypad,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TestAgent {
    /// Stops it cleanly (it says offline first).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl TestApp {
    /// An agent driving `lockers`, whose doors close `dwell` after opening
    /// (never by themselves with `None`); returns once the workers saw it online.
    pub async fn agent(&self, id: &str, lockers: &[i64], dwell: Option<Duration>) -> TestAgent {
        let broker = self.doors.broker.clone().expect("test broker");
        self.agent_via(id, lockers, dwell, broker).await
    }

    /// The same, connecting through `broker` (e.g. a proxy the test can cut).
    pub async fn agent_via(
        &self,
        id: &str,
        lockers: &[i64],
        dwell: Option<Duration>,
        broker: MqttEndpoint,
    ) -> TestAgent {
        let (signals_tx, signals) = tokio::sync::mpsc::unbounded_channel();
        let clock = Arc::new(self.clock.clone());
        let doors = SimulatedDoors::new(signals_tx, clock.clone(), dwell, Duration::from_secs(2));
        let config = AgentConfig {
            agent_id: id.to_owned(),
            lockers: lockers.to_vec(),
            broker,
            topic_root: self.doors.topic_root.clone(),
            key: agent_key(AGENT_SECRET.as_bytes(), id).into(),
            state_file: None,
        };
        self.sessions
            .client_ids
            .lock()
            .unwrap()
            .push(format!("agent-{id}"));
        let stop = CancellationToken::new();
        let agent = Agent::new(config, Arc::new(doors.clone()), clock).unwrap();
        let keypad = agent.keypad();
        let task = tokio::spawn(agent.run(signals, stop.clone()));
        self.wait_agent_online(id, true).await;
        TestAgent {
            doors,
            keypad,
            stop,
            task,
        }
    }

    /// A TCP proxy to the test's broker that the test can cut, and the
    /// endpoint an agent connects to through it.
    pub async fn broker_proxy(&self) -> (TcpProxy, MqttEndpoint) {
        let broker = self.doors.broker.clone().expect("test broker");
        let upstream = tokio::net::lookup_host((broker.host.as_str(), broker.port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = TcpProxy::start(upstream).await;
        let via = MqttEndpoint {
            host: proxy.addr.ip().to_string(),
            port: proxy.addr.port(),
            credentials: None,
        };
        (proxy, via)
    }

    pub async fn wait_agent_online(&self, id: &str, online: bool) {
        let want = i64::from(online);
        self.wait_until(&format!("agent {id} online={online}"), || async {
            let seen: Option<i64> = sqlx::query_scalar("SELECT online FROM agents WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(self.state.db.pool())
                .await
                .unwrap();
            seen == Some(want)
        })
        .await;
    }

    /// Waits until `check` holds, polling.
    pub async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
