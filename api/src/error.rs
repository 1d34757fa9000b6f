//! The one error type of the HTTP layer. Every refusal is JSON with a `detail`;
//! internal causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use locker_core::exchange;
use serde::Serialize;
use utoipa::ToSchema;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// How long a client is asked to wait when the database is out of reach.
const RETRY_UNAVAILABLE_SECS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// 429 with `Retry-After` in seconds.
    #[error("{detail}")]
    TooManyRequests {
        detail: &'static str,
        retry_after_secs: u64,
    },
    /// 503 with `Retry-After`: the database is out of reach for now.
    #[error("database unavailable")]
    Unavailable,
    /// A refusal whose status comes from the framework (413, 415).
    #[error("{1}")]
    Status(StatusCode, String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// `{"detail": "..."}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// A 422 names each field it refuses, in the original product's shape:
/// `{"detail": [{"loc": ["body", "email"], "msg": "...", "type": "value_error"}]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the value was: `body`, `query` or `path`, then the field.
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: &[&str], msg: impl Into<String>) -> Self {
        Self {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind: "value_error".into(),
        }
    }
}

impl ApiError {
    /// One refused value at `loc`, e.g. `&["body", "email"]`.
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(loc, msg)])
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if locker_core::db::is_unavailable(&error) {
            tracing::warn!(%error, "database unavailable");
            return Self::Unavailable;
        }
        Self::Internal(anyhow::Error::new(error).context("database"))
    }
}

/// The exchange's refusals, as the people who meet them read them.
impl From<exchange::Error> for ApiError {
    fn from(error: exchange::Error) -> Self {
        use exchange::Error as E;
        match error {
            E::LockerNotFound => Self::NotFound("Locker not found"),
            E::LockerNotAvailable => Self::Conflict("Locker is not available".into()),
            E::LockerEmpty => Self::Conflict("Locker holds no item".into()),
            E::LockerOccupied => Self::Conflict(
                "Locker holds an item; wait until it is collected or force-clear it first".into(),
            ),
            E::NoDoor => Self::Conflict("Locker has no agent to drive its door".into()),
            // A well-formed code that opens nothing: refused, not malformed.
            E::InvalidCode => Self::Forbidden("Invalid or expired code"),
            E::Database(error) => error.into(),
            // The client tries again; the transition's conditions make that safe.
            E::Commit(error) => {
                tracing::warn!(%error, "commit outcome unknown");
                Self::Unavailable
            }
            E::Internal(error) => Self::Internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            Self::Invalid(fields) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(ValidationErrorBody { detail: fields }),
                )
                    .into_response();
            }
            Self::Unauthorized(detail) => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    Json(ErrorBody {
                        detail: detail.into(),
                    }),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Self::TooManyRequests {
                detail,
                retry_after_secs,
            } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(ErrorBody {
                        detail: detail.into(),
                    }),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
                return response;
            }
            Self::Unavailable => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(ErrorBody {
                        detail: "The service is briefly unavailable; try again in a few seconds"
                            .into(),
                    }),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_UNAVAILABLE_SECS),
                );
                return response;
            }
            Self::BadRequest(detail) => (StatusCode::BAD_REQUEST, detail),
            Self::Forbidden(detail) => (StatusCode::FORBIDDEN, detail.into()),
            Self::NotFound(detail) => (StatusCode::NOT_FOUND, detail.into()),
            Self::Conflict(detail) => (StatusCode::CONFLICT, detail),
            Self::Status(status, detail) => (status, detail),
            Self::Internal(error)
                if error
                    .chain()
                    .filter_map(|e| e.downcast_ref::<sqlx::Error>())
                    .any(locker_core::db::is_unavailable) =>
            {
                return Self::Unavailable.into_response();
            }
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error".to_owned(),
                )
            }
        };
        (status, Json(ErrorBody { detail })).into_response()
    }
}
