//! `GET /pickup/{token}`: the receiver's pickup page, linked from the
//! deposit notice. No login: the token (128 bits, only its digest stored) is
//! the key. It shows the locker's place and number and the QR code the
//! locker's scanner reads; once the item has left, only that it has.
//!
//! Whoever probes it learns nothing: a malformed token and an unknown one
//! get the same 404 (a malformed one without a query), and no page names
//! the item, its sender or its receiver.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use locker_core::clock::human;
use locker_core::domain::ItemStatus;
use locker_core::store::pickups::{self, PassPage, token_digest};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use qrcode::QrCode;
use qrcode::render::svg;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pickup_page))
}

/// No script, nothing loaded: the QR code is inline SVG.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
                   form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The receiver's pickup page: the locker's place and number, and the QR
/// code to show to the locker's scanner (HTML, for people).
#[utoipa::path(
    get,
    path = "/pickup/{token}",
    tag = "items",
    params(("token" = String, Path, description = "The token of the pickup link (32 hex characters)")),
    responses(
        (status = 200, description = "The pickup page", content_type = "text/html", body = String),
        (status = 404, description = "No such pickup", content_type = "text/html", body = String),
    ),
)]
pub async fn pickup_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response> {
    let well_formed = token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit());
    let found = if well_formed {
        pickups::page(state.db.pool(), &token_digest(&token.to_ascii_lowercase())).await?
    } else {
        None
    };
    let (status, body) = match found {
        Some(pass) => (StatusCode::OK, page(&token.to_ascii_lowercase(), &pass)),
        None => (
            StatusCode::NOT_FOUND,
            frame(
                "No such pickup",
                html! { p { "This pickup link is not known. Check the link in your message." } },
            ),
        ),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    Ok(response)
}

fn page(token: &str, pass: &PassPage) -> Markup {
    let place = html! {
        p.place { "Locker " strong { (pass.locker) } " at " strong { (pass.location) } }
    };
    match pass.status {
        ItemStatus::Stored => frame(
            "Your pickup",
            html! {
                (place)
                @if let Some(by) = pass.collect_by {
                    p { "Collect it before " (human(by)) "." }
                }
                figure {
                    div.qr role="img" aria-label="Pickup QR code" { (PreEscaped(qr_svg(token))) }
                    figcaption {
                        "Show this code to the scanner at the locker, or type the PIN from \
                         your message on its keypad. Never share either."
                    }
                }
            },
        ),
        ItemStatus::Releasing | ItemStatus::Collected => frame(
            "Collected",
            html! { (place) p { "This item has been collected." } },
        ),
        ItemStatus::Expired | ItemStatus::Returning | ItemStatus::Returned => frame(
            "Pickup time over",
            html! { (place) p { "The time to collect this item has passed; it goes back to its sender." } },
        ),
        _ => frame(
            "No longer here",
            html! { (place) p { "This item is no longer in the locker." } },
        ),
    }
}

/// The token as an SVG QR code, without the XML declaration (it is inlined).
fn qr_svg(token: &str) -> String {
    let code = QrCode::new(token.as_bytes()).expect("32 characters fit a QR code");
    let svg = code
        .render::<svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    match svg.find("<svg") {
        Some(start) => svg[start..].to_owned(),
        None => svg,
    }
}

fn frame(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Locker Exchange" }
                style {
                    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#111}"
                    ".qr svg{width:100%;max-width:18rem;height:auto;display:block;margin:1rem auto}"
                    "figcaption{text-align:center}"
                }
            }
            body {
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}
