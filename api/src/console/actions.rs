//! What an operator does to a locker from its page: unlock the door, put it
//! out of service or back, force-clear it, delete it, edit it. Each needs a
//! reason, goes through the same transition as the JSON API and is audited
//! with the admin and that reason.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use locker_core::domain::{LockerSize, LockerStatus};
use locker_core::exchange::{Actor, LockerEdit};
use serde::Deserialize;
use validator::Validate;

use super::pages::{locker_id, locker_page};
use super::session::{Operator, stale_form};
use super::views;
use crate::error::ApiError;
use crate::extract::field_errors;
use crate::routes::admin::UpdateLocker;
use crate::state::AppState;
use crate::trace::TraceId;

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
    location: Option<String>,
    name: Option<String>,
    size: Option<String>,
    agent_id: Option<String>,
}

/// `POST /console/lockers/{id}/{action}`; then back to the locker's page
/// (or, once deleted, to the places).
pub async fn act(
    State(state): State<AppState>,
    operator: Operator,
    TraceId(trace_id): TraceId,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Response> {
    if !operator.sent(&form.csrf) {
        return Err(stale_form());
    }
    let Some(id) = locker_id(&id) else {
        return Err(views::refused(StatusCode::NOT_FOUND, "Locker not found"));
    };
    let refuse = |message: String| ApiError::Status(StatusCode::UNPROCESSABLE_ENTITY, message);
    let reason = form.reason.trim().to_owned();
    let reason = reason.as_str();
    let outcome = match checked_reason(&action, reason, &form.confirm) {
        Err(message) => Err(refuse(message)),
        Ok(()) => {
            let by = Actor {
                id: Some(operator.user.id),
                reason: (!reason.is_empty()).then_some(reason),
            };
            let exchange = &state.exchange;
            let status = |status| LockerEdit {
                status: Some(status),
                ..LockerEdit::default()
            };
            match action.as_str() {
                "unlock" => exchange
                    .remote_unlock(by, id, &trace_id)
                    .await
                    .map_err(ApiError::from),
                "out-of-service" => exchange
                    .edit_locker(by, id, status(LockerStatus::OutOfService))
                    .await
                    .map(drop)
                    .map_err(ApiError::from),
                "in-service" => exchange
                    .edit_locker(by, id, status(LockerStatus::Available))
                    .await
                    .map(drop)
                    .map_err(ApiError::from),
                "clear" => exchange
                    .force_clear(by, id, &trace_id)
                    .await
                    .map(drop)
                    .map_err(ApiError::from),
                "delete" => match exchange.delete_locker(by, id).await {
                    Ok(_) => return Ok(Redirect::to("/console/?done=deleted").into_response()),
                    Err(error) => Err(error.into()),
                },
                "edit" => match edit_of(form) {
                    Ok(edit) => exchange
                        .edit_locker(by, id, edit)
                        .await
                        .map(drop)
                        .map_err(ApiError::from),
                    Err(message) => Err(refuse(message)),
                },
                _ => return Err(views::refused(StatusCode::NOT_FOUND, "No such action")),
            }
        }
    };
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!("/console/lockers/{id}?done={action}")).into_response()),
        Err(error) => {
            let answer = error.answer();
            if answer.status == StatusCode::NOT_FOUND {
                return Err(views::refused(answer.status, &answer.detail.sentence()));
            }
            Err(locker_page(&state, &operator, id, 0, None, Some(answer)).await)
        }
    }
}

/// Every action needs a reason; destructive ones a confirmation.
fn checked_reason(action: &str, reason: &str, confirm: &str) -> Result<(), String> {
    if reason.is_empty() {
        return Err("Give a reason: it is kept in the audit log.".into());
    }
    crate::text::line("reason", reason, 0, 200).map_err(|e| {
        e.message
            .map_or_else(|| "reason is not valid".to_owned(), |m| m.to_string())
    })?;
    if matches!(action, "clear" | "delete") && confirm != "yes" {
        return Err("Tick the box to confirm.".into());
    }
    Ok(())
}

/// The edit form, checked as `PUT /Admin/{id}` checks its body.
fn edit_of(form: ActionForm) -> Result<LockerEdit, String> {
    let size = match form.size.as_deref() {
        None | Some("") => None,
        Some(size) => Some(LockerSize::parse(size).ok_or("size must be SMALL, MEDIUM or LARGE")?),
    };
    let body = UpdateLocker {
        location: form.location,
        name: form.name.map(Some),
        size,
        agent_id: form
            .agent_id
            .map(|a| Some(a.trim().to_owned()).filter(|a| !a.is_empty())),
        status: None,
    };
    body.validate()
        .map_err(|e| field_errors("body", &e).answer().detail.sentence())?;
    Ok(body.edit())
}
