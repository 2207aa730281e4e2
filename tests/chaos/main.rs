//! The chaos runs' CI tier in its own test binary: it runs after the single-node and
//! cluster tests, not beside them, so its failover timings are not taken on a machine
//! already saturated by other tests.
#[path = "../common/mod.rs"]
mod common;

mod t98_chaos_ci;
