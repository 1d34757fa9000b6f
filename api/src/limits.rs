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

/// A request's budgets, each to be spent (a hit counted, refused past the
/// limit) or only to have some left (refused at the limit), checked with
/// the change the request asks for (see [`rate_limits::Gate`]).
pub struct Gated<'a> {
    budgets: Vec<(&'a Budget<'a>, Use)>,
}

/// How a request uses a budget.
#[derive(Clone, Copy)]
pub enum Use {
    Spend,
    EnsureLeft,
}

impl<'a> Gated<'a> {
    pub fn new(budgets: Vec<(&'a Budget<'a>, Use)>) -> Self {
        Self { budgets }
    }

    /// The gate, its windows as of now.
    pub fn gate(&self, state: &AppState) -> rate_limits::Gate<'a> {
        rate_limits::Gate(
            self.budgets
                .iter()
                .map(|(budget, use_)| {
                    let (window_start, _) = budget.window(state);
                    let (hits, most) = match use_ {
                        Use::Spend => (1, budget.limit),
                        Use::EnsureLeft => (0, budget.limit - 1),
                    };
                    rate_limits::Limit {
                        count: rate_limits::Count {
                            key: budget.key,
                            window_start,
                            hits,
                        },
                        most,
                    }
                })
                .collect(),
        )
    }

    /// The 429 of the budget at `refused`, saying when its window ends.
    pub fn refusal(&self, state: &AppState, refused: usize) -> ApiError {
        let (budget, _) = self.budgets[refused.min(self.budgets.len() - 1)];
        let (_, left) = budget.window(state);
        budget.refusal(left)
    }
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
