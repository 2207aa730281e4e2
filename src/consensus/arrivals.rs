//! When each member's latest heartbeat reached this node's log. The placement controller
//! declares a node dead `DEAD_AFTER` after its last heartbeat was seen; seeing it when the
//! entry is appended here, not when it is applied, is just as safe (the entry was sent
//! before it arrived, and the sender's lease counts from its send) and does not add the
//! time an election holds back the commit of the old leader's last entries: after a leader
//! kill those were applied only once the new leader committed, a second after they arrived.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::state::{Op, Proposal};

/// Arrival times of heartbeats in this node's log, by member id.
#[derive(Debug, Default)]
pub struct HeartbeatArrivals {
    latest: Mutex<HashMap<u64, Instant>>,
}

impl HeartbeatArrivals {
    /// Notes the heartbeats in an entry that has just been appended to the log.
    pub fn appended(&self, proposal: &Proposal, at: Instant) {
        let is_heartbeat = |op: &Op| matches!(op, Op::Heartbeat { .. });
        if !proposal.ops.iter().any(is_heartbeat) {
            return;
        }
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        for op in proposal.ops.iter() {
            if let Op::Heartbeat { node, .. } = op {
                let seen = latest.entry(*node).or_insert(at);
                *seen = (*seen).max(at);
            }
        }
    }

    /// When a heartbeat of `node` last reached this node's log (None: not since start).
    pub fn latest(&self, node: u64) -> Option<Instant> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn heartbeat(node: u64) -> Op {
        Op::Heartbeat {
            node,
            cluster_addr: String::new(),
            http_addr: String::new(),
            draining: false,
            at: 0,
        }
    }

    #[test]
    fn keeps_the_latest_arrival_per_member_and_ignores_other_ops() {
        let arrivals = HeartbeatArrivals::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(250);
        arrivals.appended(
            &Proposal {
                ops: vec![
                    heartbeat(2),
                    Op::WebhookDone {
                        event_id: "e".into(),
                    },
                ]
                .into(),
            },
            t1,
        );
        // An entry appended again after a truncation never moves the time back.
        arrivals.appended(
            &Proposal {
                ops: vec![heartbeat(2)].into(),
            },
            t0,
        );
        arrivals.appended(
            &Proposal {
                ops: vec![Op::WebhookDone {
                    event_id: "f".into(),
                }]
                .into(),
            },
            t1,
        );
        assert_eq!(arrivals.latest(2), Some(t1));
        assert_eq!(arrivals.latest(3), None);
    }
}
