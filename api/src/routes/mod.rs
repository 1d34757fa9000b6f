//! One module per resource, each with its own router; merged in `app`.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod docs;
pub mod health;
pub mod items;
pub mod lockers;
pub mod pickup;

use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

/// `?limit=&offset=` on list endpoints.
#[derive(Debug, Deserialize, Validate, IntoParams)]
pub struct Page {
    /// At most this many rows (1 to 200, default 50).
    #[validate(range(min = 1, max = 200, message = "limit must be between 1 and 200"))]
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: i64,
    /// Rows to skip (default 0).
    #[validate(range(min = 0, message = "offset must not be negative"))]
    #[serde(default)]
    #[param(minimum = 0)]
    pub offset: i64,
}

pub(crate) fn default_limit() -> i64 {
    50
}
