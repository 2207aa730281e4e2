//! Delivery receipts: early receipts, ids written differently, failure outcomes, and
//! the per-part roll-up into `partially_delivered`.
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

/// A node with one channel to an SMSC started with `flags`, and a tenant.
async fn setup(dir: &std::path::Path, name: &str, flags: &[&str]) -> (Smsc, GwNode, String) {
    gateway_with_smsc(dir, name, flags, &[]).await
}

fn statuses(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["status"].as_str().map(String::from))
        .collect()
}

/// Sends `n` messages (every third one 2 parts) and waits for all to be delivered with
/// every part delivered and the events accepted → sent → delivered.
async fn all_delivered(node: &GwNode, key: &str, n: usize, tag: &str) {
    let bodies: Vec<Value> = (0..n)
        .map(|i| {
            let text = if i % 3 == 0 {
                format!("{tag} {i} {}", "long ".repeat(40))
            } else {
                format!("{tag} {i}")
            };
            json!({"to": TO, "text": text})
        })
        .collect();
    let ids = node.send_all_accepted(key, bodies).await;
    for id in &ids {
        let v = node.wait_final(key, id, Duration::from_secs(30)).await;
        assert_eq!(v["status"], "delivered", "{v}");
        assert_eq!(statuses(&v), ["accepted", "sent", "delivered"], "{v}");
        let parts = v["part_states"].as_array().expect("part_states");
        assert_eq!(parts.len() as u64, v["parts"].as_u64().unwrap_or(0), "{v}");
        for p in parts {
            assert_eq!(p["status"], "delivered", "{v}");
            assert!(
                p["smsc_message_id"].as_str().is_some_and(|s| !s.is_empty()),
                "{v}"
            );
        }
        assert!(v["error"].is_null(), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_before_responses_still_end_delivered() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(
        dir.path(),
        "se",
        &["--receipts-before-responses", "--submit-latency-ms", "30"],
    )
    .await;
    all_delivered(&node, &key, 20, "early").await;
    let st = smsc.stats().await.expect("stats");
    assert_eq!(
        st["receipts_acked"], st["receipts_sent"],
        "every receipt acknowledged: {st}"
    );
    assert_eq!(st["deliver_sm_resp_errors"], 0, "no receipt refused: {st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hex_response_decimal_receipt_ids_are_matched() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) = setup(
        dir.path(),
        "sx",
        &["--mixed-id-format", "--dlr-delay-ms", "50"],
    )
    .await;
    all_delivered(&node, &key, 12, "hexdec").await;
}

/// A node with one channel whose options are `options`, to an SMSC started with `flags`.
async fn setup_with_options(
    dir: &std::path::Path,
    name: &str,
    flags: &[&str],
    options: Value,
) -> (Smsc, GwNode, String) {
    let smsc = Smsc::start(dir, name, flags).await;
    let node = GwNode::start(dir, &[]).await;
    let mut channel = smsc.channel("a");
    channel["options"] = options;
    node.channels_and_route(&[channel]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    (smsc, node, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_response_hex_receipt_ids_are_matched() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // The channel says how this SMSC writes receipt ids (`dlr_id_format`).
    let (_smsc, node, key) = setup_with_options(
        dir.path(),
        "sd",
        &[
            "--id-format",
            "decimal",
            "--mixed-id-format",
            "--dlr-delay-ms",
            "50",
        ],
        json!({"dlr_id_format": "hex"}),
    )
    .await;
    all_delivered(&node, &key, 12, "dechex").await;
}

/// `dlr_id_format` takes effect: declared `hex` for an SMSC whose receipts are decimal
/// (responses hex), no receipt is read as the number it is, so none matches; they are
/// parked (and acknowledged) and the messages stay `sent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_dlr_id_format_matches_no_receipt() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup_with_options(
        dir.path(),
        "sw",
        &["--mixed-id-format", "--dlr-delay-ms", "50"],
        json!({"dlr_id_format": "hex"}),
    )
    .await;
    let bodies = (0..4)
        .map(|i| json!({"to": TO, "text": format!("wrong {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    eventually(
        "the SMSC acknowledged receipts",
        Duration::from_secs(30),
        || async {
            let st = smsc.stats().await?;
            (st["receipts_acked"].as_u64()? >= 4).then_some(())
        },
    )
    .await;
    let parked = eventually("4 receipts parked", Duration::from_secs(10), || async {
        let m = node.metrics_text().await;
        metric_value(&m, "smsgw_receipts_total", &[("matched", "parked")]).filter(|v| *v >= 4.0)
    })
    .await;
    let m = node.metrics_text().await;
    let matched = metric_value(&m, "smsgw_receipts_total", &[("matched", "yes")]).unwrap_or(0.0);
    assert_eq!(matched, 0.0, "parked {parked}, matched {matched}");
    for id in &ids {
        let (_, v) = node.message(&key, id).await;
        assert_eq!(v["status"], "sent", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_receipts_end_undelivered_or_expired_with_an_error() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // Two SMSCs behind one node: +49 goes to the undeliverable one, +33 to the expiring one.
    let undeliv = Smsc::start(
        dir.path(),
        "su",
        &["--dlr-mix", "undeliverable=100", "--dlr-delay-ms", "50"],
    )
    .await;
    let expire = Smsc::start(
        dir.path(),
        "sy",
        &["--dlr-mix", "expired=100", "--dlr-delay-ms", "50"],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[undeliv.channel("u")]).await;
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/channels",
            Some(expire.channel("y")),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": "fr", "match": {"prefix": ["+33"]}, "channels": [{"id": "y"}]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "never arrives", "client_ref": "u1"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let v = node
        .wait_final(&key, v["id"].as_str().expect("id"), Duration::from_secs(20))
        .await;
    assert_eq!(v["status"], "undelivered", "{v}");
    assert_eq!(v["channel"], "u", "{v}");
    assert_eq!(statuses(&v), ["accepted", "sent", "undelivered"], "{v}");
    let e = &v["error"];
    assert!(
        e["code"]
            .as_str()
            .is_some_and(|c| NORMALISED_ERROR_CODES.contains(&c)),
        "normalised code: {v}"
    );
    assert_ne!(e["code"], "expired", "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(
        e["smsc_code"].as_str().is_some_and(|c| c.contains('1')),
        "raw DLR err:001 kept in smsc_code: {v}"
    );
    assert_eq!(v["part_states"][0]["status"], "undelivered", "{v}");
    assert!(v["part_states"][0]["error"].is_object(), "{v}");

    let (s, v) = node
        .send(&key, json!({"to": "+33612345678", "text": "too late"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let v = node
        .wait_final(&key, v["id"].as_str().expect("id"), Duration::from_secs(20))
        .await;
    assert_eq!(v["status"], "expired", "{v}");
    assert_eq!(v["channel"], "y", "{v}");
    assert_eq!(v["error"]["code"], "expired", "{v}");
    assert!(
        v["error"]["smsc_code"]
            .as_str()
            .is_some_and(|c| c.contains('3')),
        "raw DLR err:003 kept in smsc_code: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_part_messages_roll_up_per_part() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) = setup(
        dir.path(),
        "sm",
        &[
            "--dlr-mix",
            "delivered=50,undeliverable=50",
            "--dlr-delay-ms",
            "30",
            "--seed",
            "7",
        ],
    )
    .await;
    let bodies: Vec<Value> = (0..30)
        .map(|i| json!({"to": TO, "text": format!("{i:02} {}", "two parts ".repeat(20))}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(30)).await;
        assert_eq!(v["parts"], 2, "{v}");
        let parts: Vec<&str> = v["part_states"]
            .as_array()
            .expect("parts")
            .iter()
            .map(|p| p["status"].as_str().unwrap_or("?"))
            .collect();
        let delivered = parts.iter().filter(|s| **s == "delivered").count();
        let expect = match delivered {
            2 => "delivered",
            0 => "undelivered",
            _ => "partially_delivered",
        };
        assert!(
            parts
                .iter()
                .all(|s| *s == "delivered" || *s == "undelivered"),
            "part statuses: {v}"
        );
        assert_eq!(v["status"], expect, "roll-up of {parts:?}: {v}");
        if expect == "delivered" {
            assert!(v["error"].is_null(), "{v}");
        } else {
            assert!(
                v["error"]["code"]
                    .as_str()
                    .is_some_and(|c| NORMALISED_ERROR_CODES.contains(&c)),
                "{v}"
            );
        }
        *seen.entry(expect.to_string()).or_default() += 1;
    }
    // 30 messages at 50/50 per part: all three outcomes show up (each misses with p < 1e-3).
    for s in ["delivered", "partially_delivered", "undelivered"] {
        assert!(
            seen.get(s).copied().unwrap_or(0) > 0,
            "no {s} among 30: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_intermediate_receipts_settle_undelivered_unknown_after_the_dlr_timeout() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // One SMSC never sends receipts, the other only intermediate ones (ENROUTE).
    let silent = Smsc::start(dir.path(), "sn", &["--dlr-mix", "none"]).await;
    let enroute = Smsc::start(
        dir.path(),
        "sr",
        &["--dlr-mix", "enroute=100", "--dlr-delay-ms", "30"],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut a = silent.channel("n");
    a["options"] = json!({"dlr_timeout_seconds": 2});
    let mut b = enroute.channel("r");
    b["options"] = json!({"dlr_timeout_seconds": 2});
    node.channels_and_route(&[a]).await;
    let (s, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels", Some(b))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": "fr", "match": {"prefix": ["+33"]}, "channels": [{"id": "r"}]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "into the void"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let silent_id = v["id"].as_str().expect("id").to_string();
    let (s, v) = node
        .send(
            &key,
            json!({"to": "+33612345678", "text": "still on its way"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let enroute_id = v["id"].as_str().expect("id").to_string();
    // Sent first; not settled before the timeout.
    for id in [&silent_id, &enroute_id] {
        node.wait_status(&key, id, "sent", Duration::from_secs(10))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = node.message(&key, &enroute_id).await;
    assert_eq!(
        v["status"], "sent",
        "an intermediate receipt is not final: {v}"
    );
    for id in [&silent_id, &enroute_id] {
        let v = node.wait_final(&key, id, Duration::from_secs(15)).await;
        assert_eq!(v["status"], "undelivered", "{v}");
        assert_eq!(
            v["error"]["code"], "unknown",
            "a receipt that never came settles as unknown: {v}"
        );
        assert_eq!(statuses(&v), ["accepted", "sent", "undelivered"], "{v}");
    }
}
