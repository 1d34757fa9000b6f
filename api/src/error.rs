//! The one error type of the HTTP layer. Every refusal is JSON with a `detail`;
//! internal causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
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
    /// 503 with `Retry-After`: the database (or the hashing service) is
    /// out of reach for now.
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
            E::PlaceNotFound => Self::NotFound("No lockers at that place"),
            E::ItemNotFound => Self::NotFound("Item not found"),
            E::NotWaiting => {
                Self::Conflict("Only an item waiting in its locker can be given more time".into())
            }
            E::NoMoreExtensions(max) => Self::Conflict(format!(
                "The pickup deadline can be extended {max} time(s), and already was"
            )),
            E::NoneFits { size, free } => Self::Conflict(format!(
                "No free locker at that place fits a {} item; free now: {free}",
                size.as_str()
            )),
            E::LockerOccupied => Self::Conflict(
                "Locker holds an item; wait until it is collected or force-clear it first".into(),
            ),
            E::NoDoor => Self::Conflict("Locker has no agent to drive its door".into()),
            // A well-formed code that opens nothing: refused, not malformed.
            E::InvalidCode => Self::Forbidden("Invalid or expired code"),
            // A route that gates a request answers with its budget's window;
            // this is the answer without one.
            E::Limited(_) => Self::TooManyRequests {
                detail: "Too many requests; try again later",
                retry_after_secs: 60,
            },
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

/// What an error answers, whatever the page or document it is shown in.
pub struct Answer {
    pub status: StatusCode,
    pub detail: Detail,
    /// `WWW-Authenticate` or `Retry-After`, where the status calls for one.
    pub header: Option<(HeaderName, HeaderValue)>,
}

pub enum Detail {
    Text(String),
    Fields(Vec<FieldError>),
}

impl Detail {
    /// As one sentence: the text, or each refused field's message.
    pub fn sentence(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Fields(fields) => fields
                .iter()
                .map(|f| f.msg.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

impl ApiError {
    pub fn answer(self) -> Answer {
        let text = |status, detail: String| Answer {
            status,
            detail: Detail::Text(detail),
            header: None,
        };
        match self {
            Self::Invalid(fields) => Answer {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail: Detail::Fields(fields),
                header: None,
            },
            Self::Unauthorized(detail) => Answer {
                header: Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
                ..text(StatusCode::UNAUTHORIZED, detail.into())
            },
            Self::TooManyRequests {
                detail,
                retry_after_secs,
            } => Answer {
                header: Some((
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                )),
                ..text(StatusCode::TOO_MANY_REQUESTS, detail.into())
            },
            Self::Unavailable => Answer {
                header: Some((
                    header::RETRY_AFTER,
                    HeaderValue::from(RETRY_UNAVAILABLE_SECS),
                )),
                ..text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is briefly unavailable; try again in a few seconds".into(),
                )
            },
            Self::BadRequest(detail) => text(StatusCode::BAD_REQUEST, detail),
            Self::Forbidden(detail) => text(StatusCode::FORBIDDEN, detail.into()),
            Self::NotFound(detail) => text(StatusCode::NOT_FOUND, detail.into()),
            Self::Conflict(detail) => text(StatusCode::CONFLICT, detail),
            Self::Status(status, detail) => text(status, detail),
            Self::Internal(error)
                if error
                    .chain()
                    .filter_map(|e| e.downcast_ref::<sqlx::Error>())
                    .any(locker_core::db::is_unavailable) =>
            {
                Self::Unavailable.answer()
            }
            Self::Internal(error) if locker_core::hashing::is_unavailable(&error) => {
                tracing::warn!(error = format!("{error:#}"), "hashing service unavailable");
                Self::Unavailable.answer()
            }
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error".to_owned(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let answer = self.answer();
        let mut response = match answer.detail {
            Detail::Text(detail) => (answer.status, Json(ErrorBody { detail })).into_response(),
            Detail::Fields(detail) => {
                (answer.status, Json(ValidationErrorBody { detail })).into_response()
            }
        };
        if let Some((name, value)) = answer.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
