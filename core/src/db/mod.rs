//! One connection pool over PostgreSQL or SQLite, chosen by `DATABASE_URL`.
//!
//! Queries are written once, in the SQL both backends share, through sqlx's
//! `Any` driver; where the two differ is said in [`dialect`].

mod dialect;

use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Transaction};

use crate::config::{Backend, DatabaseConfig};

/// How long start-up waits for the database to accept connections.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects (waiting while the database is still starting) and applies
    /// pending migrations.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(config.backend.pool_size())
            .acquire_timeout(config.acquire_timeout);

        let started = tokio::time::Instant::now();
        let pool = loop {
            match options.clone().connect(&config.url).await {
                Ok(pool) => break pool,
                Err(error) if started.elapsed() < CONNECT_PATIENCE && is_transient(&error) => {
                    tracing::warn!(%error, "database not reachable yet, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => return Err(error).context("cannot connect to DATABASE_URL"),
            }
        };

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
        Ok(Self {
            pool,
            backend: config.backend,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
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
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
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
