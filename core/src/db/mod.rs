//! One connection pool over PostgreSQL or SQLite, chosen by `DATABASE_URL`.
//!
//! Queries are written once, in the SQL both backends share, through sqlx's
//! `Any` driver; where the two differ is said in [`dialect`]. The hottest
//! reads also run natively on PostgreSQL ([`Reads`]).

mod dialect;
pub(crate) use dialect::{lazily, lazy_commit, postgres_now_ms};
pub mod notices;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use locker_runtime::backoff::{self, Outage, Retryable};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, PgPool, Transaction};

use crate::config::{Backend, DatabaseConfig};

/// How long start-up waits for the database to accept connections.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// PostgreSQL's own driver, on connections of its own, for [`Reads`].
    reads: Option<PgPool>,
    backend: Backend,
    /// Where notices are listened for (PostgreSQL only).
    notices_url: Option<Arc<str>>,
}

impl Db {
    /// Connects (waiting while the database is still starting) and applies
    /// pending migrations.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        Self::open(config, 0).await
    }

    /// Connects for a process that serves hot reads ([`Reads`]): on
    /// PostgreSQL a quarter of its connections are theirs, so the process
    /// still keeps no more than `DATABASE_POOL_SIZE`.
    pub async fn connect_serving_reads(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let reads = match config.backend {
            Backend::Postgres if config.pool_size >= 2 => (config.pool_size / 4).max(1),
            _ => 0,
        };
        Self::open(config, reads).await
    }

    async fn open(config: &DatabaseConfig, reads: u32) -> anyhow::Result<Self> {
        install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(config.backend.pool_size(config.pool_size) - reads)
            .acquire_timeout(config.acquire_timeout);

        // One plain connection first: unlike the pool's, its error names the
        // cause (refused, unknown host, no such database).
        let outage = Outage::new("database");
        let first = (|| AnyConnection::connect(&config.url))
            .retry(
                backoff::reconnect()
                    .with_max_delay(Duration::from_secs(5))
                    .with_total_delay(Some(CONNECT_PATIENCE)),
            )
            .when(is_unavailable)
            .notify(|error, retry_in| outage.failed(&describe(error), retry_in))
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot connect to DATABASE_URL: {}", describe(&error))
            })?;
        let _ = first.close().await;
        let pool = options.connect(&config.url).await.map_err(|error| {
            anyhow::anyhow!("cannot connect to DATABASE_URL: {}", describe(&error))
        })?;

        if let Some(statement) = config.backend.prepare_statement() {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .with_context(|| format!("cannot prepare the database ({statement})"))?;
        }
        config
            .backend
            .migrator()
            .run(&pool)
            .await
            .context("cannot apply database migrations")?;
        // Opened as reads come.
        let reads = match reads {
            0 => None,
            n => Some(
                PgPoolOptions::new()
                    .max_connections(n)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_lazy(&config.url)
                    .context("cannot read DATABASE_URL")?,
            ),
        };
        Ok(Self {
            pool,
            reads,
            backend: config.backend,
            notices_url: (config.backend == Backend::Postgres).then(|| config.url.as_str().into()),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where the hottest reads go (see [`Reads`]).
    pub fn reads(&self) -> Reads<'_> {
        match &self.reads {
            Some(pool) => Reads::Postgres(pool),
            None => Reads::Shared(&self.pool),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where to `LISTEN` for notices other processes raise: PostgreSQL's
    /// URL; `None` on SQLite, which serves one process.
    pub fn notices_url(&self) -> Option<&str> {
        self.notices_url.as_deref()
    }

    /// Starts a write transaction (see [`Backend::begin_write`]).
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.pool.begin_with(self.backend.begin_write()).await
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(reads) = &self.reads {
            reads.close().await;
        }
    }
}

/// Where a hot read runs. sqlx's `Any` driver copies every row it reads,
/// with a description of each of its columns, into a row of its own: on
/// `GET /lockers/by-place` that was about a tenth of the api's CPU. On
/// PostgreSQL such reads take the native driver instead, on connections of
/// their own ([`Db::connect_serving_reads`]), which also keeps a flood of
/// reads from taking the connections writes need. The same SQL runs on
/// either.
#[derive(Debug, Clone, Copy)]
pub enum Reads<'a> {
    Postgres(&'a PgPool),
    /// SQLite: the one pool every query shares.
    Shared(&'a AnyPool),
}

/// What went wrong, said once: a database's own message, or the I/O cause
/// (sqlx's text repeats a database error's message and its position).
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => match e.code() {
            Some(code) => format!("{} (SQLSTATE {code})", e.message()),
            None => e.message().to_owned(),
        },
        sqlx::Error::Io(e) => format!("{e}"),
        other => other.to_string(),
    }
}

/// True when `error` says the database could not be reached or dropped the
/// connection (refused, reset, shut down, out of connections, the pool gave
/// up waiting), not that the request was wrong: worth trying again shortly.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions (class 08), shutdown and "cannot connect
        // now" (57P01-57P03), too many connections (53300).
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// True when `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
