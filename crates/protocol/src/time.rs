//! Timestamps on the wire: UTC, RFC 3339.

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, macros::format_description};

/// `YYYY-MM-DD` or a full RFC 3339 timestamp.
pub fn is_rfc3339_or_date(s: &str) -> bool {
    OffsetDateTime::parse(s, &Rfc3339).is_ok()
        || Date::parse(s, format_description!("[year]-[month]-[day]")).is_ok()
}

pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// An RFC 3339 timestamp in UTC, as the API promises them: offset `Z` (or
/// `+00:00`). `2026-11-26T09:00:00-03:00` names the same instant but is
/// refused: a document's times are compared and stored as text.
pub fn parse_utc(s: &str) -> Option<OffsetDateTime> {
    let utc = s.ends_with(['Z', 'z']) || s.ends_with("+00:00");
    parse(s).filter(|t| utc && t.offset().is_utc())
}

/// `YYYY-MM-DD`, nothing more.
pub fn is_date(s: &str) -> bool {
    Date::parse(s, format_description!("[year]-[month]-[day]")).is_ok()
}

/// Now, UTC, RFC 3339 with second precision.
pub fn now_rfc3339() -> String {
    format(OffsetDateTime::now_utc())
}

pub fn format(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn accepts_timestamps_and_dates() {
        assert!(super::is_rfc3339_or_date("2026-11-26T12:00:00Z"));
        assert!(super::is_rfc3339_or_date("2026-11-26"));
        assert!(!super::is_rfc3339_or_date("26/11/2026"));
        assert!(super::parse(&super::now_rfc3339()).is_some());
    }

    #[test]
    fn utc_means_z_or_plus_zero() {
        assert!(super::parse_utc(&super::now_rfc3339()).is_some());
        assert!(super::parse_utc("2026-11-26T12:00:00Z").is_some());
        assert!(super::parse_utc("2026-11-26T12:00:00.123z").is_some());
        assert!(super::parse_utc("2026-11-26T12:00:00+00:00").is_some());
        assert!(super::parse_utc("2026-11-26T09:00:00-03:00").is_none());
        assert!(super::parse_utc("2026-11-26T12:00:00-00:00").is_none());
        assert!(super::parse_utc("2026-11-26").is_none());
        assert!(super::is_date("2026-11-26"));
        assert!(!super::is_date("2026-11-26T12:00:00Z"));
        assert!(!super::is_date("2026-02-30"));
    }
}
