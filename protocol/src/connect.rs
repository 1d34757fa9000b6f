use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions};

/// Where the broker is: `mqtt://[user:password@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl MqttEndpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or("expected mqtt://[user:password@]host[:port]")?;
        let rest = rest.trim_end_matches('/');
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_owned(), password.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| "the port is not a number")?),
            None => (hostport, 1883),
        };
        if host.is_empty() {
            return Err("the host is missing".into());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

/// Client options: a persistent session (`clean_session` false) so QoS 1
/// messages sent while this client is away are kept for it.
pub fn options(endpoint: &MqttEndpoint, client_id: &str, will: Option<LastWill>) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, endpoint.host.clone(), endpoint.port);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_clean_session(false);
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some((user, password)) = &endpoint.credentials {
        options.set_credentials(user.clone(), password.clone());
    }
    if let Some(will) = will {
        options.set_last_will(will);
    }
    options
}

/// A client whose small packets (commands, acks, events) leave at once:
/// without `TCP_NODELAY`, Nagle's algorithm and delayed acks hold each hop
/// for tens of milliseconds.
pub fn client(options: MqttOptions, capacity: usize) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(options, capacity);
    eventloop.network_options.set_tcp_nodelay(true);
    (client, eventloop)
}

#[cfg(test)]
mod tests {
    use super::MqttEndpoint;

    #[test]
    fn urls_parse() {
        let e = MqttEndpoint::parse("mqtt://agent:s3cret@broker:1884").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("broker", 1884));
        assert_eq!(e.credentials, Some(("agent".into(), "s3cret".into())));
        assert_eq!(MqttEndpoint::parse("mqtt://127.0.0.1").unwrap().port, 1883);
        assert!(MqttEndpoint::parse("http://x").is_err());
        assert!(MqttEndpoint::parse("mqtt://:1883").is_err());
    }
}
