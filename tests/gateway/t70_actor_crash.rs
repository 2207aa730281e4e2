//! Crashing actors (failpoints) cost no message: a crashed message actor's message is
//! worked again, a crashed bind actor is restarted and binds again.
use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

fn bodies(n: usize, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"to": TO, "text": format!("{tag} {i:03}")}))
        .collect()
}

async fn setup(dir: &std::path::Path, name: &str, failpoints: &str) -> (Smsc, GwNode, String) {
    gateway_with_smsc(
        dir,
        name,
        &["--dlr-delay-ms", "20"],
        &[("SMSGW_FAILPOINTS", failpoints)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_actor_crashes_lose_nothing() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(dir.path(), "sma", "message_actor_crash:5").await;
    let ids = node.send_all_accepted(&key, bodies(20, "mac")).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(30)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    let log = node.proc.log_text();
    assert!(
        log.contains("message_actor_crash"),
        "the failpoint never fired (log has no trace of it)"
    );
    // The crash is before anything was submitted: no copies.
    let ledger = smsc.ledger_at_least(20).await;
    assert_eq!(ledger.len(), 20, "each message submitted exactly once");
    assert_eq!(ledger_duplicates(&ledger), 0);
    // The node kept serving after the crashes.
    let r = client()
        .get(node.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_actor_crashes_rebind_and_lose_nothing() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(dir.path(), "sba", "bind_actor_crash:2").await;
    let ids = node.send_all_accepted(&key, bodies(20, "bac")).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(30)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    let log = node.proc.log_text();
    assert!(
        log.contains("bind_actor_crash"),
        "the failpoint never fired (log has no trace of it)"
    );
    let ledger = smsc.ledger_at_least(20).await;
    let texts: HashSet<&str> = ledger
        .iter()
        .filter_map(|l| l["short_message_hex"].as_str())
        .collect();
    assert_eq!(texts.len(), 20, "every message reached the SMSC");
    // The failpoint fires before the submit is written: no copies.
    assert_eq!(ledger_duplicates(&ledger), 0);
    node.wait_bound().await;
    let ch = node.channel_view("a").await;
    assert_eq!(ch["state"], "bound", "{ch}");
    // Still sending after the restarts.
    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "after the crashes"}))
        .await;
    assert_eq!(s, 202, "{v}");
    node.wait_status(
        &key,
        v["id"].as_str().expect("id"),
        "delivered",
        Duration::from_secs(20),
    )
    .await;
}
