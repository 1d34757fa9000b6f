//! Fixed-window counters in the database, so every api instance sees the
//! same limits.

use sqlx::{Any, Executor};

use crate::clock::Millis;

/// Counts one hit on `key` in the window starting at `window_start` and
/// returns the hits so far in that window (this one included).
pub async fn hit<'e>(
    executor: impl Executor<'e, Database = Any>,
    key: &str,
    window_start: Millis,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
           hits = CASE WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.hits + 1 ELSE 1 END, \
           window_start = excluded.window_start \
         RETURNING hits",
    )
    .bind(key.to_owned())
    .bind(window_start)
    .fetch_one(executor)
    .await
}
