//! A real multi-process cluster on 127.0.0.1: N `smsgw start` processes with `--peers`,
//! each with its own data dir and ports, for the cluster tests.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{ADMIN_TOKEN, GwNode, Proc, eventually, free_port};

/// Raft timings for tests: fast elections, so failover tests stay short.
pub const FAST_RAFT: [&str; 6] = [
    "--heartbeat-ms",
    "100",
    "--election-timeout-min-ms",
    "400",
    "--election-timeout-max-ms",
    "800",
];

/// The nodes of one test cluster.
pub struct TestCluster {
    pub nodes: Vec<GwNode>,
    /// The `--peers` value every member was started with.
    pub peers: String,
}

/// A node (not started) with its ports and data dir under `dir/n<id>`.
pub fn member(dir: &Path, id: u64, http: u16, cluster: u16, args: Vec<String>) -> GwNode {
    let home = dir.join(format!("n{id}"));
    let _ = std::fs::create_dir_all(&home);
    GwNode {
        node_id: id,
        proc: Proc {
            child: None,
            log: home.join("node.log"),
        },
        http,
        cluster,
        dir: home,
        token: ADMIN_TOKEN.into(),
        extra: args,
        envs: Vec::new(),
    }
}

impl TestCluster {
    /// Starts `n` members (ids 1..=n) at once and waits until every one is ready.
    pub async fn start(dir: &Path, n: u64, extra: &[&str]) -> TestCluster {
        let (nodes, peers) = TestCluster::plan(dir, n, extra);
        TestCluster::launch(nodes, peers).await
    }

    /// The members `start` would start (ids 1..=n, ports picked, not yet running) and the
    /// `--peers` value they share: for a test that must change one (its environment, a
    /// proxy in front of its port) before it runs.
    pub fn plan(dir: &Path, n: u64, extra: &[&str]) -> (Vec<GwNode>, String) {
        let ports: Vec<(u64, u16, u16)> =
            (1..=n).map(|id| (id, free_port(), free_port())).collect();
        let peers = ports
            .iter()
            .map(|(id, _, c)| format!("{id}@127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ports
            .into_iter()
            .map(|(id, http, cluster)| {
                let mut args: Vec<String> = vec!["--peers".into(), peers.clone()];
                args.extend(FAST_RAFT.iter().map(|s| s.to_string()));
                args.extend(extra.iter().map(|s| s.to_string()));
                member(dir, id, http, cluster, args)
            })
            .collect();
        (nodes, peers)
    }

    /// Starts planned members at once and waits until every one is ready.
    pub async fn launch(mut nodes: Vec<GwNode>, peers: String) -> TestCluster {
        for node in &mut nodes {
            node.spawn();
        }
        for node in &nodes {
            node.wait_ready().await;
        }
        TestCluster { nodes, peers }
    }

    /// The node with this id.
    pub fn node(&self, id: u64) -> &GwNode {
        self.nodes
            .iter()
            .find(|n| n.node_id == id)
            .expect("node id in cluster")
    }

    /// The node with this id, mutable (to kill or restart it).
    pub fn node_mut(&mut self, id: u64) -> &mut GwNode {
        self.nodes
            .iter_mut()
            .find(|n| n.node_id == id)
            .expect("node id in cluster")
    }

    /// `POST /admin/v1/cluster/transfer-leader` to `to`, asked of node `via`; asserts 200.
    pub async fn transfer_leader(&self, via: u64, to: u64) {
        let (s, v) = self
            .node(via)
            .admin(
                reqwest::Method::POST,
                "/admin/v1/cluster/transfer-leader",
                Some(serde_json::json!({"to": to})),
            )
            .await;
        assert_eq!(s, 200, "transfer leadership to {to}: {v}");
    }

    /// `GET /admin/v1/cluster` from the first node (other than `except`) that answers.
    pub async fn view(&self, except: &[u64]) -> Option<Value> {
        for n in self.nodes.iter().filter(|n| !except.contains(&n.node_id)) {
            let r = super::client()
                .get(n.url("/admin/v1/cluster"))
                .bearer_auth(&n.token)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()?;
            if r.status().is_success() {
                return r.json().await.ok();
            }
        }
        None
    }

    /// The current leader's id, as a live node other than `except` sees it.
    pub async fn leader(&self, except: &[u64]) -> Option<u64> {
        self.view(except).await?["leader"].as_u64()
    }

    /// Waits until a leader other than the `except` nodes is known.
    pub async fn wait_leader(&self, except: &[u64], timeout: Duration) -> u64 {
        eventually("a leader", timeout, || async {
            self.leader(except).await.filter(|l| !except.contains(l))
        })
        .await
    }

    /// The node that owns `channel` and reports it bound, as live nodes see it.
    pub async fn bound_owner(&self, channel: &str, except: &[u64]) -> Option<u64> {
        for n in self.nodes.iter().filter(|n| !except.contains(&n.node_id)) {
            let Ok(r) = super::client()
                .get(n.url(&format!("/admin/v1/channels/{channel}")))
                .bearer_auth(&n.token)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            else {
                continue;
            };
            let Ok(v) = r.json::<Value>().await else {
                continue;
            };
            let owner = v["owner"].as_u64()?;
            if except.contains(&owner) {
                return None;
            }
            let bound = v["binds"]
                .as_array()?
                .iter()
                .any(|b| b["state"] == "bound" && b["node"].as_u64() == Some(owner));
            return bound.then_some(owner);
        }
        None
    }
}

/// The `log` object (applied, matched, purged, snapshot indexes) of `node`'s cluster view.
pub async fn raft_log_of(node: &GwNode) -> Option<Value> {
    let (s, v) = node
        .admin(reqwest::Method::GET, "/admin/v1/cluster", None)
        .await;
    (s == 200).then(|| v["log"].clone())
}

/// One index of a `log` object (0 when absent).
pub fn log_index(log: &Value, field: &str) -> u64 {
    log[field].as_u64().unwrap_or(0)
}
