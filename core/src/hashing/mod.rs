//! Argon2id hashing of passwords and one-time codes: on this process's own
//! threads ([`threads`]), or on a hashing service (`locker-hasher`, reached
//! through [`service`]) when `HASHER_URL` names one. The service lets an
//! operator run hashing in a CPU group of its own, below the door work:
//! Linux shares the cores between groups before threads, so within one
//! process hashing holds that process's whole share (docs/benchmarks.md).

pub mod service;
mod threads;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use secrecy::SecretString;

use crate::config::HashingConfig;
pub use service::Unavailable;
pub use threads::{MalformedHash, Threads, hash_blocking, verify_blocking};

#[derive(Clone)]
pub struct Hasher {
    backend: Backend,
    /// Verifications asked for, real or against the dummy: each costs the same.
    verifications: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Backend {
    Threads(Threads),
    Service(service::Client),
}

impl Hasher {
    /// Hashes on threads of this process.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self::with(Backend::Threads(Threads::new()?)))
    }

    /// On the hashing service `config` names, or here when it names none.
    pub fn from_config(config: &HashingConfig) -> anyhow::Result<Self> {
        match &config.service {
            Some(service) => Ok(Self::with(Backend::Service(service::Client::new(service)?))),
            None => Self::new(),
        }
    }

    fn with(backend: Backend) -> Self {
        Self {
            backend,
            verifications: Arc::default(),
        }
    }

    /// A PHC string of `secret` under a new salt. A service out of reach
    /// is an [`Unavailable`] in the error's chain.
    pub async fn hash(&self, secret: SecretString) -> anyhow::Result<String> {
        let hashed = match &self.backend {
            Backend::Threads(threads) => threads.hash(secret).await,
            Backend::Service(client) => client.hash(secret).await,
        };
        counted("hash", hashed)
    }

    /// True when `secret` matches `stored`; with no stored hash it still
    /// does the work and answers false.
    pub async fn verify(
        &self,
        secret: SecretString,
        stored: Option<String>,
    ) -> anyhow::Result<bool> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = match &self.backend {
            Backend::Threads(threads) => threads.verify(secret, stored).await,
            Backend::Service(client) => client.verify(secret, stored).await,
        };
        counted("verify", verified)
    }

    /// How many verifications this hasher has been asked for.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

fn counted<T>(op: &'static str, result: anyhow::Result<T>) -> anyhow::Result<T> {
    let outcome = match &result {
        Ok(_) => "done",
        Err(error) if is_unavailable(error) => "unavailable",
        Err(_) => "failed",
    };
    crate::metrics::hashed(op, outcome);
    result
}

/// True when `error` says the hashing service was out of reach: the caller
/// may try again shortly, and nothing was checked.
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Unavailable>())
}
