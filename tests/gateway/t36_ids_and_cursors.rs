//! Message ids are ULIDs, case-insensitive (Crockford base32): a lower-cased id finds
//! the message. A bad list cursor is refused naming the parameter the client sent
//! (`next`, as the answer's field is called, or `cursor`). (Audit, low items.)
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_case_ids_and_bad_cursors() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let key = node.tenant("acme", json!({})).await;
    let other = node.tenant("other", json!({})).await;
    let (s, v) = node
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "case", "client_ref": "needle"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let lower = id.to_ascii_lowercase();
    let (s, v) = node.message(&key, &lower).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["id"], id.as_str(), "answered with the canonical id");
    // Still another tenant's message.
    let (s, _) = node.message(&other, &lower).await;
    assert_eq!(s, 404);
    for (param, value) in [("next", "garbage"), ("cursor", "garbage"), ("next", "0")] {
        let (s, v) = node.list(&key, &format!("{param}={value}")).await;
        assert_eq!(s, 422, "{param}={value}: {v}");
        assert_eq!(v["error"]["field"], param, "{param}={value}: {v}");
    }
    // client_ref is looked up through its index: exact, the page is complete.
    for _ in 0..3 {
        let (s, _) = node
            .send(
                &key,
                json!({"to": "+4915112345678", "text": "hay", "client_ref": "hay"}),
            )
            .await;
        assert_eq!(s, 202);
    }
    let (s, v) = node.list(&key, "client_ref=needle").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["messages"][0]["id"], id.as_str(), "{v}");
    assert_eq!(v["partial"], false, "{v}");
    assert!(v["next"].is_null(), "{v}");
    let (_, v) = node.list(&key, "client_ref=hay&limit=2").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(v["next"].is_string(), "{v}");
    let (_, v) = node.list(&other, "client_ref=needle").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    // A real cursor works under both names.
    for param in ["next", "cursor"] {
        let (s, v) = node.list(&key, &format!("{param}={lower}")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    }
}
