//! Liveness and readiness for orchestrators; outside the request log.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.db.ping().await {
        (StatusCode::OK, "ready")
    } else {
        tracing::warn!("readiness check failed: database unreachable");
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}
