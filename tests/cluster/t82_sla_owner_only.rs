//! Monitoring audit item 1: a channel's SLA is judged by the node that runs its binds
//! only. The other members hold no bind: they must neither report its availability as 0
//! nor post `channel.sla_breached` for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::cluster::TestCluster;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_judges_a_channels_sla() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "a", &[]).await;
    let cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let alerts = Arc::new(Mutex::new(Vec::<Value>::new()));
    let sink = alerts.clone();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    sink.lock().expect("lock").push(v);
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    let mut c = smsc.channel("ch");
    c["sla"] = json!({"window": "5m", "min_availability": 0.9,
                      "alert_url": format!("http://{addr}/alert"), "alert_secret": "alert-secret-1"});
    cluster.node(1).channels_and_route(&[c]).await;
    let owner = eventually("ch bound", Duration::from_secs(30), || async {
        cluster.bound_owner("ch", &[]).await
    })
    .await;
    // The audit saw false alerts from the non-owners within 0.4 s; give them several.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = alerts.lock().expect("lock").clone();
    assert!(got.is_empty(), "no alert for a channel that is up: {got:?}");
    for n in &cluster.nodes {
        let m = n.metrics_text().await;
        let availability = metric_value(
            &m,
            "smsgw_channel_sla_availability",
            &[("channel", "ch"), ("window", "5m")],
        );
        if n.node_id == owner {
            assert_eq!(availability, Some(1.0), "owner {owner}");
        } else {
            assert_eq!(
                availability, None,
                "node {} does not run ch: no availability of its own",
                n.node_id
            );
        }
        // Every member shows the owner's SLA figures in the admin view.
        let (_, v) = n
            .admin(reqwest::Method::GET, "/admin/v1/channels/ch", None)
            .await;
        assert_eq!(
            v["stats"]["sla"]["5m"]["availability"],
            json!(1.0),
            "node {}: {v}",
            n.node_id
        );
    }
}
