//! What every answer carries, and what every request must fit in before it
//! is routed: response headers a browser or proxy acts on, and size limits
//! answered as JSON like every other refusal.

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest request target (path and query) served.
const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes (names and values) served.
const MAX_HEADER_BYTES: usize = 16 * 1024;

pub async fn middleware(request: Request<Body>, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return refuse(StatusCode::URI_TOO_LONG, "The request target is too long");
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request headers are too large",
        );
    }
    // Tokens travel in these answers: no cache may keep them.
    let tokens = request.uri().path().starts_with("/Auth/");
    let mut response = next.run(request).await;
    // tower-http's timeout answers 408 with no body: say it as JSON.
    if response.status() == StatusCode::REQUEST_TIMEOUT
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        tracing::warn!("request took too long");
        response = ApiError::Status(
            StatusCode::REQUEST_TIMEOUT,
            "The request took too long".into(),
        )
        .into_response();
    }
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if tokens {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn refuse(status: StatusCode, detail: &str) -> Response {
    let mut response = ApiError::Status(status, detail.into()).into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
