//! Fixed-window counters in the database, so every api instance sees the
//! same limits.

use sqlx::{Any, Executor};

use crate::clock::Millis;

/// The start of the fixed window of length `window` that `now` falls in.
pub fn window_start(now: Millis, window: Millis) -> Millis {
    now - now.rem_euclid(window)
}

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

/// The hits on `key` in the window starting at `window_start`, without
/// counting one.
pub async fn hits<'e>(
    executor: impl Executor<'e, Database = Any>,
    key: &str,
    window_start: Millis,
) -> Result<i64, sqlx::Error> {
    let hits: Option<i64> =
        sqlx::query_scalar("SELECT hits FROM rate_limits WHERE key = $1 AND window_start = $2")
            .bind(key.to_owned())
            .bind(window_start)
            .fetch_optional(executor)
            .await?;
    Ok(hits.unwrap_or(0))
}

/// Forgets counters whose window started before `before`; returns how many.
pub async fn forget_before<'e>(
    executor: impl Executor<'e, Database = Any>,
    before: Millis,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
        .bind(before)
        .execute(executor)
        .await?;
    Ok(done.rows_affected())
}
