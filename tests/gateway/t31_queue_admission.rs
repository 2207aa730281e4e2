//! Queue admission, black-box (audit: a marketing backlog refused a tenant's OTPs, a
//! campaign scheduled for next week refused today's messages, a batch over the tenant's
//! limit answered 200 without `Retry-After`, concurrent batches overshot the node's
//! limit). The channel is drained, so every accepted message stays waiting.
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

fn rfc3339_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn items(n: usize, category: &str, send_at: Option<&str>) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut m = json!({"to": TO, "text": format!("{category} {i}"), "category": category});
            if let Some(at) = send_at {
                m["send_at"] = json!(at);
            }
            m
        })
        .collect()
}

fn accepted(r: &Resp) -> usize {
    r.json["results"]
        .as_array()
        .map(|a| a.iter().filter(|v| v["id"].is_string()).count())
        .unwrap_or(0)
}

/// A node with a drained channel (nothing leaves the queue) and `tenant` created with
/// `extra`; returns the node, its simulator and the tenant's key.
async fn drained_node(
    dir: &std::path::Path,
    flags: &[&str],
    tenant: &str,
    extra: Value,
) -> (GwNode, Smsc, String) {
    let smsc = Smsc::start(dir, "qa", &[]).await;
    let node = GwNode::start(dir, flags).await;
    node.channels_and_route(&[smsc.channel("q")]).await;
    let key = node.tenant(tenant, extra).await;
    node.wait_bound().await;
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/q/drain", None)
        .await;
    assert_eq!(s, 200, "drain: {v}");
    (node, smsc, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otp_keeps_headroom_and_scheduled_messages_are_counted_apart() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, smsc, key) =
        drained_node(dir.path(), &[], "acme", json!({"queue_limit": 100})).await;

    // A marketing backlog at 90 % of queue_limit 100.
    let r = node
        .post_json(
            "/v1/messages/batch",
            &key,
            &json!({"messages": items(90, "marketing", None)}),
        )
        .await;
    assert_eq!((r.status, accepted(&r)), (200, 90), "{}", r.text);
    assert!(
        r.retry_after().is_none(),
        "nothing refused: {:?}",
        r.headers
    );

    // Marketing is refused at its share, saying which limit and share.
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "sale", "category": "marketing"}),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "queue_full", "{}", r.text);
    let msg = r.json["error"]["message"].as_str().unwrap_or_default();
    for part in [
        "90 messages due now",
        "marketing",
        "90 %",
        "queue_limit 100",
        "otp",
    ] {
        assert!(msg.contains(part), "{part:?} in {msg:?}");
    }
    assert!(r.retry_after().is_some_and(|s| s >= 1), "{:?}", r.headers);

    // The tenant's OTP and transactional messages still get in.
    for category in ["otp", "transactional"] {
        let r = node
            .post_json(
                "/v1/messages",
                &key,
                &json!({"to": TO, "text": "code 1234", "category": category}),
            )
            .await;
        assert_eq!(r.status, 202, "{category}: {}", r.text);
    }

    // A campaign booked for tomorrow fills the scheduled count, not the one due now.
    let tomorrow = rfc3339_in(86_400);
    let r = node
        .post_json(
            "/v1/messages/batch",
            &key,
            &json!({"messages": items(100, "otp", Some(&tomorrow))}),
        )
        .await;
    assert_eq!((r.status, accepted(&r)), (200, 100), "{}", r.text);
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "later", "category": "otp", "send_at": tomorrow}),
        )
        .await;
    assert_eq!(r.status, 429, "scheduled over the limit: {}", r.text);
    let msg = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("scheduled"), "{msg}");
    assert_eq!(
        r.retry_after(),
        Some(60),
        "a scheduled slot frees only when one falls due or is canceled: {:?}",
        r.headers
    );
    // A message for now is not blocked by the scheduled ones.
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "code 5678", "category": "otp"}),
        )
        .await;
    assert_eq!(r.status, 202, "otp for now: {}", r.text);

    let (s, v) = node
        .admin(Method::GET, "/admin/v1/tenants/acme", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["waiting"].clone(), v["scheduled"].clone()),
        (json!(193), json!(100)),
        "{v}"
    );
    let metrics = node.metrics_text().await;
    assert_eq!(
        metric_value(&metrics, "smsgw_scheduled_messages", &[]),
        Some(100.0)
    );
    assert_eq!(
        smsc.stats().await.map(|s| s["submits"].clone()),
        Some(json!(0)),
        "nothing left the drained channel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_queue_full_items_carries_retry_after_and_all_refused_is_429() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, _smsc, key) =
        drained_node(dir.path(), &[], "acme", json!({"queue_limit": 10})).await;
    // 9 marketing wait: marketing is full (90 % of 10), otp has one slot left.
    let r = node
        .post_json(
            "/v1/messages/batch",
            &key,
            &json!({"messages": items(9, "marketing", None)}),
        )
        .await;
    assert_eq!((r.status, accepted(&r)), (200, 9), "{}", r.text);

    // Some accepted, some refused: 200, one entry per input, and Retry-After.
    let mut mixed = items(1, "marketing", None);
    mixed.extend(items(1, "otp", None));
    let r = node
        .post_json("/v1/messages/batch", &key, &json!({ "messages": mixed }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["results"][0]["error"]["code"], "queue_full",
        "{}",
        r.text
    );
    assert!(r.json["results"][1]["id"].is_string(), "{}", r.text);
    assert!(
        r.retry_after().is_some_and(|s| s >= 1),
        "Retry-After on a 200 with queue_full items: {:?}",
        r.headers
    );

    // Nothing accepted, every refusal queue_full: 429 like a single send.
    let r = node
        .post_json(
            "/v1/messages/batch",
            &key,
            &json!({"messages": items(3, "otp", None)}),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "queue_full", "{}", r.text);
    assert!(r.retry_after().is_some_and(|s| s >= 1), "{:?}", r.headers);

    // Nothing accepted but one item is invalid: 200 with the per-item answers.
    let mut bad = items(1, "otp", None);
    bad.push(json!({"to": "not a number", "text": "x"}));
    let r = node
        .post_json("/v1/messages/batch", &key, &json!({ "messages": bad }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["results"][0]["error"]["code"], "queue_full",
        "{}",
        r.text
    );
    assert_eq!(
        r.json["results"][1]["error"]["code"], "invalid_phone_number",
        "{}",
        r.text
    );
    assert!(r.retry_after().is_some(), "{:?}", r.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_stop_at_the_node_limit_and_otp_keeps_headroom() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, _smsc, key) =
        drained_node(dir.path(), &["--node-queue-limit", "20"], "acme", json!({})).await;
    // 4 batches of 10 marketing at once against node_queue_limit 20: marketing may fill
    // 90 %, so exactly 18 get in, whatever the interleaving.
    let body = json!({"messages": items(10, "marketing", None)});
    let sends = (0..4).map(|_| node.post_json("/v1/messages/batch", &key, &body));
    let answers = futures::future::join_all(sends).await;
    let total: usize = answers.iter().map(accepted).sum();
    let statuses: Vec<(u16, usize)> = answers.iter().map(|r| (r.status, accepted(r))).collect();
    assert_eq!(total, 18, "(status, accepted) per batch: {statuses:?}");
    for r in &answers {
        assert!(matches!(r.status, 200 | 429), "{}", r.text);
        if accepted(r) < 10 {
            assert!(r.retry_after().is_some(), "{} {:?}", r.text, r.headers);
        }
    }
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "sale", "category": "marketing"}),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    let msg = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("node_queue_limit 20"), "{msg}");
    // OTPs of any tenant still get in, up to the whole limit.
    let other = node.tenant("other", json!({})).await;
    for (k, n) in [(&key, 1), (&other, 1)] {
        let r = node
            .post_json(
                "/v1/messages",
                k,
                &json!({"to": TO, "text": format!("code {n}"), "category": "otp"}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let r = node
        .post_json(
            "/v1/messages",
            &other,
            &json!({"to": TO, "text": "code 3", "category": "otp"}),
        )
        .await;
    assert_eq!(r.status, 429, "the node holds 20: {}", r.text);
}
