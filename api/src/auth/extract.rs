use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use locker_core::domain::{Role, User};
use locker_core::store::sessions;

use super::TokenKind;
use super::tokens::Claims;
use crate::error::ApiError;
use crate::state::AppState;

/// The logged-in caller, from `Authorization: Bearer <access token>`. The
/// session behind the token is looked up, or found in the session cache
/// (`SessionCache`) that every change to sessions and users empties: logout
/// and reuse detection take effect at once, and a role change applies to
/// the next request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub session_id: String,
}

const NOT_AUTHENTICATED: &str = "Not authenticated";
const INVALID_TOKEN: &str = "Could not validate credentials";

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(NOT_AUTHENTICATED))?;
        let token = header
            .to_str()
            .ok()
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or(ApiError::Unauthorized(NOT_AUTHENTICATED))?;
        let claims = state
            .tokens
            .verify(TokenKind::Access, token.trim(), state.clock.now_millis())
            .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
        let user = user_of(state, &claims)
            .await?
            .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
        Ok(Self {
            user,
            session_id: claims.sid,
        })
    }
}

/// The user a genuine token's session belongs to, while that session lasts.
pub(crate) async fn user_of(state: &AppState, claims: &Claims) -> Result<Option<User>, ApiError> {
    let Ok(user_id) = claims.sub.parse::<i64>() else {
        return Ok(None);
    };
    if let Some(user) = state.sessions.get(&claims.sid, user_id) {
        return Ok(Some(user));
    }
    let ticket = state.sessions.ticket();
    let user = sessions::active_user(state.db.pool(), &claims.sid, user_id).await?;
    if let (Some(ticket), Some(user)) = (ticket, &user) {
        state
            .sessions
            .put(ticket, &claims.sid, user_id, user.clone());
    }
    Ok(user)
}

/// A caller with the admin role; 403 for anyone else.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.user.role != Role::Admin {
            return Err(ApiError::Forbidden("Admin privileges required"));
        }
        Ok(Self(caller))
    }
}
