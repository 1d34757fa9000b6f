use std::sync::Arc;

use locker_core::config::ApiConfig;
use locker_core::exchange::Exchange;
use locker_core::hashing::Hasher;
use locker_core::relay::Outgoing;
use locker_core::{Clock, Db};

use crate::auth::{SessionCache, TokenKeys};
use crate::console::Changes;
use crate::routes::lockers::PlaceCache;

/// What every handler can reach. One pointer: axum clones it for every
/// extractor of every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub db: Db,
    pub tokens: Arc<TokenKeys>,
    pub hasher: Hasher,
    pub clock: Arc<dyn Clock>,
    /// Every transition of items and lockers.
    pub exchange: Exchange,
    /// Takes the jobs of each commit to this process's outbox relay.
    pub relay: Outgoing,
    /// Sessions found live, while every change to them is heard.
    pub sessions: SessionCache,
    /// By-place answers, while every change to lockers is heard.
    pub places: PlaceCache,
    /// Changes the console's live pages follow.
    pub changes: Changes,
}

impl AppState {
    /// Connects to the database (applying migrations) and prepares the keys.
    pub async fn connect(config: &ApiConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        // The phone-number metadata loads on first use; pay for it now, not
        // in the first sender's request.
        let _ = locker_core::domain::Phone::parse("+14155552671", None);
        let db = Db::connect_serving_reads(&config.database).await?;
        let hasher = Hasher::from_config(&config.hashing)?;
        let relay = Outgoing::default();
        let exchange = Exchange::new(
            db.clone(),
            clock.clone(),
            config.exchange.clone(),
            hasher.clone(),
            relay.clone(),
        );
        Ok(Self(Arc::new(Shared {
            db,
            tokens: Arc::new(TokenKeys::new(&config.auth)),
            hasher,
            clock,
            exchange,
            relay,
            sessions: SessionCache::default(),
            places: PlaceCache::default(),
            changes: Changes::default(),
        })))
    }
}
