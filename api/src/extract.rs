//! Extractors that refuse bad input in our error shape instead of axum's
//! plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors};

use crate::error::{ApiError, FieldError};

/// A JSON body, deserialised and then checked by its `Validate` rules.
pub struct ValidJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        value.validate().map_err(|e| field_errors("body", &e))?;
        Ok(Self(value))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::invalid(&["body"], without_axum_prefix(&e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(format!(
            "Malformed JSON body: {}",
            without_axum_prefix(&e.body_text())
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected a body with Content-Type: application/json".into(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body is too large".into(),
        ),
        other => ApiError::Status(other.status(), other.body_text()),
    }
}

/// axum prefixes serde's message with a sentence of its own; the client needs
/// only serde's part, which names the field.
fn without_axum_prefix(text: &str) -> String {
    text.split_once(": ")
        .map_or(text, |(_, rest)| rest)
        .to_owned()
}

pub fn field_errors(location: &str, errors: &ValidationErrors) -> ApiError {
    let mut fields: Vec<FieldError> = errors
        .field_errors()
        .into_iter()
        .flat_map(|(field, errs)| {
            errs.iter().map(move |e| {
                let msg = e
                    .message
                    .as_ref()
                    .map_or_else(|| e.code.to_string(), ToString::to_string);
                FieldError::new(&[location, &field], msg)
            })
        })
        .collect();
    fields.sort_by(|a, b| a.loc.cmp(&b.loc));
    ApiError::Invalid(fields)
}

/// Query parameters; a bad one is a 422 naming it.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e: QueryRejection| {
                    ApiError::invalid(&["query"], without_axum_prefix(&e.body_text()))
                })?;
        value.validate().map_err(|e| field_errors("query", &e))?;
        Ok(Self(value))
    }
}

/// Path parameters; a malformed id is a 422, as in the original product.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e: PathRejection| {
                ApiError::invalid(&["path"], without_axum_prefix(&e.body_text()))
            })
    }
}

/// An integer field that also takes `7.0`, as JSON Schema's `integer` does,
/// so a client generated from the document is never refused for it.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    let whole = |f: f64| f.fract() == 0.0 && (-9.2e18..9.2e18).contains(&f);
    n.as_i64()
        .or_else(|| n.as_f64().filter(|f| whole(*f)).map(|f| f as i64))
        .ok_or_else(|| D::Error::custom(format!("expected a whole number, got {n}")))
}

/// An optional [`whole_number`]: absent or `null` is `None`.
pub fn maybe_whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => whole_number(n).map(Some).map_err(serde::de::Error::custom),
    }
}
