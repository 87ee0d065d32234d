//! HAR dates (`startedDateTime`): ISO 8601 / RFC 3339, written in UTC with milliseconds.

use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a system time (UTC).
pub fn iso8601(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time as browsers write HAR
/// `startedDateTime` (`2024-01-02T03:04:05.678Z`, or with a `+01:00` offset); None if unreadable.
pub fn parse_iso8601_ms(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(iso8601(t), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn browser_dates_parse_back_to_the_same_instant() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_123_456);
        assert_eq!(parse_iso8601_ms(&iso8601(t)), Some(1_795_000_123_456));
        assert_eq!(
            parse_iso8601_ms("2000-02-29T01:00:00.123+01:00"),
            Some(951_782_400_123)
        );
        assert_eq!(parse_iso8601_ms("yesterday"), None);
    }
}
