//! Membership under load: a fourth node joins (learner, then voter) and a member leaves,
//! through the admin API of any node, while messages keep flowing and none is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::common::cluster::{FAST_RAFT, TestCluster, member};
use crate::common::*;
use crate::load::stream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_a_node_under_load() {
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

    let urls = Arc::new(Mutex::new(vec![
        cluster.node(1).url(""),
        cluster.node(3).url(""),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let load = stream(
        urls.clone(),
        key.clone(),
        "members",
        Duration::from_millis(20),
        stop.clone(),
    );

    // Node 4 starts knowing the members (the lowest id is not its own, so it waits).
    let (http, cport) = (free_port(), free_port());
    let peers = format!("{},4@127.0.0.1:{cport}", cluster.peers);
    let mut args: Vec<String> = vec!["--peers".into(), peers];
    args.extend(FAST_RAFT.iter().map(|s| s.to_string()));
    let mut n4 = member(dir.path(), 4, http, cport, args);
    n4.spawn();
    let (s, v) = cluster
        .node(2)
        .admin(
            reqwest::Method::POST,
            "/admin/v1/cluster/nodes",
            Some(json!({"id": 4, "addr": format!("127.0.0.1:{cport}")})),
        )
        .await;
    assert_eq!(s, 201, "add node 4: {v}");
    n4.wait_ready().await;
    let view = cluster.view(&[]).await.expect("cluster view");
    let voters: Vec<u64> = view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["voter"] == true)
        .filter_map(|n| n["id"].as_u64())
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4], "node 4 is a voter: {view}");
    // The new member serves the API too.
    // (A node that has just joined may answer 503 for a moment while it catches up.)
    let v = eventually(
        "a send through the new node",
        Duration::from_secs(10),
        || async {
            let (s, v) = n4
                .send(
                    &key,
                    json!({"to": "+4915112345678", "text": "via the new node"}),
                )
                .await;
            assert!(s == 202 || s == 503, "{s} {v}");
            (s == 202).then_some(v)
        },
    )
    .await;
    assert!(v["id"].is_string(), "{v}");
    // Catching up, it applied the memberships from before its addition: that is not its
    // removal (it must neither say so nor drop its lease for it).
    assert!(
        !n4.proc.log_text().contains("was removed from the cluster"),
        "a joining node took the old membership for its removal"
    );

    // Remove node 2 (through node 4); it is shut down afterwards.
    let (s, v) = n4
        .admin(reqwest::Method::DELETE, "/admin/v1/cluster/nodes/2", None)
        .await;
    assert_eq!(s, 204, "remove node 2: {v}");
    let view = eventually(
        "node 2 gone from the view",
        Duration::from_secs(10),
        || async {
            let v = cluster.view(&[2]).await?;
            let ids: Vec<u64> = v["nodes"]
                .as_array()?
                .iter()
                .filter_map(|n| n["id"].as_u64())
                .collect();
            (!ids.contains(&2)).then_some(v)
        },
    )
    .await;
    // The removed node, still running, says it cannot serve (it said ready, kept its last
    // leader on record and forwarded writes) and refuses sends instead of taking them.
    let n2_ready = cluster.node(2).url("/readyz");
    let why = eventually(
        "removed node 2 not ready",
        Duration::from_secs(15),
        || async {
            let r = reqwest::get(&n2_ready).await.ok()?;
            let status = r.status().as_u16();
            let v: Value = r.json().await.ok()?;
            (status == 503).then(|| v["error"]["message"].as_str().unwrap_or("").to_string())
        },
    )
    .await;
    assert!(why.contains("node 2"), "{why}");
    let (s, v) = cluster
        .node(2)
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "via the removed node"}),
        )
        .await;
    assert_eq!(s, 503, "a send through the removed node: {v}");
    cluster.node_mut(2).proc.terminate(Duration::from_secs(15));
    // The channel has a live owner (node 2 may have held it).
    eventually("ch bound on a member", Duration::from_secs(30), || async {
        cluster.bound_owner("ch", &[2]).await.filter(|o| *o != 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let result = load.await.expect("load");
    println!("membership change under load: {result:?} view={view}");
    for id in &result.accepted {
        n4.wait_status(&key, id, "delivered", Duration::from_secs(60))
            .await;
    }
    assert_eq!(
        result.failed, 0,
        "no send failed even with the retry: {result:?}"
    );
    assert_eq!(ledger_duplicates(&smsc.ledger_lines()), 0);
}

/// Adding a node that never answers must not make it a voter: on a one-node cluster that
/// would leave two voters, one unreachable, and no quorum for ever (every write 503, and
/// removing the node is a write too). The add is refused naming the address, the learner
/// is dropped, and the cluster keeps accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_an_unreachable_node_is_refused_and_the_cluster_keeps_writing() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &[]).await;
    let n1 = GwNode::start(dir.path(), &[]).await;
    n1.channels_and_route(&[smsc.channel("ch")]).await;
    let key = n1.tenant("acme", json!({})).await;
    let nobody = format!("127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let (s, v) = n1
        .admin(
            reqwest::Method::POST,
            "/admin/v1/cluster/nodes",
            Some(json!({"id": 2, "addr": nobody})),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "addr", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&nobody),
        "the error names the address: {v}"
    );
    assert!(took < Duration::from_secs(40), "refused after {took:?}");
    let (s, view) = n1
        .admin(reqwest::Method::GET, "/admin/v1/cluster", None)
        .await;
    assert_eq!(s, 200, "{view}");
    let ids: Vec<u64> = view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![1], "the learner was dropped: {view}");
    let (s, v) = n1
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "still writing"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let ready = reqwest::get(n1.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);
}
