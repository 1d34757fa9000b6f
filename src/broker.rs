//! The embedded MQTT broker (rumqttd) of the development stack and the tests:
//! a real broker on loopback, so agents and workers speak the same protocol
//! they speak to Mosquitto in production.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use locker_protocol::MqttEndpoint;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Starts a broker listening on `addr` (port 0 picks a free one) and returns
/// where it is. It runs on threads of its own until the process ends.
pub fn start(addr: SocketAddr) -> anyhow::Result<MqttEndpoint> {
    // rumqttd wants a fixed address: find out now whether it is free.
    let probe = TcpListener::bind(addr).with_context(|| {
        format!("the embedded MQTT broker cannot listen on {addr} (MQTT_EMBEDDED_ADDR)")
    })?;
    let addr = probe.local_addr()?;
    drop(probe);

    let server = ServerSettings {
        name: "embedded".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 64 * 1024,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_000,
            max_outgoing_packet_count: 500,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(error) = Broker::new(config).start() {
                tracing::error!(%error, "embedded MQTT broker stopped");
            }
        })?;

    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if started.elapsed() > Duration::from_secs(5) {
            bail!("the embedded MQTT broker did not start on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(MqttEndpoint {
        host: addr.ip().to_string(),
        port: addr.port(),
        credentials: None,
    })
}
