//! Argon2id hashing of passwords and one-time codes, off the async threads
//! and bounded so a burst cannot take all memory (each hash holds 19 MiB).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Span;

/// OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when there is nothing to verify against (an unknown
    /// account), so that costs the same time as a wrong secret.
    dummy_hash: Arc<str>,
    /// Verifications done, real or against the dummy: each costs the same.
    verifications: Arc<AtomicU64>,
}

impl Hasher {
    pub fn new() -> anyhow::Result<Self> {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_hash = hash_blocking("locker-exchange timing equaliser")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(parallel * 2)),
            dummy_hash: dummy_hash.into(),
            verifications: Arc::default(),
        })
    }

    pub async fn hash(&self, secret: SecretString) -> anyhow::Result<String> {
        self.blocking(move || hash_blocking(secret.expose_secret()))
            .await?
    }

    /// True when `secret` matches `stored`; with no stored hash it still
    /// does the work and answers false.
    pub async fn verify(
        &self,
        secret: SecretString,
        stored: Option<String>,
    ) -> anyhow::Result<bool> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .blocking(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|e| anyhow::anyhow!("stored hash is malformed: {e}"))?;
                Ok::<_, anyhow::Error>(
                    argon2()
                        .verify_password(secret.expose_secret().as_bytes(), &parsed)
                        .is_ok(),
                )
            })
            .await??;
        Ok(known && matches)
    }

    /// How many verifications this hasher has run.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let span = Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .await
            .context("hashing task failed")
    }
}

/// Hashes on the calling thread (for measurements; servers use [`Hasher`]).
pub fn hash_blocking(secret: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))
}

/// Verifies on the calling thread (for measurements; servers use [`Hasher`]).
pub fn verify_blocking(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| argon2().verify_password(secret.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let hasher = Hasher::new().unwrap();
        let hash = hasher
            .hash("correct horse".to_owned().into())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("correct horse".to_owned().into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".to_owned().into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("locker-exchange timing equaliser".to_owned().into(), None)
                .await
                .unwrap()
        );
    }
}
