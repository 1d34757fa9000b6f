//! `/Auth`: accounts and logins.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use locker_core::db::is_unique_violation;
use locker_core::domain::{Email, Role, User};
use locker_core::store::users;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use super::Page;
use crate::auth::session::{self, TokenPair};
use crate::auth::{Admin, Caller};
use crate::error::{ApiError, ErrorBody, Result, ValidationErrorBody};
use crate::extract::{Query, ValidJson};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_users))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct SignupRequest {
    /// 1 to 100 characters.
    #[validate(custom(function = "valid_name"))]
    #[schema(example = "John")]
    pub name: String,
    #[validate(custom(function = "valid_email"))]
    #[schema(example = "john@example.com")]
    pub email: String,
    /// 8 to 128 characters.
    #[validate(length(
        min = 8,
        max = 128,
        message = "password must be 8 to 128 characters long"
    ))]
    #[schema(example = "StrongPassword@123")]
    pub password: String,
}

fn valid_name(name: &str) -> Result<(), ValidationError> {
    crate::text::line("name", name, 1, 100)
}

fn valid_email(email: &str) -> Result<(), ValidationError> {
    Email::parse(email)
        .map(|_| ())
        .map_err(|msg| ValidationError::new("email").with_message(msg.into()))
}

/// Create an account.
#[utoipa::path(post, path = "/Auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created", body = User),
        (status = 409, description = "Email already registered", body = ErrorBody),
        (status = 422, description = "Invalid name, email or password", body = ValidationErrorBody),
    ))]
#[tracing::instrument(skip_all)]
async fn signup(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<SignupRequest>,
) -> Result<(StatusCode, Json<User>)> {
    let email =
        Email::parse(&body.email).map_err(|msg| ApiError::invalid(&["body", "email"], msg))?;
    let hash = state.hasher.hash(body.password.into()).await?;
    let new_user = users::NewUser {
        name: body.name.trim(),
        email: &email,
        password_hash: &hash,
        role: Role::User,
    };
    match users::insert(state.db.pool(), new_user, state.clock.now_millis()).await {
        Ok(user) => Ok((StatusCode::CREATED, Json(user))),
        Err(e) if is_unique_violation(&e) => {
            Err(ApiError::Conflict("Email already registered".into()))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "john@example.com")]
    pub email: String,
    #[schema(example = "StrongPassword@123")]
    pub password: String,
}

/// Log in: an access token and a refresh token.
#[utoipa::path(post, path = "/Auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPair),
        (status = 401, description = "Incorrect email or password", body = ErrorBody),
        (status = 422, description = "Malformed body", body = ValidationErrorBody),
    ))]
#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<LoginRequest>,
) -> Result<Json<TokenPair>> {
    // An unknown or malformed email does the same hashing work as a wrong password.
    let found = match Email::parse(&body.email) {
        Ok(email) => users::find_with_hash(state.db.pool(), &email).await?,
        Err(_) => None,
    };
    let (user, hash) = found.map_or((None, None), |(u, h)| (Some(u), Some(h)));
    let matches = state.hasher.verify(body.password.into(), hash).await?;
    match user {
        Some(user) if matches => Ok(Json(session::start(&state, user.id).await?)),
        _ => Err(ApiError::Unauthorized("Incorrect email or password")),
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange a refresh token for a new pair. The old refresh token is spent;
/// presenting it again ends the whole login.
#[utoipa::path(post, path = "/Auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenPair),
        (status = 401, description = "Invalid, expired, spent or revoked refresh token", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
async fn refresh(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<RefreshRequest>,
) -> Result<Json<TokenPair>> {
    Ok(Json(session::rotate(&state, &body.refresh_token).await?))
}

/// End the login a refresh token belongs to: its access and refresh tokens
/// stop working.
#[utoipa::path(post, path = "/Auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Invalid or expired refresh token", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
async fn logout(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<RefreshRequest>,
) -> Result<StatusCode> {
    session::end(&state, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, path = "/Auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = User),
        (status = 401, body = ErrorBody),
    ))]
async fn me(caller: Caller) -> Json<User> {
    Json(caller.user)
}

/// Every account (admin only).
#[utoipa::path(get, path = "/Auth/", tag = "auth",
    security(("bearer" = [])),
    params(Page),
    responses(
        (status = 200, body = Vec<User>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(page): Query<Page>,
) -> Result<Json<Vec<User>>> {
    Ok(Json(
        users::list(state.db.pool(), page.limit, page.offset).await?,
    ))
}
