//! The leader's watch over each member's replication: how far the member's log matches the
//! leader's and how long that has not advanced. A member can send heartbeats (forwarded to
//! the leader, so its replicated row looks fresh) while the leader's appends never reach
//! it: restarted at another `cluster_addr`, wiped, or behind a link that only works one
//! way. The cluster view shows such a member as `lagging`, and the leader logs a WARN once
//! per episode. The classification is pure ([`classify`]); the tracker only keeps, per
//! member, the last matched index and when it last advanced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::consensus::Consensus;

/// A member whose matched index has not advanced for this long while it is behind is
/// shown as `lagging` (not replicating): longer than a slow append or a short pause.
pub const LAGGING_AFTER: Duration = Duration::from_secs(5);
/// ... and the leader logs a WARN about it once this long has passed.
pub const WARN_AFTER: Duration = Duration::from_secs(10);
/// How often the leader looks at its replication progress.
const EVERY: Duration = Duration::from_millis(500);

/// How a member keeps up with the leader's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replicating {
    /// It has every entry of the leader's log.
    InStep,
    /// It is behind, but its matched index advanced lately.
    CatchingUp,
    /// It is behind and its matched index has not advanced for [`LAGGING_AFTER`].
    NotReplicating,
}

/// The verdict for a member `lag` entries behind the leader whose matched index last
/// advanced (or was last in step) `stalled` ago.
pub fn classify(lag: u64, stalled: Duration) -> Replicating {
    if lag == 0 {
        Replicating::InStep
    } else if stalled < LAGGING_AFTER {
        Replicating::CatchingUp
    } else {
        Replicating::NotReplicating
    }
}

/// One member's replication as the leader sees it (the cluster view's `replication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The last entry known to match the leader's log (`None`: none yet).
    pub matched_index: Option<u64>,
    /// Entries of the leader's log the member does not have.
    pub lag: u64,
    /// How long its matched index has not advanced while it was behind (0 in step).
    pub stalled_ms: u64,
    pub state: Replicating,
}

/// What the tracker remembers of one member.
#[derive(Debug, Clone)]
struct Seen {
    matched: Option<u64>,
    lag: u64,
    /// When the matched index last advanced, or the member was last in step.
    advanced_at: Instant,
    /// A WARN was logged for the current episode.
    warned: bool,
}

/// A member the leader has just found not replicating for [`WARN_AFTER`], or that
/// replicates again after such an episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Episode {
    Stalled {
        node: u64,
        matched: Option<u64>,
        lag: u64,
        stalled: Duration,
    },
    Recovered {
        node: u64,
    },
}

/// The leader's replication progress per member (empty on a follower).
#[derive(Debug, Default)]
pub struct ReplicationWatch {
    members: Mutex<BTreeMap<u64, Seen>>,
}

impl ReplicationWatch {
    /// Takes the leader's last log index and each member's matched index at `now`, and
    /// returns the episodes that start or end with it (each reported once).
    pub fn observe(
        &self,
        now: Instant,
        last_log: u64,
        matched: &BTreeMap<u64, Option<u64>>,
    ) -> Vec<Episode> {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.retain(|id, _| matched.contains_key(id));
        let mut episodes = Vec::new();
        for (&node, &m) in matched {
            let lag = last_log.saturating_sub(m.unwrap_or(0));
            let seen = members.entry(node).or_insert(Seen {
                matched: m,
                lag,
                advanced_at: now,
                warned: false,
            });
            if m > seen.matched || lag == 0 {
                seen.advanced_at = now;
                if seen.warned {
                    episodes.push(Episode::Recovered { node });
                }
                seen.warned = false;
            }
            seen.matched = m;
            seen.lag = lag;
            let stalled = now.saturating_duration_since(seen.advanced_at);
            if lag > 0 && stalled >= WARN_AFTER && !seen.warned {
                seen.warned = true;
                episodes.push(Episode::Stalled {
                    node,
                    matched: m,
                    lag,
                    stalled,
                });
            }
        }
        episodes
    }

    /// Forgets everything (this node does not lead: it has no replication to watch).
    pub fn reset(&self) {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Each member's progress as of the last observation, stalled times counted to `now`.
    pub fn progress(&self, now: Instant) -> BTreeMap<u64, Progress> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .map(|(&id, s)| {
                let stalled = if s.lag == 0 {
                    Duration::ZERO
                } else {
                    now.saturating_duration_since(s.advanced_at)
                };
                let p = Progress {
                    matched_index: s.matched,
                    lag: s.lag,
                    stalled_ms: stalled.as_millis() as u64,
                    state: classify(s.lag, stalled),
                };
                (id, p)
            })
            .collect()
    }
}

/// Runs for the node's life: on the leader, observes the replication every [`EVERY`] and
/// logs a WARN when a member stops replicating (once per episode) and an INFO when it
/// replicates again; on a follower, keeps the watch empty.
pub async fn run(consensus: Arc<Consensus>, watch: Arc<ReplicationWatch>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !consensus.is_leader() {
            watch.reset();
            continue;
        }
        let log = consensus.log_state();
        let me = consensus.node_id();
        let mut matched = log.matched_index;
        matched.remove(&me);
        let last = log.last_log_index.unwrap_or(0);
        for episode in watch.observe(Instant::now(), last, &matched) {
            report(&consensus, episode);
        }
    }
}

/// Logs one episode, naming the member, its address and what to check.
fn report(consensus: &Consensus, episode: Episode) {
    let addr_of = |node: u64| {
        consensus
            .members()
            .into_iter()
            .find(|(id, _, _)| *id == node)
            .map(|(_, info, _)| info.cluster_addr)
            .unwrap_or_default()
    };
    match episode {
        Episode::Stalled {
            node,
            matched,
            lag,
            stalled,
        } => tracing::warn!(
            node,
            addr = %addr_of(node),
            matched_index = matched.unwrap_or(0),
            lag,
            stalled_s = stalled.as_secs(),
            "member is not replicating: the leader's log grew but the entries it matches have \
             not advanced; check that the node listens at the address shown (restarted with \
             another cluster_addr?), that the link from the leader to it works, and its log \
             (wiped data dir?)"
        ),
        Episode::Recovered { node } => {
            tracing::info!(node, "member replicates again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_classified_by_how_long_the_matched_index_stood_still() {
        let s = Duration::from_secs;
        let cases = [
            (0, s(0), Replicating::InStep),
            (0, s(60), Replicating::InStep),
            (3, s(0), Replicating::CatchingUp),
            (50_000, s(4), Replicating::CatchingUp),
            (3, s(5), Replicating::NotReplicating),
            (1, s(30), Replicating::NotReplicating),
        ];
        for (lag, stalled, want) in cases {
            assert_eq!(
                classify(lag, stalled),
                want,
                "lag {lag}, stalled {stalled:?}"
            );
        }
    }

    fn matched(pairs: &[(u64, Option<u64>)]) -> BTreeMap<u64, Option<u64>> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_member_whose_matched_index_stands_still_is_lagging_and_warned_once() {
        let w = ReplicationWatch::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Node 2 keeps up; node 3 stops at 100 while the log grows.
        assert!(
            w.observe(at(0), 100, &matched(&[(2, Some(100)), (3, Some(100))]))
                .is_empty()
        );
        assert!(
            w.observe(at(3), 160, &matched(&[(2, Some(159)), (3, Some(100))]))
                .is_empty()
        );
        let p = w.progress(at(3));
        assert_eq!(p[&2].state, Replicating::CatchingUp);
        assert_eq!(p[&3].state, Replicating::CatchingUp);
        assert!(
            w.observe(at(6), 220, &matched(&[(2, Some(220)), (3, Some(100))]))
                .is_empty()
        );
        let p = w.progress(at(6));
        assert_eq!(p[&2].state, Replicating::InStep);
        assert_eq!(p[&3].state, Replicating::NotReplicating);
        assert_eq!((p[&3].lag, p[&3].stalled_ms), (120, 6000));
        // The WARN comes once past WARN_AFTER, not on every tick after it.
        let e = w.observe(at(11), 300, &matched(&[(2, Some(300)), (3, Some(100))]));
        assert_eq!(
            e,
            vec![Episode::Stalled {
                node: 3,
                matched: Some(100),
                lag: 200,
                stalled: Duration::from_secs(11)
            }]
        );
        assert!(
            w.observe(at(12), 320, &matched(&[(2, Some(320)), (3, Some(100))]))
                .is_empty()
        );
        // It catches up: the episode ends, said once, and a new one may start later.
        let e = w.observe(at(13), 340, &matched(&[(2, Some(340)), (3, Some(200))]));
        assert_eq!(e, vec![Episode::Recovered { node: 3 }]);
        assert_eq!(w.progress(at(13))[&3].state, Replicating::CatchingUp);
    }

    #[test]
    fn a_member_never_matched_counts_from_when_it_was_first_seen_and_removed_ones_go() {
        let w = ReplicationWatch::default();
        let t0 = Instant::now();
        w.observe(t0, 50, &matched(&[(4, None)]));
        let p = w.progress(t0 + LAGGING_AFTER);
        assert_eq!(p[&4].lag, 50);
        assert_eq!(p[&4].state, Replicating::NotReplicating);
        w.observe(t0, 50, &matched(&[(2, Some(50))]));
        assert!(!w.progress(t0).contains_key(&4));
        w.reset();
        assert!(w.progress(t0).is_empty());
    }
}
