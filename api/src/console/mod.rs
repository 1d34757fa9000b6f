//! `/console`: the operators' web console, served by the api itself. Pages
//! are rendered on the server (maud); one small script and one stylesheet,
//! compiled into the binary, keep the live parts current. Nothing is loaded
//! from anywhere else, and the Content-Security-Policy says so.

mod actions;
mod live;
mod pages;
mod session;
mod views;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use live::Changes;

use crate::state::AppState;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(pages::places))
        .route("/console/alarms", get(pages::alarms))
        .route("/console/lockers/{id}", get(pages::locker))
        .route("/console/lockers/{id}/{action}", post(actions::act))
        .route("/console/audit", get(pages::audit))
        .route("/console/events", get(live::events))
        .route(
            "/console/sign-in",
            get(session::form).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .layer(axum::middleware::from_fn(headers))
}

/// Pages show live state and carry CSRF tokens: never cached, never framed.
async fn headers(request: Request<Body>, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let cache = if asset { "max-age=3600" } else { "no-store" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
}
