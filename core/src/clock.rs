//! Time as the application sees it (see [`locker_runtime::clock`]), and how
//! stored timestamps are shown to people.

pub use locker_runtime::clock::{Clock, ManualClock, Millis, SystemClock};

/// RFC 3339 rendering of a stored timestamp, for API responses.
pub fn rfc3339(millis: Millis) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A timestamp for people: `2026-11-28 10:44 UTC`.
pub fn human(millis: Millis) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}
