//! Argon2id hashing of passwords and one-time codes, off the async threads,
//! at most one per core at a time, each in working memory (19 MiB) kept for
//! the next: allocated afresh on whichever blocking thread runs it, that
//! memory stays behind in the allocator's per-thread arenas, and a burst
//! left the process holding gigabytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Span;

/// OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2's working memory, one per hash running.
type Memory = Vec<Block>;

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Working memory of finished hashes, for the next (one per permit).
    memory: Arc<Mutex<Vec<Memory>>>,
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
            // More at once only queues them on the cores, holding memory.
            permits: Arc::new(Semaphore::new(parallel)),
            memory: Arc::default(),
            dummy_hash: dummy_hash.into(),
            verifications: Arc::default(),
        })
    }

    pub async fn hash(&self, secret: SecretString) -> anyhow::Result<String> {
        self.blocking(move |memory| hash_with(secret.expose_secret(), memory))
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
            .blocking(move |memory| verify_with(secret.expose_secret(), &hash, memory))
            .await??;
        Ok(known && matches)
    }

    /// How many verifications this hasher has run.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let span = Span::current();
        let kept = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = kept
                .lock()
                .expect("hasher memory")
                .pop()
                .unwrap_or_default();
            let result = span.in_scope(|| work(&mut memory));
            kept.lock().expect("hasher memory").push(memory);
            result
        })
        .await
        .context("hashing task failed")
    }
}

/// Hashes on the calling thread (for measurements; servers use [`Hasher`]).
pub fn hash_blocking(secret: &str) -> anyhow::Result<String> {
    hash_with(secret, &mut Memory::new())
}

/// Verifies on the calling thread (for measurements; servers use [`Hasher`]).
pub fn verify_blocking(secret: &str, hash: &str) -> bool {
    verify_with(secret, hash, &mut Memory::new()).unwrap_or(false)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of `secret`
/// under a new salt, computed in `memory`.
fn hash_with(secret: &str, memory: &mut Memory) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let argon2 = argon2();
    let hash = run(
        &argon2,
        secret,
        salt.as_salt(),
        Params::DEFAULT_OUTPUT_LEN,
        memory,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())
            .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(phc.to_string())
}

/// True when `secret` matches the PHC string `stored`, with the parameters
/// it names, computed in `memory`.
fn verify_with(secret: &str, stored: &str, memory: &mut Memory) -> anyhow::Result<bool> {
    let malformed = |e: &dyn std::fmt::Display| anyhow::anyhow!("stored hash is malformed: {e}");
    let parsed = PasswordHash::new(stored).map_err(|e| malformed(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| malformed(&e))?;
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .map_err(|e| malformed(&e))?;
    let params = Params::try_from(&parsed).map_err(|e| malformed(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(malformed(&"no salt or no hash"));
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = run(&argon2, secret, salt, expected.len(), memory)?;
    // `Output`'s comparison takes the same time wherever they differ.
    Ok(computed == expected)
}

fn run(
    argon2: &Argon2<'_>,
    secret: &str,
    salt: Salt<'_>,
    len: usize,
    memory: &mut Memory,
) -> anyhow::Result<Output> {
    let blocks = argon2.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow::anyhow!("bad salt: {e}"))?;
    Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(secret.as_bytes(), salt, out, &mut memory[..])
            .map_err(|_| password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))
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

    #[test]
    fn hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_blocking("s3cret").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"s3cret", &parsed).is_ok());
        assert!(argon2().verify_password(b"s3cret!", &parsed).is_err());

        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2()
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        let mut memory = Memory::new();
        assert!(verify_with("s3cret", &theirs, &mut memory).unwrap());
        assert!(!verify_with("s3cret!", &theirs, &mut memory).unwrap());
        // Memory left by a bigger hash serves a smaller one, and the reverse.
        let small = Params::new(1024, 1, 1, None).unwrap();
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, small)
            .hash_password(b"x", &salt)
            .unwrap()
            .to_string();
        assert!(verify_with("x", &small, &mut memory).unwrap());
        assert!(verify_with("s3cret", &theirs, &mut Memory::new()).unwrap());
        assert!(verify_with("x", "$argon2id$v=19$nonsense", &mut memory).is_err());
    }
}
