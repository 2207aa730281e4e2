//! What `cluster status` shows when the replicated heartbeat rows cannot commit (audit
//! s22): the answering node is up (it answers), the others are judged from what it knows
//! without quorum (here a direct probe of their cluster ports), so the warning counts the
//! voters really up. And a `peers` entry that never answers is named, in the log and in
//! the view.

use std::time::Duration;

use serde_json::Value;

use crate::common::cluster::TestCluster;
use crate::common::*;

/// The state of member `id` in a cluster view.
fn state_of(view: &Value, id: u64) -> Option<String> {
    view["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"].as_u64() == Some(id))
        .and_then(|n| n["state"].as_str())
        .map(String::from)
}

/// Three voters, the leader and one follower killed: the survivor shows itself up (from
/// itself) and the two others down (probed), and `cluster status` says 1 of 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_of_two_kills_shows_itself_up_and_one_of_three() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let mut cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(20)).await;
    let survivor = (1..=3).find(|n| *n != leader).unwrap_or(1);
    for k in (1..=3).filter(|n| *n != survivor) {
        cluster.node_mut(k).proc.kill9();
    }
    let node = cluster.node(survivor);
    let view = eventually(
        "the survivor's view without quorum",
        Duration::from_secs(20),
        || async {
            let (s, v) = node
                .admin(reqwest::Method::GET, "/admin/v1/cluster", None)
                .await;
            let others_down = (1..=3)
                .filter(|n| *n != survivor)
                .all(|n| state_of(&v, n).as_deref() == Some("down"));
            (s == 200 && others_down).then_some(v)
        },
    )
    .await;
    let me = view["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"].as_u64() == Some(survivor)))
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["state"], "up", "{view}");
    assert_eq!(me["state_from"], "this_node", "{view}");
    let dead = (1..=3).find(|n| *n != survivor).unwrap_or(1);
    let probed = view["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"].as_u64() == Some(dead)))
        .cloned()
        .unwrap_or_default();
    assert_ne!(probed["state_from"], "replicated", "{view}");

    let out = std::process::Command::new(bin())
        .args([
            "cluster",
            "status",
            "--url",
            &node.url(""),
            "--token",
            &node.token,
        ])
        .output()
        .expect("cluster status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("only 1 of 3 voters are up"), "{text}");
    assert!(text.contains("up (this node)"), "{text}");
}

/// A `peers` entry naming a node that never starts: the members WARN about it in their
/// logs, and the view and `cluster status` say it has never been seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_is_named() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (mut nodes, peers) = TestCluster::plan(dir.path(), 3, &[]);
    nodes.retain(|n| n.node_id != 3);
    let cluster = TestCluster::launch(nodes, peers).await;
    let n1 = cluster.node(1);
    let (s, v) = n1
        .admin(reqwest::Method::GET, "/admin/v1/cluster", None)
        .await;
    assert_eq!(s, 200, "{v}");
    let ghost = v["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"].as_u64() == Some(3)))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ghost["seen"], false, "{v}");
    assert_eq!(ghost["state"], "down", "{v}");
    let out = std::process::Command::new(bin())
        .args([
            "cluster",
            "status",
            "--url",
            &n1.url(""),
            "--token",
            &n1.token,
        ])
        .output()
        .expect("cluster status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("node 3 has never been seen"), "{text}");
    // The first WARN comes 10 s after start.
    eventually(
        "the WARN naming peer 3",
        Duration::from_secs(20),
        || async {
            let log = n1.proc.log_text();
            log.lines()
                .any(|l| l.contains("WARN") && l.contains("never answered") && l.contains("peer=3"))
                .then_some(())
        },
    )
    .await;
}
