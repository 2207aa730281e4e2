//! Any node answers any request (writes forwarded, reads see writes at once), and a
//! kill -9 of the node that owns a channel moves the channel to a peer, which carries on
//! with its queue: nothing accepted is lost, resends are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use crate::common::cluster::TestCluster;
use crate::common::*;
use crate::load::stream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_api_and_bind_owner_kill9() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc_a = Smsc::start(dir.path(), "a", &["--dlr-delay-ms", "100"]).await;
    let smsc_b = Smsc::start(dir.path(), "b", &["--dlr-delay-ms", "100"]).await;
    let mut cluster = TestCluster::start(dir.path(), 3, &[]).await;

    // Configuration through node 2, so it is forwarded to the leader wherever it is.
    let n2 = cluster.node(2);
    let mut a = smsc_a.channel("ch-a");
    a["tps"] = json!(300);
    a["window"] = json!(10);
    let mut b = smsc_b.channel("ch-b");
    b["tps"] = json!(300);
    b["window"] = json!(10);
    n2.channels_and_route(&[a, b]).await;
    let key = n2.tenant("acme", json!({})).await;
    let owner_a = eventually("ch-a bound", Duration::from_secs(30), || async {
        cluster.bound_owner("ch-a", &[]).await
    })
    .await;
    let owner_b = eventually("ch-b bound", Duration::from_secs(30), || async {
        cluster.bound_owner("ch-b", &[]).await
    })
    .await;
    assert_ne!(
        owner_a, owner_b,
        "two channels on three nodes go to two nodes"
    );

    // Any-node API: send through each node, read right away through another one.
    for from in 1..=3u64 {
        let (s, v) = cluster
            .node(from)
            .send(
                &key,
                json!({"to": "+4915112345678", "text": format!("any node {from}")}),
            )
            .await;
        assert_eq!(s, 202, "send through node {from}: {v}");
        let id = v["id"].as_str().expect("id").to_string();
        let reader = cluster.node(from % 3 + 1);
        let (s, m) = reader.message(&key, &id).await;
        assert_eq!(
            s, 200,
            "node {} must see {id} right after its 202: {m}",
            reader.node_id
        );
        reader
            .wait_status(&key, &id, "delivered", Duration::from_secs(30))
            .await;
    }

    // A channel's figures live on its owner; every node shows them. The three messages
    // above were sent on ch-a or ch-b: read each channel on a node that does not own it.
    let mut sent_seen = 0;
    for (channel, owner) in [("ch-a", owner_a), ("ch-b", owner_b)] {
        let reader = cluster.node(owner % 3 + 1);
        let (s, v) = reader
            .admin(
                reqwest::Method::GET,
                &format!("/admin/v1/channels/{channel}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{channel} on node {}: {v}", reader.node_id);
        sent_seen += v["stats"]["sent"].as_u64().unwrap_or(0);
    }
    assert_eq!(
        sent_seen, 3,
        "channel figures read on a node that does not own the channel must be the owner's"
    );

    // A steady stream through the two nodes that survive; then kill -9 ch-a's owner.
    let victim = owner_a;
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.node_id != victim)
        .map(|n| n.url(""))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = stream(
        Arc::new(Mutex::new(urls)),
        key.clone(),
        "failover",
        Duration::from_millis(15),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    cluster.node_mut(victim).proc.kill9();
    let new_owner = eventually(
        "ch-a re-bound on a peer",
        Duration::from_secs(30),
        || async { cluster.bound_owner("ch-a", &[victim]).await },
    )
    .await;
    let rebind_ms = killed_at.elapsed().as_millis();
    assert_ne!(new_owner, victim);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let result = load.await.expect("load task");
    assert!(
        result.accepted.len() > 50,
        "the stream kept being accepted: {result:?}"
    );

    // Every accepted message reaches the operator and is delivered (read via a survivor).
    let reader = cluster
        .nodes
        .iter()
        .find(|n| n.node_id != victim)
        .expect("a survivor");
    for id in &result.accepted {
        reader
            .wait_status(&key, id, "delivered", Duration::from_secs(60))
            .await;
    }
    let mut ledger = smsc_a.ledger_lines();
    ledger.extend(smsc_b.ledger_lines());
    let dups = ledger_duplicates(&ledger);
    let resubmits =
        metric_value(&reader.metrics_text().await, "smsgw_resubmits_total", &[]).unwrap_or(0.0);
    println!(
        "bind failover: rebind_ms={rebind_ms} accepted={} failed_requests={} retried={} duplicates_at_smsc={dups} resubmits_counted_on_reader={resubmits}",
        result.accepted.len(),
        result.failed,
        result.retried
    );
    assert!(
        rebind_ms < 15_000,
        "the channel must be bound on a peer within 15 s (goal 5 s), took {rebind_ms} ms"
    );
    // Only what was on the wire when the owner died may go out twice: at most its window.
    assert!(dups <= 10, "duplicates beyond the window: {dups}");
}
