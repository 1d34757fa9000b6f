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
            .acquire_timeout(Duration::from_secs(10));

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

/// True when `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
