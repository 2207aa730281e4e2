//! A message goes HTTP → Raft → SMSC → receipt → `delivered`, with per-part states.
use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_long_message_end_to_end() {
    let dir = tempdir();
    let smsc = Smsc::start(dir.path(), "sa", &["--dlr-delay-ms", "100"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let (s, v) = node
        .send(
            &key,
            json!({"to": "+49 151 1234-5678", "text": "Hello", "client_ref": "order-7"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "accepted");
    assert_eq!(v["to"], "+4915112345678");
    assert_eq!(v["parts"], 1);
    assert_eq!(v["encoding"], "gsm7");
    assert_eq!(v["client_ref"], "order-7");
    let id = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id, "delivered", Duration::from_secs(20))
        .await;
    let statuses: Vec<&str> = done["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(statuses, ["accepted", "sent", "delivered"]);
    assert_eq!(done["channel"], "a");
    assert_eq!(done["part_states"][0]["status"], "delivered");

    // A 2-part UCS-2 message: each part tracked on its own, UDH on the wire.
    let text = "Привет! ".repeat(10);
    let (s, v) = node
        .send(&key, json!({"to": "+4915112345678", "text": text}))
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["encoding"], "ucs2");
    assert_eq!(v["parts"], 2);
    let id2 = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id2, "delivered", Duration::from_secs(20))
        .await;
    assert_eq!(done["part_states"].as_array().map(|a| a.len()), Some(2));
    let ledger = smsc.ledger_lines();
    let parts: Vec<_> = ledger.iter().filter(|l| l["data_coding"] == 8).collect();
    assert_eq!(parts.len(), 2, "two UCS-2 parts at the SMSC");
    for (i, p) in parts.iter().enumerate() {
        let hex = p["short_message_hex"].as_str().unwrap_or("");
        assert!(hex.starts_with("050003"), "UDH on part {i}: {hex}");
        assert_eq!(&hex[10..12], format!("{:02x}", i + 1));
        assert_eq!(p["esm_class"].as_u64().map(|e| e & 0x40), Some(0x40));
    }
}
