//! Logins and their refresh tokens.

use sqlx::{Any, Executor};

use crate::clock::Millis;
use crate::domain::User;
use crate::store::users;

pub async fn create<'e>(
    executor: impl Executor<'e, Database = Any>,
    session_id: &str,
    user_id: i64,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(session_id.to_owned())
        .bind(user_id)
        .bind(now)
        .execute(executor)
        .await?;
    Ok(())
}

pub struct NewRefreshToken<'a> {
    pub jti: &'a str,
    pub session_id: &'a str,
    pub issued_at: Millis,
    pub expires_at: Millis,
}

pub async fn insert_refresh_token<'e>(
    executor: impl Executor<'e, Database = Any>,
    token: NewRefreshToken<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (jti, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token.jti.to_owned())
    .bind(token.session_id.to_owned())
    .bind(token.issued_at)
    .bind(token.expires_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Spends a live refresh token of a live session, once. `None` when the token
/// is unknown, already spent, expired, or its session is revoked.
pub async fn spend_refresh_token<'e>(
    executor: impl Executor<'e, Database = Any>,
    jti: &str,
    now: Millis,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE refresh_tokens SET spent_at = $2 \
         WHERE jti = $1 AND spent_at IS NULL AND expires_at > $2 \
           AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL) \
         RETURNING session_id",
    )
    .bind(jti.to_owned())
    .bind(now)
    .fetch_optional(executor)
    .await
}

/// The session of a token that was already spent: seeing it again means it
/// was stolen or replayed.
pub async fn session_of_spent_token<'e>(
    executor: impl Executor<'e, Database = Any>,
    jti: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT session_id FROM refresh_tokens WHERE jti = $1 AND spent_at IS NOT NULL",
    )
    .bind(jti.to_owned())
    .fetch_optional(executor)
    .await
}

/// Ends a session: every access and refresh token issued under it stops working.
pub async fn revoke<'e>(
    executor: impl Executor<'e, Database = Any>,
    session_id: &str,
    now: Millis,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id.to_owned())
    .bind(now)
    .bind(reason.to_owned())
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends every live session of a user; returns how many.
pub async fn revoke_all_of<'e>(
    executor: impl Executor<'e, Database = Any>,
    user_id: i64,
    now: Millis,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .bind(reason.to_owned())
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// The user behind a live session, as it is now (role changes apply at once).
pub async fn active_user<'e>(
    executor: impl Executor<'e, Database = Any>,
    session_id: &str,
    user_id: i64,
) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, u.name, u.email, u.role, u.created_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL",
    )
    .bind(session_id.to_owned())
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(users::from_row).transpose()
}
