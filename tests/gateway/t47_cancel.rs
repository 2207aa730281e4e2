//! Cancelling a message (`POST /v1/messages/{id}/cancel`, alias `DELETE
//! /v1/messages/{id}`): a scheduled message, or an accepted one no channel has taken
//! yet, becomes `canceled` (final, webhook, metric) and is never sent; a sent message is
//! 409 `not_cancelable` naming its status; another tenant's id is 404. (Audit: a
//! scheduled message could not be withdrawn.)
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// Collects webhook bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/hooks", l.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route(
            "/hooks",
            axum::routing::post(
                |State(g): State<Arc<Mutex<Vec<Value>>>>, body: Bytes| async move {
                    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    g.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                    "ok"
                },
            ),
        )
        .with_state(got.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, got)
}

fn in_an_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_and_waiting_messages_cancel_sent_ones_do_not() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (url, hooks) = receiver().await;
    let smsc = Smsc::start(dir.path(), "sc", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    // A channel that never binds (nothing listens): its messages wait, unclaimed.
    let dead_port = free_port();
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/channels",
            Some(
                json!({"id": "dead", "protocol": "smpp", "host": "127.0.0.1",
                        "port": dead_port, "system_id": "x", "password": "pw"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": "fr", "match": {"prefix": ["+33"]}, "channels": [{"id": "dead"}]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let key = node.tenant("acme", json!({"callback_url": url})).await;
    let other = node.tenant("other", json!({})).await;
    let before = metric_value(
        &node.metrics_text().await,
        "smsgw_messages_total",
        &[("status", "canceled")],
    );
    assert_eq!(before, Some(0.0), "the series exists from the start");

    // Scheduled: canceled, with its webhook; another tenant cannot see or cancel it.
    let (s, v) = node
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "later", "send_at": in_an_hour(), "client_ref": "c-1"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "scheduled");
    let id = v["id"].as_str().expect("id").to_string();
    let path = format!("/v1/messages/{}/cancel", id.to_ascii_lowercase());
    let r = node
        .request(Method::POST, &path, Some(&other), &[], None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "not_found");
    let r = node
        .request(Method::POST, &path, Some(&key), &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "canceled", "{}", r.text);
    let statuses: Vec<&str> = r.json["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(statuses, ["scheduled", "canceled"], "{}", r.text);
    assert!(r.json["error"].is_null(), "{}", r.text);
    // Again: the same answer (it is canceled).
    let r = node
        .request(Method::POST, &path, Some(&key), &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hook = eventually("canceled webhook", Duration::from_secs(20), || async {
        hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|h| h["id"] == id.as_str() && h["status"] == "canceled")
            .cloned()
    })
    .await;
    assert_eq!(hook["client_ref"], "c-1", "{hook}");
    let (_, listed) = node.list(&key, "status=canceled").await;
    assert_eq!(listed["messages"][0]["id"], id.as_str(), "{listed}");

    // Accepted, waiting on a channel that never binds: DELETE works as an alias.
    let (s, v) = node
        .send(&key, json!({"to": "+33612345678", "text": "stuck"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let waiting = v["id"].as_str().expect("id").to_string();
    let r = node
        .request(
            Method::DELETE,
            &format!("/v1/messages/{waiting}"),
            Some(&key),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "canceled", "{}", r.text);

    // Sent and delivered: 409 naming the status, and nothing changes.
    let (s, v) = node
        .send(&key, json!({"to": "+4915112345679", "text": "now"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let sent = v["id"].as_str().expect("id").to_string();
    node.wait_status(&key, &sent, "delivered", Duration::from_secs(30))
        .await;
    let r = node
        .request(
            Method::POST,
            &format!("/v1/messages/{sent}/cancel"),
            Some(&key),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "not_cancelable", "{}", r.text);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("delivered")),
        "{}",
        r.text
    );
    let (_, v) = node.message(&key, &sent).await;
    assert_eq!(v["status"], "delivered");
    // Unknown ids are 404.
    let r = node
        .request(
            Method::POST,
            "/v1/messages/01JD0000000000000000000000/cancel",
            Some(&key),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);

    let after = metric_value(
        &node.metrics_text().await,
        "smsgw_messages_total",
        &[("status", "canceled")],
    );
    assert_eq!(after, Some(2.0));
    // Only the delivered one reached the operator (the ledger is written behind).
    let lines = eventually("ledger line", Duration::from_secs(10), || async {
        let l = smsc.ledger_lines();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
}
