//! The cluster: leases that fence a node off its channels when it loses the quorum, and
//! the leader's placement controller that spreads channels over live nodes and moves
//! them away from dead, draining or removed ones. Raft (crate::consensus) is the
//! failure detector and the source of truth: both work only through replicated rows.

pub mod lease;
pub mod placement;

pub use lease::Lease;
