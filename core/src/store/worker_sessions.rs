//! Worker processes that apply agents' messages, and when each was last
//! heard from. The broker keeps a message a process received but had not
//! acknowledged in that process's session until the same client id comes
//! back; a process that falls silent is found here, and one peer at a time
//! adopts its session to apply what is left in it.
//!
//! Times are on the database's clock, so processes on different machines
//! compare one clock.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};

use crate::Db;
use crate::clock::millis;

/// `client_id` is alive: it is no peer's to adopt, and an adoption under
/// way ends (the broker hands the session back when the process connects).
pub async fn heard_from(db: &Db, client_id: &str) -> Result<(), sqlx::Error> {
    let now = db.backend().clock_ms();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO worker_sessions (client_id, seen_at) VALUES ($1, {now}) \
         ON CONFLICT (client_id) DO UPDATE SET seen_at = excluded.seen_at, \
         adopted_by = NULL, adopted_until = NULL"
    )))
    .bind(client_id.to_owned())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// `client_id` stopped on purpose: a peer may adopt its session at once,
/// without waiting for it to fall silent.
pub async fn left(db: &Db, client_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE worker_sessions SET seen_at = 0 WHERE client_id = $1")
        .bind(client_id.to_owned())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Claims, for `adopter`, the session of one process silent for longer than
/// `silence` that no other adopter holds, for `lease`: its client id. Of
/// peers racing for the same session, one gets it; a claim whose adopter
/// fails runs out with its lease and the session is claimed again.
pub async fn claim_silent(
    db: &Db,
    adopter: &str,
    silence: Duration,
    lease: Duration,
) -> Result<Option<String>, sqlx::Error> {
    let backend = db.backend();
    let now = backend.clock_ms();
    let adoptable =
        format!("seen_at < {now} - $2 AND (adopted_until IS NULL OR adopted_until < {now})");
    let row = sqlx::query(AssertSqlSafe(format!(
        "UPDATE worker_sessions SET adopted_by = $1, adopted_until = {now} + $3 \
         WHERE client_id = (SELECT client_id FROM worker_sessions \
           WHERE client_id <> $1 AND {adoptable} ORDER BY seen_at LIMIT 1{skip}) \
         AND {adoptable} RETURNING client_id",
        skip = backend.skip_locked(),
    )))
    .bind(adopter.to_owned())
    .bind(millis(silence))
    .bind(millis(lease))
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| row.try_get("client_id")).transpose()
}

/// `adopter` applied what `client_id`'s session held and let it go: the
/// process is forgotten, unless it came back meanwhile.
pub async fn adopted(db: &Db, client_id: &str, adopter: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM worker_sessions WHERE client_id = $1 AND adopted_by = $2")
        .bind(client_id.to_owned())
        .bind(adopter.to_owned())
        .execute(db.pool())
        .await?;
    Ok(())
}
