use std::sync::Arc;

use locker_core::config::ApiConfig;
use locker_core::{Clock, Db};

use crate::auth::{Passwords, TokenKeys};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Passwords,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// Connects to the database (applying migrations) and prepares the keys.
    pub async fn connect(config: &ApiConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Ok(Self {
            db: Db::connect(&config.database).await?,
            tokens: Arc::new(TokenKeys::new(&config.auth)),
            passwords: Passwords::new()?,
            clock,
        })
    }
}
