//! Two-way SMS: mobile-originated messages to a tenant's number reach the tenant as a
//! signed webhook (`"status": "received"`) and through `GET /v1/inbound`, long ones put
//! back together from parts that arrive out of order, STOP marked as an opt-out.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::*;

/// Every (signature header, body) the receiver got.
type Hits = Arc<Mutex<Vec<(String, String)>>>;

async fn hook(State(hits): State<Hits>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("smsgw-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    hits.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((signature, String::from_utf8_lossy(&body).to_string()));
    StatusCode::OK
}

async fn receiver() -> (String, Hits) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = l.local_addr().expect("addr");
    let hits: Hits = Arc::default();
    let app = axum::Router::new()
        .route("/in", axum::routing::post(hook))
        .with_state(hits.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}/in"), hits)
}

/// The inbound webhook whose text is `text`, once it came, checked against the secret.
async fn inbound_hook(hits: &Hits, secret: &str, text: &str) -> Value {
    let (signature, body) = eventually(
        &format!("inbound webhook {text:?}"),
        Duration::from_secs(15),
        || async {
            hits.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(_, b)| serde_json::from_str::<Value>(b).is_ok_and(|v| v["text"] == text))
                .cloned()
        },
    )
    .await;
    let t = signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap_or_else(|| panic!("no t= in {signature:?}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert!(
        signature.split(',').any(|p| p == format!("v1={expected}")),
        "signature {signature:?} does not match the body"
    );
    serde_json::from_str(&body).expect("json body")
}

async fn mo(smsc: &Smsc, from: &str, to: &str, text: &str, parts: u8) {
    let (s, v) = mo_raw(
        smsc,
        json!({"from": from, "to": to, "text": text, "parts": parts, "order": "reverse"})
            .to_string(),
    )
    .await;
    assert_eq!(s, 200, "simulator refused the MO: {v}");
}

/// `POST /mo` with `body` as is (no Content-Type): the simulator's status and JSON answer.
async fn mo_raw(smsc: &Smsc, body: String) -> (u16, Value) {
    let r = client()
        .post(format!("http://127.0.0.1:{}/mo", smsc.control))
        .body(body)
        .send()
        .await
        .expect("mo");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn inbound(node: &GwNode, key: &str, path: &str) -> (u16, Value) {
    let r = node
        .request(reqwest::Method::GET, path, Some(key), &[], None)
        .await;
    (r.status, r.json)
}

#[tokio::test]
async fn mobile_originated_messages_reach_the_tenant_that_owns_the_number() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, _) = gateway_with_smsc(dir.path(), "smsc-mo", &[], &[]).await;
    let (url, hits) = receiver().await;
    let (key, secret) = node
        .tenant_with_secret(
            "shop",
            json!({"callback_url": url, "sender_pool": ["+4915100000001"]}),
        )
        .await;
    let (other_key, _) = node.tenant_with_secret("other", json!({})).await;
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/tenants/shop/senders",
            Some(json!({"sender": "55555", "type": "short_code", "countries": ["US"]})),
        )
        .await;
    assert_eq!(s, 201, "register the short code: {v}");

    // A reply to the shop's short code: webhook, list and get.
    mo(
        &smsc,
        "4915112345690",
        "55555",
        "Is the red one in stock?",
        1,
    )
    .await;
    let hook = inbound_hook(&hits, &secret, "Is the red one in stock?").await;
    assert_eq!(hook["status"], "received", "{hook}");
    assert_eq!(hook["direction"], "inbound", "{hook}");
    assert_eq!(hook["from"], "+4915112345690", "{hook}");
    assert_eq!(hook["to"], "55555", "{hook}");
    assert_eq!(hook["channel"], "a", "{hook}");
    assert_eq!(hook["keyword"], Value::Null, "{hook}");
    let id = hook["id"].as_str().expect("id").to_string();
    assert!(hook["event_id"].as_str().is_some_and(|e| !e.is_empty()));
    let (s, one) = inbound(&node, &key, &format!("/v1/inbound/{id}")).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["text"], "Is the red one in stock?");
    assert_eq!(
        one["event_id"], hook["event_id"],
        "the same id as the webhook's"
    );
    let (s, _) = inbound(&node, &other_key, &format!("/v1/inbound/{id}")).await;
    assert_eq!(s, 404, "another tenant's inbound message");

    // A long MO in three parts, last part first: one message.
    let long = "Hello! I would like to order two of the red ones and one of the blue ones, \
                delivered to the shop on the corner before Friday please. Thanks a lot, Sam";
    mo(&smsc, "4915112345690", "55555", long, 3).await;
    let hook = inbound_hook(&hits, &secret, long).await;
    assert_eq!(hook["parts"], 3, "{hook}");
    assert_eq!(hook["complete"], true, "{hook}");

    // STOP: an opt-out, and the tenant is told.
    mo(&smsc, "4915112345690", "55555", "STOP", 1).await;
    let hook = inbound_hook(&hits, &secret, "STOP").await;
    assert_eq!(hook["keyword"], "opt_out", "{hook}");

    // To a number nobody sends from: stored for no one.
    mo(&smsc, "4915112345691", "77777", "wrong number", 1).await;
    mo(&smsc, "4915112345690", "55555", "last one", 1).await;
    inbound_hook(&hits, &secret, "last one").await;
    let (s, list) = inbound(&node, &key, "/v1/inbound?limit=2").await;
    assert_eq!(s, 200, "{list}");
    let texts: Vec<&str> = list["messages"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["text"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(texts, vec!["last one", "STOP"], "newest first: {list}");
    let next = list["next"].as_str().expect("a next page").to_string();
    let (_, page) = inbound(&node, &key, &format!("/v1/inbound?limit=10&next={next}")).await;
    assert_eq!(
        page["messages"].as_array().map(Vec::len),
        Some(2),
        "the long one and the first: {page}"
    );
    assert_eq!(page["next"], Value::Null, "{page}");
    let (s, empty) = inbound(&node, &other_key, "/v1/inbound").await;
    assert_eq!(
        (s, empty["messages"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // Numbers written with the international prefix 00 are the same numbers.
    mo(&smsc, "004915112345692", "004915100000001", "via 00", 1).await;
    let hook = inbound_hook(&hits, &secret, "via 00").await;
    assert_eq!(
        (hook["from"].as_str(), hook["to"].as_str()),
        (Some("+4915112345692"), Some("+4915100000001")),
        "{hook}"
    );
    // Filters: by sender (+ optional), number, keyword.
    let (s, page) = inbound(
        &node,
        &key,
        "/v1/inbound?from=4915112345690&keyword=opt_out",
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["text"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(texts, vec!["STOP"], "{page}");
    let (_, page) = inbound(&node, &key, "/v1/inbound?to=%2B4915100000001").await;
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(1), "{page}");
    let (s, bad) = inbound(&node, &key, "/v1/inbound?keyword=maybe").await;
    assert_eq!(
        (s, bad["error"]["field"].as_str()),
        (422, Some("keyword")),
        "{bad}"
    );
    let (s, bad) = inbound(&node, &key, "/v1/inbound?next=nope").await;
    assert_eq!(
        (s, bad["error"]["field"].as_str()),
        (422, Some("next")),
        "{bad}"
    );
}

#[tokio::test]
async fn the_simulators_mo_is_gsm_or_ucs2_and_answers_after_the_gateway_acknowledges() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, _) = gateway_with_smsc(dir.path(), "smsc-mo", &[], &[]).await;
    let (url, hits) = receiver().await;
    let (_key, secret) = node
        .tenant_with_secret("shop", json!({"callback_url": url}))
        .await;
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/tenants/shop/senders",
            Some(json!({"sender": "55555", "type": "short_code", "countries": ["US"]})),
        )
        .await;
    assert_eq!(s, 201, "register the short code: {v}");
    let from = "4915112345690";

    // GSM 03.38 with extension characters (escaped), answered after the deliver_sm_resp.
    let gsm = "Price 5€ [ok] {x} ~^|";
    let (s, v) = mo_raw(
        &smsc,
        json!({"from": from, "to": "55555", "text": gsm}).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"sent_parts": 1, "acknowledged": true}));
    inbound_hook(&hits, &secret, gsm).await;

    // Not GSM: UCS-2, here in two parts of at most 67 characters, last first.
    let ucs2 = format!("Привет, {} 👋", "мир ".repeat(20));
    let (s, v) = mo_raw(
        &smsc,
        json!({"from": from, "to": "55555", "text": ucs2, "parts": 2, "order": "reverse"})
            .to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sent_parts"], 2, "{v}");
    let hook = inbound_hook(&hits, &secret, &ucs2).await;
    assert_eq!(hook["parts"], 2, "{hook}");

    // A repeated part is sent twice; the message arrives once, whole.
    let long = format!("{}end", "A long reply that needs two parts: ".repeat(6));
    let (s, v) = mo_raw(
        &smsc,
        json!({"from": from, "to": "55555", "text": long, "parts": 2, "repeat_parts": [1]})
            .to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sent_parts"], 3, "{v}");
    inbound_hook(&hits, &secret, &long).await;

    // Refusals say why, as JSON.
    let (s, v) = mo_raw(
        &smsc,
        json!({"from": from, "to": "55555", "text": "x".repeat(161)}).to_string(),
    )
    .await;
    assert_eq!(s, 422);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("161 septets"),
        "{v}"
    );
    let (s, v) = mo_raw(
        &smsc,
        json!({"from": from, "to": "55555", "text": "short", "parts": 9}).to_string(),
    )
    .await;
    assert_eq!(s, 422);
    assert!(
        v["error"].as_str().unwrap_or_default().contains("parts"),
        "{v}"
    );
    let (s, v) = mo_raw(
        &smsc,
        json!({"from": from, "to": "55555", "text": "ж", "data_coding": "gsm7"}).to_string(),
    )
    .await;
    assert_eq!(s, 422, "{v}");

    let st = smsc.stats().await.expect("stats");
    assert_eq!(st["mo_sent"], 6, "{st}");
    assert_eq!(st["mo_acknowledged"], 6, "{st}");
    assert_eq!(st["errors"], 0, "{st}");
    assert_eq!(st["errors_permanent"], 0, "{st}");
}
