//! Black-box tests of a real cluster: three (or four) `smsgw start` processes on
//! 127.0.0.1 with SMSC simulator processes, killed, paused and resized under load. A
//! separate test binary, so these heavy tests do not compete with the single-node ones.
#[path = "../common/mod.rs"]
mod common;

mod load;
mod t10_any_node_and_bind_failover;
mod t20_leader_kill_and_pause;
mod t30_membership;
mod t40_rate_limit;
mod t50_snapshot_catch_up;
mod t60_slow_link_catch_up;
mod t70_cluster_secret;
mod t80_membership_safety;
mod t82_sla_owner_only;
mod t84_status_without_quorum;
mod t85_concurrent_clients;
