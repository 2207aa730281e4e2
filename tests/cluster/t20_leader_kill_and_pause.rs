//! kill -9 of the leader: a new one is elected and writes resume. SIGSTOP of a channel
//! owner: the channel moves to a peer, and the paused node, once resumed, submits
//! nothing more (its lease ran out; the placement moved on).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::cluster::TestCluster;
use crate::common::*;

fn signal(node: &GwNode, sig: i32) {
    if let Some(c) = &node.proc.child {
        unsafe {
            libc::kill(c.id() as i32, sig);
        }
    }
}

async fn submits_of(node: &GwNode, channel: &str) -> f64 {
    metric_value(
        &node.metrics_text().await,
        "smsgw_channel_submit_total",
        &[("channel", channel)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_then_owner_sigstop() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &["--dlr-delay-ms", "50"]).await;
    let mut cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let n1 = cluster.node(1);
    n1.channels_and_route(&[smsc.channel("ch")]).await;
    let key = n1.tenant("acme", json!({})).await;
    eventually("ch bound", Duration::from_secs(30), || async {
        cluster.bound_owner("ch", &[]).await
    })
    .await;

    // Leader kill -9: writes resume through the others.
    let leader = cluster.wait_leader(&[], Duration::from_secs(10)).await;
    let killed_at = Instant::now();
    cluster.node_mut(leader).proc.kill9();
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.node_id != leader)
        .expect("survivor");
    // A send during the election is held until a leader is there, not refused: the
    // tenant is far under its rate limit, so never a 429.
    let (s, v) = survivor
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "during the election"}),
        )
        .await;
    assert!(s == 202 || s == 503, "a send during the election: {s} {v}");
    println!(
        "send during the election: {s} after {} ms",
        killed_at.elapsed().as_millis()
    );
    let new_leader = cluster
        .wait_leader(&[leader], Duration::from_secs(20))
        .await;
    let id = eventually(
        "a write accepted after the leader died",
        Duration::from_secs(20),
        || async {
            let (s, v) = survivor
                .send(
                    &key,
                    json!({"to": "+4915112345678", "text": "after leader kill"}),
                )
                .await;
            (s == 202).then(|| v["id"].as_str().unwrap_or_default().to_string())
        },
    )
    .await;
    let failover_ms = killed_at.elapsed().as_millis();
    println!("leader failover: old={leader} new={new_leader} writes_resumed_ms={failover_ms}");
    assert_ne!(new_leader, leader);
    survivor
        .wait_status(&key, &id, "delivered", Duration::from_secs(30))
        .await;
    // The old leader comes back and rejoins as a follower.
    cluster.node_mut(leader).restart().await;

    // SIGSTOP the channel's owner; the channel moves; after SIGCONT it sends nothing.
    let owner = eventually("ch bound", Duration::from_secs(30), || async {
        cluster.bound_owner("ch", &[]).await
    })
    .await;
    let paused = cluster.node(owner);
    let before = submits_of(paused, "ch").await;
    signal(paused, libc::SIGSTOP);
    let stopped_at = Instant::now();
    let moved_to = eventually(
        "ch re-bound while its owner is paused",
        Duration::from_secs(30),
        || async { cluster.bound_owner("ch", &[owner]).await },
    )
    .await;
    println!(
        "paused owner {owner}: ch re-bound on {moved_to} after {} ms",
        stopped_at.elapsed().as_millis()
    );
    let other = cluster.node(moved_to);
    let mut ids = Vec::new();
    for i in 0..20 {
        let (s, v) = other
            .send(
                &key,
                json!({"to": "+4915112345678", "text": format!("while paused {i}")}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    signal(cluster.node(owner), libc::SIGCONT);
    for i in 0..20 {
        let (s, v) = other
            .send(
                &key,
                json!({"to": "+4915112345678", "text": format!("after resume {i}")}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    for id in &ids {
        other
            .wait_status(&key, id, "delivered", Duration::from_secs(30))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = submits_of(cluster.node(owner), "ch").await;
    assert_eq!(
        after, before,
        "the resumed node must not submit on a channel it no longer holds"
    );
    assert_eq!(
        ledger_duplicates(&smsc.ledger_lines()),
        0,
        "no message sent twice"
    );
}
