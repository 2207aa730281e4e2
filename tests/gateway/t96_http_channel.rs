//! The generic HTTP upstream channel (`protocol: "http"`) against a real REST provider
//! simulator process (`smsgw sim http-provider`): send → sent → delivered by a receipt
//! the provider POSTs back, receipt authentication, 429/500 retried, 400 failed with the
//! provider's code, and bad templates refused at channel create.
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";
const RECEIPT_TOKEN: &str = "receipt-token-0123456789";

/// A node, a provider started with `flags` (receipts to the node with the right token),
/// an http channel "p" as the default route, tenant "acme".
async fn setup(dir: &std::path::Path, flags: &[&str]) -> (HttpProvider, GwNode, String) {
    let node = GwNode::start(dir, &[]).await;
    let receipts = node.url("/v1/receipts/p");
    let mut args = vec![
        "--api-key",
        "provider-api-key",
        "--receipts-url",
        &receipts,
        "--receipt-token",
        RECEIPT_TOKEN,
        "--dlr-delay-ms",
        "50",
    ];
    args.extend_from_slice(flags);
    let provider = HttpProvider::start(dir, "provider", &args).await;
    node.channels_and_route(&[provider.channel("p", RECEIPT_TOKEN)])
        .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    (provider, node, key)
}

fn statuses(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["status"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn send_sent_delivered_via_receipt() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (provider, node, key) = setup(dir.path(), &[]).await;

    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "from": "ACME", "text": "Your code is 123456 & \"ok\""}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id, "delivered", Duration::from_secs(20))
        .await;
    assert_eq!(statuses(&done), ["accepted", "sent", "delivered"], "{done}");
    assert_eq!(
        done["part_states"][0]["smsc_message_id"], "prov-1",
        "{done}"
    );
    assert_eq!(done["part_states"][0]["status"], "delivered", "{done}");

    // The template reached the provider as written: JSON-escaped text, our reference.
    let got = provider.messages().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["to"], TO);
    assert_eq!(got[0]["from"], "ACME");
    assert_eq!(got[0]["text"], "Your code is 123456 & \"ok\"");
    assert_eq!(got[0]["reference"], format!("{id}-1"));

    // A long message: one request per part, each with its own id and receipt.
    let long = format!("{}END", "part text ".repeat(20));
    let (s, v) = node.send(&key, json!({"to": TO, "text": long})).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["parts"], 2, "{v}");
    let id2 = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id2, "delivered", Duration::from_secs(20))
        .await;
    let parts = done["part_states"].as_array().expect("part_states");
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p["status"] == "delivered"), "{done}");
    let got = provider.messages().await;
    let texts: String = got[1..]
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("");
    assert_eq!(texts, long, "the parts' texts join to the message");

    let ch = node.channel_view("p").await;
    assert_eq!(ch["state"], "bound", "{ch}");
    assert_eq!(ch["protocol"], "http", "{ch}");
    assert_eq!(
        ch["options"]["receipts"]["auth"]["token"], "<redacted>",
        "{ch}"
    );
    assert_eq!(ch["stats"]["delivered"], 3, "{ch}");
}

#[tokio::test]
async fn receipts_need_the_channels_credentials() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_provider, node, _key) = setup(dir.path(), &[]).await;
    let body = json!({"data": {"id": "prov-999", "status": "delivered"}});

    for bearer in ["wrong-token-0123456789", ""] {
        let r = node.post_json("/v1/receipts/p", bearer, &body).await;
        assert_eq!(r.status, 401, "{:?}", r.json);
        assert_eq!(r.json["error"]["code"], "unauthorized", "{:?}", r.json);
        assert!(r.json["error"]["message"].is_string(), "{:?}", r.json);
    }
    let r = node
        .post_json("/v1/receipts/nope", RECEIPT_TOKEN, &body)
        .await;
    assert_eq!(r.status, 404, "{:?}", r.json);
    assert_eq!(r.json["error"]["code"], "not_found");

    // Right token, unknown id: accepted and parked (it may precede its submit answer).
    let r = node.post_json("/v1/receipts/p", RECEIPT_TOKEN, &body).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["parked"], 1, "{:?}", r.json);
    // A receipt without the id field names it.
    let r = node
        .post_json(
            "/v1/receipts/p",
            RECEIPT_TOKEN,
            &json!({"data": {"status": "delivered"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    assert_eq!(r.json["error"]["field"], "data.id", "{:?}", r.json);
    // `curl -d '{...}'` declares a form; a body that is plainly JSON is read as JSON
    // (it was read as form fields: 422 "missing message id").
    let r = client()
        .post(node.url("/v1/receipts/p"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .bearer_auth(RECEIPT_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);

    // An HMAC channel: the signature of the exact body, in X-Signature.
    let secret = "hmac-secret-0123456789";
    let mut ch = _provider.channel("h", RECEIPT_TOKEN);
    ch["options"]["receipts"]["auth"] = json!({"type": "hmac_sha256", "secret": secret});
    let (s, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels", Some(ch))
        .await;
    assert_eq!(s, 201, "{v}");
    let raw = body.to_string();
    let sig = smsgw::protocols::http_upstream::receipt::hmac_hex(secret.as_bytes(), raw.as_bytes());
    let post = |sig: String| {
        client()
            .post(node.url("/v1/receipts/h"))
            .header("Content-Type", "application/json")
            .header("X-Signature", sig)
            .body(raw.clone())
            .send()
    };
    let r = post(format!("sha256={sig}")).await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let r = post(sig.replace('a', "b").replace('0', "1"))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "unauthorized", "{v}");
}

#[tokio::test]
async fn throttled_and_server_errors_are_retried_until_sent() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // 3 × 429, then 2 × 500, then accepted.
    let (provider, node, key) =
        setup(dir.path(), &["--throttle-first", "3", "--error-first", "2"]).await;
    let (s, v) = node.send(&key, json!({"to": TO, "text": "retry me"})).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id, "delivered", Duration::from_secs(30))
        .await;
    let st = provider.stats().await.expect("stats");
    assert_eq!(st["throttled"], 3, "{st}");
    assert_eq!(st["errors"], 2, "{st}");
    assert_eq!(st["accepted"], 1, "sent exactly once: {st}");
    // The 500s were retried on the same line after a pause (the route has no other),
    // not failures, and no status repeats in the history (no accepted → accepted).
    let events = done["events"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<&str> = events.iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(statuses, ["accepted", "sent", "delivered"], "{done}");
    // Retries on the same line are not moves along the route (`attempts` picks the
    // channel a message waits on); the first says why in the history.
    assert_eq!(done["attempts"], 0, "{done}");
    let m = node.metrics_text().await;
    assert_eq!(
        metric_value(
            &m,
            "smsgw_channel_submit_total",
            &[("channel", "p"), ("result", "throttled")]
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(
            &m,
            "smsgw_channel_submit_total",
            &[("channel", "p"), ("result", "temporary")]
        ),
        Some(2.0),
        "the two 500s counted as temporary errors"
    );
}

#[tokio::test]
async fn provider_400_fails_the_message_with_the_providers_code() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (provider, node, key) = setup(dir.path(), &["--reject-prefix", "+4930"]).await;
    let (s, v) = node
        .send(&key, json!({"to": "+493012345678", "text": "no"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id, "failed", Duration::from_secs(20))
        .await;
    assert_eq!(done["error"]["code"], "invalid_destination", "{done}");
    assert_eq!(done["error"]["smsc_code"], "21211", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 400"),
        "{done}"
    );
    let st = provider.stats().await.expect("stats");
    assert_eq!(st["rejected"], 1, "tried once, not retried: {st}");
    // A bad number is the recipient's fault, not the line's: the channel stays healthy.
    let ch = node.channel_view("p").await;
    assert_eq!(ch["health"]["score"], 1.0, "{ch}");
    assert!(ch["last_error"].is_null(), "{ch}");
}

#[tokio::test]
async fn bad_templates_are_refused_at_create_naming_the_field() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let base = json!({"id": "bad", "protocol": "http", "options": {
        "request": {"url": "http://127.0.0.1:9/sms", "body": {"to": "{to}", "text": "{txt}"}}}});
    let cases = [
        (
            "/options/request/body/text",
            json!("{txt}"),
            "options.request.body.text",
            "{txt}",
        ),
        (
            "/options/request/url",
            json!("http://h/{to"),
            "options.request.url",
            "unclosed",
        ),
        (
            "/options/request/url",
            json!("not a url"),
            "options.request.url",
            "URL",
        ),
        (
            "/options/request/headers",
            json!({"X-Key": "{api_key}"}),
            "options.request.headers.X-Key",
            "{api_key}",
        ),
        (
            "/options/response",
            json!({"id_path": "a..b"}),
            "options.response.id_path",
            "empty segment",
        ),
        (
            "/options/receipts",
            json!({"auth": {"type": "token", "token": "short"}}),
            "options.receipts.auth.token",
            "16",
        ),
    ];
    for (pointer, value, field, needle) in cases {
        let mut body = base.clone();
        body["options"]["request"]["body"]["text"] = json!("{text}");
        if let Some(slot) = body.pointer_mut(pointer) {
            *slot = value.clone();
        } else {
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            body.pointer_mut(parent).expect("parent")[key] = value.clone();
        }
        let (s, v) = node
            .admin(reqwest::Method::POST, "/admin/v1/channels", Some(body))
            .await;
        assert_eq!(s, 422, "{pointer}: {v}");
        assert_eq!(v["error"]["code"], "invalid_field", "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{needle} in {v}"
        );
    }
    // The template as first written is the `{txt}` case; nothing was created.
    let (s, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels", Some(base))
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (422, Some("options.request.body.text"))
    );
    let (_, list) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels", None)
        .await;
    assert_eq!(list, json!([]));
    // SMPP channels still need their SMPP fields.
    let (s, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels",
            Some(json!({"id": "s", "protocol": "smpp", "port": 2775, "system_id": "a", "password": "b"})))
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (422, Some("host")),
        "{v}"
    );
}

#[tokio::test]
async fn a_provider_that_is_down_holds_messages_until_it_is_back() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let port = free_port();
    // The channel points at a port where nothing listens yet.
    let template = HttpProvider {
        proc: Proc {
            child: None,
            log: dir.path().join("unused.log"),
        },
        port,
    };
    node.channels_and_route(&[template.channel("p", RECEIPT_TOKEN)])
        .await;
    let key = node.tenant("acme", json!({})).await;
    let ch = eventually("channel not bound", Duration::from_secs(10), || async {
        let v = node.channel_view("p").await;
        (v["state"] == "down" || v["state"] == "connecting").then_some(v)
    })
    .await;
    assert_ne!(ch["state"], "bound", "{ch}");
    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "wait for me"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, m) = node.message(&key, &id).await;
    assert_eq!(
        m["status"], "accepted",
        "held while the provider is down: {m}"
    );

    let receipts = node.url("/v1/receipts/p");
    let provider = HttpProvider::start_on(
        port,
        dir.path(),
        "provider",
        &[
            "--api-key",
            "provider-api-key",
            "--receipts-url",
            &receipts,
            "--receipt-token",
            RECEIPT_TOKEN,
            "--dlr-delay-ms",
            "50",
        ],
    )
    .await;
    let done = node
        .wait_status(&key, &id, "delivered", Duration::from_secs(45))
        .await;
    assert_eq!(
        statuses(&done).last().map(String::as_str),
        Some("delivered")
    );
    let st = provider.stats().await.expect("stats");
    assert_eq!(st["accepted"], 1, "{st}");
    // The bind's state reaches the replicated view with the next report (≤ 0.5 s).
    eventually("channel reported bound", Duration::from_secs(5), || async {
        (node.channel_view("p").await["state"] == "bound").then_some(())
    })
    .await;
}

/// A channel of `provider` whose requests time out after `timeout_ms`.
fn channel_with_timeout(provider: &HttpProvider, timeout_ms: u64) -> Value {
    let mut ch = provider.channel("p", RECEIPT_TOKEN);
    ch["options"]["request"]["timeout_ms"] = json!(timeout_ms);
    ch
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_gets_retries_after_pauses_not_a_loop() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let provider = HttpProvider::start(
        dir.path(),
        "provider",
        &["--api-key", "provider-api-key", "--latency-ms", "1500"],
    )
    .await;
    node.channels_and_route(&[channel_with_timeout(&provider, 400)])
        .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    let (s, v) = node.send(&key, json!({"to": TO, "text": "slow"})).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    // Tries at about 0, 1.4 and 3.8 s, the next at 8.2 s (pauses of 1 s, 2 s, 4 s after
    // each 0.4 s timeout); a loop would have sent it a dozen times by now.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    let st = provider.stats().await.expect("stats");
    let requests = st["requests"].as_u64().unwrap_or(0);
    assert!((2..=4).contains(&requests), "{st}");
    // The provider took each copy though the gateway stopped waiting for its answer.
    assert!(st["accepted"].as_u64().unwrap_or(0) >= 1, "{st}");
    assert!(!provider.messages().await.is_empty());

    let (_, m) = node.message(&key, &id).await;
    assert_eq!(m["status"], "accepted", "{m}");
    let notes: Vec<String> = m["events"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["notes"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n["note"].as_str().map(String::from))
        .collect();
    assert!(
        notes.iter().all(|n| !n.contains("elsewhere")),
        "no other channel: {notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("same line")),
        "the history says why it waits: {notes:?}"
    );
    let metrics = node.metrics_text().await;
    let resubmits =
        metric_value(&metrics, "smsgw_resubmits_total", &[("channel", "p")]).unwrap_or(0.0);
    assert!(resubmits >= 1.0, "each resend counted: {resubmits}");
    assert_eq!(resubmits + 1.0, requests as f64, "one count per resend");
    let late = metric_value(&metrics, "smsgw_late_submit_responses_total", &[]).unwrap_or(0.0);
    assert!(late >= 1.0, "the late 201s were counted: {late}");
    let ch = node.channel_view("p").await;
    let last = ch["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("no response"), "{ch}");
}

#[tokio::test]
async fn refused_credentials_mark_the_channel_down_with_the_reason() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    // The channel sends `provider-api-key`; the provider wants another.
    let provider = HttpProvider::start(dir.path(), "provider", &["--api-key", "another-key"]).await;
    node.channels_and_route(&[provider.channel("p", RECEIPT_TOKEN)])
        .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    let (s, v) = node.send(&key, json!({"to": TO, "text": "no key"})).await;
    assert_eq!(s, 202, "{v}");
    let ch = eventually(
        "channel down after a 401",
        Duration::from_secs(15),
        || async {
            let v = node.channel_view("p").await;
            (v["state"] == "down").then_some(v)
        },
    )
    .await;
    let last = ch["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("401 Unauthorized"), "{ch}");
    assert!(
        provider.stats().await.expect("stats")["unauthorized"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_posts_mobile_originated_messages_to_the_tenant_that_owns_the_number() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let provider =
        HttpProvider::start(dir.path(), "provider", &["--api-key", "provider-api-key"]).await;
    let mut ch = provider.channel("p", RECEIPT_TOKEN);
    ch["options"]["inbound"] = json!({
        "auth": {"type": "token", "token": "mo-token-0123456789abcdef"},
        "items_path": "messages", "from_path": "msisdn", "to_path": "/to/number", "text_path": "body",
    });
    // A channel without `inbound` (q) takes no MO.
    node.channels_and_route(&[ch, provider.channel("q", RECEIPT_TOKEN)])
        .await;
    let key = node
        .tenant("shop", json!({"sender_pool": ["+4915100000001"]}))
        .await;
    let post = |channel: &str, token: &str, body: Value| {
        let (node, path, token) = (&node, format!("/v1/mo/{channel}"), token.to_string());
        async move {
            node.request(
                reqwest::Method::POST,
                &path,
                Some(&token),
                &[("content-type", "application/json")],
                Some(body.to_string().into_bytes()),
            )
            .await
        }
    };
    let two = json!({"messages": [
        {"msisdn": "+4915112345690", "to": {"number": "4915100000001"}, "body": "STOP"},
        {"msisdn": "+4915112345691", "to": {"number": "4915199999999"}, "body": "wrong number"},
    ]});
    let r = post("p", "mo-token-0123456789abcdef", two.clone()).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json, json!({"received": 2, "stored": 1, "unowned": 1}));
    let r = node
        .request(reqwest::Method::GET, "/v1/inbound", Some(&key), &[], None)
        .await;
    let msgs = r.json["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 1, "{}", r.json);
    assert_eq!(msgs[0]["text"], "STOP");
    assert_eq!(msgs[0]["keyword"], "opt_out", "an opt-out, as over SMPP");
    assert_eq!(msgs[0]["channel"], "p");
    assert_eq!(msgs[0]["to"], "+4915100000001");
    // Wrong credentials, no such channel, a channel without MO, a message without sender.
    assert_eq!(
        post("p", "wrong-token-0123456789", two.clone())
            .await
            .status,
        401
    );
    let unknown = post("nope", "mo-token-0123456789abcdef", two.clone()).await;
    let no_mo = post("q", "mo-token-0123456789abcdef", two.clone()).await;
    assert_eq!((unknown.status, no_mo.status), (404, 404));
    assert_eq!(unknown.json, no_mo.json, "no channel names revealed");
    let r = post(
        "p",
        "mo-token-0123456789abcdef",
        json!({"messages": [{"to": {"number": "55555"}}]}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["error"]["field"].as_str()),
        (422, Some("msisdn")),
        "{}",
        r.json
    );
    // The token is never shown back.
    let (_, v) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels/p", None)
        .await;
    assert!(!v.to_string().contains("mo-token-0123456789abcdef"), "{v}");
}
