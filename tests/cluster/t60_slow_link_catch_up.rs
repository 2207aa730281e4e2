//! A member behind a slow link catches up from the log. Node 3's inbound Raft link runs
//! through a fault proxy that passes 1 MB/s; it is killed, the others accept a backlog
//! in large batches (entries of a few hundred KB, appends of MBs), and it comes back.
//! openraft gives an append only the heartbeat interval, so before the per-link append
//! budget this member timed out on every resend and never caught up.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smsgw::chaos::proxy::FaultProxy;

use crate::common::cluster::{TestCluster, log_index, raft_log_of};
use crate::common::*;

/// Bytes per second the link to node 3 carries, each way.
const LINK_BYTES_PER_S: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_a_slow_link_catches_up_from_the_log() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &["--dlr-delay-ms", "20"]).await;

    // The others reach node 3 through the proxy, node 3 reaches them directly. No
    // snapshots: the member must catch up from the log.
    let (mut nodes, peers) = TestCluster::plan(dir.path(), 3, &["--snapshot-every-entries", "0"]);
    let to_node_3 = FaultProxy::start(([127, 0, 0, 1], nodes[2].cluster).into())
        .await
        .expect("proxy");
    to_node_3
        .faults
        .bandwidth_bps
        .store(LINK_BYTES_PER_S, Ordering::Relaxed);
    for node in nodes.iter_mut().filter(|n| n.node_id != 3) {
        node.envs
            .push(("SMSGW_PEER_ADDRS".into(), format!("3={}", to_node_3.listen)));
    }
    let mut cluster = TestCluster::launch(nodes, peers).await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(10)).await;
    let lead = cluster.node(leader);
    lead.channels_and_route(&[smsc.channel("ch")]).await;
    let key = lead.tenant("acme", json!({})).await;

    // Node 3 goes down hard; the others go on.
    cluster.node_mut(3).proc.kill9();
    let leader = cluster.wait_leader(&[3], Duration::from_secs(10)).await;
    let lead = cluster.node(leader);

    // The backlog: batches of 500 long messages, each batch one entry of ~300 KB.
    let text = "slow link ".repeat(40);
    let mut ids = Vec::new();
    let mut last = None;
    for b in 0..8 {
        let messages: Vec<Value> = (0..500)
            .map(|i| json!({"to": format!("+49151123{b}{i:04}"), "text": text}))
            .collect();
        let r = lead
            .post_json("/v1/messages/batch", &key, &json!({"messages": messages}))
            .await;
        assert_eq!(r.status, 200, "batch {b}: {}", r.text);
        let accepted = r.json["results"].as_array().expect("per-message results");
        last = accepted.last().cloned();
        ids.extend(
            accepted
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string)),
        );
    }
    assert_eq!(
        ids.len(),
        4000,
        "every message of the backlog accepted: {last:?}"
    );
    let target = log_index(
        &raft_log_of(lead).await.expect("leader's log"),
        "applied_index",
    );

    // It comes back behind the slow link and must reach where the leader stood.
    cluster.node_mut(3).restart().await;
    let started = Instant::now();
    eventually(
        "node 3 applied the backlog through its slow link",
        Duration::from_secs(60),
        || async {
            let own = raft_log_of(cluster.node(3)).await?;
            (log_index(&own, "applied_index") >= target).then_some(())
        },
    )
    .await;
    let took = started.elapsed();
    // What it applied is what was accepted: a sample read through node 3.
    let back = cluster.node(3);
    for id in ids.iter().step_by(97) {
        let (s, v) = back.message(&key, id).await;
        assert_eq!(s, 200, "{id} through node 3: {v}");
    }
    println!(
        "slow link ({LINK_BYTES_PER_S} B/s): node 3 caught up to index {target} in {:.1} s",
        took.as_secs_f64()
    );
}
