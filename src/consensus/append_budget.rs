//! How much one Raft append may carry to a peer, learned from its link.
//!
//! openraft hands the network up to 256 entries at once (several MB with batched accepts)
//! and gives the call the heartbeat interval (150 ms). Behind a link slower than loopback
//! such an append times out, is resent with the same entries and times out again, so the
//! member never catches up. So each peer has a budget of bytes per append: about what its
//! link delivered in [`TARGET_CALL`], cut to a quarter after a timeout. A longer run of
//! entries goes out as a prefix within the budget and openraft sends the rest next
//! (`network::PeerClient::append_entries`). On loopback the budget grows past any append
//! after the first large one, so nothing is cut there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::wire;

/// How long a cut append should take on the peer's link.
const TARGET_CALL: Duration = Duration::from_secs(1);
/// The budget a peer starts with, before its link has been measured.
const FIRST_BUDGET: usize = 4 * 1024 * 1024;
/// Never below this: a few batched entries per append even on a very slow link.
const MIN_BUDGET: usize = 256 * 1024;
/// Never above this (appends are bounded by openraft's 256 entries anyway).
const MAX_BUDGET: usize = 64 * 1024 * 1024;
/// Appends smaller than this say little about the link's rate (latency dominates).
const MIN_SAMPLE: usize = 64 * 1024;
/// The slowest link an append must still cross in time: each append may take openraft's
/// limit plus its body's time at this rate (4 Mbit/s), so ~0.5 s per MB of budget.
const SLOWEST_LINK_BYTES_PER_S: u64 = 512 * 1024;

/// Every peer's append budget, kept across openraft's reconnects (it makes a new
/// `PeerClient` after errors, which is exactly when the budget matters).
#[derive(Default)]
pub struct AppendBudgets {
    per_peer: Mutex<HashMap<u64, Arc<AppendBudget>>>,
}

impl AppendBudgets {
    /// The budget of the link to `peer`.
    pub fn of(&self, peer: u64) -> Arc<AppendBudget> {
        self.per_peer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(peer)
            .or_insert_with(|| Arc::new(AppendBudget::default()))
            .clone()
    }
}

/// The bytes one append to one peer may carry.
pub struct AppendBudget {
    bytes: AtomicUsize,
}

impl Default for AppendBudget {
    fn default() -> Self {
        AppendBudget {
            bytes: AtomicUsize::new(FIRST_BUDGET),
        }
    }
}

impl AppendBudget {
    /// The current budget in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// An append of `bytes` was answered after `took`: the budget becomes what the link
    /// moves in [`TARGET_CALL`] at that rate.
    pub fn delivered(&self, bytes: usize, took: Duration) {
        if bytes < MIN_SAMPLE {
            return;
        }
        let per_s = bytes as f64 / took.as_secs_f64().max(1e-4);
        let budget = (per_s * TARGET_CALL.as_secs_f64()) as usize;
        self.bytes
            .store(budget.clamp(MIN_BUDGET, MAX_BUDGET), Ordering::Relaxed);
    }

    /// An append timed out: the next one carries a quarter.
    pub fn timed_out(&self) {
        let cut = (self.bytes() / 4).max(MIN_BUDGET);
        self.bytes.store(cut, Ordering::Relaxed);
    }
}

/// How long an append of `body_bytes` may take: openraft's limit plus the body's time at
/// [`SLOWEST_LINK_BYTES_PER_S`].
pub fn append_timeout(openraft_ttl: Duration, body_bytes: usize) -> Duration {
    let transfer_ms = (body_bytes as u64).saturating_mul(1000) / SLOWEST_LINK_BYTES_PER_S;
    openraft_ttl + Duration::from_millis(transfer_ms)
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

    #[test]
    fn an_append_gets_time_for_its_size() {
        let ttl = Duration::from_millis(150);
        assert_eq!(append_timeout(ttl, 0), ttl);
        assert_eq!(append_timeout(ttl, 512 * 1024), Duration::from_millis(1150));
    }

    #[test]
    fn the_budget_follows_the_link() {
        let b = AppendBudget::default();
        assert_eq!(b.bytes(), FIRST_BUDGET);
        // 10 Mbit/s: 4 MiB took 3.4 s -> about 1.2 MB per append.
        b.delivered(4 * 1024 * 1024, Duration::from_millis(3400));
        assert!((1_100_000..1_400_000).contains(&b.bytes()), "{}", b.bytes());
        // Loopback: 1.2 MB in 5 ms -> the ceiling, so nothing is cut.
        b.delivered(1_200_000, Duration::from_millis(5));
        assert_eq!(b.bytes(), MAX_BUDGET);
        // Small appends say nothing about the rate.
        b.delivered(1000, Duration::from_secs(1));
        assert_eq!(b.bytes(), MAX_BUDGET);
        b.timed_out();
        assert_eq!(b.bytes(), MAX_BUDGET / 4);
        for _ in 0..20 {
            b.timed_out();
        }
        assert_eq!(b.bytes(), MIN_BUDGET);
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
    fn every_peer_has_its_own_budget_kept_across_clients() {
        let all = AppendBudgets::default();
        all.of(2).timed_out();
        assert_eq!(all.of(2).bytes(), FIRST_BUDGET / 4);
        assert_eq!(all.of(3).bytes(), FIRST_BUDGET);
    }
}
