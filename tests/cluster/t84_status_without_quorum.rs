//! What `cluster status` shows when the replicated heartbeat rows cannot commit (audit
//! s22): the answering node is up (it answers), the others are judged from what it knows
//! without quorum (here a direct probe of their cluster ports), so the warning counts the
//! voters really up.

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
