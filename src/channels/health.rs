//! Channel health (node-local): what the channel's submits, throttles, receipts and
//! keepalives say about the line, turned into
//!
//! - a **health score** 0..1 (submit success × receipt success × throttle and RTT
//!   penalties) that `weighted` routing scales weights by;
//! - a **circuit breaker** (closed → open after an error storm → half-open after a
//!   cool-down, letting one probe through → closed on success, open again with a
//!   doubled cool-down on failure) that takes a broken line out of rotation;
//! - **AIMD flow control**: 0x58/0x14 cut the channel's send rate and congestion
//!   window to 0.7 of what they were; the rate climbs back linearly in time (about 4 s
//!   to where it was cut, at any scale) and the window by one per window of accepted
//!   submits. As in TCP, one congestion event cuts once: the throttled answers to
//!   submits paced before the last decrease say nothing about the new rate, so they are
//!   counted but do not cut again (otherwise a window of 10 throttled answers cuts the
//!   rate 1000-fold and a line above its operator's contract runs at a fifth of it).
//!   The state lives with the channel (not the bind), so it survives reconnects and is
//!   shared by all binds;
//! - **SLA windows** (5 min, 1 h, 24 h from one-minute buckets): availability,
//!   submit success, receipt success, submit and receipt latency p50/p99.
//!
//! Everything here is pure bookkeeping under one mutex; time is passed in, so the
//! tests drive it without sleeping.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Latency histogram buckets: upper bound of bucket i is 0.5 ms × 1.4^i.
const LAT_BUCKETS: usize = 48;
/// Minutes of SLA history (24 h).
const MINUTES: usize = 24 * 60;
/// Submit results the breaker looks at.
const BREAKER_SAMPLES: usize = 20;
/// Error share of the recent submits that opens the breaker.
const BREAKER_ERROR_SHARE: f64 = 0.5;
/// Consecutive errors that open the breaker at once.
const BREAKER_CONSECUTIVE: u32 = 5;
/// Share of throttled answers among the last ones that makes a throttling storm: the
/// line is taken out of rotation for the shortest cool-down so queued messages move on.
const STORM_THROTTLE_SHARE: f64 = 0.8;
/// What a congestion event leaves of the AIMD rate and window (CUBIC's 0.7: against an
/// operator's contract a halving ran at 86-96 % of it, this at about 100 %; see
/// docs/benchmarks.md).
const DECREASE: f64 = 0.7;
/// How long the AIMD rate takes to climb from a decrease back to where it was.
const RECOVERY: Duration = Duration::from_secs(4);
/// Once no throttling was met for `RECOVERY`, the rate below the ceiling doubles this
/// often: a run of cuts during an operator's throttling episode leaves the rate far below
/// the line's contract, and climbing back linearly to each last cut took minutes.
const PROBE_DOUBLING: Duration = Duration::from_secs(2);
/// First and longest cool-down of an open breaker.
const COOLDOWN_MIN: Duration = Duration::from_secs(2);
const COOLDOWN_MAX: Duration = Duration::from_secs(60);

fn lat_bucket(ms: f64) -> usize {
    let mut i = 0;
    let mut bound = 0.5;
    while i + 1 < LAT_BUCKETS && ms > bound {
        bound *= 1.4;
        i += 1;
    }
    i
}

fn lat_bound(i: usize) -> f64 {
    0.5 * 1.4f64.powi(i as i32)
}

/// One minute of a channel's life.
#[derive(Clone)]
struct Minute {
    minute: i64,
    /// Seconds sampled with the channel bound / sampled at all.
    up_s: u32,
    sampled_s: u32,
    submit_ok: u32,
    submit_err: u32,
    throttled: u32,
    receipt_ok: u32,
    receipt_fail: u32,
    submit_lat: [u32; LAT_BUCKETS],
    receipt_lat: [u32; LAT_BUCKETS],
}

impl Minute {
    fn new(minute: i64) -> Minute {
        Minute {
            minute,
            up_s: 0,
            sampled_s: 0,
            submit_ok: 0,
            submit_err: 0,
            throttled: 0,
            receipt_ok: 0,
            receipt_fail: 0,
            submit_lat: [0; LAT_BUCKETS],
            receipt_lat: [0; LAT_BUCKETS],
        }
    }
}

/// Circuit breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe may go out; its outcome decides.
    HalfOpen,
}

impl Breaker {
    /// The name shown by the admin API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Breaker::Closed => "closed",
            Breaker::Open { .. } => "open",
            Breaker::HalfOpen => "half_open",
        }
    }
}

/// SLA figures over one window.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct SlaWindow {
    /// Share of sampled seconds with a bound session (None: not sampled yet).
    pub availability: Option<f64>,
    /// Accepted submits / all submit answers.
    pub submit_success_rate: Option<f64>,
    /// Delivered receipts / final receipts.
    pub success_rate: Option<f64>,
    pub throttle_rate: Option<f64>,
    /// Seconds sampled in the window (by this node, while it owned the channel) and how
    /// many of them the channel was not bound: the SLA verdict weighs the down seconds
    /// against the whole window (`sla::judged_availability`), not against the sampled part.
    pub sampled_seconds: u64,
    pub down_seconds: u64,
    pub submits: u64,
    pub receipts: u64,
    pub submit_latency_ms_p50: Option<f64>,
    pub submit_latency_ms_p99: Option<f64>,
    pub receipt_latency_ms_p50: Option<f64>,
    pub receipt_latency_ms_p99: Option<f64>,
}

/// The windows the SLA is reported over, with their length in minutes.
pub const SLA_WINDOWS: [(&str, i64); 3] = [("5m", 5), ("1h", 60), ("24h", 1440)];

struct Inner {
    breaker: Breaker,
    cooldown: Duration,
    recent: VecDeque<bool>,
    /// Last answers, true = throttled (for throttling-storm detection).
    recent_throttles: VecDeque<bool>,
    consecutive_errors: u32,
    /// AIMD: current parts per second and its ceiling (the channel's TPS).
    rate: f64,
    max_rate: f64,
    /// The rate when it was last cut: what the increase climbs back to.
    peak: f64,
    /// AIMD congestion window over all binds (fractional while growing).
    cwnd: f64,
    /// Pacer for rates below the ceiling: the earliest next send.
    next_send: Option<Instant>,
    /// When rate and window were last cut: throttled answers to submits paced before
    /// it belong to the same congestion event.
    last_decrease: Option<Instant>,
    rtt_ms: Option<f64>,
    minutes: VecDeque<Minute>,
}

/// The health of one channel.
pub struct ChannelHealth {
    inner: Mutex<Inner>,
}

fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000)
}

impl ChannelHealth {
    /// Fresh health for a channel with this TPS ceiling.
    pub fn new(tps: u32) -> ChannelHealth {
        ChannelHealth {
            inner: Mutex::new(Inner {
                breaker: Breaker::Closed,
                cooldown: COOLDOWN_MIN,
                recent: VecDeque::with_capacity(BREAKER_SAMPLES),
                recent_throttles: VecDeque::with_capacity(BREAKER_SAMPLES),
                consecutive_errors: 0,
                rate: f64::from(tps.max(1)),
                max_rate: f64::from(tps.max(1)),
                peak: f64::from(tps.max(1)),
                cwnd: f64::MAX,
                next_send: None,
                last_decrease: None,
                rtt_ms: None,
                minutes: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_minute(inner: &mut Inner, now_ms: i64, f: impl FnOnce(&mut Minute)) {
        let m = minute_of(now_ms);
        if inner.minutes.back().is_none_or(|b| b.minute < m) {
            inner.minutes.push_back(Minute::new(m));
            while inner.minutes.len() > MINUTES {
                inner.minutes.pop_front();
            }
        }
        if let Some(b) = inner.minutes.iter_mut().rev().find(|b| b.minute == m) {
            f(b);
        }
    }

    /// A new TPS ceiling (channel updated).
    pub fn set_tps(&self, tps: u32) {
        let mut i = self.lock();
        i.max_rate = f64::from(tps.max(1));
        i.rate = i.rate.min(i.max_rate);
        i.peak = i.peak.min(i.max_rate);
    }

    fn record_throttle(i: &mut Inner, throttled: bool) {
        if i.recent_throttles.len() >= BREAKER_SAMPLES {
            i.recent_throttles.pop_front();
        }
        i.recent_throttles.push_back(throttled);
    }

    fn record_result(i: &mut Inner, ok: bool, now: Instant) {
        Self::record_throttle(i, false);
        if i.recent.len() >= BREAKER_SAMPLES {
            i.recent.pop_front();
        }
        i.recent.push_back(ok);
        if ok {
            i.consecutive_errors = 0;
            if i.breaker == Breaker::HalfOpen {
                i.breaker = Breaker::Closed;
                i.cooldown = COOLDOWN_MIN;
                i.recent.clear();
                tracing::info!("circuit breaker closed after a good probe");
            }
            return;
        }
        i.consecutive_errors += 1;
        let errors = i.recent.iter().filter(|r| !**r).count();
        let storm = i.recent.len() >= BREAKER_SAMPLES / 2
            && errors as f64 >= BREAKER_ERROR_SHARE * i.recent.len() as f64;
        match i.breaker {
            Breaker::HalfOpen => {
                i.cooldown = (i.cooldown * 2).min(COOLDOWN_MAX);
                i.breaker = Breaker::Open {
                    until: now + i.cooldown,
                };
            }
            Breaker::Closed if storm || i.consecutive_errors >= BREAKER_CONSECUTIVE => {
                i.breaker = Breaker::Open {
                    until: now + i.cooldown,
                };
                tracing::warn!(
                    errors,
                    cooldown_ms = i.cooldown.as_millis() as u64,
                    "circuit breaker opened"
                );
            }
            _ => {}
        }
    }

    /// The SMSC accepted a submit after `latency`.
    pub fn submit_ok(&self, latency: Duration, now: Instant, now_ms: i64) {
        let mut i = self.lock();
        Self::record_result(&mut i, true, now);
        // Additive increase in time, not per submit: the rate climbs back to where it
        // was cut in about `RECOVERY` whatever the scale (an accepted submit is
        // 1/rate of a second of sending). A fixed step per submit overshoots a contract
        // far below the TPS within a few submits and keeps the line in throttling.
        // Once a whole `RECOVERY` passed without a cut, the line is probed upwards
        // exponentially (doubling every `PROBE_DOUBLING`) towards its ceiling.
        if i.rate < i.max_rate {
            let quiet = i
                .last_decrease
                .is_none_or(|d| now.saturating_duration_since(d) >= RECOVERY);
            let per_second = if quiet {
                i.rate * std::f64::consts::LN_2 / PROBE_DOUBLING.as_secs_f64()
            } else {
                i.peak * (1.0 - DECREASE) / RECOVERY.as_secs_f64()
            };
            let per_second = per_second.max(i.max_rate / 1000.0);
            i.rate = (i.rate + per_second / i.rate.max(1.0)).min(i.max_rate);
        }
        if i.cwnd < f64::MAX {
            i.cwnd += 1.0 / i.cwnd.max(1.0);
        }
        let ms = latency.as_secs_f64() * 1000.0;
        Self::with_minute(&mut i, now_ms, |m| {
            m.submit_ok += 1;
            m.submit_lat[lat_bucket(ms)] += 1;
        });
    }

    /// A submit failed: temporary or permanent error, no response, or the session closed.
    pub fn submit_error(&self, now: Instant, now_ms: i64) {
        let mut i = self.lock();
        Self::record_result(&mut i, false, now);
        Self::with_minute(&mut i, now_ms, |m| m.submit_err += 1);
    }

    /// 0x58 / 0x14 for a submit paced at `paced_at`: multiplicative decrease of rate and
    /// window (`in_flight` is the channel's outstanding submits, the window's starting
    /// point), once per congestion event. True when this answer began a new event (the
    /// channel's throttling pause grows by the same rule).
    pub fn throttled(
        &self,
        in_flight: usize,
        paced_at: Instant,
        now: Instant,
        now_ms: i64,
    ) -> bool {
        let mut i = self.lock();
        let new_event = i.last_decrease.is_none_or(|d| paced_at >= d);
        if new_event {
            i.peak = i.rate;
            i.rate = (i.rate * DECREASE).max(1.0);
            let base = if i.cwnd == f64::MAX {
                in_flight.max(1) as f64
            } else {
                i.cwnd
            };
            i.cwnd = (base * DECREASE).max(1.0);
            i.last_decrease = Some(now);
        }
        Self::with_minute(&mut i, now_ms, |m| m.throttled += 1);
        Self::record_throttle(&mut i, true);
        let n = i.recent_throttles.len();
        let storm = n >= BREAKER_SAMPLES / 2
            && i.recent_throttles.iter().filter(|t| **t).count() as f64
                >= STORM_THROTTLE_SHARE * n as f64;
        if storm || i.breaker == Breaker::HalfOpen {
            // Out of rotation briefly (no cool-down doubling: the line works, it is full).
            i.breaker = Breaker::Open {
                until: now + COOLDOWN_MIN,
            };
            i.recent_throttles.clear();
            tracing::warn!("throttling storm: channel out of rotation for a cool-down");
        }
        new_event
    }

    /// A final receipt: delivered or not, `latency_ms` after the message was sent.
    pub fn receipt(&self, delivered: bool, latency_ms: Option<i64>, now_ms: i64) {
        let mut i = self.lock();
        Self::with_minute(&mut i, now_ms, |m| {
            if delivered {
                m.receipt_ok += 1;
            } else {
                m.receipt_fail += 1;
            }
            if let Some(l) = latency_ms {
                m.receipt_lat[lat_bucket(l.max(0) as f64)] += 1;
            }
        });
    }

    /// enquire_link round trip.
    pub fn rtt(&self, rtt: Duration) {
        let mut i = self.lock();
        let ms = rtt.as_secs_f64() * 1000.0;
        i.rtt_ms = Some(match i.rtt_ms {
            Some(prev) => prev * 0.8 + ms * 0.2,
            None => ms,
        });
    }

    /// One-second availability sample.
    pub fn sample(&self, up: bool, now_ms: i64) {
        let mut i = self.lock();
        Self::with_minute(&mut i, now_ms, |m| {
            m.sampled_s += 1;
            m.up_s += u32::from(up);
        });
    }

    /// Whether the breaker lets traffic through now (an expired open becomes half-open).
    pub fn allows(&self, now: Instant) -> bool {
        let mut i = self.lock();
        if let Breaker::Open { until } = i.breaker
            && now >= until
        {
            i.breaker = Breaker::HalfOpen;
        }
        !matches!(i.breaker, Breaker::Open { .. })
    }

    /// The breaker state now.
    pub fn breaker(&self, now: Instant) -> Breaker {
        let _ = self.allows(now);
        self.lock().breaker
    }

    /// Most submits the channel may have outstanding now, across binds, given what its
    /// binds allow: one probe when half-open, the AIMD window after throttling.
    pub fn capacity(&self, binds_capacity: usize, now: Instant) -> usize {
        if !self.allows(now) {
            return 0;
        }
        let i = self.lock();
        if i.breaker == Breaker::HalfOpen {
            return binds_capacity.min(1);
        }
        if i.cwnd == f64::MAX {
            binds_capacity
        } else {
            binds_capacity.min(i.cwnd.floor().max(1.0) as usize)
        }
    }

    /// How long to wait before the next send under the AIMD rate (zero at full rate:
    /// the TPS limiter paces then).
    pub fn pace(&self, now: Instant) -> Duration {
        let mut i = self.lock();
        if i.rate >= i.max_rate {
            i.next_send = None;
            return Duration::ZERO;
        }
        let gap = Duration::from_secs_f64(1.0 / i.rate.max(0.1));
        let at = i.next_send.map_or(now, |n| n.max(now));
        i.next_send = Some(at + gap);
        at - now
    }

    /// Current AIMD rate (parts per second).
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// The SLA figures over the last `minutes` minutes.
    pub fn window(&self, minutes: i64, now_ms: i64) -> SlaWindow {
        let i = self.lock();
        let from = minute_of(now_ms) - minutes + 1;
        let (mut up, mut sampled, mut ok, mut err, mut thr, mut rok, mut rfail) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        let mut sl = [0u64; LAT_BUCKETS];
        let mut rl = [0u64; LAT_BUCKETS];
        for m in i.minutes.iter().filter(|m| m.minute >= from) {
            up += u64::from(m.up_s);
            sampled += u64::from(m.sampled_s);
            ok += u64::from(m.submit_ok);
            err += u64::from(m.submit_err);
            thr += u64::from(m.throttled);
            rok += u64::from(m.receipt_ok);
            rfail += u64::from(m.receipt_fail);
            for k in 0..LAT_BUCKETS {
                sl[k] += u64::from(m.submit_lat[k]);
                rl[k] += u64::from(m.receipt_lat[k]);
            }
        }
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let q = |h: &[u64; LAT_BUCKETS], q: f64| {
            let n: u64 = h.iter().sum();
            if n == 0 {
                return None;
            }
            // Interpolated within the bucket the quantile falls in (as Prometheus'
            // histogram_quantile does), not its upper bound: with buckets 1.4 apart the
            // bound overstated receipts of 301 ms as 418 ms at every quantile.
            let target = (n as f64) * q;
            let mut seen = 0u64;
            for (k, &c) in h.iter().enumerate() {
                if c > 0 && (seen + c) as f64 >= target {
                    let lo = if k == 0 { 0.0 } else { lat_bound(k - 1) };
                    let hi = lat_bound(k);
                    let frac = ((target - seen as f64) / c as f64).clamp(0.0, 1.0);
                    return Some(((lo + (hi - lo) * frac) * 100.0).round() / 100.0);
                }
                seen += c;
            }
            None
        };
        SlaWindow {
            availability: ratio(up, sampled),
            submit_success_rate: ratio(ok, ok + err),
            success_rate: ratio(rok, rok + rfail),
            throttle_rate: ratio(thr, ok + err + thr),
            sampled_seconds: sampled,
            down_seconds: sampled.saturating_sub(up),
            submits: ok + err,
            receipts: rok + rfail,
            submit_latency_ms_p50: q(&sl, 0.5),
            submit_latency_ms_p99: q(&sl, 0.99),
            receipt_latency_ms_p50: q(&rl, 0.5),
            receipt_latency_ms_p99: q(&rl, 0.99),
        }
    }

    /// Health score 0..1 from the last 5 minutes and the keepalive RTT.
    pub fn score(&self, now: Instant, now_ms: i64) -> f64 {
        if !self.allows(now) {
            return 0.0;
        }
        let w = self.window(5, now_ms);
        let rtt = self.lock().rtt_ms.unwrap_or(0.0);
        let submit = w.submit_success_rate.unwrap_or(1.0);
        let receipts = w.success_rate.unwrap_or(1.0);
        let throttle = w.throttle_rate.unwrap_or(0.0);
        let rtt_factor = 1.0 / (1.0 + rtt / 1000.0);
        (submit * (0.5 + 0.5 * receipts) * (1.0 - 0.5 * throttle) * rtt_factor).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let h = ChannelHealth::new(100);
        let t0 = Instant::now();
        for _ in 0..BREAKER_CONSECUTIVE {
            assert!(h.allows(t0));
            h.submit_error(t0, 0);
        }
        assert!(!h.allows(t0), "open after an error storm");
        assert_eq!(h.capacity(10, t0), 0);
        let later = t0 + COOLDOWN_MIN;
        assert!(h.allows(later));
        assert_eq!(h.breaker(later), Breaker::HalfOpen);
        assert_eq!(h.capacity(10, later), 1, "one probe");
        // A failed probe opens again with a doubled cool-down.
        h.submit_error(later, 0);
        assert!(!h.allows(later + COOLDOWN_MIN));
        let again = later + COOLDOWN_MIN * 2;
        assert!(h.allows(again));
        h.submit_ok(Duration::from_millis(5), again, 0);
        assert_eq!(h.breaker(again), Breaker::Closed);
        assert_eq!(h.capacity(10, again), 10);
    }

    #[test]
    fn aimd_cuts_once_per_congestion_event_and_recovers() {
        let h = ChannelHealth::new(100);
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(h.pace(t), Duration::ZERO);
        h.throttled(8, t, t + ms(10), 0);
        assert!((h.rate() - 70.0).abs() < 1e-9, "{}", h.rate());
        assert_eq!(h.capacity(10, t), 5);
        // Answers to submits paced before that decrease are the same event: no cut.
        for k in 1..6 {
            h.throttled(8, t + ms(k), t + ms(10 + k), 0);
        }
        assert!((h.rate() - 70.0).abs() < 1e-9, "{}", h.rate());
        assert_eq!(h.capacity(10, t), 5);
        // A submit paced after it was throttled too: a new event.
        h.throttled(8, t + ms(20), t + ms(30), 0);
        assert!((h.rate() - 49.0).abs() < 1e-9, "{}", h.rate());
        assert_eq!(h.capacity(10, t), 3);
        // Pacing at 49/s: the second send waits 1/49 s.
        assert_eq!(h.pace(t), Duration::ZERO);
        assert_eq!(h.pace(t), Duration::from_secs_f64(1.0 / 49.0));
        // The rate climbs back in time, not per submit: from 49 to 70, where it was last
        // cut, in about RECOVERY of sending, i.e. some 240 submits at 49..70 a second.
        let mut n = 0;
        while h.rate() < 70.0 && n < 10_000 {
            h.submit_ok(Duration::from_millis(1), t, 0);
            n += 1;
        }
        assert!((200..=280).contains(&n), "{n} submits to climb back");
        // A storm (most recent answers throttled) takes the line out briefly, whether or
        // not the answers cut the rate.
        let late = t + ms(100);
        for _ in 0..BREAKER_SAMPLES {
            h.throttled(8, t, late, 0);
        }
        assert!(!h.allows(late));
        assert!(h.allows(late + COOLDOWN_MIN));
        for _ in 0..1000 {
            h.submit_ok(Duration::from_millis(1), late + COOLDOWN_MIN, 0);
        }
        assert_eq!(h.rate(), 100.0, "back at the ceiling, and never above it");
        assert!(h.capacity(10, t) >= 5);
    }

    #[test]
    fn after_a_throttling_episode_the_rate_is_back_within_seconds() {
        // An operator throttles for a while: ten congestion events cut 100/s to about 3.
        let h = ChannelHealth::new(100);
        let t0 = Instant::now();
        let mut t = t0;
        for _ in 0..10 {
            t += Duration::from_millis(500);
            h.throttled(8, t, t, 0);
        }
        assert!(h.rate() < 3.0, "{}", h.rate());
        // Then every submit is accepted again, sent at the rate of the moment.
        let end = t;
        let mut sent = 0;
        while h.rate() < 100.0 && sent < 100_000 {
            t += Duration::from_secs_f64(1.0 / h.rate());
            h.submit_ok(Duration::from_millis(1), t, 0);
            sent += 1;
        }
        let took = t.duration_since(end);
        assert_eq!(h.rate(), 100.0);
        // About 4 s back to the last cut, then doubling every 2 s: 3 -> 100 in some 14 s
        // (a linear climb towards each last cut took minutes).
        assert!(took < Duration::from_secs(20), "{took:?} to climb back");
        assert!(
            took > Duration::from_secs(8),
            "{took:?}: faster than the probe allows"
        );
    }

    #[test]
    fn sla_windows_and_score() {
        let h = ChannelHealth::new(10);
        let now = Instant::now();
        let base = 10 * 3600 * 1000;
        // An hour ago: down and failing; last minutes: up and good.
        for s in 0..60 {
            h.sample(false, base - 3_000_000 + s * 1000);
        }
        h.receipt(false, Some(100), base - 3_000_000);
        for s in 0..60 {
            h.sample(true, base + s * 1000);
            h.submit_ok(Duration::from_millis(20), now, base + s * 1000);
            h.receipt(true, Some(1000), base + s * 1000);
        }
        let w5 = h.window(5, base + 59_000);
        assert_eq!(w5.availability, Some(1.0));
        assert_eq!(w5.success_rate, Some(1.0));
        assert_eq!(w5.submits, 60);
        let p50 = w5.submit_latency_ms_p50.unwrap_or(0.0);
        assert!((14.0..=20.5).contains(&p50), "{p50}");
        let w1h = h.window(60, base + 59_000);
        assert_eq!(w1h.availability, Some(0.5));
        assert_eq!(w1h.receipts, 61);
        assert!(h.score(now, base + 59_000) > 0.9);
        assert_eq!(lat_bucket(0.1), 0);
        assert!(lat_bound(lat_bucket(1234.0)) >= 1234.0);
    }

    #[test]
    fn latency_quantiles_are_interpolated_within_their_bucket() {
        // Receipts of 301 ms all fall in the bucket (298.8, 418.3]: the bound was
        // reported for p50 and p99 alike (audit: 418.34 for a mean of 301).
        let h = ChannelHealth::new(10);
        let at = 10 * 3600 * 1000;
        for _ in 0..150 {
            h.receipt(true, Some(301), at);
        }
        let w = h.window(5, at);
        let p50 = w.receipt_latency_ms_p50.unwrap_or(0.0);
        let p99 = w.receipt_latency_ms_p99.unwrap_or(0.0);
        assert!((298.0..=360.0).contains(&p50), "{p50}");
        assert!(p99 > p50 && p99 <= 418.35, "{p99}");
        // Two populations: the median sits with the lower one, p99 with the upper.
        let h = ChannelHealth::new(10);
        for k in 0..100 {
            h.receipt(true, Some(if k < 60 { 20 } else { 2000 }), at);
        }
        let w = h.window(5, at);
        let p50 = w.receipt_latency_ms_p50.unwrap_or(0.0);
        let p99 = w.receipt_latency_ms_p99.unwrap_or(0.0);
        assert!((14.0..=28.0).contains(&p50), "{p50}");
        assert!((1400.0..=2800.0).contains(&p99), "{p99}");
    }
}
