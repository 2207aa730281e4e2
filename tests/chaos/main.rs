//! The chaos runs' CI tier in its own test binary: it runs after the single-node and
//! cluster tests, not beside them, so its failover timings are not taken on a machine
//! already saturated by other tests.
#[path = "../common/mod.rs"]
mod common;

/// Runs that start a cluster take this in turn: the CI tier's failover timings must not be
/// taken beside another run.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

mod t97_scenario_checks;
mod t98_chaos_ci;
