//! The console's pages: places (every locker at a glance), alarms, one
//! locker (its state, actions and history) and the audit log. Each page
//! marks its live parts (`data-live`), which the page fetches again when the
//! server says something changed.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use locker_core::domain::{LockerStatus, place_key};
use locker_core::store::overview::{self, AlarmKind, AlarmThresholds, LockerView};
use maud::{Markup, html};
use serde::Deserialize;
use validator::Validate;

use super::session::Operator;
use super::views::{self, Nav, badge, how_long, when};
use crate::error::{Answer, ApiError};
use crate::extract::field_errors;
use crate::routes::audit::AuditQuery;
use crate::state::AppState;

/// A door open this long, or a drop whose door never opened, is an alarm.
pub const THRESHOLDS: AlarmThresholds = AlarmThresholds {
    door_open_ms: 3 * 60_000,
    drop_unopened_ms: 2 * 60_000,
};
/// Lines of a locker's history per page.
const HISTORY_PAGE: i64 = 25;
/// Pages beyond this are as empty as any past the end.
const MAX_HISTORY_PAGE: i64 = 1_000_000;

type Page = Result<Response, Response>;

#[derive(Debug, Default, Deserialize)]
pub struct PlacesQuery {
    #[serde(default)]
    place: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    done: String,
}

/// `/console/`: every locker, grouped by place, with counts per status.
pub async fn places(
    State(state): State<AppState>,
    operator: Operator,
    Query(query): Query<PlacesQuery>,
) -> Page {
    let status = match query.status.as_str() {
        "" => None,
        s => Some(LockerStatus::parse(s).ok_or_else(|| {
            views::refused(StatusCode::UNPROCESSABLE_ENTITY, "Unknown locker status")
        })?),
    };
    if crate::text::line("place", &query.place, 0, 200).is_err() {
        let problem = "A place is at most 200 characters, none of them control characters";
        return Err(views::refused(StatusCode::UNPROCESSABLE_ENTITY, problem));
    }
    let key = (!query.place.trim().is_empty()).then(|| place_key(&query.place));
    let pool = state.db.pool();
    let now = state.clock.now_millis();
    let all = overview::lockers(pool, key.as_deref(), None)
        .await
        .map_err(page_error)?;
    let places = overview::places(pool).await.map_err(page_error)?;
    let alarms = overview::alarms(pool, now, THRESHOLDS)
        .await
        .map_err(page_error)?;
    let count = |s: LockerStatus| all.iter().filter(|l| l.status == s.as_str()).count();
    let shown: Vec<&LockerView> = all
        .iter()
        .filter(|l| status.is_none_or(|s| l.status == s.as_str()))
        .collect();
    let body = html! {
        h1 { "Places" }
        @if query.done == "deleted" {
            p.notice role="status" { "Locker deleted." }
        }
        form.filters method="get" action="/console/" {
            label for="place" { "Place" }
            select #place name="place" {
                option value="" { "Every place" }
                @for (k, location) in &places {
                    option value=(location) selected[key.as_deref() == Some(k.as_str())] { (location) }
                }
            }
            label for="status" { "Status" }
            select #status name="status" {
                option value="" { "Any status" }
                @for s in LockerStatus::ALL {
                    option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                }
            }
            button type="submit" { "Filter" }
        }
        div #overview data-live {
            p.summary {
                a href="/console/alarms" { (alarms.len()) " alarm" @if alarms.len() != 1 { "s" } }
            }
            ul.counts aria-label="Lockers per status" {
                @for s in LockerStatus::ALL {
                    li { (badge("status", s.as_str())) " " strong { (count(s)) } }
                }
            }
            @if shown.is_empty() {
                p { "No lockers match." }
            }
            @for (location, lockers) in by_place(&shown) {
                section.place {
                    h2 { (location) }
                    ul.grid {
                        @for locker in lockers { (card(now, locker)) }
                    }
                }
            }
        }
    };
    Ok(views::page("Places", Some(&operator), Nav::Places, body).into_response())
}

/// Lockers in runs of the same place, as the query ordered them.
fn by_place<'a>(lockers: &[&'a LockerView]) -> Vec<(&'a str, Vec<&'a LockerView>)> {
    let mut groups: Vec<(&str, Vec<&LockerView>)> = Vec::new();
    for locker in lockers {
        match groups.last_mut() {
            Some((_, group)) if place_key(&group[0].location) == place_key(&locker.location) => {
                group.push(locker);
            }
            _ => groups.push((&locker.location, vec![locker])),
        }
    }
    groups
}

fn card(now: i64, locker: &LockerView) -> Markup {
    html! {
        li.card #(format!("locker-{}", locker.id)) {
            h3 {
                a href=(format!("/console/lockers/{}", locker.id)) {
                    "Locker " (locker.id)
                    @if let Some(name) = &locker.name { " · " (name) }
                }
            }
            (facts(now, locker))
        }
    }
}

/// A locker's state as a list of facts, every one in words.
fn facts(now: i64, locker: &LockerView) -> Markup {
    html! {
        dl.facts {
            dt { "Size" } dd { (locker.size) }
            dt { "Status" } dd { (badge("status", &locker.status)) }
            dt { "Door" }
            dd.door #(format!("door-{}", locker.id)) data-door=(locker.door) {
                (badge("door", &locker.door))
                @if let Some(at) = locker.door_changed_at { " for " (how_long(now, at)) }
            }
            dt { "Agent" }
            dd {
                @match (&locker.agent_id, locker.agent_online) {
                    (None, _) => "none",
                    (Some(agent), online) => {
                        (agent) " "
                        (badge("agent", match online {
                            Some(true) => "online",
                            Some(false) => "offline",
                            None => "unknown",
                        }))
                    }
                }
            }
            dt { "Item" }
            dd {
                @match &locker.item {
                    None => "none",
                    Some(item) => {
                        (item.name) " (#" (item.id) ") " (badge("item", &item.status))
                        @if let Some(deadline) = item.deadline {
                            br;
                            @if deadline < now { "overdue since " } @else { "due " }
                            (when(deadline))
                        }
                    }
                }
            }
        }
    }
}

fn alarm_label(kind: AlarmKind) -> &'static str {
    match kind {
        AlarmKind::DoorLeftOpen => "Door left open",
        AlarmKind::UnlockFailed => "Unlock failed",
        AlarmKind::AgentOffline => "Agent offline",
        AlarmKind::PickupOverdue => "Past pickup deadline",
        AlarmKind::DropNeverOpened => "Drop never opened",
        AlarmKind::OutOfService => "Out of service",
    }
}

/// `/console/alarms`: what wants an operator, longest-standing first.
pub async fn alarms(State(state): State<AppState>, operator: Operator) -> Page {
    let now = state.clock.now_millis();
    let alarms = overview::alarms(state.db.pool(), now, THRESHOLDS)
        .await
        .map_err(page_error)?;
    let body = html! {
        h1 { "Alarms" }
        p.hint {
            "Doors open over " (THRESHOLDS.door_open_ms / 60_000) " minutes, unlocks that failed, \
             agents offline, items past their pickup deadline, drops whose door never opened \
             within " (THRESHOLDS.drop_unopened_ms / 60_000) " minutes, lockers out of service."
        }
        div #alarms data-live {
            @if alarms.is_empty() {
                p.all-clear { "No alarms." }
            } @else {
                table {
                    caption { (alarms.len()) " alarm" @if alarms.len() != 1 { "s" } }
                    thead { tr { th scope="col" { "Alarm" } th scope="col" { "Locker" } th scope="col" { "Since" } th scope="col" { "For" } th scope="col" { "Concerning" } } }
                    tbody {
                        @for alarm in &alarms {
                            tr data-alarm=(alarm.kind.as_str()) {
                                td { (badge("alarm", alarm_label(alarm.kind))) }
                                td { a href=(format!("/console/lockers/{}", alarm.locker_id)) { "Locker " (alarm.locker_id) } }
                                td { (when(alarm.since)) }
                                td { (how_long(now, alarm.since)) }
                                td { (alarm.detail) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(views::page("Alarms", Some(&operator), Nav::Alarms, body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct LockerQuery {
    #[serde(default)]
    page: Option<i64>,
    #[serde(default)]
    done: String,
}

/// `/console/lockers/{id}`.
pub async fn locker(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    Query(query): Query<LockerQuery>,
) -> Page {
    let Some(id) = locker_id(&id) else {
        return Err(views::refused(StatusCode::NOT_FOUND, "Locker not found"));
    };
    let notice = done_notice(&query.done);
    let page = query.page.unwrap_or(0).clamp(0, MAX_HISTORY_PAGE);
    Ok(locker_page(&state, &operator, id, page, notice, None).await)
}

/// A locker id from a path; anything else names no locker.
pub fn locker_id(text: &str) -> Option<i64> {
    text.parse().ok()
}

fn done_notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "unlock" => "Unlock command sent. The door's events will show below.",
        "out-of-service" => "Locker put out of service.",
        "in-service" => "Locker back in service.",
        "clear" => "Locker force-cleared; the sender is told.",
        "edit" => "Locker updated.",
        _ => return None,
    })
}

/// The locker page, with what an action just did or why it was refused.
pub async fn locker_page(
    state: &AppState,
    operator: &Operator,
    id: i64,
    page: i64,
    notice: Option<&str>,
    problem: Option<Answer>,
) -> Response {
    let pool = state.db.pool();
    let now = state.clock.now_millis();
    let locker = match overview::lockers(pool, None, Some(id)).await {
        Ok(mut found) if !found.is_empty() => found.remove(0),
        Ok(_) => return views::refused(StatusCode::NOT_FOUND, "Locker not found"),
        Err(error) => return page_error(error),
    };
    let history = match overview::history(pool, id, HISTORY_PAGE + 1, page * HISTORY_PAGE).await {
        Ok(history) => history,
        Err(error) => return page_error(error),
    };
    let more = history.len() as i64 > HISTORY_PAGE;
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    let title = format!("Locker {id}");
    let csrf = &operator.csrf;
    let action = |name: &str| format!("/console/lockers/{id}/{name}");
    let body = html! {
        p.crumbs { a href="/console/" { "Places" } " › " (locker.location) }
        h1 { "Locker " (id) @if let Some(name) = &locker.name { " · " (name) } }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        @if let Some(problem) = &problem { p.error role="alert" { (problem.detail.sentence()) } }
        div #summary data-live { (facts(now, &locker)) }

        section.actions aria-labelledby="actions-title" {
            h2 #actions-title { "Actions" }
            form.action method="post" action=(action("unlock")) {
                h3 { "Unlock the door" }
                input type="hidden" name="csrf" value=(csrf);
                label for="unlock-reason" { "Reason (kept in the audit log)" }
                input #unlock-reason type="text" name="reason" maxlength="200" required;
                button type="submit" { "Unlock door" }
            }
            @let out = locker.status == LockerStatus::OutOfService.as_str();
            form.action method="post" action=(action(if out { "in-service" } else { "out-of-service" })) {
                h3 { @if out { "Back in service" } @else { "Out of service" } }
                input type="hidden" name="csrf" value=(csrf);
                label for="service-reason" { "Reason" }
                input #service-reason type="text" name="reason" maxlength="200" required;
                button type="submit" { @if out { "Put back in service" } @else { "Put out of service" } }
            }
            @if locker.item.is_some() {
                form.action.danger method="post" action=(action("clear")) {
                    h3 { "Force-clear" }
                    p { "Marks the item cleared and frees the locker; the sender is told." }
                    input type="hidden" name="csrf" value=(csrf);
                    label for="clear-reason" { "Reason" }
                    input #clear-reason type="text" name="reason" maxlength="200" required;
                    label.check {
                        input type="checkbox" name="confirm" value="yes" required;
                        " I have taken the item out, or know it is gone"
                    }
                    button type="submit" { "Force-clear locker" }
                }
            } @else {
                form.action.danger method="post" action=(action("delete")) {
                    h3 { "Delete" }
                    input type="hidden" name="csrf" value=(csrf);
                    label for="delete-reason" { "Reason" }
                    input #delete-reason type="text" name="reason" maxlength="200" required;
                    label.check {
                        input type="checkbox" name="confirm" value="yes" required;
                        " Delete this locker for good"
                    }
                    button type="submit" { "Delete locker" }
                }
            }
            form.action method="post" action=(action("edit")) {
                h3 { "Edit" }
                input type="hidden" name="csrf" value=(csrf);
                label for="edit-location" { "Place" }
                input #edit-location type="text" name="location" value=(locker.location) maxlength="200" required;
                label for="edit-name" { "Name" }
                input #edit-name type="text" name="name" value=(locker.name.clone().unwrap_or_default()) maxlength="100";
                label for="edit-size" { "Size" }
                select #edit-size name="size" {
                    @for size in ["SMALL", "MEDIUM", "LARGE"] {
                        option value=(size) selected[locker.size == size] { (size) }
                    }
                }
                label for="edit-agent" { "Agent" }
                input #edit-agent type="text" name="agent_id" value=(locker.agent_id.clone().unwrap_or_default()) maxlength="64";
                label for="edit-reason" { "Reason" }
                input #edit-reason type="text" name="reason" maxlength="200" required;
                button type="submit" { "Save" }
            }
        }

        section aria-labelledby="history-title" {
            h2 #history-title { "History" }
            div #history data-live {
                @if history.is_empty() {
                    p { "Nothing yet." }
                } @else {
                    table {
                        caption { "Newest first" }
                        thead { tr { th scope="col" { "When" } th scope="col" { "Kind" } th scope="col" { "What" } th scope="col" { "State or who" } th scope="col" { "Detail" } } }
                        tbody {
                            @for line in history.iter().take(HISTORY_PAGE as usize) {
                                tr data-source=(line.source) {
                                    td { (when(line.at)) }
                                    td { (line.source) " " span.ref { (line.reference) } }
                                    td { (line.what) }
                                    td { (line.state) }
                                    td { (line.detail) }
                                }
                            }
                        }
                    }
                }
                nav.pager aria-label="History pages" {
                    @if page > 0 { a href=(format!("/console/lockers/{id}?page={}", page - 1)) { "Newer" } }
                    @if more { a href=(format!("/console/lockers/{id}?page={}", page + 1)) { "Older" } }
                }
            }
        }
    };
    (status, views::page(&title, Some(operator), Nav::None, body)).into_response()
}

/// The audit search form as a browser sends it: every field text, empty
/// when not filled in.
#[derive(Debug, Default, Deserialize)]
pub struct AuditForm {
    #[serde(default)]
    locker_id: String,
    #[serde(default)]
    item_id: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
}

impl AuditForm {
    fn query(&self) -> Result<AuditQuery, String> {
        let text = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        let number = |name: &str, v: &str| match text(v) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{name} must be a whole number")),
        };
        let query = AuditQuery {
            locker_id: number("Locker", &self.locker_id)?,
            item_id: number("Item", &self.item_id)?,
            actor_id: None,
            actor_email: text(&self.actor),
            action: text(&self.action),
            since: text(&self.since),
            until: text(&self.until),
            before: number("Page", &self.before)?,
            limit: Some(50),
        };
        query
            .validate()
            .map_err(|e| field_errors("query", &e).answer().detail.sentence())?;
        Ok(query)
    }

    /// This search's address with `before` set.
    fn page_link(&self, before: i64) -> String {
        let before = before.to_string();
        let pairs: Vec<(&str, &str)> = [
            ("locker_id", self.locker_id.as_str()),
            ("item_id", &self.item_id),
            ("actor", &self.actor),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
            ("before", &before),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
        let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
        format!("/console/audit?{query}")
    }
}

/// `/console/audit`: the log searched, 50 entries a page.
pub async fn audit(
    State(state): State<AppState>,
    operator: Operator,
    Query(form): Query<AuditForm>,
) -> Page {
    let (status, problem, found) = match form.query() {
        Ok(query) => match crate::routes::audit::page(&state, &query).await {
            Ok(found) => (StatusCode::OK, None, Some(found)),
            Err(error) => return Err(views::error_page(error)),
        },
        Err(problem) => (StatusCode::UNPROCESSABLE_ENTITY, Some(problem), None),
    };
    let field = |id: &str, label: &str, value: &str, kind: &str| {
        html! {
            div.field {
                label for=(id) { (label) }
                input #(id) type=(kind) name=(id) value=(value);
            }
        }
    };
    let body = html! {
        h1 { "Audit log" }
        form.filters.audit method="get" action="/console/audit" {
            (field("locker_id", "Locker", &form.locker_id, "text"))
            (field("item_id", "Item", &form.item_id, "text"))
            (field("actor", "Actor (email)", &form.actor, "text"))
            (field("action", "Action (e.g. locker.unlocked, or locker)", &form.action, "text"))
            (field("since", "From (UTC)", &form.since, "datetime-local"))
            (field("until", "Until (UTC)", &form.until, "datetime-local"))
            button type="submit" { "Search" }
        }
        @if let Some(problem) = &problem { p.error role="alert" { (problem) } }
        @if let Some(found) = &found {
            div #audit-results {
                @if found.entries.is_empty() {
                    p { "No entries match." }
                } @else {
                    table {
                        caption { "Newest first" }
                        thead { tr { th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Subject" } th scope="col" { "Actor" } th scope="col" { "Reason" } th scope="col" { "Detail" } } }
                        tbody {
                            @for entry in &found.entries {
                                tr data-action=(entry.action) {
                                    td { (entry.at) }
                                    td { (entry.action) }
                                    td {
                                        @match entry.locker_id {
                                            Some(locker) => a href=(format!("/console/lockers/{locker}")) { (entry.subject) },
                                            None => (entry.subject),
                                        }
                                    }
                                    td { (entry.actor_email.as_deref().unwrap_or("system")) }
                                    td.reason { (entry.reason.as_deref().unwrap_or("")) }
                                    td.detail { (entry.detail) }
                                }
                            }
                        }
                    }
                }
                @if let Some(before) = found.next_before {
                    nav.pager aria-label="Audit pages" { a href=(form.page_link(before)) { "Older" } }
                }
            }
        }
    };
    Ok((
        status,
        views::page("Audit log", Some(&operator), Nav::Audit, body),
    )
        .into_response())
}

fn page_error(error: sqlx::Error) -> Response {
    views::error_page(ApiError::from(error))
}
