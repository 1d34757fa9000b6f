//! Building and serving the API: one place that wires routes, middleware
//! and state, so `main` and the tests start the same thing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{Request, Response, StatusCode};
use locker_core::Clock;
use locker_core::config::{ApiConfig, HttpConfig};
use locker_core::db::notices;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::admin_seed;
use crate::error::ApiError;
use crate::routes::{admin, audit, auth, docs, health, items, lockers, pickup};
use crate::state::AppState;
use crate::trace;

/// Bodies are small JSON documents; anything larger is refused before parsing.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    http: HttpConfig,
}

impl Application {
    /// Connects to the database (applying migrations), makes sure the
    /// configured admin exists, and binds the listener.
    pub async fn build(config: &ApiConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let state = AppState::connect(config, clock).await?;
        if let Some(seed) = &config.admin {
            admin_seed::ensure_admin(&state.db, &state.hasher, seed, state.clock.now_millis())
                .await?;
        }
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        Ok(Self {
            listener,
            router: router(state.clone(), config.http.request_timeout),
            state,
            http: config.http.clone(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    /// The database stays open for what runs beside the server (the relay's
    /// last stamps, workers in the same process): its owner closes it.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let housekeeping = tokio::spawn(crate::limits::housekeeping(self.state.clone()));
        let stop_following = CancellationToken::new();
        let changes = self.state.changes.clone();
        let following = match self.state.db.notices_url() {
            // One connection hears every channel this process follows.
            Some(url) => tokio::spawn(notices::follow(
                url.to_owned(),
                "database notices",
                stop_following.clone(),
                vec![
                    self.state.sessions.follower(),
                    self.state.places.follower(),
                    changes.follower(),
                ],
            )),
            None => {
                let (changes, db) = (changes.clone(), self.state.db.clone());
                let stop = stop_following.clone();
                tokio::spawn(async move { changes.poll(db, stop).await })
            }
        };
        // Open console pages stream until told to stop; tell them first.
        let shutdown = async move {
            shutdown.await;
            changes.close();
        };
        crate::serve::serve(self.listener, self.router, &self.http, shutdown).await;
        housekeeping.abort();
        stop_following.cancel();
        let _ = following.await;
        Ok(())
    }
}

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(auth::router())
        .merge(lockers::router())
        .merge(items::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(pickup::router())
        .split_for_parts();
    let mut openapi = docs::with_common_refusals(openapi);
    items::require_a_receiver(&mut openapi);

    let traced = api
        .merge(docs::router(openapi))
        .merge(crate::console::router())
        .fallback(|| async { ApiError::NotFound("Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::Status(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn(measure))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(trace::drop_unsafe_id));
    traced
        .merge(health::router())
        .layer(axum::middleware::from_fn(crate::guard::middleware))
        .with_state(state)
}

/// Counts and times every routed request by its route template.
async fn measure(request: Request<Body>, next: axum::middleware::Next) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    locker_core::metrics::http_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

fn request_span(request: &Request<Body>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let trace_id = request
        .headers()
        .get(trace::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route, trace_id)
}

/// One line per request: method and route template (from the span), status, latency.
fn log_response(response: &Response<Body>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = format!("{:.2}", latency.as_secs_f64() * 1000.0),
        "request done"
    );
}
