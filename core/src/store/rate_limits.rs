//! Fixed-window counters in the database, so every api instance sees the
//! same limits.

use std::collections::HashMap;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Executor, Row};

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
    let hits = hit_each(executor, &[key], window_start).await?;
    Ok(hits.first().copied().unwrap_or(1))
}

/// Counts one hit on each of `keys` (all different) in the window starting
/// at `window_start`, in one statement; returns the hits so far on each, in
/// the order of `keys`.
pub async fn hit_each<'e>(
    executor: impl Executor<'e, Database = Any>,
    keys: &[&str],
    window_start: Millis,
) -> Result<Vec<i64>, sqlx::Error> {
    let counts: Vec<Count> = keys
        .iter()
        .map(|key| Count {
            key,
            window_start,
            hits: 1,
        })
        .collect();
    count(executor, &counts).await
}

/// Ends an `INSERT INTO rate_limits (key, window_start, hits)`: the hits
/// are added to a counter's in the same window, or start it afresh in a
/// new one.
pub(crate) const ADDED: &str = "ON CONFLICT (key) DO UPDATE SET \
       hits = CASE WHEN rate_limits.window_start = excluded.window_start \
         THEN rate_limits.hits + excluded.hits ELSE excluded.hits END, \
       window_start = excluded.window_start";

/// What [`count`] adds to one counter.
#[derive(Debug, Clone, Copy)]
pub struct Count<'a> {
    pub key: &'a str,
    /// The start of the counter's window.
    pub window_start: Millis,
    /// Hits to add: 0 reads the counter without counting one.
    pub hits: i64,
}

/// Adds each of `counts` (keys all different) to its counter, each in its
/// own window, in one statement; returns the hits so far on each (those
/// added included), in the order of `counts`.
pub async fn count<'e>(
    executor: impl Executor<'e, Database = Any>,
    counts: &[Count<'_>],
) -> Result<Vec<i64>, sqlx::Error> {
    // Placeholders only: the keys themselves are bound.
    let rows = (0..counts.len())
        .map(|n| format!("(${}, ${}, ${})", 3 * n + 1, 3 * n + 2, 3 * n + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let mut query = sqlx::query_as::<_, (String, i64)>(AssertSqlSafe(format!(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES {rows} {ADDED} \
         RETURNING key, hits"
    )));
    for count in counts {
        query = query
            .bind(count.key.to_owned())
            .bind(count.window_start)
            .bind(count.hits);
    }
    let counted: HashMap<String, i64> = query.fetch_all(executor).await?.into_iter().collect();
    Ok(counts
        .iter()
        .map(|count| counted.get(count.key).copied().unwrap_or(count.hits))
        .collect())
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

/// A counter a request is counted on, and the most hits it allows.
pub struct Limit<'a> {
    pub count: Count<'a>,
    /// Refused once the counter's hits (those added included) pass this.
    pub most: i64,
}

/// The budgets a request is counted against (keys all different), checked
/// with the change it asks for: where writes chain, in the change's own
/// statement, which makes the change only when none refuses.
pub struct Gate<'a>(pub Vec<Limit<'a>>);

/// The parameters each limit of a [`Gate`] binds.
const GATE_PARAMS: usize = 4;

impl Gate<'_> {
    /// SQL: `counted AS (…), refused AS (…)` for a gate of `limits`
    /// limits bound from `$first` (see [`Gate::bind`]). `refused` is one
    /// row: `n`, the position of the first limit that refuses, or NULL.
    pub fn ctes(limits: usize, first: usize) -> String {
        let p = |n: usize, k: usize| first + n * GATE_PARAMS + k;
        let counts = (0..limits)
            .map(|n| format!("(${}, ${}, ${})", p(n, 0), p(n, 1), p(n, 2)))
            .collect::<Vec<_>>()
            .join(", ");
        let most = (0..limits)
            .map(|n| {
                format!(
                    "(CAST(${} AS TEXT), CAST(${} AS BIGINT), {n})",
                    p(n, 0),
                    p(n, 3)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "counted AS (INSERT INTO rate_limits (key, window_start, hits) VALUES {counts} \
               {ADDED} RETURNING key, hits), \
             refused AS (SELECT MIN(limits.n) AS n FROM counted \
               JOIN (VALUES {most}) AS limits (key, most, n) ON limits.key = counted.key \
               WHERE counted.hits > limits.most)"
        )
    }

    /// Binds the parameters of [`Gate::ctes`], after those `query` has.
    pub fn bind<'q>(
        &self,
        mut query: Query<'q, Any, AnyArguments>,
    ) -> Query<'q, Any, AnyArguments> {
        for limit in &self.0 {
            query = query
                .bind(limit.count.key.to_owned())
                .bind(limit.count.window_start)
                .bind(limit.count.hits)
                .bind(limit.most);
        }
        query
    }

    /// The first limit that refused, read from a row with `refused.n` as
    /// `refused`.
    pub fn refused_in(row: &AnyRow) -> Result<Option<usize>, sqlx::Error> {
        let n: Option<i64> = row.try_get("refused")?;
        Ok(n.map(|n| n as usize))
    }

    /// Counts the request on each limit in a statement of its own; the
    /// first that refuses.
    pub async fn count<'e>(
        &self,
        executor: impl Executor<'e, Database = Any>,
    ) -> Result<Option<usize>, sqlx::Error> {
        let counts: Vec<Count> = self.0.iter().map(|limit| limit.count).collect();
        let hits = count(executor, &counts).await?;
        Ok(self
            .0
            .iter()
            .zip(hits)
            .position(|(limit, hits)| hits > limit.most))
    }
}
