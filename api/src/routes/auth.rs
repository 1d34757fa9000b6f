//! `/Auth`: accounts and logins.

use axum::Json;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use locker_core::db::is_unique_violation;
use locker_core::domain::{Email, Role, User};
use locker_core::store::users;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::Object;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use super::Page;
use crate::auth::session::{self, TokenPair};
use crate::auth::{Admin, Caller};
use crate::error::{ApiError, ErrorBody, Result, ValidationErrorBody};
use crate::extract::{Query, ValidJson};
use crate::limits;
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
    #[validate(custom(function = "valid_name"))]
    #[schema(schema_with = name_schema)]
    pub name: String,
    #[validate(custom(function = "valid_email"))]
    #[schema(schema_with = email_schema)]
    pub email: String,
    /// 8 to 128 characters.
    #[validate(length(
        min = 8,
        max = 128,
        message = "password must be 8 to 128 characters long"
    ))]
    #[schema(example = "StrongPassword@123", min_length = 8, max_length = 128)]
    pub password: String,
}

fn name_schema() -> Object {
    crate::text::line_schema(1, 100)
        .description(Some("1 to 100 characters, on one line."))
        .examples(["John"])
        .build()
}

fn email_schema() -> Object {
    crate::text::email_schema()
        .examples(["john@example.com"])
        .build()
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
        (status = 429, description = "Too many wrong passwords (see Retry-After)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ValidJson(body): ValidJson<LoginRequest>,
) -> Result<Json<TokenPair>> {
    let user = authenticate(&state, client.ip(), &body.email, body.password).await?;
    Ok(Json(session::start(&state, user.id).await?))
}

/// The account `email` and `password` belong to; 401 otherwise, 429 once
/// too many wrong passwords came from `client` or for the account.
pub(crate) async fn authenticate(
    state: &AppState,
    client: std::net::IpAddr,
    email: &str,
    password: String,
) -> Result<User> {
    // Wrong passwords are counted per client address and per account (known
    // or not, alike). The account's budget refills in minutes, so a stranger
    // guessing at it cannot keep its owner out for long.
    let account = email.trim().to_lowercase();
    let per_client = format!("login:fail:client:{client}");
    let per_account = format!("login:fail:account:{account}");
    let budgets = [
        limits::Budget {
            key: &per_client,
            limit: LOGIN_FAILURES_PER_CLIENT,
            window: Duration::from_secs(10 * 60),
            detail: "Too many wrong passwords from here; try again later",
        },
        limits::Budget {
            key: &per_account,
            limit: LOGIN_FAILURES_PER_ACCOUNT,
            window: Duration::from_secs(5 * 60),
            detail: "Too many wrong passwords for this account; try again in a few minutes",
        },
    ];
    for budget in &budgets {
        budget.ensure_left(state).await?;
    }
    // An unknown or malformed email does the same hashing work as a wrong password.
    let found = match Email::parse(email) {
        Ok(email) => users::find_with_hash(state.db.pool(), &email).await?,
        Err(_) => None,
    };
    let (user, hash) = found.map_or((None, None), |(u, h)| (Some(u), Some(h)));
    let matches = state.hasher.verify(password.into(), hash).await?;
    match user {
        Some(user) if matches => Ok(user),
        _ => {
            for budget in &budgets {
                match budget.spend(state).await {
                    // This try is answered 401 all the same; the next waits.
                    Ok(()) | Err(ApiError::TooManyRequests { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            Err(ApiError::Unauthorized("Incorrect email or password"))
        }
    }
}

/// Wrong passwords allowed from one client address in 10 minutes.
const LOGIN_FAILURES_PER_CLIENT: i64 = 20;
/// Wrong passwords allowed on one account in 5 minutes.
const LOGIN_FAILURES_PER_ACCOUNT: i64 = 10;

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
