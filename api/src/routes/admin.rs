//! `/Admin`: running the lockers (admin only). Each route checks its input
//! and calls one of the exchange's transitions, which audits it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use locker_core::domain::{Item, Locker, LockerSize, LockerStatus};
use locker_core::exchange::{Actor, LockerEdit};
use locker_core::store::lockers::NewLocker;
use locker_protocol::valid_agent_id;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::auth::Admin;
use crate::error::{ErrorBody, Result, ValidationErrorBody};
use crate::extract::{Path, ValidJson};
use crate::state::AppState;
use crate::text;
use crate::trace::TraceId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_locker))
        .routes(routes!(update_locker, delete_locker))
        .routes(routes!(force_clear))
        .routes(routes!(unlock_locker))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CreateLocker {
    #[validate(custom(function = "valid_location"))]
    #[schema(schema_with = location_schema)]
    pub location: String,
    #[validate(custom(function = "valid_name"))]
    #[schema(schema_with = name_schema)]
    pub name: Option<String>,
    /// Defaults to `MEDIUM`.
    pub size: Option<LockerSize>,
    #[validate(custom(function = "valid_agent"))]
    #[schema(schema_with = agent_schema)]
    pub agent_id: Option<String>,
}

/// Fields left out stay as they are; `null` clears `name` or `agent_id`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct UpdateLocker {
    #[validate(custom(function = "valid_location"))]
    #[schema(schema_with = location_schema)]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[validate(custom(function = "valid_name"))]
    #[schema(schema_with = name_schema)]
    pub name: Option<Option<String>>,
    pub size: Option<LockerSize>,
    #[serde(default, deserialize_with = "present")]
    #[validate(custom(function = "valid_agent"))]
    #[schema(schema_with = agent_schema)]
    pub agent_id: Option<Option<String>>,
    #[validate(custom(function = "settable_status"))]
    #[schema(schema_with = settable_status_schema)]
    pub status: Option<LockerStatus>,
}

fn location_schema() -> Object {
    text::line_schema(1, 200)
        .description(Some("The human-readable place, 1 to 200 characters."))
        .examples(["Mall Entrance"])
        .build()
}

fn name_schema() -> Object {
    text::nullable(
        text::line_schema(0, 100)
            .description(Some("At most 100 characters; `null` clears it."))
            .examples(["A1"]),
    )
}

fn agent_schema() -> Object {
    let schema = ObjectBuilder::new()
        .pattern(Some(r"^[A-Za-z0-9._-]{1,64}$"))
        .description(Some(
            "The site agent driving the door: 1 to 64 letters, digits, `-`, `_`, `.`; \
             `null` clears it.",
        ))
        .examples(["mall-entrance"]);
    text::nullable(schema)
}

fn settable_status_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["AVAILABLE", "OUT_OF_SERVICE"]))
        .description(Some(
            "`AVAILABLE` or `OUT_OF_SERVICE`; refused while the locker holds an item.",
        ))
        .build()
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn valid_location(location: &str) -> Result<(), ValidationError> {
    crate::text::line("location", location, 1, 200)
}

fn valid_name(name: &str) -> Result<(), ValidationError> {
    crate::text::line("name", name, 0, 100)
}

fn valid_agent(agent_id: &str) -> Result<(), ValidationError> {
    if valid_agent_id(agent_id) {
        Ok(())
    } else {
        Err(ValidationError::new("agent_id")
            .with_message("agent_id must be 1 to 64 letters, digits, '-', '_' or '.'".into()))
    }
}

fn settable_status(status: &LockerStatus) -> Result<(), ValidationError> {
    if status.settable_by_admin() {
        Ok(())
    } else {
        Err(ValidationError::new("status")
            .with_message("status can only be set to AVAILABLE or OUT_OF_SERVICE".into()))
    }
}

/// Add a locker at a place; it starts `AVAILABLE`.
#[utoipa::path(post, path = "/Admin/", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateLocker,
    responses(
        (status = 201, body = Locker),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ValidationErrorBody),
    ))]
#[tracing::instrument(skip_all)]
async fn create_locker(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ValidJson(body): ValidJson<CreateLocker>,
) -> Result<(StatusCode, Json<Locker>)> {
    let new = NewLocker {
        location: body.location.trim().to_owned(),
        name: body
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
        size: body.size.unwrap_or_default(),
        agent_id: body.agent_id,
    };
    let locker = state.exchange.create_locker(admin.user.id, new).await?;
    Ok((StatusCode::CREATED, Json(locker)))
}

/// Change a locker's place, name, size, agent or status.
#[utoipa::path(put, path = "/Admin/{locker_id}", tag = "admin",
    security(("bearer" = [])),
    params(("locker_id" = i64, Path)),
    request_body = UpdateLocker,
    responses(
        (status = 200, body = Locker),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Status change on a locker that holds an item", body = ErrorBody),
        (status = 422, body = ValidationErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(locker_id))]
async fn update_locker(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(locker_id): Path<i64>,
    ValidJson(body): ValidJson<UpdateLocker>,
) -> Result<Json<Locker>> {
    let locker = state
        .exchange
        .edit_locker(Actor::user(admin.user.id), locker_id, body.edit())
        .await?;
    Ok(Json(locker))
}

impl UpdateLocker {
    /// The edit a valid body asks for, text trimmed and blank names cleared.
    pub fn edit(self) -> LockerEdit {
        let trimmed = |v: Option<Option<String>>| {
            v.map(|inner| inner.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
        };
        LockerEdit {
            location: self.location.map(|l| l.trim().to_owned()),
            name: trimmed(self.name),
            size: self.size,
            agent_id: self.agent_id,
            status: self.status,
        }
    }
}

/// Remove an empty locker.
#[utoipa::path(delete, path = "/Admin/{locker_id}", tag = "admin",
    security(("bearer" = [])),
    params(("locker_id" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Locker holds an item", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(locker_id))]
async fn delete_locker(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(locker_id): Path<i64>,
) -> Result<StatusCode> {
    state
        .exchange
        .delete_locker(Actor::user(admin.user.id), locker_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Empty a locker whatever it holds: the item is kept, marked `CLEARED`; the
/// locker is available again; the sender is told.
#[utoipa::path(delete, path = "/Admin/{locker_id}/force-clear", tag = "admin",
    security(("bearer" = [])),
    params(("locker_id" = i64, Path)),
    responses(
        (status = 200, description = "The cleared item", body = Item),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Locker holds no item", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(locker_id))]
async fn force_clear(
    State(state): State<AppState>,
    Admin(admin): Admin,
    TraceId(trace_id): TraceId,
    Path(locker_id): Path<i64>,
) -> Result<Json<Item>> {
    let item = state
        .exchange
        .force_clear(Actor::user(admin.user.id), locker_id, &trace_id)
        .await?;
    Ok(Json(item))
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UnlockQueued {
    pub detail: &'static str,
    pub locker_id: i64,
}

/// Open a locker's door for maintenance. Audited; the door's events show in
/// the locker's `door`.
#[utoipa::path(post, path = "/Admin/{locker_id}/unlock", tag = "admin",
    security(("bearer" = [])),
    params(("locker_id" = i64, Path)),
    responses(
        (status = 202, description = "Unlock command queued", body = UnlockQueued),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Locker has no agent to drive its door", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(locker_id))]
async fn unlock_locker(
    State(state): State<AppState>,
    Admin(admin): Admin,
    TraceId(trace_id): TraceId,
    Path(locker_id): Path<i64>,
) -> Result<(StatusCode, Json<UnlockQueued>)> {
    state
        .exchange
        .remote_unlock(Actor::user(admin.user.id), locker_id, &trace_id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UnlockQueued {
            detail: "Unlock command queued",
            locker_id,
        }),
    ))
}
