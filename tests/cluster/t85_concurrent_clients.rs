//! Clients that talk to different nodes at the same moment (audit of 2026-12-07): one
//! Idempotency-Key sent to two followers at once gets one message and the same answer on
//! both (not a 404 from a follower that had not applied the original yet), and sends
//! spread over the nodes keep flowing through leader transfers (not a write stall of
//! seconds on every node while forwards to the former leader waited out their timeout).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::cluster::TestCluster;
use crate::common::*;

const TO: &str = "+4915112345678";

/// POST /v1/messages to `node` with an Idempotency-Key; (status, body).
async fn send_keyed(node: &GwNode, api_key: &str, key: &str, text: &str) -> (u16, Value) {
    let r = client()
        .post(node.url("/v1/messages"))
        .bearer_auth(api_key)
        .header("Idempotency-Key", key)
        .json(&json!({"to": TO, "text": text}))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_at_two_followers_at_once_is_one_message_with_one_answer() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &[]).await;
    let cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(10)).await;
    let lead = cluster.node(leader);
    lead.channels_and_route(&[smsc.channel("ch")]).await;
    let api_key = lead.tenant("acme", json!({})).await;
    let followers: Vec<&GwNode> = cluster
        .nodes
        .iter()
        .filter(|n| n.node_id != leader)
        .collect();
    for round in 0..30 {
        let key = format!("k-{round}");
        let text = format!("same key {round}");
        let (a, b) = tokio::join!(
            send_keyed(followers[0], &api_key, &key, &text),
            send_keyed(followers[1], &api_key, &key, &text),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert!(
            statuses == [200, 202] || statuses == [202, 202],
            "round {round}: one 202 and a replay (200), never a 404: {a:?} {b:?}"
        );
        assert_eq!(
            a.1["id"], b.1["id"],
            "round {round}: one message: {a:?} {b:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_keep_flowing_through_leader_transfers() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &[]).await;
    let cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(10)).await;
    let lead = cluster.node(leader);
    lead.channels_and_route(&[smsc.channel("ch")]).await;
    let api_key = lead.tenant("acme", json!({})).await;

    // Three senders, one per node, each sending one message after the other.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for (n, node) in cluster.nodes.iter().enumerate() {
        let url = node.url("/v1/messages");
        let (api_key, stop) = (api_key.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let c = client();
            let mut slowest = Duration::ZERO;
            let mut refused = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 5_000 {
                let started = Instant::now();
                let r = c
                    .post(&url)
                    .bearer_auth(&api_key)
                    .header("Idempotency-Key", format!("n{n}-{i}"))
                    .json(&json!({"to": TO, "text": format!("through transfers {n} {i}")}))
                    .send()
                    .await;
                slowest = slowest.max(started.elapsed());
                match r {
                    Ok(r) if r.status().as_u16() == 202 => {}
                    Ok(r) => refused.push(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => refused.push(e.to_string()),
                }
                i += 1;
            }
            (slowest, refused, i)
        }));
    }
    for _ in 0..5 {
        let from = cluster.wait_leader(&[], Duration::from_secs(10)).await;
        let to = (1..=3).find(|n| *n != from).unwrap_or(1);
        cluster.transfer_leader(from, to).await;
        eventually("the new leader leads", Duration::from_secs(10), || async {
            (cluster.leader(&[]).await == Some(to)).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        let (slowest, refused, sent) = tokio::time::timeout(Duration::from_secs(30), sender)
            .await
            .expect("sender ends")
            .expect("sender task");
        println!("sender: {sent} sends, slowest {slowest:?}, refused {refused:?}");
        assert!(
            slowest < Duration::from_secs(4),
            "a send took {slowest:?} across a transfer (refused: {refused:?})"
        );
        // Sends are idempotent: a write cut by the transfer is proposed again, so no 503.
        assert!(refused.is_empty(), "refused across transfers: {refused:?}");
    }
}
