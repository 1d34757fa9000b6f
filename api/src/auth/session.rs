//! Logins as sessions: start one, rotate its refresh token, end it.

use locker_core::store::{audit, sessions};
use serde::Serialize;
use utoipa::ToSchema;

use super::TokenKind;
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// The tokens a login or a refresh hands out.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

const INVALID_REFRESH: &str = "Invalid or expired refresh token";

/// A new login for `user_id`.
pub async fn start(state: &AppState, user_id: i64) -> Result<TokenPair> {
    let now = state.clock.now_millis();
    let session_id = uuid::Uuid::new_v4().to_string();
    let mut tx = state.db.begin().await?;
    sessions::create(&mut *tx, &session_id, user_id, now).await?;
    let pair = issue_pair(state, &mut tx, user_id, &session_id, now).await?;
    tx.commit().await?;
    Ok(pair)
}

/// Spends `refresh_token` for a new pair. A token already spent means someone
/// else holds a copy: the whole session is revoked.
pub async fn rotate(state: &AppState, refresh_token: &str) -> Result<TokenPair> {
    let now = state.clock.now_millis();
    let claims = state
        .tokens
        .verify(TokenKind::Refresh, refresh_token, now)
        .ok_or(ApiError::Unauthorized(INVALID_REFRESH))?;
    let user_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized(INVALID_REFRESH))?;

    let mut tx = state.db.begin().await?;
    if let Some(session_id) = sessions::spend_refresh_token(&mut *tx, &claims.jti, now).await? {
        let pair = issue_pair(state, &mut tx, user_id, &session_id, now).await?;
        tx.commit().await?;
        return Ok(pair);
    }
    let mut revoked = false;
    if let Some(session_id) = sessions::session_of_spent_token(&mut *tx, &claims.jti).await?
        && sessions::revoke(&mut *tx, &session_id, now, "refresh token reused").await?
    {
        revoked = true;
        audit::record(
            &mut *tx,
            audit::Entry {
                at: now,
                actor_id: Some(user_id),
                action: "session.revoked.refresh_reuse",
                subject: format!("user:{user_id}"),
                detail: format!("session {session_id}"),
                reason: None,
            },
        )
        .await?;
        tracing::warn!(user_id, %session_id, "refresh token reused; session revoked");
    }
    tx.commit().await?;
    if revoked {
        state.sessions.clear();
    }
    Err(ApiError::Unauthorized(INVALID_REFRESH))
}

/// Ends the login `refresh_token` belongs to.
pub async fn end(state: &AppState, refresh_token: &str) -> Result<()> {
    let now = state.clock.now_millis();
    let claims = state
        .tokens
        .verify(TokenKind::Refresh, refresh_token, now)
        .ok_or(ApiError::Unauthorized(INVALID_REFRESH))?;
    if sessions::revoke(state.db.pool(), &claims.sid, now, "logout").await? {
        // Ended here: not served from this process's cache, even before the
        // notice of the change comes back.
        state.sessions.clear();
    }
    Ok(())
}

async fn issue_pair(
    state: &AppState,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: i64,
    session_id: &str,
    now: i64,
) -> Result<TokenPair> {
    let refresh = state
        .tokens
        .issue(TokenKind::Refresh, user_id, session_id, now)?;
    sessions::insert_refresh_token(
        &mut **tx,
        sessions::NewRefreshToken {
            jti: &refresh.jti,
            session_id,
            issued_at: now,
            expires_at: refresh.expires_at,
        },
    )
    .await?;
    let access = state
        .tokens
        .issue(TokenKind::Access, user_id, session_id, now)?;
    Ok(TokenPair {
        access_token: access.token,
        refresh_token: refresh.token,
        token_type: "bearer",
        expires_in: state.tokens.ttl(TokenKind::Access).as_secs(),
    })
}
