//! kill -9 at any moment: every message that got a 202 is still there after a restart
//! and still reaches the SMSC; a part that got a submit_sm_resp is not sent again.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_survive_kill9() {
    let dir = tempdir();
    // Slow SMSC so that kill -9 lands with messages queued, in flight and sent.
    let smsc = Smsc::start(
        dir.path(),
        "sk",
        &["--submit-latency-ms", "20", "--dlr-delay-ms", "200"],
    )
    .await;
    let mut node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("k");
    ch["tps"] = json!(200);
    ch["window"] = json!(4);
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;

    let mut accepted = Vec::new();
    // One client for all sends: building a client costs milliseconds of CPU each.
    let http = client();
    let accepted_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sends: Vec<_> = (0..300)
        .map(|i| {
            let node_url = node.url("/v1/messages");
            let key = key.clone();
            let http = http.clone();
            let counter = accepted_so_far.clone();
            tokio::spawn(async move {
                let r = http
                    .post(node_url)
                    .bearer_auth(key)
                    .json(&json!({"to": "+4915112345678", "text": format!("durable {i}"), "client_ref": format!("c{i}")}))
                    .send()
                    .await
                    .ok()?;
                if r.status().as_u16() != 202 {
                    return None;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let v: serde_json::Value = r.json().await.ok()?;
                v["id"].as_str().map(String::from)
            })
        })
        .collect();
    // Kill while the sends are still being worked: once some have been accepted (however
    // slow this machine is right now), not after a fixed sleep.
    eventually("some sends accepted", Duration::from_secs(30), || {
        let n = accepted_so_far.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n >= 20).then_some(()) }
    })
    .await;
    node.proc.kill9();
    for s in sends {
        if let Ok(Some(id)) = s.await {
            accepted.push(id);
        }
    }
    assert!(
        !accepted.is_empty(),
        "some sends must have been accepted before the kill"
    );
    let before = smsc.ledger_lines().len();
    assert!(
        before < 300,
        "kill must land before everything was sent ({before})"
    );

    node.restart().await;
    for id in &accepted {
        let (s, v) = node.message(&key, id).await;
        assert_eq!(s, 200, "accepted message {id} lost after kill -9: {v}");
    }
    for id in &accepted {
        node.wait_status(&key, id, "delivered", Duration::from_secs(60))
            .await;
    }
    // Every accepted message reached the SMSC; resends are only the ones in the ambiguity
    // window (submitted, response not yet committed) at the moment of the kill: at most the window.
    let ledger = smsc.ledger_lines();
    let mut copies: HashMap<String, usize> = HashMap::new();
    for l in &ledger {
        let hex = l["short_message_hex"].as_str().unwrap_or("").to_string();
        *copies.entry(hex).or_default() += 1;
    }
    let dups: usize = copies.values().map(|c| c - 1).sum();
    assert!(
        dups <= 4,
        "at most the window (4) may be resent after kill -9, got {dups}"
    );
}

/// The state machine's rows reach the disk with the next Raft log flush, not with their
/// own commit (`manual_journal_persist`): a kill -9 right after a 202, before anything else
/// is written, loses the applied row, and the restart re-applies the entry from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_applied_just_before_kill9_is_rebuilt_from_the_log() {
    let dir = tempdir();
    let smsc = Smsc::start(dir.path(), "sj", &["--dlr-delay-ms", "100"]).await;
    let mut node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("j")]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;

    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, v) = node
            .send(
                &key,
                json!({"to": "+4915112345678", "text": format!("last words {i}")}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    node.proc.kill9();
    node.restart().await;
    for id in &ids {
        let (s, v) = node.message(&key, id).await;
        assert_eq!(
            s, 200,
            "message {id} accepted just before kill -9 is gone: {v}"
        );
        node.wait_status(&key, id, "delivered", Duration::from_secs(30))
            .await;
    }
}
