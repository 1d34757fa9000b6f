//! The trace id of a request: the `x-request-id` the client sent (when it is
//! sane) or one made here. It is logged with the request, carried by the jobs
//! the request causes, and echoed in the response.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

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

/// Keeps a client's id only when it is short and plain; otherwise a new one.
pub fn sanitise(id: Option<&str>) -> String {
    match id {
        Some(id)
            if (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// Gives every request a sane `x-request-id` before it is logged, and
/// returns it with the response.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = sanitise(request.headers().get(HEADER).and_then(|v| v.to_str().ok()));
    let value = HeaderValue::from_str(&id).expect("sanitised ids are valid header values");
    request.headers_mut().insert(HEADER, value.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(HEADER, value);
    response
}
