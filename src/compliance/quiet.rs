//! Quiet hours (pure): when marketing may reach a recipient, by the local time of the
//! recipient's country.

use chrono::{Duration, NaiveTime, TimeZone, Timelike, Utc};

use crate::state::compliance::QuietHours;

/// Parses `HH:MM` into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
    Some((t.hour() * 60 + t.minute()) as u16)
}

/// `HH:MM` of minutes after midnight.
pub fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// Whether `tz` is an IANA time zone this build knows.
pub fn valid_timezone(tz: &str) -> bool {
    tz.parse::<chrono_tz::Tz>().is_ok()
}

/// The first allowed instant (ms) at or after `at` when `at` falls in the quiet hours;
/// None when `at` is allowed already (or the zone is unknown).
pub fn next_allowed(at: i64, q: &QuietHours) -> Option<i64> {
    if q.start_min == q.end_min {
        return None;
    }
    let tz: chrono_tz::Tz = q.timezone.parse().ok()?;
    let local = Utc.timestamp_millis_opt(at).single()?.with_timezone(&tz);
    let m = (local.hour() * 60 + local.minute()) as u16;
    let quiet = if q.start_min < q.end_min {
        (q.start_min..q.end_min).contains(&m)
    } else {
        m >= q.start_min || m < q.end_min
    };
    if !quiet {
        return None;
    }
    let mut date = local.date_naive();
    if q.start_min > q.end_min && m >= q.start_min {
        date += Duration::days(1);
    }
    let end = NaiveTime::from_hms_opt((q.end_min / 60) as u32, (q.end_min % 60) as u32, 0)?;
    let naive = date.and_time(end);
    // A DST gap has no such local time: the hour after it is the first allowed one.
    let resolved = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
    })?;
    Some(resolved.timestamp_millis().max(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: &str, end: &str, tz: &str) -> QuietHours {
        QuietHours {
            start_min: parse_hhmm(start).expect("start"),
            end_min: parse_hhmm(end).expect("end"),
            timezone: tz.into(),
        }
    }

    fn ms(s: &str) -> i64 {
        crate::clock::parse_rfc3339(s).expect("time")
    }

    #[test]
    fn overnight_window_in_kolkata() {
        let w = q("21:00", "08:00", "Asia/Kolkata"); // UTC+5:30
        // 16:00 UTC = 21:30 IST: quiet until 08:00 IST next day = 02:30 UTC.
        assert_eq!(
            next_allowed(ms("2026-12-03T16:00:00Z"), &w),
            Some(ms("2026-12-04T02:30:00Z"))
        );
        // 20:00 UTC = 01:30 IST: quiet until 08:00 IST the same local day.
        assert_eq!(
            next_allowed(ms("2026-12-03T20:00:00Z"), &w),
            Some(ms("2026-12-04T02:30:00Z"))
        );
        // 06:00 UTC = 11:30 IST: allowed.
        assert_eq!(next_allowed(ms("2026-12-03T06:00:00Z"), &w), None);
    }

    #[test]
    fn daytime_window_and_bad_zone() {
        let w = q("12:00", "13:00", "UTC");
        assert_eq!(
            next_allowed(ms("2026-12-03T12:30:00Z"), &w),
            Some(ms("2026-12-03T13:00:00Z"))
        );
        assert_eq!(next_allowed(ms("2026-12-03T13:00:00Z"), &w), None);
        assert_eq!(next_allowed(0, &q("12:00", "13:00", "Mars/Olympus")), None);
        assert!(valid_timezone("America/New_York"));
        assert_eq!(hhmm(parse_hhmm("08:05").unwrap_or(0)), "08:05");
        assert_eq!(parse_hhmm("25:00"), None);
    }
}
