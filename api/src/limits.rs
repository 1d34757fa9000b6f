//! Rate limits for the endpoints anyone can call, counted in the database so
//! every api instance enforces the same budget. Fixed windows; a 429 says
//! when the window ends (`Retry-After`).

use std::time::Duration;

use locker_core::store::rate_limits;

use crate::error::{ApiError, Result};
use crate::state::AppState;

/// A budget: at most `limit` hits on `key` per `window`.
pub struct Budget<'a> {
    pub key: &'a str,
    pub limit: i64,
    pub window: Duration,
    /// What the 429 says.
    pub detail: &'static str,
}

impl Budget<'_> {
    /// A budget in the requests' window (`OTP_RATE_WINDOW_MINUTES`).
    pub fn requests<'a>(state: &AppState, key: &'a str, limit: i64) -> Budget<'a> {
        Budget {
            key,
            limit,
            window: state.exchange.rules().limits.window,
            detail: "Too many requests; try again later",
        }
    }

    /// The current window's start and the seconds left in it.
    fn window(&self, state: &AppState) -> (i64, u64) {
        let window = self.window.as_millis() as i64;
        let now = state.clock.now_millis();
        let start = rate_limits::window_start(now, window);
        (start, ((start + window - now) / 1000) as u64)
    }

    fn refusal(&self, retry_after_secs: u64) -> ApiError {
        ApiError::TooManyRequests {
            detail: self.detail,
            retry_after_secs,
        }
    }

    /// Counts a hit; 429 once more than `limit` fall in the current window.
    pub async fn spend(&self, state: &AppState) -> Result<()> {
        let (start, left) = self.window(state);
        if rate_limits::hit(state.db.pool(), self.key, start).await? > self.limit {
            return Err(self.refusal(left));
        }
        Ok(())
    }

    /// 429 when the budget is already spent, without counting a hit.
    pub async fn ensure_left(&self, state: &AppState) -> Result<()> {
        let (start, left) = self.window(state);
        if rate_limits::hits(state.db.pool(), self.key, start).await? >= self.limit {
            return Err(self.refusal(left));
        }
        Ok(())
    }
}

/// [`Budget::spend`] on `spent` and [`Budget::ensure_left`] on `left` (keys
/// different), counted in one round trip; 429 from the first that refuses.
pub async fn spend_then_ensure(
    state: &AppState,
    spent: &Budget<'_>,
    left: &Budget<'_>,
) -> Result<()> {
    let (spent_start, spent_left) = spent.window(state);
    let (left_start, left_left) = left.window(state);
    let counts = [
        rate_limits::Count {
            key: spent.key,
            window_start: spent_start,
            hits: 1,
        },
        rate_limits::Count {
            key: left.key,
            window_start: left_start,
            hits: 0,
        },
    ];
    let hits = rate_limits::count(state.db.pool(), &counts).await?;
    if hits[0] > spent.limit {
        return Err(spent.refusal(spent_left));
    }
    if hits[1] >= left.limit {
        return Err(left.refusal(left_left));
    }
    Ok(())
}

/// Counts a hit on each of several budgets (`(key, limit)`, keys all
/// different) in the requests' window, in one round trip; 429 once more
/// than its limit fall on any.
pub async fn check_each(state: &AppState, budgets: &[(&str, i64)]) -> Result<()> {
    let Some(&(first, limit)) = budgets.first() else {
        return Ok(());
    };
    let budget = Budget::requests(state, first, limit);
    let (start, left) = budget.window(state);
    let keys: Vec<&str> = budgets.iter().map(|(key, _)| *key).collect();
    let hits = rate_limits::hit_each(state.db.pool(), &keys, start).await?;
    if budgets
        .iter()
        .zip(hits)
        .any(|((_, limit), hits)| hits > *limit)
    {
        return Err(budget.refusal(left));
    }
    Ok(())
}

/// How often spent counters are forgotten.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// Forgets counters whose window has ended (every budget's window is at most
/// the longer of the requests' window and the code cool-down); returns how
/// many. Without it the table keeps a row for every key ever seen.
pub async fn forget_spent(state: &AppState) -> Result<u64> {
    let rules = state.exchange.rules();
    let longest = rules.limits.window.max(rules.otp_cooldown).as_millis() as i64;
    let before = state.clock.now_millis() - longest;
    Ok(rate_limits::forget_before(state.db.pool(), before).await?)
}

/// Runs [`forget_spent`] every minute, for as long as the api serves.
pub async fn housekeeping(state: AppState) {
    loop {
        tokio::time::sleep(HOUSEKEEPING_EVERY).await;
        match forget_spent(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(counters = n, "spent rate-limit counters forgotten"),
            Err(error) => tracing::warn!(%error, "cannot forget spent rate-limit counters"),
        }
    }
}
