//! The console's page frame and the small pieces every page uses. Every
//! state is written out in words (a colour only repeats it), every control
//! has a label, and the layout folds to one column on a phone.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use locker_core::clock::{Millis, human};
use maud::{DOCTYPE, Markup, html};

use super::session::Operator;
use crate::error::ApiError;

/// The page the navigation marks as current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Places,
    Alarms,
    Audit,
    None,
}

pub fn page(title: &str, operator: Option<&Operator>, nav: Nav, body: Markup) -> Markup {
    let current = |n: Nav| (n == nav).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Locker Exchange console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "Locker Exchange" }
                    @if let Some(operator) = operator {
                        nav aria-label="Console" {
                            ul {
                                li { a href="/console/" aria-current=[current(Nav::Places)] { "Places" } }
                                li { a href="/console/alarms" aria-current=[current(Nav::Alarms)] { "Alarms" } }
                                li { a href="/console/audit" aria-current=[current(Nav::Audit)] { "Audit log" } }
                            }
                        }
                        span #live-state role="status" { "Not live" }
                        form.sign-out method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(operator.csrf);
                            button type="submit" { "Sign out " span.who { (operator.user.email) } }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// A page that only says why it refused.
pub fn refused(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Refused");
    let body = html! {
        h1 { (title) }
        p.error role="alert" { (message) }
        p { a href="/console/" { "Back to the console" } }
    };
    (status, page(title, None, Nav::None, body)).into_response()
}

/// An API error as a console page: the same status and words as the JSON
/// answer (internal causes are logged there, never shown).
pub fn error_page(error: ApiError) -> Response {
    let answer = error.answer();
    let mut page = refused(answer.status, &answer.detail.sentence());
    // Retry-After still applies; a bearer challenge means nothing here.
    if let Some((name, value)) = answer.header.filter(|(n, _)| n == header::RETRY_AFTER) {
        page.headers_mut().insert(name, value);
    }
    page
}

/// A time as people read it, in a `<time>` element machines can read too.
pub fn when(at: Millis) -> Markup {
    html! { time datetime=(locker_core::clock::rfc3339(at)) { (human(at)) } }
}

/// How long ago: `3 min`, `2 h 5 min`, `4 d 1 h`.
pub fn how_long(now: Millis, since: Millis) -> String {
    let minutes = (now - since).max(0) / 60_000;
    match minutes {
        0 => "under a minute".into(),
        m if m < 60 => format!("{m} min"),
        m if m < 24 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} d {} h", m / (24 * 60), (m / 60) % 24),
    }
}

/// A state in words, marked for styling by its value.
pub fn badge(kind: &str, value: &str) -> Markup {
    html! { span class=(format!("badge {kind}-{}", value.to_ascii_lowercase())) { (value) } }
}
