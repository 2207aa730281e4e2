//! Live receipt feedback for routing (node-local, rebuilt from receipts as they are
//! applied): delivered/undelivered counts per destination × channel over a sliding
//! time window (for `success_rate` and "cheapest with success ≥ X %"), and per-variant
//! A/B statistics with a two-proportion z-test.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Buckets per sliding window: the window slides in steps of window/BUCKETS.
const BUCKETS: i64 = 10;

#[derive(Default, Clone, Copy)]
struct Bucket {
    /// Start of the bucket, ms.
    start: i64,
    delivered: u32,
    undelivered: u32,
}

/// Delivered/undelivered counts per (destination, channel) over the last window.
pub struct SuccessWindow {
    window_ms: i64,
    cells: Mutex<HashMap<(String, String), VecDeque<Bucket>>>,
}

impl SuccessWindow {
    /// A window of `window_ms` (at least 1 s).
    pub fn new(window_ms: i64) -> SuccessWindow {
        SuccessWindow {
            window_ms: window_ms.max(1000),
            cells: Mutex::new(HashMap::new()),
        }
    }

    fn step(&self) -> i64 {
        (self.window_ms / BUCKETS).max(1)
    }

    /// Records one final receipt at `now` (ms).
    pub fn record(&self, destination: &str, channel: &str, delivered: bool, now: i64) {
        let step = self.step();
        let start = now - now.rem_euclid(step);
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let q = cells
            .entry((destination.to_string(), channel.to_string()))
            .or_default();
        if q.back().is_none_or(|b| b.start < start) {
            q.push_back(Bucket {
                start,
                ..Bucket::default()
            });
        }
        while q.front().is_some_and(|b| b.start <= now - self.window_ms) {
            q.pop_front();
        }
        if let Some(b) = q.back_mut() {
            if delivered {
                b.delivered += 1;
            } else {
                b.undelivered += 1;
            }
        }
    }

    /// (delivered, undelivered) in the window ending at `now`.
    pub fn counts(&self, destination: &str, channel: &str, now: i64) -> (u64, u64) {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = cells.get(&(destination.to_string(), channel.to_string())) else {
            return (0, 0);
        };
        q.iter()
            .filter(|b| b.start > now - self.window_ms)
            .fold((0, 0), |(d, u), b| {
                (d + u64::from(b.delivered), u + u64::from(b.undelivered))
            })
    }
}

/// Receipt latencies kept per variant for p50/p99.
const LATENCY_SAMPLES: usize = 10_000;

/// One A/B variant's numbers.
#[derive(Debug, Default, Clone)]
pub struct VariantStats {
    pub messages: u64,
    /// Messages with a final outcome (delivered or not).
    pub finals: u64,
    pub delivered: u64,
    pub cost: f64,
    latencies_ms: VecDeque<u64>,
}

impl VariantStats {
    /// Share of final messages delivered, None before any.
    pub fn delivery_rate(&self) -> Option<f64> {
        (self.finals > 0).then(|| self.delivered as f64 / self.finals as f64)
    }

    /// Receipt latency quantile in ms.
    pub fn latency_ms(&self, q: f64) -> Option<u64> {
        let mut v: Vec<u64> = self.latencies_ms.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(v[((v.len() - 1) as f64 * q).round() as usize])
    }
}

/// A/B numbers per route: [variant A, variant B].
#[derive(Default)]
pub struct AbBook {
    routes: Mutex<HashMap<String, [VariantStats; 2]>>,
}

impl AbBook {
    fn with(&self, route: &str, variant: u8, f: impl FnOnce(&mut VariantStats)) {
        let mut r = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let v = r.entry(route.to_string()).or_default();
        f(&mut v[usize::from(variant.min(1))]);
    }

    /// A message of this variant was accepted.
    pub fn accepted(&self, route: &str, variant: u8) {
        self.with(route, variant, |v| v.messages += 1);
    }

    /// A message of this variant reached a final outcome.
    pub fn finished(
        &self,
        route: &str,
        variant: u8,
        delivered: bool,
        latency_ms: Option<u64>,
        cost: f64,
    ) {
        self.with(route, variant, |v| {
            v.finals += 1;
            v.delivered += u64::from(delivered);
            v.cost += cost;
            if let Some(l) = latency_ms {
                if v.latencies_ms.len() >= LATENCY_SAMPLES {
                    v.latencies_ms.pop_front();
                }
                v.latencies_ms.push_back(l);
            }
        });
    }

    /// Both variants of a route (zeros when unknown).
    pub fn get(&self, route: &str) -> [VariantStats; 2] {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
            .cloned()
            .unwrap_or_default()
    }
}

/// Complementary error function (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let r = poly * (-z * z).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Two-sided p-value of the pooled two-proportion z-test for x1/n1 vs x2/n2;
/// None when either sample is empty or there is no variance.
pub fn two_proportion_p_value(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let p = (x1 + x2) as f64 / (n1f + n2f);
    let se = (p * (1.0 - p) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (x1 as f64 / n1f - x2 as f64 / n2f) / se;
    Some(erfc(z.abs() / std::f64::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let w = SuccessWindow::new(10_000);
        w.record("DE", "a", true, 0);
        w.record("DE", "a", false, 500);
        w.record("DE", "a", true, 5_000);
        assert_eq!(w.counts("DE", "a", 5_000), (2, 1));
        assert_eq!(w.counts("DE", "a", 10_500), (1, 0));
        assert_eq!(w.counts("DE", "a", 16_000), (0, 0));
        assert_eq!(w.counts("FR", "a", 0), (0, 0));
    }

    #[test]
    fn z_test_known_values() {
        // 45/100 vs 60/100: z = -2.12, p ≈ 0.034.
        let p = two_proportion_p_value(45, 100, 60, 100).unwrap_or(1.0);
        assert!((p - 0.0339).abs() < 0.002, "{p}");
        let p = two_proportion_p_value(50, 100, 50, 100).unwrap_or(0.0);
        assert!((p - 1.0).abs() < 1e-6, "{p}");
        assert!(two_proportion_p_value(0, 0, 1, 2).is_none());
        assert!(two_proportion_p_value(10, 10, 5, 5).is_none());
    }

    #[test]
    fn ab_book() {
        let b = AbBook::default();
        b.accepted("r", 0);
        b.accepted("r", 1);
        b.finished("r", 1, true, Some(120), 0.01);
        let [a, bb] = b.get("r");
        assert_eq!((a.messages, a.finals), (1, 0));
        assert_eq!(bb.delivery_rate(), Some(1.0));
        assert_eq!(bb.latency_ms(0.5), Some(120));
    }
}
