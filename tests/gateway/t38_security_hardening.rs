//! Findings of the security audit, each shown fixed through the real binary: idle
//! connections beyond the cap neither starve a client nor stay open; one tenant's slow
//! webhook receiver does not delay another tenant's webhooks; callback URLs on internal
//! hosts are refused; the data dir is private; credentials in callback URLs never reach
//! the log; unauthenticated answers give nothing away and follow the contract's shape.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::common::*;

const TO: &str = "+4915112345678";

/// Ids of the messages whose webhooks a receiver got (answered after `delay`).
#[derive(Clone, Default)]
struct Hooks {
    ids: Arc<Mutex<Vec<String>>>,
    delay: Duration,
}

async fn hook(State(h): State<Hooks>, body: Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(id) = v["id"].as_str() {
        h.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.to_string());
    }
    tokio::time::sleep(h.delay).await;
    StatusCode::OK
}

impl Hooks {
    /// A receiver on 127.0.0.1 answering 200 after `delay`; returns it and its port.
    async fn start(delay: Duration) -> (Hooks, u16) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let port = l.local_addr().expect("addr").port();
        let h = Hooks {
            ids: Arc::default(),
            delay,
        };
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(hook))
            .with_state(h.clone());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (h, port)
    }

    fn got(&self, id: &str) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|i| i == id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_over_the_cap_neither_starve_a_client_nor_stay_open() {
    let dir = tempdir();
    let (_smsc, node, key) = gateway_with_smsc(
        dir.path(),
        "idle",
        &[],
        &[
            ("SMSGW_HTTP_MAX_CONNECTIONS", "8"),
            ("SMSGW_HTTP_HEADER_TIMEOUT_SECONDS", "1"),
        ],
    )
    .await;
    // Twice the cap of connections that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", node.http))
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, body) = node.send(&key, json!({"to": TO, "text": "hello"})).await;
    assert_eq!(status, 202, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the client waited {:?}",
        started.elapsed()
    );
    // The first idle connection was accepted and is closed after the 1 s header timeout.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut buf))
        .await
        .expect("an idle connection is closed within the header timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "idle connection got {read:?} instead of being closed"
    );
    // The node is still fine.
    let (status, body) = node.send(&key, json!({"to": TO, "text": "again"})).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_of_one_tenant_does_not_delay_another_tenants_webhooks() {
    let dir = tempdir();
    let (slow, slow_port) = Hooks::start(Duration::from_secs(8)).await;
    let (fast, fast_port) = Hooks::start(Duration::ZERO).await;
    let (_smsc, node, _) = gateway_with_smsc(
        dir.path(),
        "fair",
        &[],
        &[
            ("SMSGW_WEBHOOK_CONCURRENCY", "8"),
            ("SMSGW_LOG", "smsgw=debug,info"),
        ],
    )
    .await;
    let a = node
        .tenant(
            "slowco",
            json!({"callback_url": format!("http://127.0.0.1:{slow_port}/hooks")}),
        )
        .await;
    // Basic-auth credentials in the URL: they must never show in the log.
    let b = node
        .tenant(
            "fastco",
            json!({"callback_url": format!("http://u2:pw2secret@127.0.0.1:{fast_port}/hooks")}),
        )
        .await;
    let bodies: Vec<Value> = (0..30)
        .map(|i| json!({"to": TO, "text": format!("slow {i}")}))
        .collect();
    let ids = node.send_all_accepted(&a, bodies).await;
    assert_eq!(ids.len(), 30);
    // Tenant A's first webhooks are being held by its receiver.
    eventually("slow receiver busy", Duration::from_secs(20), || async {
        (!slow
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty())
        .then_some(())
    })
    .await;
    let (status, sent) = node.send(&b, json!({"to": TO, "text": "fast"})).await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    eventually(
        "tenant B's webhook while tenant A's receiver is slow",
        Duration::from_secs(4),
        || async { fast.got(&id).then_some(()) },
    )
    .await;
    eprintln!("tenant B's first webhook after {:?}", started.elapsed());
    let log = node.proc.log_text();
    assert!(
        !log.contains("pw2secret"),
        "credentials of a callback URL in the log"
    );
    assert!(
        log.contains("url=http://***@127.0.0.1"),
        "the delivery is logged with the URL redacted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_urls_on_internal_hosts_are_refused_unless_allowed() {
    let dir = tempdir();
    let (_smsc, node, key) = gateway_with_smsc(
        dir.path(),
        "ssrf",
        &[],
        &[("SMSGW_WEBHOOK_ALLOW_PRIVATE", "false")],
    )
    .await;
    for url in [
        "http://127.0.0.1:8080/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://localhost/cb",
        "http://[::1]/cb",
        "http://10.0.0.5/cb",
        "http://192.168.1.1/cb",
        "http://user:pw@172.16.0.1/cb",
    ] {
        let (status, body) = node
            .send(&key, json!({"to": TO, "text": "x", "callback_url": url}))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["field"], "callback_url", "{url}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("internal") || m.contains("this machine")),
            "{url}: {body}"
        );
        assert!(!body.to_string().contains("pw@"), "{body}");
        let (status, body) = node
            .admin(
                reqwest::Method::POST,
                "/admin/v1/tenants",
                Some(json!({"id": "evil", "name": "evil",
                    "rate_limit": {"per_second": 1, "burst": 1}, "callback_url": url})),
            )
            .await;
        assert_eq!(status, 422, "tenant {url}: {body}");
        assert_eq!(body["error"]["field"], "callback_url", "{body}");
    }
    let (status, body) = node
        .admin(
            reqwest::Method::PATCH,
            "/admin/v1/tenants/acme",
            Some(json!({"callback_url": "http://169.254.169.254/"})),
        )
        .await;
    assert_eq!(status, 422, "patch: {body}");
    let (status, body) = node
        .send(
            &key,
            json!({"to": TO, "text": "x", "callback_url": "https://hooks.example.com/cb"}),
        )
        .await;
    assert_eq!(status, 202, "a public URL is taken: {body}");
    // At delivery a host name is resolved and refused when it points inside.
    let refused = smsgw::webhooks::target::resolve_public("localhost")
        .await
        .expect_err("localhost resolves to loopback");
    assert!(
        refused.to_string().contains("internal address"),
        "{refused}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("data dir").permissions().mode() & 0o777;
    let fresh = tempdir();
    let node = GwNode::start(fresh.path(), &[]).await;
    assert_eq!(mode(&fresh.path().join("data")), 0o700, "a new data dir");
    drop(node);
    // A data dir left world-readable (older version, umask 022) is made private.
    let old = tempdir();
    let data = old.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let node = GwNode::start(old.path(), &[]).await;
    assert_eq!(mode(&data), 0o700, "an existing data dir");
    assert!(
        node.proc.log_text().contains("set it to 0700"),
        "the change is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_answers_reveal_nothing_and_keep_the_contract_shape() {
    let dir = tempdir();
    let (_smsc, node, _key) = gateway_with_smsc(dir.path(), "unauth", &[], &[]).await;
    // Channel "a" exists (SMPP, no receipts over HTTP); "nope" does not: the same answer.
    let exists = node
        .request(
            reqwest::Method::POST,
            "/v1/receipts/a",
            None,
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    let missing = node
        .request(
            reqwest::Method::POST,
            "/v1/receipts/nope",
            None,
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!((exists.status, missing.status), (404, 404));
    assert_eq!(
        exists.json, missing.json,
        "{} vs {}",
        exists.text, missing.text
    );
    // Every 401 names the scheme (RFC 6750 §3).
    for (path, bearer) in [
        ("/v1/messages", None),
        ("/admin/v1/tenants", Some("wrong-token")),
    ] {
        let r = node
            .request(reqwest::Method::GET, path, bearer, &[], None)
            .await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.headers
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{path}"
        );
        assert_eq!(r.json["error"]["code"], "unauthorized", "{path}");
    }
    // A foreign origin's preflight is refused in the contract's shape.
    let r = node
        .request(
            reqwest::Method::OPTIONS,
            "/v1/messages",
            None,
            &[
                ("origin", "http://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "origin_not_allowed", "{}", r.text);
}
