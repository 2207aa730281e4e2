//! Node configuration: one struct, filled from flags > env (`SMSGW_<NAME>`) > TOML file > defaults,
//! then validated with errors that name the bad field. (Loading being written.)

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything `smsgw start` needs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id in the cluster (u64, unique).
    pub node_id: u64,
    /// HTTP API listen address.
    pub http: String,
    /// Inter-node transport (Raft RPC) listen address.
    pub cluster_addr: String,
    /// All durable state of this node; default `./data/node-<id>`.
    pub data_dir: Option<PathBuf>,
    /// Initial members `ID@ADDR,...` (this node included). Empty: single node.
    pub peers: String,
    /// Token for /admin/*; generated and stored in `<data-dir>/admin.token` when absent.
    pub admin_token: Option<String>,
    /// Log filter (tracing EnvFilter syntax).
    pub log: String,
    /// Largest accepted HTTP request body, bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Messages waiting on this node (all tenants) above which sends get 429 `queue_full`.
    pub node_queue_limit: u64,
    /// Default per-tenant waiting-message limit when a tenant sets none.
    pub tenant_queue_limit: u64,
    /// Webhook deliveries in flight at once.
    pub webhook_concurrency: usize,
    /// Raft election timeout range, ms.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Raft heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Seconds SIGTERM waits for in-flight submits before exiting.
    pub drain_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            http: "127.0.0.1:8080".into(),
            cluster_addr: "127.0.0.1:9080".into(),
            data_dir: None,
            peers: String::new(),
            admin_token: None,
            log: "info".into(),
            max_body_bytes: 1024 * 1024,
            node_queue_limit: 1_000_000,
            tenant_queue_limit: 200_000,
            webhook_concurrency: 64,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 1200,
            heartbeat_ms: 150,
            drain_seconds: 10,
        }
    }
}

impl Config {
    /// The data dir, defaulted from the node id.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("./data/node-{}", self.node_id)))
    }

    /// `peers` parsed into id → address (validated by `validate`).
    pub fn peer_map(&self) -> BTreeMap<u64, String> {
        let mut m = BTreeMap::new();
        for item in self.peers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((id, addr)) = item.split_once('@')
                && let Ok(id) = id.trim().parse()
            {
                m.insert(id, addr.trim().to_string());
            }
        }
        m
    }
}
