//! Fault injection for tests and chaos runs: `SMSGW_FAILPOINTS="name:count,..."` makes the
//! named point fire `count` times (then stay quiet). Off unless the variable is set.
//!
//! Points: `message_actor_crash` (a message actor fails after loading its message),
//! `bind_actor_crash` (a bind actor fails while handling a submit), `sweeper_crash` (a
//! top-level actor fails: the node must exit non-zero rather than run without it).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

fn points() -> &'static HashMap<String, AtomicU64> {
    static POINTS: OnceLock<HashMap<String, AtomicU64>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let mut m = HashMap::new();
        if let Ok(spec) = std::env::var("SMSGW_FAILPOINTS") {
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, count) = item.split_once(':').unwrap_or((item, "1"));
                m.insert(name.to_string(), AtomicU64::new(count.parse().unwrap_or(1)));
            }
        }
        m
    })
}

/// True (and one fewer left) when the named point should fire now.
pub fn fire(name: &str) -> bool {
    points().get(name).is_some_and(|n| {
        n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
            .is_ok()
    })
}
