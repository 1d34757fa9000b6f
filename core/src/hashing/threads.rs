//! Argon2id on threads of their own, one per core, each in working memory
//! (19 MiB) kept for the next hash: allocated afresh on whichever blocking
//! thread ran a hash, that memory stayed behind in the allocator's
//! per-thread arenas, and a burst left the process holding gigabytes. Hashes
//! wait their turn in a queue, holding nothing else (no connection, no
//! transaction) meanwhile.
//!
//! The threads keep the process's priority. Linux shares the CPU between
//! groups (sessions, services, containers) before threads, so a lower
//! priority yields only to this process's own threads: measured, it left the
//! door stages' tails where they were unless the whole machine was one
//! group, and an idle-class hashing thread would wait out any flood of cheap
//! requests at its process (docs/benchmarks.md). A hashing service of its
//! own ([`super::service`]) is what lets an operator put hashing below the
//! door work.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use tracing::Span;

/// OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2's working memory, one per hashing thread.
type Memory = Vec<Block>;

/// A hash to run, handed to whichever hashing thread is free first.
type Work = Box<dyn FnOnce(&mut Memory) + Send>;

#[derive(Clone)]
pub struct Threads {
    /// The hashing threads' queue; they end when the last clone is dropped.
    work: mpsc::Sender<Work>,
    /// Verified against when there is nothing to verify against (an unknown
    /// account), so that costs the same time as a wrong secret.
    dummy_hash: Arc<str>,
}

impl Threads {
    pub fn new() -> anyhow::Result<Self> {
        // More at once only queues them on the cores, holding memory.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (work, queue) = mpsc::channel::<Work>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&queue))
                .context("cannot start a hashing thread")?;
        }
        let dummy_hash = hash_blocking("locker-exchange timing equaliser")?;
        Ok(Self {
            work,
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, secret: SecretString) -> anyhow::Result<String> {
        self.run("hash", move |memory| {
            hash_with(secret.expose_secret(), memory)
        })
        .await?
    }

    /// True when `secret` matches `stored`; with no stored hash it still
    /// does the work and answers false.
    pub async fn verify(
        &self,
        secret: SecretString,
        stored: Option<String>,
    ) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run("verify", move |memory| {
                verify_with(secret.expose_secret(), &hash, memory)
            })
            .await??;
        Ok(known && matches)
    }

    /// Runs `work` on the first free hashing thread; `op` names it in
    /// the metrics.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (answer, answered) = oneshot::channel();
        let span = Span::current();
        let queued = Instant::now();
        self.work
            .send(Box::new(move |memory: &mut Memory| {
                // Nobody waits any more (the request was dropped): skip it.
                if !answer.is_closed() {
                    let done = span.in_scope(|| work(memory));
                    crate::metrics::hash_latency(op, queued.elapsed().as_secs_f64());
                    let _ = answer.send(done);
                }
            }))
            .ok()
            .context("hashing threads stopped")?;
        answered.await.context("hashing thread failed")
    }
}

fn hashing_thread(queue: &Mutex<mpsc::Receiver<Work>>) {
    let mut memory = Memory::new();
    loop {
        // The lock is held only while waiting for the next hash.
        let next = queue
            .lock()
            .map_err(drop)
            .and_then(|q| q.recv().map_err(drop));
        let Ok(work) = next else { return };
        work(&mut memory);
    }
}

/// Hashes on the calling thread (for measurements; servers use [`Threads`]).
pub fn hash_blocking(secret: &str) -> anyhow::Result<String> {
    hash_with(secret, &mut Memory::new())
}

/// Verifies on the calling thread (for measurements; servers use [`Threads`]).
pub fn verify_blocking(secret: &str, hash: &str) -> bool {
    verify_with(secret, hash, &mut Memory::new()).unwrap_or(false)
}

/// The hash to verify against is not a PHC string this hasher can use.
#[derive(Debug, thiserror::Error)]
#[error("stored hash is malformed: {0}")]
pub struct MalformedHash(String);

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
    let malformed = |e: &dyn std::fmt::Display| anyhow::Error::new(MalformedHash(e.to_string()));
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
        let hasher = Threads::new().unwrap();
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

    /// A burst of hashes runs one per core, each on a thread kept for it.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_one_per_core_on_threads_of_their_own() {
        let hasher = Threads::new().unwrap();
        let threads = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|name| name.starts_with("argon2-"))
                })
                .count()
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let burst = (0..3 * cores).map(|n| hasher.hash(format!("code {n}").into()));
        let hashes = futures::future::join_all(burst).await;
        assert!(hashes.iter().all(Result::is_ok));
        // Other tests' hashers may be alive in this process too.
        assert!(threads() >= cores, "one hashing thread per core");
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
