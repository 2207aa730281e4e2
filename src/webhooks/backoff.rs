//! Retry delays for webhooks: exponential from 1 s, doubled per failed attempt,
//! capped at 1 h per wait, with ±10 % jitter so that many jobs failing together
//! (a customer's endpoint down) do not come back in lockstep.
//!
//! Pure: the caller supplies the random number, so tests are deterministic.

use std::time::Duration;

/// The wait after the first failed attempt.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// No single wait is longer than this, jitter included.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Jitter in per-mille of the nominal delay, either way.
const JITTER_PERMILLE: u64 = 100;

/// The nominal (unjittered) wait after `attempt` failed attempts: 1 s, 2 s, 4 s, …,
/// at most `MAX_DELAY`. `attempt` 0 is treated as 1.
pub fn nominal_delay(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(63);
    let base = BASE_DELAY.as_millis() as u64;
    let max = MAX_DELAY.as_millis() as u64;
    let ms = 1u64
        .checked_shl(exp)
        .and_then(|f| base.checked_mul(f))
        .unwrap_or(max)
        .min(max);
    Duration::from_millis(ms)
}

/// The wait before the next try after `attempt` failed attempts (1 for the first
/// failure), jittered by ±10 % from `random` (any u64, e.g. `rand::random()`), and
/// never more than `MAX_DELAY`. Why: spread retries and bound the gap between them.
pub fn next_delay(attempt: u32, random: u64) -> Duration {
    let nominal = nominal_delay(attempt).as_millis() as u64;
    // Factor in [900, 1100] per mille, uniform enough for spreading retries.
    let factor = 1000 - JITTER_PERMILLE + random % (2 * JITTER_PERMILLE + 1);
    let ms = nominal.saturating_mul(factor) / 1000;
    Duration::from_millis(ms).min(MAX_DELAY)
}

/// How many failed attempts a job of this age has had at most, had it been retried on
/// the nominal schedule: a job found after a restart continues its backoff from there.
pub fn failures_within(age: Duration) -> u32 {
    let mut waited = Duration::ZERO;
    let mut failures = 0;
    // Bounded: at one wait an hour, 10,000 covers over a year.
    while failures < 10_000 {
        waited += nominal_delay(failures + 1);
        if waited > age {
            break;
        }
        failures += 1;
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_implied_by_age_follow_the_schedule() {
        assert_eq!(failures_within(Duration::ZERO), 0);
        assert_eq!(failures_within(Duration::from_millis(999)), 0);
        assert_eq!(failures_within(Duration::from_secs(1)), 1);
        // 1 + 2 + 4 = 7 s: three waits fit, the fourth (8 s) does not.
        assert_eq!(failures_within(Duration::from_secs(14)), 3);
        assert_eq!(failures_within(Duration::from_secs(15)), 4);
        // A day: 12 doubling waits (4,095 s), then 22 of an hour each.
        assert_eq!(failures_within(Duration::from_secs(86_400)), 34);
        assert_eq!(failures_within(Duration::MAX), 10_000);
    }

    #[test]
    fn nominal_doubles_from_one_second() {
        assert_eq!(nominal_delay(0), Duration::from_secs(1));
        assert_eq!(nominal_delay(1), Duration::from_secs(1));
        assert_eq!(nominal_delay(2), Duration::from_secs(2));
        assert_eq!(nominal_delay(3), Duration::from_secs(4));
        assert_eq!(nominal_delay(12), Duration::from_secs(2048));
    }

    #[test]
    fn nominal_is_capped_at_one_hour() {
        assert_eq!(nominal_delay(13), MAX_DELAY); // 4096 s > 3600 s
        assert_eq!(nominal_delay(64), MAX_DELAY);
        assert_eq!(nominal_delay(65), MAX_DELAY);
        assert_eq!(nominal_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for attempt in 1..=12 {
            let nominal = nominal_delay(attempt).as_millis() as u64;
            for r in [0, 1, 100, 199, 200, 201, 12345, u64::MAX / 2, u64::MAX] {
                let d = next_delay(attempt, r).as_millis() as u64;
                assert!(
                    d >= nominal * 9 / 10,
                    "attempt {attempt} r {r}: {d} < 90% of {nominal}"
                );
                assert!(
                    d <= nominal * 11 / 10,
                    "attempt {attempt} r {r}: {d} > 110% of {nominal}"
                );
            }
        }
    }

    #[test]
    fn jitter_extremes_are_reached() {
        assert_eq!(next_delay(1, 0), Duration::from_millis(900));
        assert_eq!(next_delay(1, 100), Duration::from_millis(1000));
        assert_eq!(next_delay(1, 200), Duration::from_millis(1100));
        assert_eq!(next_delay(1, 201), Duration::from_millis(900));
    }

    #[test]
    fn jittered_wait_never_exceeds_cap() {
        for r in 0..=200 {
            assert!(next_delay(40, r) <= MAX_DELAY);
        }
        assert_eq!(next_delay(40, 0), Duration::from_secs(3240));
    }

    #[test]
    fn a_day_of_retries_is_a_few_dozen_attempts() {
        // 1+2+…+2048 s ≈ 68 min, then hourly: about 35 tries fit in 24 h.
        let mut total = Duration::ZERO;
        let mut attempts = 0;
        while total < Duration::from_secs(24 * 3600) {
            attempts += 1;
            total += nominal_delay(attempts);
        }
        assert!((30..=40).contains(&attempts), "{attempts}");
    }
}
