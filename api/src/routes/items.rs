//! `/Items`: a sender drops an item; the receiver, who has no account, asks
//! for a code at the locker and collects with it.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use locker_core::domain::{Contact, Email, Item, LockerSize, Phone, Role};
use locker_core::exchange::{self, Destination, Parcel};
use locker_core::store::items;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use super::Page;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, FieldError, Result, ValidationErrorBody};
use crate::extract::{Path, Query, ValidJson};
use crate::limits::Use;
use crate::state::AppState;
use crate::trace::TraceId;
use crate::{limits, text};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(drop_item, my_items))
        .routes(routes!(get_item))
        .routes(routes!(extend_item))
        .routes(routes!(request_otp))
        .routes(routes!(collect))
}

const ITEM_NOT_FOUND: &str = "Item not found";

/// Where: `locker_id`, or `location` and `size` (the smallest free locker
/// there that fits is reserved).
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CreateItem {
    /// The locker to drop into.
    #[serde(default, deserialize_with = "crate::extract::maybe_whole_number")]
    pub locker_id: Option<i64>,
    /// Instead of `locker_id`: the place to drop at.
    #[validate(custom(function = "valid_location"))]
    #[schema(schema_with = location_schema)]
    pub location: Option<String>,
    /// With `location`: the size the item needs; a bigger locker is taken
    /// when no smaller one is free.
    pub size: Option<LockerSize>,
    #[validate(custom(function = "valid_item_name"))]
    #[schema(schema_with = item_name_schema)]
    pub name: String,
    #[validate(custom(function = "valid_description"))]
    #[schema(schema_with = description_schema)]
    pub description: Option<String>,
    #[schema(schema_with = receiver_phone_schema)]
    pub receiver_phone: Option<String>,
    #[schema(schema_with = receiver_email_schema)]
    pub receiver_email: Option<String>,
}

/// `CreateItem` needs `receiver_phone`, `receiver_email` or both, and
/// `locker_id` or else `location` with `size`, which the derive cannot say:
/// the document says it with `anyOf` and `oneOf` after the routes have added
/// the schema.
pub fn require_a_receiver(doc: &mut OpenApi) {
    let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let Some(RefOr::T(item)) = schemas.get("CreateItem").cloned() else {
        return;
    };
    let either = AnyOfBuilder::new()
        .item(ObjectBuilder::new().required("receiver_phone"))
        .item(ObjectBuilder::new().required("receiver_email"));
    // A property no value satisfies: "not given" (utoipa has no `not`).
    let absent = || {
        ObjectBuilder::new()
            .description(Some("Not given with this choice."))
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(0))
    };
    let by_locker = ObjectBuilder::new()
        .required("locker_id")
        .property("locker_id", ObjectBuilder::new().schema_type(Type::Integer))
        .property("location", absent())
        .property("size", absent())
        .build();
    let by_place = ObjectBuilder::new()
        .required("location")
        .required("size")
        .property("size", Ref::from_schema_name("LockerSize"))
        .property("locker_id", absent())
        .build();
    let somewhere = Schema::OneOf(OneOfBuilder::new().item(by_locker).item(by_place).build());
    let whole = AllOfBuilder::new()
        .item(item)
        .item(either)
        .item(somewhere)
        .build();
    schemas.insert("CreateItem".into(), RefOr::T(whole.into()));
}

fn item_name_schema() -> Object {
    text::line_schema(1, 100)
        .description(Some("1 to 100 characters, on one line."))
        .examples(["Blue umbrella"])
        .build()
}

fn description_schema() -> Object {
    text::line_schema(0, 500)
        .description(Some("At most 500 characters, on one line."))
        .build()
}

fn receiver_phone_schema() -> Object {
    text::phone_schema()
        .description(Some(
            "International form, e.g. +14155552671; stored as E.164. \
             The receiver's phone, their email, or both.",
        ))
        .build()
}

fn receiver_email_schema() -> Object {
    text::email_schema().build()
}

fn location_schema() -> Object {
    text::line_schema(1, 200)
        .description(Some(
            "Instead of `locker_id`: the place (matched as `/lockers/by-place` matches it).",
        ))
        .examples(["Mall Entrance"])
        .build()
}

fn valid_location(location: &str) -> Result<(), ValidationError> {
    crate::text::line("location", location, 1, 200)
}

/// Where the body says to drop: exactly one of a locker or a place and size.
fn destination(body: &CreateItem) -> Result<Destination> {
    match (body.locker_id, &body.location, body.size) {
        (Some(id), None, None) => Ok(Destination::Locker(id)),
        (None, Some(location), Some(size)) => Ok(Destination::Place {
            location: location.trim().to_owned(),
            size,
        }),
        (None, Some(_), None) => Err(ApiError::invalid(
            &["body", "size"],
            "give the size the item needs: SMALL, MEDIUM or LARGE",
        )),
        (None, None, _) => Err(ApiError::invalid(
            &["body", "locker_id"],
            "give locker_id, or location and size",
        )),
        (Some(_), _, _) => Err(ApiError::invalid(
            &["body", "locker_id"],
            "give locker_id, or location and size, not both",
        )),
    }
}

fn valid_item_name(name: &str) -> Result<(), ValidationError> {
    crate::text::line("name", name, 1, 100)
}

fn valid_description(description: &str) -> Result<(), ValidationError> {
    crate::text::line("description", description, 0, 500)
}

/// The receiver's contacts, normalised; at least one.
fn receiver(body: &CreateItem, region: Option<&str>) -> Result<(Option<Phone>, Option<Email>)> {
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (phone, email) = (blank(&body.receiver_phone), blank(&body.receiver_email));
    if phone.is_none() && email.is_none() {
        return Err(ApiError::Invalid(vec![
            FieldError::new(
                &["body", "receiver_phone"],
                "give the receiver's phone number or email",
            ),
            FieldError::new(
                &["body", "receiver_email"],
                "give the receiver's phone number or email",
            ),
        ]));
    }
    let mut errors = Vec::new();
    let phone = phone.and_then(|p| {
        Phone::parse(&p, region)
            .map_err(|msg| errors.push(FieldError::new(&["body", "receiver_phone"], msg)))
            .ok()
    });
    let email = email.and_then(|e| {
        Email::parse(&e)
            .map_err(|msg| errors.push(FieldError::new(&["body", "receiver_email"], msg)))
            .ok()
    });
    if errors.is_empty() {
        Ok((phone, email))
    } else {
        Err(ApiError::Invalid(errors))
    }
}

/// Put an item in an available locker: the locker is reserved and its door
/// unlocked for the sender (`AWAITING_DROP`); once the door has opened and
/// closed the item is `STORED` and the receiver told where it is. A locker
/// without an agent stores the item at once.
#[utoipa::path(post, path = "/Items/", tag = "items",
    security(("bearer" = [])),
    request_body = CreateItem,
    responses(
        (status = 201, body = Item),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such locker, or no lockers at that place", body = ErrorBody),
        (status = 409, description = "Locker is not available, or none free at that place fits (the answer says which sizes are free)", body = ErrorBody),
        (status = 422, description = "Invalid name or contacts", body = ValidationErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(locker_id = body.locker_id))]
async fn drop_item(
    State(state): State<AppState>,
    caller: Caller,
    TraceId(trace_id): TraceId,
    ValidJson(body): ValidJson<CreateItem>,
) -> Result<(StatusCode, Json<Item>)> {
    let to = destination(&body)?;
    let (phone, email) = receiver(&body, state.exchange.rules().phone_region.as_deref())?;
    let parcel = Parcel {
        to,
        name: body.name.trim().to_owned(),
        description: body
            .description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty()),
        receiver_phone: phone.map(|p| p.to_string()),
        receiver_email: email.map(|e| e.into_inner()),
    };
    let item = state
        .exchange
        .drop_item(caller.user.id, parcel, &trace_id)
        .await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// The caller's own items, newest first.
#[utoipa::path(get, path = "/Items/", tag = "items",
    security(("bearer" = [])),
    params(Page),
    responses(
        (status = 200, body = Vec<Item>),
        (status = 401, body = ErrorBody),
        (status = 422, body = ValidationErrorBody),
    ))]
async fn my_items(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Item>>> {
    Ok(Json(
        items::for_sender(state.db.pool(), caller.user.id, page.limit, page.offset).await?,
    ))
}

/// One item, for its sender or an admin.
#[utoipa::path(get, path = "/Items/{item_id}", tag = "items",
    security(("bearer" = [])),
    params(("item_id" = i64, Path)),
    responses(
        (status = 200, body = Item),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such item, or not the caller's", body = ErrorBody),
    ))]
async fn get_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(item_id): Path<i64>,
) -> Result<Json<Item>> {
    match items::get(state.db.pool(), item_id).await? {
        Some((item, sender)) if sender == caller.user.id || caller.user.role == Role::Admin => {
            Ok(Json(item))
        }
        // Someone else's item is as invisible as a missing one.
        _ => Err(ApiError::NotFound(ITEM_NOT_FOUND)),
    }
}

/// Give the receiver more time: the pickup deadline moves by
/// `PICKUP_EXTENSION_HOURS` (24 by default), at most `PICKUP_EXTENSIONS_MAX`
/// times (once by default), while the item waits in its locker. The receiver
/// is told the new deadline, and reminded again before it. Senders only.
#[utoipa::path(post, path = "/Items/{item_id}/extend", tag = "items",
    security(("bearer" = [])),
    params(("item_id" = i64, Path)),
    responses(
        (status = 200, description = "The item with its new `collect_by`", body = Item),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such item of the caller's", body = ErrorBody),
        (status = 409, description = "Not waiting in its locker, or extended as often as allowed", body = ErrorBody),
        (status = 422, body = ValidationErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(item_id))]
async fn extend_item(
    State(state): State<AppState>,
    caller: Caller,
    TraceId(trace_id): TraceId,
    Path(item_id): Path<i64>,
) -> Result<Json<Item>> {
    let item = state
        .exchange
        .extend_pickup(caller.user.id, item_id, &trace_id)
        .await?;
    Ok(Json(item))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct OtpRequest {
    #[schema(schema_with = contact_schema)]
    #[validate(length(
        min = 1,
        max = 254,
        message = "contact must be 1 to 254 characters long"
    ))]
    pub contact: String,
}

fn contact_schema() -> Schema {
    AnyOfBuilder::new()
        .item(text::phone_schema())
        .item(text::email_schema())
        .description(Some(
            "The receiver's phone number or email, as the sender gave it.",
        ))
        .build()
        .into()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub detail: &'static str,
}

/// Ask for a one-time code at the locker. The answer is the same whether or
/// not the contact is the receiver's, so it tells nobody who that is.
#[utoipa::path(post, path = "/Items/lockers/{locker_id}/request-otp", tag = "items",
    params(("locker_id" = i64, Path)),
    request_body = OtpRequest,
    responses(
        (status = 202, body = Accepted),
        (status = 422, description = "Not an email or phone number", body = ValidationErrorBody),
        (status = 429, description = "Too many requests (see Retry-After)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(locker_id))]
async fn request_otp(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    TraceId(trace_id): TraceId,
    Path(locker_id): Path<i64>,
    ValidJson(body): ValidJson<OtpRequest>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let rules = state.exchange.rules();
    let contact = Contact::parse(&body.contact, rules.phone_region.as_deref())
        .map_err(|msg| ApiError::invalid(&["body", "contact"], msg))?;
    // Only what the caller sends counts against the caller: whether or not
    // the contact is the receiver's, the same budgets, so the answers tell
    // nothing, and a stranger cannot spend the receiver's budget.
    let limits = &rules.limits;
    let by_client = format!("otp:client:{}", client.ip());
    let by_contact = format!("otp:contact:{}:client:{}", contact.as_str(), client.ip());
    let by_client = limits::Budget::requests(&state, &by_client, limits.per_client);
    let by_contact = limits::Budget::requests(&state, &by_contact, limits.per_contact);
    let gated = limits::Gated::new(vec![(&by_client, Use::Spend), (&by_contact, Use::Spend)]);
    let gate = gated.gate(&state);
    match state
        .exchange
        .request_code(locker_id, &contact, &trace_id, &gate)
        .await
    {
        Err(exchange::Error::Limited(refused)) => return Err(gated.refusal(&state, refused)),
        other => other?,
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            detail: "If this contact is the receiver of the item in this locker, a code is on its way.",
        }),
    ))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CollectRequest {
    /// The 6-digit code.
    #[schema(example = "123456", pattern = "^[0-9]{6}$")]
    #[validate(custom(function = "six_digits"))]
    pub otp: String,
}

fn six_digits(otp: &str) -> Result<(), ValidationError> {
    if otp.len() == 6 && otp.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ValidationError::new("otp").with_message("the code is 6 digits".into()))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Collected {
    /// Where there is a door to drive, it is opening; the item is
    /// `COLLECTED` once it has closed again.
    pub detail: &'static str,
    pub locker_id: i64,
    pub item_id: i64,
}

/// Collect with the code: the locker opens; once its door has closed the
/// item is collected and the sender told.
#[utoipa::path(post, path = "/Items/lockers/{locker_id}/collect", tag = "items",
    params(("locker_id" = i64, Path)),
    request_body = CollectRequest,
    responses(
        (status = 200, body = Collected),
        (status = 403, description = "Invalid or expired code", body = ErrorBody),
        (status = 422, description = "Not 6 digits", body = ValidationErrorBody),
        (status = 429, description = "Too many wrong codes or requests (see Retry-After)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(locker_id))]
async fn collect(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    TraceId(trace_id): TraceId,
    Path(locker_id): Path<i64>,
    ValidJson(body): ValidJson<CollectRequest>,
) -> Result<Json<Collected>> {
    let rules = state.exchange.rules();
    let by_client = format!("collect:client:{}", client.ip());
    let by_client = limits::Budget::requests(&state, &by_client, rules.limits.collects_per_client);
    // Wrong codes are counted per locker and client, whether or not the
    // locker holds a code: the same for a receiver as for a stranger.
    let wrong = format!("collect:wrong:{locker_id}:client:{}", client.ip());
    let wrong = limits::Budget {
        key: &wrong,
        limit: rules.otp_failure_cap,
        window: rules.otp_cooldown,
        detail: "Too many wrong codes; request a new code later",
    };
    let gated = limits::Gated::new(vec![(&by_client, Use::Spend), (&wrong, Use::EnsureLeft)]);
    let gate = gated.gate(&state);
    let collected = match state
        .exchange
        .collect(locker_id, body.otp, &trace_id, &gate)
        .await
    {
        Err(exchange::Error::Limited(refused)) => return Err(gated.refusal(&state, refused)),
        Err(exchange::Error::InvalidCode) => {
            wrong.spend(&state).await?;
            wrong.ensure_left(&state).await?;
            return Err(exchange::Error::InvalidCode.into());
        }
        other => other?,
    };
    Ok(Json(Collected {
        detail: if collected.door_opening {
            "Code accepted; the locker is opening."
        } else {
            "Code accepted; the locker is open."
        },
        locker_id,
        item_id: collected.item.id,
    }))
}
