//! How much one Raft append may carry to a peer and how long it may take, learned from
//! the peer's link.
//!
//! openraft hands the network up to 256 entries at once (several MB with batched accepts)
//! and gives the call the heartbeat interval (150 ms). Behind a link slower than loopback
//! such an append times out, is resent with the same entries and times out again, so the
//! member never catches up. So each peer has an estimate of its link's rate: every append
//! of [`MIN_SAMPLE`] or more updates it, a timeout cuts it to a quarter. An append carries
//! at most what that rate moves in [`TARGET_CALL`] (a longer run of entries goes out as a
//! prefix and openraft sends the rest next, `network::PeerClient::append_entries`) and may
//! take the heartbeat interval plus twice its expected transfer time. On loopback the
//! estimate passes any append's size after the first large one, so nothing is cut there.
//! Snapshot chunks to the peer use and feed the same estimate for their time limits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::wire;

/// How long a cut append should take on the peer's link.
const TARGET_CALL: Duration = Duration::from_secs(1);
/// The rate assumed before a link has been measured (32 Mbit/s).
const FIRST_RATE: u64 = 4 * 1024 * 1024;
/// The rate estimate stays within these (128 kbit/s .. 8 Gbit/s).
const MIN_RATE: u64 = 16 * 1024;
const MAX_RATE: u64 = 1024 * 1024 * 1024;
/// An append carries at most this (openraft's 256 entries bound it anyway).
const MAX_BUDGET: usize = 64 * 1024 * 1024;
/// Appends smaller than this say little about the link's rate (latency dominates).
const MIN_SAMPLE: usize = 64 * 1024;
/// No append waits longer than this, whatever the estimate says.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// Every peer's link estimate, kept across openraft's reconnects (it makes a new
/// `PeerClient` after errors, which is exactly when the estimate matters).
#[derive(Default)]
pub struct AppendBudgets {
    per_peer: Mutex<HashMap<u64, Arc<AppendBudget>>>,
}

impl AppendBudgets {
    /// The estimate of the link to `peer`.
    pub fn of(&self, peer: u64) -> Arc<AppendBudget> {
        self.per_peer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_insert_with(|| Arc::new(AppendBudget::default()))
            .clone()
    }
}

/// What one peer's link is estimated to move, in bytes per second.
pub struct AppendBudget {
    rate: AtomicU64,
}

impl Default for AppendBudget {
    fn default() -> Self {
        AppendBudget {
            rate: AtomicU64::new(FIRST_RATE),
        }
    }
}

impl AppendBudget {
    fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// The most bytes the next append should carry.
    pub fn bytes(&self) -> usize {
        let bytes = self.rate() as f64 * TARGET_CALL.as_secs_f64();
        (bytes as usize).min(MAX_BUDGET)
    }

    /// How long a call carrying `body_bytes` may take: `least` (openraft's limit for an
    /// append, 10 s for a snapshot chunk) plus twice the body's expected time on this link.
    pub fn timeout(&self, least: Duration, body_bytes: usize) -> Duration {
        let expected = body_bytes as f64 / self.rate() as f64;
        (least + Duration::from_secs_f64(2.0 * expected)).min(MAX_TIMEOUT.max(least))
    }

    /// Runs one call carrying `bytes` with its time limit from [`timeout`](Self::timeout)
    /// (`call` gets the limit) and learns from how it went: an answer moves the estimate,
    /// a call that ran into its limit cuts it.
    pub async fn measure<T, E, Fut>(
        &self,
        least: Duration,
        bytes: usize,
        call: impl FnOnce(Duration) -> Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let timeout = self.timeout(least, bytes);
        let started = Instant::now();
        let answered = call(timeout).await;
        match &answered {
            Ok(_) => self.delivered(bytes, started.elapsed()),
            Err(_) if started.elapsed() >= timeout => self.timed_out(),
            Err(_) => {}
        }
        answered
    }

    /// An append of `bytes` was answered after `took`: the estimate moves halfway to the
    /// rate this append saw.
    pub fn delivered(&self, bytes: usize, took: Duration) {
        if bytes < MIN_SAMPLE {
            return;
        }
        let seen = (bytes as f64 / took.as_secs_f64().max(1e-5)) as u64;
        let next = self.rate() / 2 + seen / 2;
        self.rate
            .store(next.clamp(MIN_RATE, MAX_RATE), Ordering::Relaxed);
    }

    /// An append timed out: the link is assumed four times slower.
    pub fn timed_out(&self) {
        self.rate
            .store((self.rate() / 4).max(MIN_RATE), Ordering::Relaxed);
    }
}

/// How many of `entries`, from the first, fit in `max_bytes` encoded (always at least one,
/// so that an entry larger than the budget still goes out, alone).
pub fn entries_within<T: Serialize>(entries: &[T], max_bytes: usize) -> usize {
    let mut total = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        total += wire::encode(entry).map(|b| b.len()).unwrap_or(max_bytes);
        if total > max_bytes {
            return i.max(1);
        }
    }
    entries.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(150);

    #[test]
    fn an_append_gets_time_for_its_size_on_this_link() {
        let b = AppendBudget::default();
        assert_eq!(b.timeout(TTL, 0), TTL);
        // 4 MiB at the first guess of 4 MiB/s: 1 s expected, 2 s allowed.
        assert_eq!(
            b.timeout(TTL, 4 * 1024 * 1024),
            TTL + Duration::from_secs(2)
        );
        assert_eq!(b.bytes(), 4 * 1024 * 1024);
    }

    #[test]
    fn timeouts_shrink_the_estimate_until_an_append_gets_through() {
        // A 300 KB/s link and appends of 128 KB (256 single-message entries): 0.43 s each.
        let b = AppendBudget::default();
        let needs = Duration::from_millis(430);
        let mut tries = 0;
        while b.timeout(TTL, 128 * 1024) < needs {
            b.timed_out();
            tries += 1;
            assert!(tries < 10, "never allowed enough time");
        }
        assert_eq!(tries, 2);
        b.delivered(128 * 1024, needs);
        assert!(b.timeout(TTL, 128 * 1024) > needs);
    }

    #[test]
    fn the_estimate_follows_the_link() {
        let b = AppendBudget::default();
        // 10 Mbit/s: 4 MiB in 3.4 s (after a timeout had cut the guess to 1 MiB/s).
        b.timed_out();
        b.delivered(4 * 1024 * 1024, Duration::from_millis(3400));
        assert!((1_000_000..1_300_000).contains(&b.bytes()), "{}", b.bytes());
        // Loopback: 1 MB in 5 ms, twice: past any append's size, so nothing is cut.
        b.delivered(1_000_000, Duration::from_millis(5));
        b.delivered(1_000_000, Duration::from_millis(5));
        assert!(b.bytes() > 16 * 1024 * 1024, "{}", b.bytes());
        // Small appends say nothing about the rate.
        let before = b.bytes();
        b.delivered(1000, Duration::from_secs(1));
        assert_eq!(b.bytes(), before);
        for _ in 0..40 {
            b.timed_out();
        }
        assert_eq!(b.bytes(), MIN_RATE as usize);
    }

    #[test]
    fn a_long_run_of_entries_is_cut_to_a_prefix_within_the_budget() {
        let entries: Vec<Vec<u8>> = (0..10).map(|_| vec![7u8; 1000]).collect();
        let one = wire::encode(&entries[0]).expect("encodes").len();
        assert_eq!(entries_within(&entries, 10 * one), 10);
        assert_eq!(entries_within(&entries, 3 * one), 3);
        assert_eq!(entries_within(&entries, 3 * one + one / 2), 3);
        // An entry larger than the budget still goes out, alone.
        assert_eq!(entries_within(&entries, 10), 1);
        assert_eq!(entries_within::<Vec<u8>>(&[], 10), 0);
    }

    #[test]
    fn every_peer_has_its_own_estimate_kept_across_clients() {
        let all = AppendBudgets::default();
        all.of(2).timed_out();
        assert_eq!(all.of(2).bytes(), 1024 * 1024);
        assert_eq!(all.of(3).bytes(), 4 * 1024 * 1024);
    }
}
