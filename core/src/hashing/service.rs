//! The hashing service's wire, both sides: `POST /hash` and `POST /verify`
//! with JSON bodies, behind a bearer token shared by the service and its
//! callers (`HASHER_TOKEN`), and the callers' client. The service is
//! `locker-hasher`.

use std::time::Duration;

use anyhow::Context;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::HashingService;

pub const HASH_PATH: &str = "/hash";
pub const VERIFY_PATH: &str = "/verify";

/// A secret is at most this long: longer ones are refused before any work.
pub const MAX_SECRET_BYTES: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct HashRequest {
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HashAnswer {
    /// A PHC string: `$argon2id$v=19$m=19456,t=2,p=1$salt$hash`.
    pub hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyRequest {
    pub secret: String,
    /// `null`: verified against a dummy, the same work as a wrong secret.
    pub hash: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyAnswer {
    pub matches: bool,
}

/// The service's refusals: `{"detail": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refusal {
    pub detail: String,
}

/// The hashing service could not be reached, or could not answer now:
/// nothing was hashed or checked, and the same call may be made again.
#[derive(Debug, thiserror::Error)]
#[error("the hashing service is out of reach: {0}")]
pub struct Unavailable(String);

/// A caller of the hashing service. Connections are kept and reused.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    hash_url: Url,
    verify_url: Url,
    token: SecretString,
}

impl Client {
    pub fn new(service: &HashingService) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // A hash waits its turn behind the service's queue; past this
            // the caller is better told to try again.
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the hashing service's client")?;
        Ok(Self {
            http,
            hash_url: service.url.join(HASH_PATH.trim_start_matches('/'))?,
            verify_url: service.url.join(VERIFY_PATH.trim_start_matches('/'))?,
            token: service.token.clone(),
        })
    }

    pub async fn hash(&self, secret: SecretString) -> anyhow::Result<String> {
        let request = HashRequest {
            secret: secret.expose_secret().to_owned(),
        };
        let answer: HashAnswer = self.call(&self.hash_url, &request).await?;
        Ok(answer.hash)
    }

    pub async fn verify(
        &self,
        secret: SecretString,
        stored: Option<String>,
    ) -> anyhow::Result<bool> {
        let request = VerifyRequest {
            secret: secret.expose_secret().to_owned(),
            hash: stored,
        };
        let answer: VerifyAnswer = self.call(&self.verify_url, &request).await?;
        Ok(answer.matches)
    }

    async fn call<A: DeserializeOwned>(
        &self,
        url: &Url,
        request: &impl Serialize,
    ) -> anyhow::Result<A> {
        let response = self
            .http
            .post(url.clone())
            .bearer_auth(self.token.expose_secret())
            .json(request)
            .send()
            .await
            .map_err(|error| Unavailable(error.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|error| Unavailable(error.without_url().to_string()).into());
        }
        let detail = response
            .json::<Refusal>()
            .await
            .map_or_else(|_| String::new(), |refusal| refusal.detail);
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Unavailable(format!("{status} {detail}")).into());
        }
        // A wrong token or a malformed request: a fault here, not there.
        anyhow::bail!("the hashing service refused the call: {status} {detail}")
    }
}
