//! Wall-clock helpers. Timestamps that matter (validity, expiry) are taken once by the
//! proposing node and carried inside the Raft entry, so every replica applies the same value.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch, the unit every stored timestamp uses.
pub fn now_ms() -> i64 {
    // A chaos run may skew this node's clock (0 otherwise).
    Utc::now().timestamp_millis() + crate::failpoints::clock_skew_ms()
}

/// RFC 3339 UTC text for a stored millisecond timestamp, as the HTTP contract shows times.
pub fn rfc3339(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parses RFC 3339 text (any offset) into milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}
