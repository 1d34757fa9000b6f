//! `GET /Admin/audit`: the audit log, searched (admin only).

use axum::Json;
use axum::extract::State;
use locker_core::clock::parse_time;
use locker_core::store::audit::{self, AuditEntry};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::auth::Admin;
use crate::error::{ErrorBody, Result, ValidationErrorBody};
use crate::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_audit))
}

/// Filters on the audit log; every one given must match.
#[derive(Debug, Default, Clone, Deserialize, Validate, IntoParams)]
pub struct AuditQuery {
    /// Entries about this locker, or about an item that was in it.
    pub locker_id: Option<i64>,
    /// Entries about this item.
    pub item_id: Option<i64>,
    /// Entries by this user.
    pub actor_id: Option<i64>,
    /// Entries by the user with this email.
    #[validate(custom(function = "valid_actor_email"))]
    #[param(schema_with = actor_email_schema)]
    pub actor_email: Option<String>,
    /// An action (`locker.unlocked`) or a family of them (`locker`).
    #[validate(custom(function = "valid_action"))]
    #[param(schema_with = action_schema)]
    pub action: Option<String>,
    /// From this time on: RFC 3339, or a date-time without offset read as UTC.
    #[validate(custom(function = "valid_time"))]
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Before this time: RFC 3339, or a date-time without offset read as UTC.
    #[validate(custom(function = "valid_time"))]
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Entries older than this id: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// At most this many entries (1 to 200, default 50).
    #[validate(range(min = 1, max = 200, message = "limit must be between 1 and 200"))]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

fn actor_email_schema() -> Object {
    crate::text::line_schema(1, 254).build()
}

fn action_schema() -> Object {
    crate::text::line_schema(1, 64)
        .examples(["locker.unlocked", "locker"])
        .build()
}

fn valid_actor_email(email: &str) -> Result<(), ValidationError> {
    crate::text::line("actor_email", email, 1, 254)
}

fn valid_action(action: &str) -> Result<(), ValidationError> {
    crate::text::line("action", action, 1, 64)
}

fn valid_time(text: &str) -> Result<(), ValidationError> {
    match parse_time(text) {
        Some(_) => Ok(()),
        None => Err(ValidationError::new("time").with_message(
            "expected a date-time such as 2026-11-28T10:44:00Z or 2026-11-28T10:44".into(),
        )),
    }
}

impl AuditQuery {
    /// The search it asks for; valid input (`Validate`) is assumed.
    pub fn search(&self) -> audit::Search {
        audit::Search {
            locker_id: self.locker_id,
            item_id: self.item_id,
            actor_id: self.actor_id,
            actor_email: self.actor_email.as_ref().map(|e| e.trim().to_owned()),
            action: self.action.as_ref().map(|a| a.trim().to_owned()),
            since: self.since.as_deref().and_then(parse_time),
            until: self.until.as_deref().and_then(parse_time),
            before_id: self.before,
            limit: self.limit.unwrap_or(50),
        }
    }
}

/// One page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` on the last one.
    pub next_before: Option<i64>,
}

/// Run a search and page it: a full page means there may be more.
pub async fn page(state: &AppState, query: &AuditQuery) -> Result<AuditPage> {
    let search = query.search();
    let entries = audit::search(state.db.pool(), &search).await?;
    let next_before = (entries.len() as i64 == search.limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(AuditPage {
        entries,
        next_before,
    })
}

/// Search the audit log: who changed what, when and why; newest first.
#[utoipa::path(get, path = "/Admin/audit", tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ValidationErrorBody),
    ))]
#[tracing::instrument(skip_all)]
async fn search_audit(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>> {
    Ok(Json(page(&state, &query).await?))
}
