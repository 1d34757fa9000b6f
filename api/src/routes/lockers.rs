//! `/lockers`: finding lockers, for any logged-in user.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use locker_core::db::notices::Follower;
use locker_core::domain::{Locker, LockerStatus, place_key};
use locker_core::metrics;
use locker_core::store::lockers::{self, FreeBySize};
use serde::{Deserialize, Serialize};
use utoipa::openapi::Ref;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::Validate;

use super::Page;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, Result, ValidationErrorBody};
use crate::extract::{Path, Query};
use crate::heard_cache::HeardCache;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_lockers))
        .routes(routes!(lockers_by_place))
        .routes(routes!(get_locker))
}

/// All lockers.
#[utoipa::path(get, path = "/lockers/", tag = "lockers",
    security(("bearer" = [])),
    params(Page),
    responses(
        (status = 200, body = Vec<Locker>),
        (status = 401, body = ErrorBody),
        (status = 422, body = ValidationErrorBody),
    ))]
async fn list_lockers(
    State(state): State<AppState>,
    _caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Locker>>> {
    Ok(Json(
        lockers::list(state.db.pool(), page.limit, page.offset).await?,
    ))
}

#[derive(Debug, Deserialize, Validate)]
pub struct PlaceQuery {
    #[validate(custom(function = "valid_place"))]
    pub location: String,
    pub status: Option<LockerStatus>,
    #[validate(range(min = 1, max = 200, message = "limit must be between 1 and 200"))]
    #[serde(default = "super::default_limit")]
    pub limit: i64,
    #[validate(range(min = 0, message = "offset must not be negative"))]
    #[serde(default)]
    pub offset: i64,
}

/// Written out because `location` is described by `text::line_schema`, which
/// the derive would leave optional; `limit` and `offset` are `Page`'s.
impl IntoParams for PlaceQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let location = ParameterBuilder::new()
            .name("location")
            .parameter_in(ParameterIn::Query)
            .required(Required::True)
            .description(Some(
                "The place's name; case and extra spaces do not matter.",
            ))
            .schema(Some(crate::text::line_schema(1, 200)));
        let status = ParameterBuilder::new()
            .name("status")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("Only lockers in this status, e.g. `AVAILABLE`."))
            .schema(Some(Ref::from_schema_name("LockerStatus")));
        let mut params = vec![location.build(), status.build()];
        params.extend(Page::into_params(|| Some(ParameterIn::Query)));
        params
    }
}

fn valid_place(location: &str) -> Result<(), validator::ValidationError> {
    crate::text::line("location", location, 1, 200)
}

/// A locker at a place, with how many lockers of each size are free there.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceLocker {
    #[serde(flatten)]
    pub locker: Locker,
    /// Available lockers at this place by size: what a drop by `location`
    /// and `size` can get. The same on every locker of one answer.
    pub free_at_place: FreeBySize,
}

/// Lockers at a named place, e.g. `?location=Mall Entrance`, each with the
/// place's free lockers by size.
#[utoipa::path(get, path = "/lockers/by-place", tag = "lockers",
    security(("bearer" = [])),
    params(PlaceQuery),
    responses(
        (status = 200, body = Vec<PlaceLocker>),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Missing or blank location", body = ValidationErrorBody),
    ))]
async fn lockers_by_place(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<PlaceQuery>,
) -> Result<Response> {
    if query.location.trim().is_empty() {
        return Err(ApiError::invalid(
            &["query", "location"],
            "location must not be blank",
        ));
    }
    let asked = Asked {
        place: place_key(&query.location),
        status: query.status,
        limit: query.limit,
        offset: query.offset,
    };
    if let Some(body) = state.places.0.get(&asked) {
        metrics::by_place_answer(true);
        return Ok(json(body));
    }
    let ticket = state.places.0.ticket();
    let (found, free_at_place) = lockers::at_place(
        state.db.reads(),
        &query.location,
        query.status,
        query.limit,
        query.offset,
    )
    .await?;
    metrics::by_place_answer(false);
    let found: Vec<_> = found
        .into_iter()
        .map(|locker| PlaceLocker {
            locker,
            free_at_place,
        })
        .collect();
    let body = Bytes::from(serde_json::to_vec(&found).map_err(anyhow::Error::from)?);
    if let Some(ticket) = ticket {
        state.places.0.put(ticket, asked, body.clone());
    }
    Ok(json(body))
}

fn json(body: Bytes) -> Response {
    let kind = HeaderValue::from_static("application/json");
    ([(CONTENT_TYPE, kind)], body).into_response()
}

/// What a by-place answer depends on: nothing of the caller's.
#[derive(PartialEq, Eq, Hash)]
struct Asked {
    place: String,
    status: Option<LockerStatus>,
    limit: i64,
    offset: i64,
}

impl Asked {
    fn place(&self) -> &str {
        &self.place
    }

    /// What keeping `answer` under this key costs, about: the answer, the
    /// place's name, and the key and entry around them. A place that does
    /// not exist answers `[]`: a caller asking for many must not outgrow
    /// the budget through the keys.
    fn weight(&self, answer: &Bytes) -> usize {
        answer.len() + self.place.len() + 128
    }
}

/// The channel lockers' and agents' triggers notify with a place's key
/// (migrations/postgres), or with nothing for every place.
const PLACES: &str = "places";
/// What the kept answers may weigh together (one of 200 lockers is about
/// 70 KiB).
const PLACES_BUDGET: usize = 8 << 20;
/// However well notices flow, an answer is read again after this.
const PLACES_TTL: Duration = Duration::from_secs(60);

/// `GET /lockers/by-place` answers, as sent, kept per place while every
/// change to lockers and agents' presence is heard (see [`HeardCache`]):
/// reads at a place between two changes there cost no query. A change, this
/// process's own too, is seen once its notice arrives, as soon as the
/// listening connection is read after the commit; forgetting every place
/// after each request that writes would spare that instant but empty the
/// cache many times a second under traffic.
#[derive(Clone)]
pub struct PlaceCache(Arc<HeardCache<Asked, Bytes>>);

impl Default for PlaceCache {
    fn default() -> Self {
        Self(Arc::new(HeardCache::new(
            Asked::place,
            PLACES_BUDGET,
            Asked::weight,
            PLACES_TTL,
        )))
    }
}

impl PlaceCache {
    /// Told of changes to lockers and agents, by place; without a
    /// listening connection (SQLite) nothing is kept.
    pub fn follower(&self) -> Follower {
        self.0.follower(PLACES)
    }
}

/// One locker.
#[utoipa::path(get, path = "/lockers/{locker_id}", tag = "lockers",
    security(("bearer" = [])),
    params(("locker_id" = i64, Path)),
    responses(
        (status = 200, body = Locker),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn get_locker(
    State(state): State<AppState>,
    _caller: Caller,
    Path(locker_id): Path<i64>,
) -> Result<Json<Locker>> {
    lockers::get(state.db.pool(), locker_id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(LOCKER_NOT_FOUND))
}

pub const LOCKER_NOT_FOUND: &str = "Locker not found";
