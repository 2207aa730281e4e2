//! A node's lease: it may submit to operators only while its last heartbeat, proposed at
//! time T, was committed by a quorum and T + `LEASE` has not passed. The leader declares
//! the node dead (and moves its channels) only when no heartbeat from it has reached its
//! log for `DEAD_AFTER` > `LEASE`, so a paused or partitioned node has stopped submitting
//! before a peer binds its channels.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::consensus::{Consensus, WriteError};
use crate::state::Op;

/// How long a committed heartbeat lets a node submit. Longer than a leader election
/// (~1 s with the default timings) plus a renewal, so an election does not stop the
/// other nodes' submits.
pub const LEASE: Duration = Duration::from_millis(1200);
/// How often a node renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_millis(200);
/// How long the leader waits without a heartbeat before moving a node's channels: the
/// bulk of a bind failover's time (goal 2 s). Longer than `LEASE` by a margin for
/// clock-rate differences; delivery delays only add to the margin (the lease counts from
/// the heartbeat's send, this from its arrival in the leader's log, `consensus::arrivals`).
pub const DEAD_AFTER: Duration = Duration::from_millis(1600);

/// This node's lease, shared by everything that submits.
#[derive(Debug)]
pub struct Lease {
    origin: Instant,
    /// Milliseconds after `origin` until which the lease holds (0: never held).
    until_ms: AtomicU64,
    draining: AtomicBool,
    /// Started with `hold_channels`: binds nothing and submits nothing (its heartbeats say
    /// draining, so the leader gives it no channels either).
    held: AtomicBool,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            origin: Instant::now(),
            until_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            held: AtomicBool::new(false),
        }
    }
}

impl Lease {
    fn ms_since_origin(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// True while this node may submit.
    pub fn valid(&self) -> bool {
        self.ms_since_origin(Instant::now()) < self.until_ms.load(Ordering::Acquire)
    }

    /// True if the lease held at some point within the last `grace` (binds are kept
    /// open that long after a lapse, so a short hiccup does not cost a rebind).
    pub fn held_within(&self, grace: Duration) -> bool {
        self.ms_since_origin(Instant::now())
            < self.until_ms.load(Ordering::Acquire) + grace.as_millis() as u64
    }

    /// A heartbeat sent at `sent` was committed.
    pub fn extend_from(&self, sent: Instant) {
        let until = self.ms_since_origin(sent) + LEASE.as_millis() as u64;
        self.until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// Gives the lease up at once (shutdown).
    pub fn revoke(&self) {
        self.until_ms.store(0, Ordering::Release);
    }

    /// Marks the node as shutting down: its heartbeats say so and it gets no channels.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Holds every channel (`hold_channels`): no binds, no submits, and heartbeats that
    /// say draining, so the leader gives this node no channels.
    pub fn hold(&self) {
        self.held.store(true, Ordering::Release);
        self.set_draining();
    }

    /// Whether the node was started with `hold_channels`.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Whether the node is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Where this node listens, announced in every heartbeat.
#[derive(Debug, Clone)]
pub struct Announce {
    pub cluster_addr: String,
    pub http_addr: String,
}

/// Renews the lease every `RENEW_EVERY` for as long as the node runs. A node that learns
/// it was removed from the cluster gives its lease up at once and renews it no more (the
/// channel supervisor then closes its binds): its heartbeats, forwarded to the leader,
/// would otherwise still commit and keep it sending beside the channels' new owners.
pub async fn keep_lease(consensus: Arc<Consensus>, lease: Arc<Lease>, me: Announce) {
    let mut held = false;
    let mut removed = false;
    let mut renew_error: Option<WriteError> = None;
    let mut outside_since: Option<Instant> = None;
    loop {
        if removed_now(&consensus, renew_error.as_ref(), &mut outside_since) {
            lease.revoke();
            if !removed {
                warn!(
                    node = consensus.node_id(),
                    "this node was removed from the cluster: it closes its binds and will not \
                     send; stop it, or wipe its data dir and add it again"
                );
                removed = true;
                held = false;
            }
            metrics::gauge!("smsgw_lease_valid").set(0.0);
            if !consensus.removed_from_cluster() {
                // Told by the leader: ask again now and then (it may have been added back).
                tokio::time::sleep(RENEW_EVERY * 5).await;
                let probe = renew_once(&consensus, &lease, &me, &mut held).await;
                if !lease.valid() {
                    lease.revoke();
                    renew_error = probe.or(renew_error);
                } else {
                    renew_error = None;
                }
            }
        } else {
            if removed {
                info!(
                    node = consensus.node_id(),
                    "this node is a member again: renewing its lease"
                );
                removed = false;
            }
            renew_error = renew_once(&consensus, &lease, &me, &mut held).await;
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
}

/// How long this node must see a membership without itself before it takes that for
/// its removal: a joining node catching up applies the memberships from before its own
/// addition for a moment (a snapshot taken before it was added, then the entry adding
/// it), and must not log that it was removed nor drop its lease for that.
const OUTSIDE_FOR: Duration = Duration::from_secs(1);

/// Whether this node is out of the cluster: the leader refused its last heartbeat as a
/// non-member's (the change never reached it), or it has known a membership without
/// itself for `OUTSIDE_FOR` (`outside_since` keeps when that began).
fn removed_now(
    consensus: &Consensus,
    last_error: Option<&WriteError>,
    outside_since: &mut Option<Instant>,
) -> bool {
    if matches!(last_error, Some(WriteError::NotMember(_))) {
        return true;
    }
    if !consensus.removed_from_cluster() {
        *outside_since = None;
        return false;
    }
    outside_since.get_or_insert_with(Instant::now).elapsed() >= OUTSIDE_FOR
}

/// Proposes one heartbeat and extends the lease when it commits; the error when it did
/// not commit.
pub async fn renew_once(
    consensus: &Consensus,
    lease: &Lease,
    me: &Announce,
    held: &mut bool,
) -> Option<WriteError> {
    let sent = Instant::now();
    let op = Op::Heartbeat {
        node: consensus.node_id(),
        cluster_addr: me.cluster_addr.clone(),
        http_addr: me.http_addr.clone(),
        draining: lease.draining(),
        at: crate::clock::now_ms(),
    };
    let failed = match tokio::time::timeout(LEASE, consensus.propose(op)).await {
        Ok(Ok(_)) => {
            lease.extend_from(sent);
            if !*held {
                info!(node = consensus.node_id(), "lease acquired");
                *held = true;
            }
            None
        }
        Ok(Err(e)) => {
            if *held && !lease.valid() {
                warn!(node = consensus.node_id(), error = %e, "lease lost: not submitting until it is renewed");
                *held = false;
            }
            Some(e)
        }
        Err(_) => {
            if *held && !lease.valid() {
                warn!(
                    node = consensus.node_id(),
                    "lease lost: heartbeat timed out"
                );
                *held = false;
            }
            None
        }
    };
    metrics::gauge!("smsgw_lease_valid").set(if lease.valid() { 1.0 } else { 0.0 });
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_holds_for_its_duration_from_the_send_time() {
        let l = Lease::default();
        assert!(!l.valid(), "never held");
        l.extend_from(Instant::now());
        assert!(l.valid());
        l.revoke();
        assert!(!l.valid());
        if let Some(past) = Instant::now().checked_sub(Duration::from_secs(10)) {
            let old = Lease {
                origin: past,
                until_ms: AtomicU64::new(0),
                draining: AtomicBool::new(false),
                held: AtomicBool::new(false),
            };
            old.extend_from(past + Duration::from_secs(5));
            assert!(!old.valid(), "a heartbeat sent 5 s ago gives no lease");
            assert!(old.held_within(Duration::from_secs(4)));
            assert!(!old.held_within(Duration::from_secs(1)));
        }
    }

    #[test]
    fn the_leader_waits_longer_than_the_lease() {
        assert!(DEAD_AFTER > LEASE + RENEW_EVERY);
    }
}
