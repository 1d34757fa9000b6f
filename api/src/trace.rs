//! The trace id of a request: the `x-request-id` the client sent (when it is
//! sane) or one made by tower-http's `SetRequestIdLayer`. It is logged with
//! the request, carried by the jobs the request causes, and echoed in the
//! response (`PropagateRequestIdLayer`).

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;

pub const HEADER: &str = "x-request-id";

pub struct TraceId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TraceId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts
                .headers
                .get(HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

/// A client's id is kept only when it is short and plain; otherwise it is
/// dropped here and `SetRequestIdLayer` gives the request a new one.
pub async fn drop_unsafe_id(mut request: Request) -> Request {
    let plain = |id: &HeaderValue| {
        (1..=64).contains(&id.len())
            && id
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if request.headers().get(HEADER).is_some_and(|id| !plain(id)) {
        request.headers_mut().remove(HEADER);
    }
    request
}
