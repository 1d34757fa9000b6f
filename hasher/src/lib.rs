//! `locker-hasher`: Argon2id for the api and the workers, in a process of
//! its own so an operator can give it a lower CPU weight than the door work
//! (a container's `cpu_shares`, a unit's `CPUWeight`). It serves the wire
//! in `locker_core::hashing::service` to callers holding `HASHER_TOKEN`, and
//! keeps nothing: every answer depends only on its request.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use locker_core::hashing::service::{
    HASH_PATH, HashAnswer, HashRequest, MAX_SECRET_BYTES, Refusal, VERIFY_PATH, VerifyAnswer,
    VerifyRequest,
};
use locker_core::hashing::{MalformedHash, Threads};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request body is at most this long: a secret, a stored hash, JSON.
const MAX_BODY_BYTES: usize = 4 * 1024;

#[derive(Clone)]
struct Service {
    threads: Threads,
    /// SHA-256 of the token: compared digest to digest, so how long a wrong
    /// token took to refuse says nothing about the token.
    token_digest: [u8; 32],
}

/// The service's routes, hashing on `threads` for callers holding `token`.
fn router(threads: Threads, token: &SecretString) -> Router {
    let service = Service {
        threads,
        token_digest: digest(token.expose_secret()),
    };
    Router::new()
        .route(HASH_PATH, post(hash))
        .route(VERIFY_PATH, post(verify))
        .route_layer(middleware::from_fn_with_state(service.clone(), authorize))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}

/// Listens on `addr` (port 0: one the system picks) and serves there until
/// `shutdown` resolves, then finishes the hashes under way. Returns the
/// address bound and the serving task.
pub async fn start(
    addr: SocketAddr,
    threads: Threads,
    token: &SecretString,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let serving = axum::serve(listener, router(threads, token)).with_graceful_shutdown(shutdown);
    Ok((bound, tokio::spawn(serving.into_future())))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn authorize(State(service): State<Service>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if digest(token) == service.token_digest => next.run(request).await,
        _ => Refused(
            StatusCode::UNAUTHORIZED,
            "A valid HASHER_TOKEN is required".into(),
        )
        .into_response(),
    }
}

async fn hash(
    State(service): State<Service>,
    body: Result<Json<HashRequest>, JsonRejection>,
) -> Result<Json<HashAnswer>, Refused> {
    let Json(request) = body?;
    let secret = checked(request.secret)?;
    let hash = service.threads.hash(secret).await.map_err(failed)?;
    Ok(Json(HashAnswer { hash }))
}

async fn verify(
    State(service): State<Service>,
    body: Result<Json<VerifyRequest>, JsonRejection>,
) -> Result<Json<VerifyAnswer>, Refused> {
    let Json(request) = body?;
    let secret = checked(request.secret)?;
    match service.threads.verify(secret, request.hash).await {
        Ok(matches) => Ok(Json(VerifyAnswer { matches })),
        Err(error) if error.chain().any(|cause| cause.is::<MalformedHash>()) => {
            Err(Refused(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))
        }
        Err(error) => Err(failed(error)),
    }
}

/// The secret, unless it is too long to be one of ours.
fn checked(secret: String) -> Result<SecretString, Refused> {
    if secret.len() > MAX_SECRET_BYTES {
        return Err(Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("secret is longer than {MAX_SECRET_BYTES} bytes"),
        ));
    }
    Ok(secret.into())
}

fn failed(error: anyhow::Error) -> Refused {
    tracing::error!(error = format!("{error:#}"), "hashing failed");
    Refused(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed".into())
}

/// A refusal, answered as `{"detail": "..."}` with its status.
struct Refused(StatusCode, String);

impl From<JsonRejection> for Refused {
    fn from(rejection: JsonRejection) -> Self {
        Self(rejection.status(), rejection.body_text())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let Self(status, detail) = self;
        (status, Json(Refusal { detail })).into_response()
    }
}
