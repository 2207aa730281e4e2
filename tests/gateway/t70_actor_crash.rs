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

/// A submit response whose write was lost (the leader stopped while a follower's write
/// was on its way: "outcome unknown") is proposed again, not sent to the operator again:
/// the operator already has the part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_submit_response_write_is_retried_not_resent() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(dir.path(), "srl", "submit_record_lost:4").await;
    let ids = node.send_all_accepted(&key, bodies(10, "srl")).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(30)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    assert!(
        node.proc.log_text().contains("submit_record_lost"),
        "the failpoint never fired (log has no trace of it)"
    );
    let ledger = smsc.ledger_at_least(10).await;
    assert_eq!(
        ledger_duplicates(&ledger),
        0,
        "a recorded part was sent again"
    );
    assert_eq!(ledger.len(), 10, "each message submitted exactly once");
}

/// A crashed top-level actor (here the sweeper) must not leave a node that answers HTTP
/// but sends nothing: the process exits 1 so that its supervisor restarts it, and the
/// restarted node rebuilds everything from the replicated state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_level_actor_crash_exits_the_node() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let log = std::fs::File::create(dir.path().join("crash.log")).expect("log");
    let data = dir.path().join("data").display().to_string();
    let mut child = std::process::Command::new(bin())
        .args(["start", "--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--cluster-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--data-dir", &data, "--admin-token", ADMIN_TOKEN])
        .env("SMSGW_FAILPOINTS", "sweeper_crash:1")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node kept running after a top-level actor crashed");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
    let text = std::fs::read_to_string(dir.path().join("crash.log")).unwrap_or_default();
    assert!(text.contains("actor tree stopped"), "{text}");
    // The same data dir serves again once restarted without the fault.
    let node = GwNode::start(dir.path(), &[]).await;
    let (s, _) = node
        .admin(reqwest::Method::GET, "/admin/v1/cluster", None)
        .await;
    assert_eq!(s, 200);
}
