//! The cluster rows of the replicated state: members as they last announced themselves,
//! which node owns each channel (with an epoch that fences a previous owner), and the
//! state each node reports for the binds it runs.
//!
//! The unit of placement is a channel: all binds of a channel run on its owner, which
//! also dispatches the channel's queue. The operator's TPS and window are then enforced
//! in one place, with no cross-node coordination per submit.

use serde::{Deserialize, Serialize};

/// A member as its last heartbeat described it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeRow {
    pub id: u64,
    pub cluster_addr: String,
    pub http_addr: String,
    /// Wall-clock time of the proposer when it sent the heartbeat (for display only;
    /// liveness is judged by the leader's monotonic clock).
    pub last_heartbeat_at: i64,
    /// The node is shutting down: give it no channels.
    pub draining: bool,
}

impl NodeRow {
    /// True when its last heartbeat (by the proposer's wall clock) is younger than
    /// `window`: what the admin views show as a live node (display only; placement
    /// judges liveness on the leader's monotonic clock).
    pub fn heard_within(&self, now_ms: i64, window: std::time::Duration) -> bool {
        now_ms - self.last_heartbeat_at < window.as_millis() as i64
    }
}

/// Which node runs a channel's binds and dispatches its queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Placement {
    pub channel: String,
    pub owner: Option<u64>,
    /// Bumped by every change; a claim or hand-over names the epoch it was made under.
    pub epoch: u64,
    /// A graceful move in progress: the owner finishes its in-flight submits, then
    /// hands the channel to this node.
    pub handoff_to: Option<u64>,
}

impl Placement {
    /// True when `node` may start new submits on this channel.
    pub fn active_owner(&self, node: u64) -> bool {
        self.owner == Some(node) && self.handoff_to.is_none()
    }
}

/// One bind's state as the node running it reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindReport {
    pub channel: String,
    pub index: u32,
    pub node: u64,
    /// "bound", "connecting" or "down".
    pub state: String,
    pub since: i64,
}

/// Reports of a transmitter bind's receiver bind (receipts and MO) use the bind's index
/// plus this, so they share the bind-state map without counting as binds that submit
/// (readers of the map filter `index < RECEIVER_INDEX_BASE` for those).
pub const RECEIVER_INDEX_BASE: u32 = 1 << 20;

impl BindReport {
    /// The key of this bind in the bind-state map.
    pub fn key(&self) -> (String, u32) {
        (self.channel.clone(), self.index)
    }
}

/// A message being submitted: which owner (and epoch) claimed it. A claim still present
/// when a new owner takes the message means the old one may have written it to the
/// operator without recording the answer: the new owner resends it and counts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClaimRow {
    pub node: u64,
    pub epoch: u64,
    pub at: i64,
}
