//! Rate limits for the endpoints anyone can call, counted in the database so
//! every api instance enforces the same budget.

use locker_core::store::rate_limits;

use crate::error::{ApiError, Result};
use crate::state::AppState;

/// Counts a hit on `key`; 429 once more than `limit` fall in the current window.
pub async fn check(state: &AppState, key: &str, limit: i64) -> Result<()> {
    let window = state.exchange.rules().limits.window.as_millis() as i64;
    let now = state.clock.now_millis();
    let start = now - now.rem_euclid(window);
    let hits = rate_limits::hit(state.db.pool(), key, start).await?;
    if hits > limit {
        return Err(ApiError::TooManyRequests {
            detail: "Too many requests; try again later",
            retry_after_secs: ((start + window - now) / 1000) as u64,
        });
    }
    Ok(())
}
