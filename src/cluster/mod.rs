//! The cluster: leases that fence a node off its channels when it loses the quorum, the
//! leader's placement controller that spreads channels over live nodes and moves them
//! away from dead, draining or removed ones, and the actor mesh over which actors on
//! different nodes call each other. Raft (crate::consensus) is the failure detector and
//! the source of truth: leases and placement work only through replicated rows, and the
//! mesh follows the membership Raft holds. What the operator sees of the members (their
//! state without quorum, their replication, peers that never answered) is judged here too.

pub mod lease;
pub mod member_state;
pub mod mesh;
pub mod peer_watch;
pub mod placement;
pub mod replication_watch;
pub mod secret;

pub use lease::Lease;
