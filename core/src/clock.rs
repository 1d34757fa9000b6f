//! Time as the application sees it (see [`locker_runtime::clock`]), and how
//! stored timestamps are shown to people.

pub use locker_runtime::clock::{Clock, ManualClock, Millis, SystemClock};

/// A duration in milliseconds, as stored and bound to queries.
pub fn millis(duration: std::time::Duration) -> Millis {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

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

/// A time as people and clients write it: RFC 3339 (`2026-11-28T10:44:00Z`),
/// or without an offset (`2026-11-28T10:44`, as a browser's date-time field
/// sends it), read as UTC.
pub fn parse_time(text: &str) -> Option<Millis> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let at = time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            let minutes = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
            let seconds =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            time::PrimitiveDateTime::parse(text, &seconds)
                .or_else(|_| time::PrimitiveDateTime::parse(text, &minutes))
                .ok()
                .map(time::PrimitiveDateTime::assume_utc)
        })?;
    Millis::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_as_clients_and_browsers_write_them() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_time("1970-01-01T00:01:02"), Some(62_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-13-01T00:00"), None);
    }
}
