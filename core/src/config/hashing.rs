use std::net::SocketAddr;

use reqwest::Url;
use secrecy::SecretString;

use super::{Env, Profile};

/// Where a process hashes passwords and codes: on a hashing service
/// (`HASHER_URL`), or on threads of its own when none is named.
#[derive(Debug, Clone, Default)]
pub struct HashingConfig {
    pub service: Option<HashingService>,
}

/// A `locker-hasher` and the token it expects.
#[derive(Debug, Clone)]
pub struct HashingService {
    pub url: Url,
    pub token: SecretString,
}

impl HashingConfig {
    pub fn load(env: &Env) -> Option<Self> {
        let Some(raw) = env.get("HASHER_URL") else {
            return Some(Self::default());
        };
        let url = match Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            _ => {
                env.problem(
                    "HASHER_URL",
                    format!("expected an address like http://hasher:8100, got {raw:?}"),
                );
                None
            }
        };
        // Required wherever a service is named, whatever the profile.
        let token = env.secret("HASHER_TOKEN", Profile::Production, String::new);
        Some(Self {
            service: Some(HashingService {
                url: url?,
                token: token?,
            }),
        })
    }
}

/// `locker-hasher`'s own settings.
#[derive(Debug, Clone)]
pub struct HasherConfig {
    pub listen_addr: SocketAddr,
    pub token: SecretString,
    pub metrics_addr: Option<SocketAddr>,
}

impl HasherConfig {
    pub const VARS: &[&[super::vars::Var]] = &[
        super::vars::HASHER,
        super::vars::METRICS,
        super::vars::LOGGING,
    ];

    pub fn load(env: &Env) -> Result<Self, super::Problems> {
        let listen_addr = env.parse("HASHER_LISTEN_ADDR", "an address like 0.0.0.0:8100");
        let token = env.secret("HASHER_TOKEN", Profile::Production, String::new);
        let metrics_addr = super::metrics_addr(env);
        env.finish((|| {
            Some(Self {
                listen_addr: listen_addr?,
                token: token?,
                metrics_addr: metrics_addr?,
            })
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(pairs: &[(&str, &str)]) -> Vec<&'static str> {
        let env = Env::from_pairs(pairs.iter().copied());
        let config = HashingConfig::load(&env);
        match env.finish(config) {
            Ok(_) => vec![],
            Err(problems) => problems.names(),
        }
    }

    #[test]
    fn a_named_service_needs_a_token_and_an_http_address() {
        assert!(problems(&[]).is_empty(), "no service: hashing here");
        assert_eq!(
            problems(&[("HASHER_URL", "http://hasher:8100")]),
            ["HASHER_TOKEN"]
        );
        assert_eq!(
            problems(&[
                ("HASHER_URL", "http://hasher:8100"),
                ("HASHER_TOKEN", "short")
            ]),
            ["HASHER_TOKEN"]
        );
        assert_eq!(
            problems(&[
                ("HASHER_URL", "hasher:8100"),
                ("HASHER_TOKEN", "a-token-of-at-least-thirty-two-bytes"),
            ]),
            ["HASHER_URL"]
        );
        assert!(
            problems(&[
                ("HASHER_URL", "http://hasher:8100"),
                ("HASHER_TOKEN", "a-token-of-at-least-thirty-two-bytes"),
            ])
            .is_empty()
        );
    }
}
