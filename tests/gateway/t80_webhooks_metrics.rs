//! Signed status webhooks (with retries) to a receiver in the test, and the
//! operational endpoints: /metrics, /healthz, /readyz, /openapi.json.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::*;

const TO: &str = "+4915112345678";

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    signature: String,
    body: String,
    json: Value,
    answered: u16,
    received_unix: i64,
}

/// A webhook receiver on 127.0.0.1 that answers 500 to the first `fail_first` attempts
/// of every event_id, then 200.
#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    attempts: Arc<Mutex<HashMap<String, usize>>>,
    fail_first: usize,
    /// While true every attempt is answered 503.
    down: Arc<std::sync::atomic::AtomicBool>,
    url: String,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body).to_string();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let event = json["event_id"].as_str().unwrap_or("").to_string();
    let n = {
        let mut a = r.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = a.entry(event).or_default();
        *n += 1;
        *n
    };
    let status = if r.down.load(std::sync::atomic::Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else if n <= r.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let signature = headers
        .get("smsgw-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    r.hits.lock().unwrap_or_else(|e| e.into_inner()).push(Hit {
        signature,
        body: text,
        json,
        answered: status.as_u16(),
        received_unix: chrono::Utc::now().timestamp(),
    });
    status
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = l.local_addr().expect("addr");
        let r = Receiver {
            hits: Arc::default(),
            attempts: Arc::default(),
            fail_first,
            down: Arc::default(),
            url: format!("http://{addr}/hooks"),
        };
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(hook))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        r
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the message has a 200-answered hit for each status; returns those hits.
    async fn wait_for(&self, message_id: &str, statuses: &[&str], timeout: Duration) -> Vec<Hit> {
        eventually(
            &format!("webhooks {statuses:?} for {message_id}"),
            timeout,
            || async {
                let hits = self.hits();
                statuses
                    .iter()
                    .map(|s| {
                        hits.iter()
                            .find(|h| {
                                h.answered == 200
                                    && h.json["id"] == message_id
                                    && h.json["status"] == *s
                            })
                            .cloned()
                    })
                    .collect::<Option<Vec<Hit>>>()
            },
        )
        .await
    }
}

/// Recomputes the signature independently of the gateway's code: HMAC-SHA256 of
/// "<t>.<body>" with the secret, hex.
fn check_signature(secret: &str, h: &Hit) {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in h.signature.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1.push(x.to_string()),
            _ => {}
        }
    }
    let t = t.unwrap_or_else(|| panic!("no t= in Smsgw-Signature {:?}", h.signature));
    assert!(
        (t - h.received_unix).abs() <= 60,
        "signature timestamp {t} far from now {}",
        h.received_unix
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(format!("{t}.{}", h.body).as_bytes());
    let expect = hex::encode(mac.finalize().into_bytes());
    assert!(
        v1.contains(&expect),
        "Smsgw-Signature {:?} does not match HMAC {expect} of body {}",
        h.signature,
        h.body
    );
    // The crate's reference verifier agrees, and refuses another secret.
    assert!(smsgw::webhooks::signature::verify(
        secret.as_bytes(),
        &h.signature,
        h.body.as_bytes(),
        h.received_unix,
        300
    ));
    assert!(!smsgw::webhooks::signature::verify(
        b"whsec_wrong",
        &h.signature,
        h.body.as_bytes(),
        h.received_unix,
        300
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_sent_for_every_status() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let tenant_rx = Receiver::start(0).await;
    let message_rx = Receiver::start(0).await;
    let smsc = Smsc::start(dir.path(), "sw", &["--dlr-delay-ms", "50"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let (key, secret) = node
        .tenant_with_secret("hooked", json!({"callback_url": tenant_rx.url}))
        .await;
    node.wait_bound().await;

    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "hook me", "client_ref": "wh-1"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let hits = tenant_rx
        .wait_for(
            &id,
            &["accepted", "sent", "delivered"],
            Duration::from_secs(30),
        )
        .await;
    let mut event_ids = Vec::new();
    for h in &hits {
        check_signature(&secret, h);
        let b = &h.json;
        assert_eq!(b["id"], id.as_str(), "{b}");
        assert_eq!(b["client_ref"], "wh-1", "{b}");
        assert_eq!(b["to"], TO, "{b}");
        assert_eq!(b["parts"], 1, "{b}");
        assert!(b["error"].is_null(), "{b}");
        // Beyond the contract's fields: the sender and category, and from `sent` on
        // the parts with their operator ids.
        assert!(b["from"].as_str().is_some_and(|f| !f.is_empty()), "{b}");
        assert_eq!(b["category"], "transactional", "{b}");
        if b["status"] == "accepted" {
            assert!(b.get("part_states").is_none(), "{b}");
        } else {
            let parts = b["part_states"].as_array().expect("part_states");
            assert_eq!(parts.len(), 1, "{b}");
            assert!(parts[0]["smsc_message_id"].is_string(), "{b}");
        }
        assert!(
            b["at"]
                .as_str()
                .is_some_and(|a| chrono::DateTime::parse_from_rfc3339(a).is_ok()),
            "at is RFC 3339: {b}"
        );
        assert!(b["event_id"].as_str().is_some_and(|e| !e.is_empty()), "{b}");
        event_ids.push(b["event_id"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(
        hits[1].json["channel"], "a",
        "sent names the channel: {}",
        hits[1].body
    );
    assert_eq!(
        hits[2].json["channel"], "a",
        "delivered names the channel: {}",
        hits[2].body
    );
    let distinct: std::collections::HashSet<&String> = event_ids.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "one event_id per status change: {event_ids:?}"
    );
    // At-least-once: any repeat of an event carries the same event_id and the same body.
    for h in tenant_rx.hits() {
        let first = hits
            .iter()
            .find(|x| x.json["event_id"] == h.json["event_id"]);
        if let Some(f) = first {
            assert_eq!(f.body, h.body, "a redelivered event must be byte-identical");
        }
    }
    // The status changes arrive in order of `at`.
    let ats: Vec<&str> = hits
        .iter()
        .map(|h| h.json["at"].as_str().unwrap_or(""))
        .collect();
    assert!(
        ats.windows(2).all(|w| w[0] <= w[1]),
        "event times in order: {ats:?}"
    );

    // A message's own callback_url overrides the tenant's.
    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "hook elsewhere", "callback_url": message_rx.url}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id2 = v["id"].as_str().expect("id").to_string();
    let hits2 = message_rx
        .wait_for(
            &id2,
            &["accepted", "sent", "delivered"],
            Duration::from_secs(30),
        )
        .await;
    for h in &hits2 {
        check_signature(&secret, h);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tenant_rx
            .hits()
            .iter()
            .all(|h| h.json["id"] != id2.as_str()),
        "the override must not also go to the tenant URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_retried_after_errors() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let rx = Receiver::start(2).await;
    let smsc = Smsc::start(dir.path(), "sv", &["--dlr-delay-ms", "50"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let (key, secret) = node
        .tenant_with_secret("flaky", json!({"callback_url": rx.url}))
        .await;
    node.wait_bound().await;
    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "retry me", "client_ref": "r-1"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    // Two 500s per event, then 200: with backoff 1 s, 2 s that is a few seconds.
    let ok = rx
        .wait_for(
            &id,
            &["accepted", "sent", "delivered"],
            Duration::from_secs(45),
        )
        .await;
    let all = rx.hits();
    for h in &ok {
        check_signature(&secret, h);
        let ev = &h.json["event_id"];
        let attempts: Vec<&Hit> = all.iter().filter(|x| x.json["event_id"] == *ev).collect();
        assert!(
            attempts.len() >= 3,
            "event {ev}: two failures then success: {} attempts",
            attempts.len()
        );
        assert_eq!(
            attempts.iter().filter(|a| a.answered == 500).count(),
            2,
            "event {ev}"
        );
        for a in &attempts {
            assert_eq!(a.body, h.body, "event {ev}: retries carry the same body");
            check_signature(&secret, a);
        }
    }
    // Once answered 200 an event is not sent again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = rx.hits();
    for h in &ok {
        let n200 = after
            .iter()
            .filter(|x| x.json["event_id"] == h.json["event_id"] && x.answered == 200)
            .count();
        assert_eq!(
            n200, 1,
            "event {} delivered {n200} times after a 200",
            h.json["event_id"]
        );
    }
}

/// A customer who fixes a wrong callback URL gets the events still pending and the later
/// ones at the new URL (they kept going to the old one for 24 h); `null` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tenant_url_takes_pending_and_later_events_and_null_removes_it() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let wrong = Receiver::start(usize::MAX).await;
    let right = Receiver::start(0).await;
    let smsc = Smsc::start(dir.path(), "sp", &["--dlr-delay-ms", "1500"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let (key, secret) = node
        .tenant_with_secret("fixer", json!({"callback_url": wrong.url}))
        .await;
    node.wait_bound().await;
    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "where to?"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    eventually(
        "a first attempt at the wrong URL",
        Duration::from_secs(10),
        || async {
            wrong
                .hits()
                .iter()
                .any(|h| h.json["id"] == id.as_str())
                .then_some(())
        },
    )
    .await;

    let (s, v) = node
        .admin(
            reqwest::Method::PATCH,
            "/admin/v1/tenants/fixer",
            Some(json!({"callback_url": right.url})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let hits = right
        .wait_for(
            &id,
            &["accepted", "sent", "delivered"],
            Duration::from_secs(30),
        )
        .await;
    for h in &hits {
        check_signature(&secret, h);
    }

    // `null` removes the URL (it was read as "unchanged").
    let (s, v) = node
        .admin(
            reqwest::Method::PATCH,
            "/admin/v1/tenants/fixer",
            Some(json!({"callback_url": null})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["callback_url"], Value::Null, "{v}");
    let (s, v) = node.send(&key, json!({"to": TO, "text": "quiet"})).await;
    assert_eq!(s, 202, "{v}");
    let quiet = v["id"].as_str().expect("id").to_string();
    let v = node.wait_final(&key, &quiet, Duration::from_secs(20)).await;
    assert_eq!(v["status"], "delivered", "{v}");
    // A webhook of the last event would be on its way within milliseconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        [&wrong, &right]
            .iter()
            .all(|r| r.hits().iter().all(|h| h.json["id"] != quiet.as_str())),
        "no webhook once the tenant has no URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_webhooks_carry_the_error() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let rx = Receiver::start(0).await;
    let failing = Smsc::start(dir.path(), "sx", &["--error-rate", "1.0"]).await;
    let undeliv = Smsc::start(
        dir.path(),
        "su",
        &["--dlr-mix", "undeliverable=100", "--dlr-delay-ms", "30"],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[failing.channel("x")]).await;
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/channels",
            Some(undeliv.channel("u")),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": "fr", "match": {"prefix": ["+33"]}, "channels": [{"id": "u"}]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (key, secret) = node
        .tenant_with_secret("sad", json!({"callback_url": rx.url}))
        .await;
    node.wait_bound().await;

    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "refused", "client_ref": "f-1"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let hits = rx
        .wait_for(&id, &["accepted", "failed"], Duration::from_secs(30))
        .await;
    let failed = &hits[1];
    check_signature(&secret, failed);
    // The operator that refused it is named (it was null: nothing was ever sent).
    assert_eq!(failed.json["channel"], "x", "{}", failed.body);
    let e = &failed.json["error"];
    assert!(
        e["code"]
            .as_str()
            .is_some_and(|c| NORMALISED_ERROR_CODES.contains(&c)),
        "failed webhook error: {}",
        failed.body
    );
    assert!(
        e["smsc_code"].as_str().is_some_and(|c| !c.is_empty()),
        "failed webhook keeps the raw code: {}",
        failed.body
    );
    assert!(
        hits[0].json["error"].is_null(),
        "accepted has no error: {}",
        hits[0].body
    );

    let (s, v) = node
        .send(
            &key,
            json!({"to": "+33612345678", "text": "lost", "client_ref": "f-2"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let hits = rx
        .wait_for(
            &id,
            &["accepted", "sent", "undelivered"],
            Duration::from_secs(30),
        )
        .await;
    let e = &hits[2].json["error"];
    assert!(
        e["code"]
            .as_str()
            .is_some_and(|c| NORMALISED_ERROR_CODES.contains(&c)),
        "undelivered webhook error: {}",
        hits[2].body
    );
    assert_eq!(hits[2].json["channel"], "u", "{}", hits[2].body);
    // The webhook and the status API agree on the error, and on which parts failed
    // (`part_states`, the status answer's shape, on final statuses).
    let (_, st) = node.message(&key, &id).await;
    assert_eq!(st["error"], *e, "status error vs webhook error");
    assert_eq!(
        hits[2].json["part_states"], st["part_states"],
        "{}",
        hits[2].body
    );
    assert_eq!(hits[2].json["part_states"][0]["status"], "undelivered");
    assert_eq!(hits[1].json["part_states"][0]["status"], "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_webhooks_survive_a_kill9_with_the_same_event_ids() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let rx = Receiver::start(0).await;
    rx.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let smsc = Smsc::start(dir.path(), "sk", &["--dlr-delay-ms", "30"]).await;
    let mut node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let (key, secret) = node
        .tenant_with_secret("later", json!({"callback_url": rx.url}))
        .await;
    node.wait_bound().await;
    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "hook after restart", "client_ref": "k-1"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    node.wait_status(&key, &id, "delivered", Duration::from_secs(20))
        .await;
    // Every status change was attempted (and refused) before the crash.
    let before: HashMap<String, String> = eventually(
        "refused attempts for 3 events",
        Duration::from_secs(20),
        || async {
            let m: HashMap<String, String> = rx
                .hits()
                .into_iter()
                .filter(|h| h.json["id"] == id.as_str())
                .map(|h| (h.json["status"].as_str().unwrap_or("").to_string(), h.body))
                .collect();
            (m.len() == 3).then_some(m)
        },
    )
    .await;
    node.proc.kill9();
    rx.down.store(false, std::sync::atomic::Ordering::SeqCst);
    node.restart().await;
    let ok = rx
        .wait_for(
            &id,
            &["accepted", "sent", "delivered"],
            Duration::from_secs(45),
        )
        .await;
    for h in &ok {
        check_signature(&secret, h);
        let status = h.json["status"].as_str().unwrap_or("");
        assert_eq!(
            before.get(status),
            Some(&h.body),
            "{status}: the event after the restart is the same event (event_id and body)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_openapi() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "so", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    // Before any message: every status and the channel's queue have a series (0), and
    // the contract's families say what they are.
    let m = eventually("series of a fresh node", Duration::from_secs(5), || async {
        let m = node.metrics_text().await;
        metric_value(&m, "smsgw_queue_depth", &[("channel", "a")]).map(|_| m)
    })
    .await;
    for status in ["accepted", "delivered", "failed", "expired"] {
        assert_eq!(
            metric_value(&m, "smsgw_messages_total", &[("status", status)]),
            Some(0.0),
            "{status}:\n{m}"
        );
    }
    for family in [
        "smsgw_messages_total",
        "smsgw_queue_depth",
        "smsgw_channel_up",
    ] {
        assert!(m.contains(&format!("# HELP {family} ")), "{family}:\n{m}");
    }
    let (s, v) = node.send(&key, json!({"to": TO, "text": "count me"})).await;
    assert_eq!(s, 202, "{v}");
    node.wait_status(
        &key,
        v["id"].as_str().expect("id"),
        "delivered",
        Duration::from_secs(20),
    )
    .await;

    let r = client()
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        ct.starts_with("text/plain"),
        "Prometheus text content type: {ct}"
    );
    let m = r.text().await.expect("text");
    for name in [
        "smsgw_messages_total",
        "smsgw_http_requests_total",
        "smsgw_channel_submit_total",
        "smsgw_channel_up",
        "smsgw_submit_latency_seconds_bucket",
        "smsgw_submit_latency_seconds_count",
        "smsgw_raft_leader",
        "smsgw_queue_depth",
    ] {
        assert!(
            metric_value(&m, name, &[]).is_some(),
            "{name} missing from /metrics:\n{m}"
        );
    }
    assert!(
        metric_value(&m, "smsgw_messages_total", &[("status", "delivered")])
            .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert!(
        metric_value(&m, "smsgw_messages_total", &[("status", "accepted")])
            .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "smsgw_http_requests_total",
            &[("route", "/v1/messages"), ("code", "202")]
        )
        .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "smsgw_channel_submit_total",
            &[("channel", "a"), ("result", "ok")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "smsgw_channel_up", &[("channel", "a")]),
        Some(1.0),
        "{m}"
    );
    assert!(
        metric_value(&m, "smsgw_queue_depth", &[("channel", "a")]).is_some(),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "smsgw_raft_leader", &[]),
        Some(1.0),
        "a single node leads: {m}"
    );
    assert!(
        metric_value(&m, "smsgw_submit_latency_seconds_count", &[]).is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert!(
        metric_value(&m, "smsgw_runtime_workers", &[]).is_some_and(|v| v >= 1.0),
        "the runtime's threads: {m}"
    );
    assert!(
        metric_value(&m, "smsgw_runtime_alive_tasks", &[]).is_some_and(|v| v >= 1.0),
        "{m}"
    );
    // The busy share is published once a whole second has been measured.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let m = client()
            .get(node.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if let Some(v) = metric_value(&m, "smsgw_runtime_busy_ratio", &[]) {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no smsgw_runtime_busy_ratio after 10 s:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!((0.0..=1.0).contains(&busy), "busy share {busy}");

    let r = client()
        .get(node.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    let r = client()
        .get(node.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status().as_u16(), 200);

    let r = client()
        .get(node.url("/openapi.json"))
        .send()
        .await
        .expect("openapi");
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.expect("openapi.json parses as JSON");
    assert_eq!(doc["openapi"], "3.1.0", "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/messages",
        "/v1/messages/{id}",
        "/v1/messages/batch",
        "/v1/messages/preview",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from openapi paths: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        paths["/v1/messages"].get("post").is_some(),
        "POST /v1/messages documented"
    );
}

/// `v1=` values of a `Smsgw-Signature` header.
fn v1_count(h: &Hit) -> usize {
    h.signature
        .split(',')
        .filter(|p| p.trim().starts_with("v1="))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_webhook_secret_signs_alongside_the_old_one_for_the_overlap() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let rx = Receiver::start(0).await;
    // No route: each message is accepted, then fails with no_route (two webhooks).
    let node = GwNode::start(dir.path(), &[]).await;
    let (key, first) = node
        .tenant_with_secret("rot", json!({"callback_url": rx.url}))
        .await;
    let rotate = |body: Option<Value>| {
        node.admin(
            reqwest::Method::POST,
            "/admin/v1/tenants/rot/webhook_secret",
            body,
        )
    };
    let (s, v) = rotate(None).await;
    assert_eq!(s, 201, "{v}");
    let second = v["webhook_secret"].as_str().expect("secret").to_string();
    assert!(second.starts_with("whsec_") && second != first, "{v}");
    assert!(v["previous_secret_valid_until"].is_string(), "{v}");
    let (_, t) = node
        .admin(reqwest::Method::GET, "/admin/v1/tenants/rot", None)
        .await;
    assert!(t["previous_webhook_secret_until"].is_string(), "{t}");
    assert!(
        !t.to_string().contains(&first) && !t.to_string().contains(&second),
        "never shown again: {t}"
    );

    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "during overlap"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let hits = rx
        .wait_for(&id, &["accepted", "failed"], Duration::from_secs(30))
        .await;
    for h in &hits {
        assert_eq!(v1_count(h), 2, "new and old: {}", h.signature);
        check_signature(&second, h);
        check_signature(&first, h);
    }

    // A leaked secret: overlap 0 drops the old one at once.
    let (s, v) = rotate(Some(json!({"overlap_seconds": 0}))).await;
    assert_eq!(s, 201, "{v}");
    assert!(v["previous_secret_valid_until"].is_null(), "{v}");
    let third = v["webhook_secret"].as_str().expect("secret").to_string();
    let (s, v) = node.send(&key, json!({"to": TO, "text": "after"})).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let hits = rx
        .wait_for(&id, &["accepted", "failed"], Duration::from_secs(30))
        .await;
    for h in &hits {
        assert_eq!(v1_count(h), 1, "{}", h.signature);
        check_signature(&third, h);
        for old in [&first, &second] {
            assert!(!smsgw::webhooks::signature::verify(
                old.as_bytes(),
                &h.signature,
                h.body.as_bytes(),
                h.received_unix,
                300
            ));
        }
    }

    // Bad bodies and ids.
    let (s, v) = rotate(Some(json!({"overlap_seconds": 604_801}))).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "overlap_seconds", "{v}");
    let (s, v) = rotate(Some(json!({"overlap": 1}))).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/tenants/nope/webhook_secret",
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
}
