//! Signing in to the console: a session cookie (HttpOnly, SameSite=Strict,
//! Secure behind TLS) holding a signed console token for a session row, so
//! signing out and revocation work as for API logins; and a CSRF token on
//! every form, derived from that cookie, which another site can neither read
//! nor guess.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use locker_core::domain::{Role, User};
use locker_core::store::sessions;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::views;
use crate::auth::TokenKind;
use crate::error::ApiError;
use crate::state::AppState;

const COOKIE: &str = "lx_console";
/// Ties the sign-in form to the browser that was shown it.
const SIGN_IN_COOKIE: &str = "lx_sign_in";

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Operator {
    pub user: User,
    pub session_id: String,
    /// What every form of this session must send back.
    pub csrf: String,
}

/// Why a console request was not served.
pub enum Refusal {
    /// No valid sign-in: to the sign-in page.
    SignIn,
    NotAdmin,
    Error(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self::Error(error)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/console/sign-in").into_response(),
            Self::NotAdmin => views::refused(
                StatusCode::FORBIDDEN,
                "This console is for admins. Your account is not an admin.",
            ),
            Self::Error(error) => views::error_page(error),
        }
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        Self::signed_in(&parts.headers, state).await
    }
}

impl Operator {
    async fn signed_in(headers: &HeaderMap, state: &AppState) -> Result<Self, Refusal> {
        let token = cookie(headers, COOKIE).ok_or(Refusal::SignIn)?;
        let claims = state
            .tokens
            .verify(TokenKind::Console, token, state.clock.now_millis())
            .ok_or(Refusal::SignIn)?;
        let user = crate::auth::user_of(state, &claims)
            .await?
            .ok_or(Refusal::SignIn)?;
        if user.role != Role::Admin {
            return Err(Refusal::NotAdmin);
        }
        Ok(Self {
            user,
            session_id: claims.sid,
            csrf: csrf_of(&claims.jti),
        })
    }

    /// Whether a form's CSRF token is this session's.
    pub fn sent(&self, token: &str) -> bool {
        same(token, &self.csrf)
    }
}

/// The answer to a form whose CSRF token is not the session's.
pub fn stale_form() -> Response {
    views::refused(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from the console. Reload the page and try again.",
    )
}

fn csrf_of(jti: &str) -> String {
    hex(&Sha256::digest(format!("locker-console-csrf:{jti}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name`.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` for the console: never readable by scripts nor sent by
/// other sites; `Secure` when the browser reached us over TLS.
fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are token characters")
}

/// The sign-in page.
pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Already signed in: straight to the console.
    if Operator::signed_in(&headers, &state).await.is_ok() {
        return Redirect::to("/console/").into_response();
    }
    sign_in_page(&headers, StatusCode::OK, None)
}

fn sign_in_page(headers: &HeaderMap, status: StatusCode, problem: Option<&str>) -> Response {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let page = views::page(
        "Sign in",
        None,
        views::Nav::None,
        html! {
            h1 { "Sign in" }
            @if let Some(problem) = problem {
                p.error role="alert" { (problem) }
            }
            form.sign-in method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    );
    let mut response = (status, page).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(headers, SIGN_IN_COOKIE, &token, 3600),
    );
    response
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// Checks the password as `/Auth/login` does (same limits), then starts a
/// console session for an admin.
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&form.csrf, expected) {
        let problem = "The sign-in form expired; please try again.";
        return sign_in_page(&headers, StatusCode::FORBIDDEN, Some(problem));
    }
    let user =
        match crate::routes::auth::authenticate(&state, client.ip(), &form.email, form.password)
            .await
        {
            Ok(user) => user,
            Err(ApiError::Unauthorized(detail)) => {
                return sign_in_page(&headers, StatusCode::UNAUTHORIZED, Some(detail));
            }
            Err(ApiError::TooManyRequests { detail, .. }) => {
                return sign_in_page(&headers, StatusCode::TOO_MANY_REQUESTS, Some(detail));
            }
            Err(error) => return views::error_page(error),
        };
    if user.role != Role::Admin {
        return Refusal::NotAdmin.into_response();
    }
    match start(&state, &user).await {
        Ok(token) => {
            let mut response = Redirect::to("/console/").into_response();
            let ttl = state.tokens.ttl(TokenKind::Console).as_secs();
            let headers_out = response.headers_mut();
            headers_out.append(
                header::SET_COOKIE,
                set_cookie(&headers, COOKIE, &token, ttl),
            );
            headers_out.append(
                header::SET_COOKIE,
                set_cookie(&headers, SIGN_IN_COOKIE, "", 0),
            );
            response
        }
        Err(error) => views::error_page(error),
    }
}

async fn start(state: &AppState, user: &User) -> Result<String, ApiError> {
    let now = state.clock.now_millis();
    let session_id = uuid::Uuid::new_v4().to_string();
    sessions::create(state.db.pool(), &session_id, user.id, now).await?;
    let issued = state
        .tokens
        .issue(TokenKind::Console, user.id, &session_id, now)?;
    Ok(issued.token)
}

#[derive(Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: String,
}

/// Ends the console session here and in every api process.
pub async fn sign_out(
    State(state): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    if !operator.sent(&form.csrf) {
        return stale_form();
    }
    let now = state.clock.now_millis();
    match sessions::revoke(
        state.db.pool(),
        &operator.session_id,
        now,
        "console sign-out",
    )
    .await
    {
        Ok(_) => state.sessions.clear(),
        Err(error) => return views::error_page(error.into()),
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&headers, COOKIE, "", 0));
    response
}
