//! A cluster whose members share `--cluster-secret`: Raft, forwarded writes, reads and
//! the actor mesh work with it, and the cluster port refuses a request without it.

use std::time::Duration;

use serde_json::json;

use crate::common::cluster::TestCluster;
use crate::common::*;

const SECRET: &str = "cluster-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_sharing_a_secret_work_and_strangers_are_refused() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "a", &["--dlr-delay-ms", "50"]).await;
    let cluster = TestCluster::start(dir.path(), 3, &["--cluster-secret", SECRET]).await;
    // Written through node 2 (forwarded when it follows), read on node 3.
    let n2 = cluster.node(2);
    n2.channels_and_route(&[smsc.channel("ch")]).await;
    let key = n2.tenant("acme", json!({})).await;
    let owner = eventually("ch bound", Duration::from_secs(30), || async {
        cluster.bound_owner("ch", &[]).await
    })
    .await;
    let (s, v) = n2
        .send(&key, json!({"to": "+4915112340001", "text": "secret"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let v = cluster
        .node(3)
        .wait_final(&key, &id, Duration::from_secs(30))
        .await;
    assert_eq!(v["status"], "delivered", "{v}");
    // A non-owner shows the owner's live figures: they come over the actor mesh.
    let other = cluster
        .nodes
        .iter()
        .find(|n| n.node_id != owner)
        .expect("a non-owner");
    let sent = eventually(
        "live figures over the mesh",
        Duration::from_secs(20),
        || async {
            let (_, ch) = other
                .admin(reqwest::Method::GET, "/admin/v1/channels/ch", None)
                .await;
            ch["stats"]["sent"].as_u64().filter(|n| *n >= 1)
        },
    )
    .await;
    assert!(sent >= 1);
    // The cluster port without the secret, or with a wrong one: 401.
    for given in [None, Some("cluster-secret-0123456780")] {
        let mut req = client().post(format!(
            "http://127.0.0.1:{}/raft/read-index",
            other.cluster
        ));
        if let Some(g) = given {
            req = req.header("x-smsgw-cluster-secret", g);
        }
        let r = req.body(Vec::new()).send().await.expect("cluster port");
        assert_eq!(r.status().as_u16(), 401, "secret {given:?}");
    }
}
