//! Fault injection for tests and chaos runs: `SMSGW_FAILPOINTS="name:count,..."` makes the
//! named point fire `count` times (then stay quiet). Off unless the variable is set.
//!
//! Points: `message_actor_crash` (a message actor fails after loading its message),
//! `bind_actor_crash` (a bind actor fails while handling a submit), `submit_record_lost`
//! (recording a positive submit response answers "outcome unknown" without writing, as
//! when the leader stops mid-forward), `sweeper_crash` (a
//! top-level actor fails: the node must exit non-zero rather than run without it),
//! `snapshot_install_crash` (the process aborts while installing a snapshot, after clearing
//! its rows and before copying the received ones in).
//!
//! Chaos runs also flip runtime switches (`SMSGW_FAULTS_FILE`: disk full, clock skew) and
//! route peers through fault proxies (`SMSGW_PEER_ADDRS`); see the functions below.

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

// ---------- runtime switches for chaos runs (smsgw sim run) ----------

/// Faults a chaos run switches on and off while the node runs, read from the file named by
/// `SMSGW_FAULTS_FILE` (polled every 50 ms by one thread; no file or no variable = no
/// fault). The file holds comma- or newline-separated items: `disk_full` (Raft log appends
/// fail with "no space left on device") and `clock_skew_ms=N` (this node's clock is off by
/// N ms).
struct Switches {
    disk_full: std::sync::atomic::AtomicBool,
    clock_skew_ms: std::sync::atomic::AtomicI64,
}

fn switches() -> Option<&'static Switches> {
    static S: OnceLock<Option<&'static Switches>> = OnceLock::new();
    *S.get_or_init(|| {
        let path = std::env::var_os("SMSGW_FAULTS_FILE")?;
        let s: &'static Switches = Box::leak(Box::new(Switches {
            disk_full: Default::default(),
            clock_skew_ms: Default::default(),
        }));
        let read = move || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut disk_full = false;
            let mut skew = 0i64;
            for item in text.split([',', '\n']).map(str::trim) {
                if item == "disk_full" {
                    disk_full = true;
                } else if let Some(v) = item.strip_prefix("clock_skew_ms=") {
                    skew = v.trim().parse().unwrap_or(0);
                }
            }
            s.disk_full.store(disk_full, Ordering::Relaxed);
            s.clock_skew_ms.store(skew, Ordering::Relaxed);
        };
        read();
        let _ = std::thread::Builder::new()
            .name("faults-file".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    read();
                }
            });
        Some(s)
    })
}

/// True while a chaos run simulates a full disk on this node (Raft appends must fail).
pub fn disk_full() -> bool {
    switches().is_some_and(|s| s.disk_full.load(Ordering::Relaxed))
}

/// Milliseconds a chaos run shifts this node's clock by (0 normally).
pub fn clock_skew_ms() -> i64 {
    switches().map_or(0, |s| s.clock_skew_ms.load(Ordering::Relaxed))
}

/// The address to reach peer `id` at when a chaos run routes inter-node links through its
/// fault proxies: `SMSGW_PEER_ADDRS="2=127.0.0.1:41002,3=127.0.0.1:41003"`. None = use the
/// address from the membership.
pub fn peer_addr(id: u64) -> Option<String> {
    static MAP: OnceLock<HashMap<u64, String>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m = HashMap::new();
        if let Ok(spec) = std::env::var("SMSGW_PEER_ADDRS") {
            for item in spec.split(',').map(str::trim) {
                if let Some((k, v)) = item.split_once('=')
                    && let Ok(id) = k.trim().parse::<u64>()
                {
                    m.insert(id, v.trim().to_string());
                }
            }
        }
        m
    })
    .get(&id)
    .cloned()
}
