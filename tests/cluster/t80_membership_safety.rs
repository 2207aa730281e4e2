//! Membership changes that must not hurt the cluster (audit of 2026-12): an address that
//! belongs to another node, a removal whose remaining voters have no quorum, an add whose
//! client goes away, a removed member that keeps running, and readiness without quorum.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::cluster::{FAST_RAFT, TestCluster, member};
use crate::common::*;

/// The voters of a cluster view.
fn voters(view: &Value) -> Vec<u64> {
    view["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| n["voter"] == true)
                .filter_map(|n| n["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// Every member id of a cluster view.
fn member_ids(view: &Value) -> Vec<u64> {
    view["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().filter_map(|n| n["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// Adding node 4 at node 3's address would make node 3 answer for both ids (a voter that
/// does not exist counting toward quorum): refused with 409 naming `addr`. So is an
/// address where another node (a stand-alone node 5) answers, and that node itself, a
/// member of a cluster of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_of_another_node_is_refused() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let n3_addr = format!("127.0.0.1:{}", cluster.node(3).cluster);
    let (s, v) = cluster
        .node(1)
        .admin(
            reqwest::Method::POST,
            "/admin/v1/cluster/nodes",
            Some(json!({"id": 4, "addr": n3_addr})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["field"], "addr", "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains(&n3_addr) && msg.contains("node 3"), "{v}");

    // A node 5 of its own (a one-node cluster) listening at the address given for node 6.
    let (http, cport) = (free_port(), free_port());
    let mut n5 = member(
        dir.path(),
        5,
        http,
        cport,
        FAST_RAFT.iter().map(|s| s.to_string()).collect(),
    );
    n5.spawn();
    n5.wait_ready().await;
    let n5_addr = format!("127.0.0.1:{cport}");
    let (s, v) = cluster
        .node(2)
        .admin(
            reqwest::Method::POST,
            "/admin/v1/cluster/nodes",
            Some(json!({"id": 6, "addr": n5_addr})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["field"], "addr", "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains(&format!("{n5_addr} answers as node 5")), "{v}");
    // Asked for as node 5 it is node 5, but a member of a cluster of its own: adding it
    // would replace its log with this cluster's. Refused; node 5 keeps running as it was.
    let (s, v) = cluster
        .node(2)
        .admin(
            reqwest::Method::POST,
            "/admin/v1/cluster/nodes",
            Some(json!({"id": 5, "addr": n5_addr})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["field"], "addr", "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("belongs to a cluster of its own"), "{v}");
    n5.wait_ready().await;
    let view = cluster.view(&[]).await.expect("view");
    assert_eq!(
        member_ids(&view),
        vec![1, 2, 3],
        "nothing was added: {view}"
    );
}

/// Removing a voter of three while another is down would leave two voters, one of them
/// down: the change could not commit and every write would wait behind it. Refused at
/// once with 409 naming the down node; writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_leaves_no_quorum_is_refused() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &[]).await;
    let mut cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let n1 = cluster.node(1);
    n1.channels_and_route(&[smsc.channel("ch")]).await;
    let key = n1.tenant("acme", json!({})).await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(20)).await;
    let down = (1..=3).find(|n| *n != leader).unwrap_or(3);
    let asked = (1..=3).find(|n| *n != leader && *n != down).unwrap_or(2);
    cluster.node_mut(down).proc.kill9();
    // The leader stops hearing from it (two election timeouts, 1.6 s here).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let started = std::time::Instant::now();
    let (s, v) = cluster
        .node(asked)
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/v1/cluster/nodes/{leader}"),
            None,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(s, 409, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(&format!("node {down} is down")) && msg.contains("no quorum"),
        "{v}"
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    let view = cluster.view(&[down]).await.expect("view");
    assert_eq!(voters(&view), vec![1, 2, 3], "membership unchanged: {view}");
    let (s, v) = cluster
        .node(asked)
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "still writing"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
}

/// An add whose client gives up (a 2 s timeout) still runs to its end: the learner that
/// never answered is removed, so the leader does not keep a "down learner" for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_whose_client_goes_away_still_cleans_up() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let n1 = GwNode::start(dir.path(), &[]).await;
    let nobody = format!("127.0.0.1:{}", free_port());
    let r = client()
        .post(n1.url("/admin/v1/cluster/nodes"))
        .bearer_auth(&n1.token)
        .json(&json!({"id": 2, "addr": nobody}))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(r.is_err(), "the add cannot answer within 2 s: {r:?}");
    let view = eventually("the learner removed", Duration::from_secs(40), || async {
        let (s, v) = n1
            .admin(reqwest::Method::GET, "/admin/v1/cluster", None)
            .await;
        (s == 200 && member_ids(&v) == vec![1]).then_some(v)
    })
    .await;
    assert_eq!(voters(&view), vec![1], "{view}");
    // It stays removed (not a view caught between two changes).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, v) = n1
        .admin(reqwest::Method::GET, "/admin/v1/cluster", None)
        .await;
    assert_eq!(member_ids(&v), vec![1], "{v}");
}

/// A removed follower that keeps running lets its binds go and says so once; it renews
/// no lease, so it sends nothing beside the channel's new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_follower_closes_its_binds() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &[]).await;
    let cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let n1 = cluster.node(1);
    n1.channels_and_route(&[smsc.channel("ch")]).await;
    let key = n1.tenant("acme", json!({})).await;
    let owner = eventually("ch bound", Duration::from_secs(30), || async {
        cluster.bound_owner("ch", &[]).await
    })
    .await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(20)).await;
    if owner == leader {
        // The removed node must be a follower: hand leadership to another member.
        let to = (1..=3).find(|n| *n != owner).unwrap_or(1);
        cluster.transfer_leader(to, to).await;
    }
    let other = (1..=3).find(|n| *n != owner).unwrap_or(1);
    let (s, v) = cluster
        .node(other)
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/v1/cluster/nodes/{owner}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let removed = cluster.node(owner);
    let _removed_log = NodeLogOnFailure(removed.proc.log.clone());
    let _l2 = NodeLogOnFailure(cluster.node(other).proc.log.clone());
    eventually(
        "the removed node says it was removed and stops its bind",
        Duration::from_secs(20),
        || async {
            let log = removed.proc.log_text();
            let at = log.find("removed from the cluster")?;
            log[at..].contains("stopping bind").then_some(())
        },
    )
    .await;
    let lease = metric_value(&removed.metrics_text().await, "smsgw_lease_valid", &[]);
    assert_eq!(lease, Some(0.0), "the removed node holds no lease");
    let log = removed.proc.log_text();
    assert_eq!(
        log.matches("removed from the cluster: it closes its binds")
            .count(),
        1,
        "one WARN line"
    );
    // The channel has a new owner among the members, and sending works.
    eventually("ch bound on a member", Duration::from_secs(30), || async {
        cluster
            .bound_owner("ch", &[owner])
            .await
            .filter(|o| *o != owner)
    })
    .await;
    let (s, v) = cluster
        .node(other)
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "after removal"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
}

/// Four voters, two of them killed: the leader has no quorum, and neither its /readyz
/// nor the remaining follower's says ready (the follower's writes would all get 503);
/// the cluster view's table warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_is_ready_without_quorum() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let mut cluster = TestCluster::start(dir.path(), 4, &[]).await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(20)).await;
    let followers: Vec<u64> = (1..=4).filter(|n| *n != leader).collect();
    let (kept, killed) = (followers[0], [followers[1], followers[2]]);
    for k in killed {
        cluster.node_mut(k).proc.kill9();
    }
    let ready = cluster.node(kept).url("/readyz");
    let why = eventually(
        "the follower not ready",
        Duration::from_secs(20),
        || async {
            let r = reqwest::get(&ready).await.ok()?;
            let status = r.status().as_u16();
            let v: Value = r.json().await.ok()?;
            (status == 503).then(|| v["error"]["message"].as_str().unwrap_or("").to_string())
        },
    )
    .await;
    assert!(why.contains("quorum") || why.contains("leader"), "{why}");
    let out = std::process::Command::new(bin())
        .args([
            "cluster",
            "status",
            "--url",
            &cluster.node(kept).url(""),
            "--token",
            &cluster.node(kept).token,
        ])
        .output()
        .expect("cluster status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no quorum"), "{text}");
    // The follower itself and the leader (which still contacts it) are up: 2 of 4, not 0
    // (audit s22: every row was `down` without quorum).
    assert!(text.contains("only 2 of 4 voters are up"), "{text}");
}

/// Prints the tail of one node's log when the test panics (`LogsOnFailure` reads only the
/// test's top directory, the cluster's nodes log in `n<id>/`).
struct NodeLogOnFailure(std::path::PathBuf);

impl Drop for NodeLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !l.contains("election timeout expired")
                        && !l.contains("pre_vote")
                        && !l.contains("pre-vote")
                        && !l.contains("PreVote")
                        && !l.contains("grant_by")
                        && !l.contains("Session")
                        && !l.contains("session")
                })
                .collect();
            eprintln!("===== {} =====", self.0.display());
            for l in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{l}");
            }
        }
    }
}
