//! Every 4xx of the contract, with the exact error shape
//! `{"error": {"code", "message", "field"?}}`, and never a 500 for bad input.
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

/// Asserts the contract's error shape, status and code; `field` is checked when given.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str, field: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: status (body {})", r.text);
    assert_error_body(&r.json, code, field, &format!("{what} (HTTP {})", r.status));
}

/// Asserts `{"error": {"code", "message", "field"?}}` and nothing else.
#[track_caller]
fn assert_error_body(v: &Value, code: &str, field: Option<&str>, what: &str) {
    let top = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: body is not an object: {v}"));
    assert_eq!(
        top.keys().collect::<Vec<_>>(),
        ["error"],
        "{what}: only `error` at the top: {v}"
    );
    let e = top["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: error is not an object: {v}"));
    for k in e.keys() {
        assert!(
            ["code", "message", "field"].contains(&k.as_str()),
            "{what}: unexpected key {k:?} in {v}"
        );
    }
    assert_eq!(
        e.get("code").and_then(Value::as_str),
        Some(code),
        "{what}: code in {v}"
    );
    let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
    assert!(!msg.is_empty(), "{what}: empty or missing message in {v}");
    if let Some(f) = e.get("field") {
        assert!(
            f.as_str().is_some_and(|s| !s.is_empty()),
            "{what}: field must be a non-empty string: {v}"
        );
    }
    if let Some(f) = field {
        assert_eq!(
            e.get("field").and_then(Value::as_str),
            Some(f),
            "{what}: field in {v}"
        );
    }
}

/// A node with one tenant and no channel (validation never needs one).
async fn node_and_tenant(dir: &std::path::Path, extra: &[&str]) -> (GwNode, String) {
    let node = GwNode::start(dir, extra).await;
    let key = node.tenant("acme", json!({})).await;
    (node, key)
}

fn rfc3339_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_without_or_with_bad_bearer() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), &[]).await;
    let send = serde_json::to_vec(&json!({"to": TO, "text": "hi"})).expect("json");
    let tenant = serde_json::to_vec(
        &json!({"id": "x", "name": "x", "rate_limit": {"per_second": 1, "burst": 1}}),
    )
    .expect("json");
    let cases: Vec<(Method, &str, Option<Vec<u8>>)> = vec![
        (Method::POST, "/v1/messages", Some(send.clone())),
        (
            Method::POST,
            "/v1/messages/batch",
            Some(br#"{"messages":[]}"#.to_vec()),
        ),
        (Method::POST, "/v1/messages/preview", Some(send.clone())),
        (Method::GET, "/v1/messages", None),
        (Method::GET, "/v1/messages/01JD0000000000000000000000", None),
        (Method::POST, "/admin/v1/tenants", Some(tenant.clone())),
        (Method::GET, "/admin/v1/tenants", None),
        (Method::GET, "/admin/v1/channels", None),
        (Method::GET, "/admin/v1/cluster", None),
    ];
    for (m, path, body) in &cases {
        let admin = path.starts_with("/admin");
        // No header, an unknown token, and the other side's credentials.
        let wrong_side = if admin {
            key.clone()
        } else {
            ADMIN_TOKEN.to_string()
        };
        for (label, auth) in [
            ("no header", None),
            ("unknown bearer", Some("Bearer sk_nope".to_string())),
            ("empty bearer", Some("Bearer ".to_string())),
            (
                "basic scheme",
                Some(format!(
                    "Basic {}",
                    if admin { ADMIN_TOKEN } else { key.as_str() }
                )),
            ),
            ("other side's token", Some(format!("Bearer {wrong_side}"))),
        ] {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("authorization", a)])
                .unwrap_or_default();
            let r = node
                .request(m.clone(), path, None, &headers, body.clone())
                .await;
            assert_error(
                &r,
                401,
                "unauthorized",
                None,
                &format!("{m} {path} with {label}"),
            );
        }
    }
    // Nothing was created by the refused calls.
    let (s, v) = node.list(&key, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    let (_, tenants) = node.admin(Method::GET, "/admin/v1/tenants", None).await;
    assert_eq!(tenants.as_array().map(Vec::len), Some(1), "{tenants}");

    // A rotated key stops working at once; the new one works.
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/tenants/acme/keys", None)
        .await;
    assert_eq!(s, 201, "rotate: {v}");
    let new_key = v["api_key"].as_str().expect("api_key").to_string();
    let r = node
        .request(Method::GET, "/v1/messages", Some(&key), &[], None)
        .await;
    assert_error(&r, 401, "unauthorized", None, "old key after rotation");
    let (s, v) = node.list(&new_key, "").await;
    assert_eq!(s, 200, "new key after rotation: {v}");
    // A deleted tenant's key is refused.
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/tenants/acme", None)
        .await;
    assert!(s == 204 || s == 200, "delete tenant: {s} {v}");
    let r = node
        .post_json(
            "/v1/messages",
            &new_key,
            &json!({"to": TO, "text": "ghost"}),
        )
        .await;
    assert_error(&r, 401, "unauthorized", None, "deleted tenant's key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_send_bodies_name_the_field() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), &[]).await;
    let long_ref = "r".repeat(65);
    // (body, status, code, field)
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"to": 4915112345678u64, "text": "x"}),
            422,
            "invalid_field",
            Some("to"),
        ),
        (
            json!({"to": TO, "text": ["x"]}),
            422,
            "invalid_field",
            Some("text"),
        ),
        (
            json!({"to": TO, "text": "x", "validity_seconds": "600"}),
            422,
            "invalid_field",
            Some("validity_seconds"),
        ),
        (
            json!({"to": TO, "text": "x", "encoding": "ebcdic"}),
            422,
            "invalid_field",
            Some("encoding"),
        ),
        (
            json!({"to": TO, "text": "x", "category": "spam"}),
            422,
            "invalid_field",
            Some("category"),
        ),
        (
            json!({"to": TO, "text": "x", "dlt": {"entity_id": 1, "template_id": "t"}}),
            422,
            "invalid_field",
            Some("dlt.entity_id"),
        ),
        (json!({"text": "x"}), 422, "invalid_field", Some("to")),
        (json!({"to": TO}), 422, "invalid_field", Some("text")),
        (
            json!({"to": TO, "text": "x", "colour": "red"}),
            422,
            "invalid_field",
            Some("colour"),
        ),
        (
            json!({"to": "4915112345678", "text": "x"}),
            422,
            "invalid_phone_number",
            Some("to"),
        ),
        (
            json!({"to": "+49abc", "text": "x"}),
            422,
            "invalid_phone_number",
            Some("to"),
        ),
        (
            json!({"to": "+999123", "text": "x"}),
            422,
            "invalid_phone_number",
            Some("to"),
        ),
        (
            json!({"to": "", "text": "x"}),
            422,
            "invalid_phone_number",
            Some("to"),
        ),
        (
            json!({"to": "+4915112345678901234", "text": "x"}),
            422,
            "invalid_phone_number",
            Some("to"),
        ),
        (
            json!({"to": "+49 151 1234#5678", "text": "x"}),
            422,
            "invalid_phone_number",
            Some("to"),
        ),
        (
            json!({"to": TO, "text": ""}),
            422,
            "invalid_field",
            Some("text"),
        ),
        (
            json!({"to": TO, "text": "Привет", "encoding": "gsm7"}),
            422,
            "encoding_mismatch",
            None,
        ),
        (
            json!({"to": TO, "text": "x", "validity_seconds": 59}),
            422,
            "invalid_field",
            Some("validity_seconds"),
        ),
        (
            json!({"to": TO, "text": "x", "validity_seconds": 604801}),
            422,
            "invalid_field",
            Some("validity_seconds"),
        ),
        (
            json!({"to": TO, "text": "x", "validity_seconds": -1}),
            422,
            "invalid_field",
            Some("validity_seconds"),
        ),
        (
            json!({"to": TO, "text": "x", "send_at": rfc3339_in(31 * 86400)}),
            422,
            "invalid_field",
            Some("send_at"),
        ),
        (
            json!({"to": TO, "text": "x", "send_at": "tomorrow"}),
            422,
            "invalid_field",
            Some("send_at"),
        ),
        (
            json!({"to": TO, "text": "x", "client_ref": long_ref}),
            422,
            "invalid_field",
            Some("client_ref"),
        ),
        (
            json!({"to": TO, "text": "x", "from": "TwelveCharss"}),
            422,
            "invalid_sender",
            Some("from"),
        ),
        (
            json!({"to": TO, "text": "x", "callback_url": "ftp://x"}),
            422,
            "invalid_field",
            Some("callback_url"),
        ),
    ];
    for (body, status, code, field) in &cases {
        let r = node.post_json("/v1/messages", &key, body).await;
        assert_error(&r, *status, code, *field, &format!("send {body}"));
        // Preview validates the same way.
        let r = node.post_json("/v1/messages/preview", &key, body).await;
        assert_error(&r, *status, code, *field, &format!("preview {body}"));
    }
    // Malformed JSON is 400 invalid_json.
    for raw in [
        &b"{"[..],
        b"{\"to\": }",
        b"{\"to\":\"+4915112345678\",\"text\":\"x\"",
        b"{'to': 1}",
    ] {
        let r = node
            .request(
                Method::POST,
                "/v1/messages",
                Some(&key),
                &[],
                Some(raw.to_vec()),
            )
            .await;
        assert_error(
            &r,
            400,
            "invalid_json",
            None,
            &format!("malformed {:?}", String::from_utf8_lossy(raw)),
        );
    }
    // The edges of each range are accepted.
    let ok_cases = [
        json!({"to": TO, "text": "edge 1", "validity_seconds": 60}),
        json!({"to": TO, "text": "edge 2", "validity_seconds": 604800}),
        json!({"to": TO, "text": "edge 3", "client_ref": "r".repeat(64)}),
        json!({"to": "+49 (151) 1234-5678", "text": "edge 4"}),
    ];
    for body in &ok_cases {
        let r = node.post_json("/v1/messages", &key, body).await;
        assert_eq!(r.status, 202, "{body}: {}", r.text);
    }
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "later", "send_at": rfc3339_in(29 * 86400)}),
        )
        .await;
    assert_eq!(r.status, 202, "send_at 29 days ahead: {}", r.text);
    let (_, v) = node
        .message(&key, r.json["id"].as_str().unwrap_or(""))
        .await;
    assert_eq!(v["status"], "scheduled", "{v}");
    // Exactly the accepted ones were stored.
    let (_, v) = node.list(&key, "limit=100").await;
    assert_eq!(
        v["messages"].as_array().map(Vec::len),
        Some(ok_cases.len() + 1),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_long_for_the_tenants_max_parts() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let key = node.tenant("short", json!({"max_parts": 2})).await;
    // 400 GSM characters need 3 parts of 153.
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "a".repeat(400)}),
        )
        .await;
    assert_error(&r, 422, "too_long", None, "400 chars with max_parts 2");
    // UCS-2: 140 characters need 3 parts of 67.
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "ж".repeat(140)}),
        )
        .await;
    assert_error(
        &r,
        422,
        "too_long",
        None,
        "140 UCS-2 chars with max_parts 2",
    );
    // Two parts are fine.
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "a".repeat(300)}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["parts"], 2, "{}", r.text);
    // Raising max_parts lets the long one through.
    let (s, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/tenants/short",
            Some(json!({"max_parts": 3})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "a".repeat(400)}),
        )
        .await;
    assert_eq!(r.status, 202, "after raising max_parts: {}", r.text);
    assert_eq!(r.json["parts"], 3, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_for_unknown_and_foreign_ids_and_paths() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), &[]).await;
    let other = node.tenant("other", json!({})).await;
    let r = node
        .post_json("/v1/messages", &key, &json!({"to": TO, "text": "mine"}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    let (s, _) = node.message(&key, &id).await;
    assert_eq!(s, 200);
    for (who, k, path) in [
        (
            "unknown id",
            &key,
            "/v1/messages/01JD0000000000000000000000".to_string(),
        ),
        ("garbage id", &key, "/v1/messages/..%2F..%2Fetc".to_string()),
        ("another tenant's id", &other, format!("/v1/messages/{id}")),
    ] {
        let r = node.request(Method::GET, &path, Some(k), &[], None).await;
        assert_error(&r, 404, "not_found", None, who);
    }
    // The other tenant does not see it in its list either.
    let (_, v) = node.list(&other, "").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    // Unknown admin objects and unknown paths are 404 in the same shape.
    for path in ["/admin/v1/tenants/nope", "/admin/v1/channels/nope"] {
        let r = node
            .request(Method::GET, path, Some(ADMIN_TOKEN), &[], None)
            .await;
        assert_error(&r, 404, "not_found", None, path);
    }
    for path in [
        "/admin/v1/routes/nope",
        "/admin/v1/tenants/nope",
        "/admin/v1/channels/nope",
    ] {
        let r = node
            .request(Method::DELETE, path, Some(ADMIN_TOKEN), &[], None)
            .await;
        assert_error(&r, 404, "not_found", None, &format!("DELETE {path}"));
    }
    let r = node
        .request(Method::GET, "/v1/nothing-here", Some(&key), &[], None)
        .await;
    assert_error(&r, 404, "not_found", None, "unknown path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_replay_and_conflict() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (mut node, key) = node_and_tenant(dir.path(), &[]).await;
    let other = node.tenant("other", json!({})).await;
    let body = serde_json::to_vec(&json!({"to": TO, "text": "pay 10 EUR", "client_ref": "p-1"}))
        .expect("json");
    let idem = [("idempotency-key", "order-42")];
    let first = node
        .request(
            Method::POST,
            "/v1/messages",
            Some(&key),
            &idem,
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let id = first.json["id"].as_str().expect("id").to_string();
    // Replay: same key, same body → 200 with the original.
    let again = node
        .request(
            Method::POST,
            "/v1/messages",
            Some(&key),
            &idem,
            Some(body.clone()),
        )
        .await;
    assert_eq!(again.status, 200, "replay: {}", again.text);
    assert_eq!(
        again.json["id"],
        id.as_str(),
        "replay returns the original id"
    );
    assert_eq!(again.json["created_at"], first.json["created_at"]);
    // Same key, different body → 409.
    let other_body =
        serde_json::to_vec(&json!({"to": TO, "text": "pay 99 EUR", "client_ref": "p-1"}))
            .expect("json");
    let r = node
        .request(
            Method::POST,
            "/v1/messages",
            Some(&key),
            &idem,
            Some(other_body),
        )
        .await;
    assert_error(
        &r,
        409,
        "idempotency_conflict",
        None,
        "same key, other body",
    );
    // Keys are per tenant: another tenant's same key is a new message.
    let r = node
        .request(
            Method::POST,
            "/v1/messages",
            Some(&other),
            &idem,
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 202, "other tenant, same key: {}", r.text);
    assert_ne!(r.json["id"], id.as_str());
    // A key over 128 characters is refused.
    let long = "k".repeat(129);
    let r = node
        .request(
            Method::POST,
            "/v1/messages",
            Some(&key),
            &[("idempotency-key", &long)],
            Some(body.clone()),
        )
        .await;
    assert_error(&r, 422, "invalid_field", None, "129-char Idempotency-Key");
    // Concurrent first uses of one key store one message.
    let concurrent: Vec<_> = (0..10)
        .map(|_| {
            node.request(
                Method::POST,
                "/v1/messages",
                Some(&key),
                &[("idempotency-key", "race-1")],
                Some(br#"{"to":"+4915112345678","text":"race"}"#.to_vec()),
            )
        })
        .collect();
    let answers = futures::future::join_all(concurrent).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|r| {
            assert!(
                r.status == 202 || r.status == 200,
                "concurrent same key: {} {}",
                r.status,
                r.text
            );
            r.json["id"].as_str().expect("id").to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one message for one key: {ids:?}");
    assert_eq!(
        answers.iter().filter(|r| r.status == 202).count(),
        1,
        "exactly one 202 for one key"
    );
    let (_, v) = node.list(&key, "limit=100").await;
    assert_eq!(
        v["messages"].as_array().map(Vec::len),
        Some(2),
        "p-1 and race: {v}"
    );
    // The key is durable: after kill -9 and a restart the replay still answers the original.
    node.proc.kill9();
    node.restart().await;
    let again = node
        .request(
            Method::POST,
            "/v1/messages",
            Some(&key),
            &idem,
            Some(body.clone()),
        )
        .await;
    assert_eq!(again.status, 200, "replay after restart: {}", again.text);
    assert_eq!(
        again.json["id"],
        id.as_str(),
        "replay after restart returns the original id"
    );
    let conflict = serde_json::to_vec(&json!({"to": TO, "text": "pay 1 EUR"})).expect("json");
    let r = node
        .request(
            Method::POST,
            "/v1/messages",
            Some(&key),
            &idem,
            Some(conflict),
        )
        .await;
    assert_error(
        &r,
        409,
        "idempotency_conflict",
        None,
        "other body after restart",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_conflicts_and_method_not_allowed() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "sc", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let key = node.tenant("acme", json!({})).await;
    let tenant =
        json!({"id": "acme", "name": "again", "rate_limit": {"per_second": 5, "burst": 5}});
    let route = json!({"id": "default", "match": {}, "channels": [{"id": "a"}]});
    for (path, body) in [
        ("/admin/v1/tenants", tenant),
        ("/admin/v1/channels", smsc.channel("a")),
        ("/admin/v1/routes", route),
    ] {
        let r = node.post_json(path, ADMIN_TOKEN, &body).await;
        assert_error(
            &r,
            409,
            "conflict",
            None,
            &format!("create existing at {path}"),
        );
    }
    // The existing tenant was not overwritten: its key still works.
    let (s, v) = node.list(&key, "").await;
    assert_eq!(s, 200, "{v}");

    for (m, path, bearer) in [
        (Method::DELETE, "/v1/messages", key.as_str()),
        (Method::PUT, "/v1/messages", key.as_str()),
        (Method::GET, "/v1/messages/batch", key.as_str()),
        (Method::GET, "/v1/messages/preview", key.as_str()),
        (
            Method::POST,
            "/v1/messages/01JD0000000000000000000000",
            key.as_str(),
        ),
        (Method::PUT, "/admin/v1/tenants", ADMIN_TOKEN),
        (Method::POST, "/healthz", ADMIN_TOKEN),
    ] {
        let r = node.request(m.clone(), path, Some(bearer), &[], None).await;
        assert_error(&r, 405, "method_not_allowed", None, &format!("{m} {path}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), &["--max-body-bytes", "2048"]).await;
    let big = serde_json::to_vec(&json!({"to": TO, "text": "a".repeat(3000)})).expect("json");
    for path in ["/v1/messages", "/v1/messages/batch", "/v1/messages/preview"] {
        let r = node
            .request(Method::POST, path, Some(&key), &[], Some(big.clone()))
            .await;
        assert_error(&r, 413, "body_too_large", None, &format!("3 KB to {path}"));
    }
    let r = node
        .request(
            Method::POST,
            "/admin/v1/tenants",
            Some(ADMIN_TOKEN),
            &[],
            Some(big.clone()),
        )
        .await;
    assert_error(&r, 413, "body_too_large", None, "3 KB to /admin/v1/tenants");
    // Just under the limit passes.
    let mut ok = serde_json::to_vec(&json!({"to": TO, "text": "a".repeat(1500)})).expect("json");
    ok.resize(2040, b' ');
    let r = node
        .request(Method::POST, "/v1/messages", Some(&key), &[], Some(ok))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Nothing of the refused bodies was stored.
    let (_, v) = node.list(&key, "").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_is_429_with_retry_after() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let key = node
        .tenant("slow", json!({"rate_limit": {"per_second": 1, "burst": 1}}))
        .await;
    let mut answers = Vec::new();
    for i in 0..3 {
        answers.push(
            node.post_json(
                "/v1/messages",
                &key,
                &json!({"to": TO, "text": format!("fast {i}")}),
            )
            .await,
        );
    }
    assert_eq!(
        answers[0].status, 202,
        "the first is within the burst: {}",
        answers[0].text
    );
    let limited: Vec<&Resp> = answers.iter().filter(|r| r.status == 429).collect();
    assert!(
        !limited.is_empty(),
        "3 sends in a burst of 1 at 1/s: {:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &limited {
        assert_error(r, 429, "rate_limited", None, "over the rate");
        let ra = r
            .retry_after()
            .unwrap_or_else(|| panic!("Retry-After missing or not seconds: {:?}", r.headers));
        assert!((1..=60).contains(&ra), "Retry-After {ra}");
    }
    // The refused ones were not stored; after the wait, sending works again.
    let (_, v) = node.list(&key, "").await;
    assert_eq!(
        v["messages"].as_array().map(Vec::len),
        Some(3 - limited.len()),
        "{v}"
    );
    let r = eventually("rate budget back", Duration::from_secs(5), || async {
        let r = node
            .post_json("/v1/messages", &key, &json!({"to": TO, "text": "later"}))
            .await;
        (r.status == 202).then_some(r)
    })
    .await;
    assert_eq!(r.json["status"], "accepted");
    // Raising the limit takes effect without a restart: a burst of 5 passes.
    let (s, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/tenants/slow",
            Some(json!({"rate_limit": {"per_second": 1000, "burst": 1000}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    eventually(
        "raised rate limit in force",
        Duration::from_secs(5),
        || async {
            let mut ok = true;
            for i in 0..5 {
                let r = node
                    .post_json(
                        "/v1/messages",
                        &key,
                        &json!({"to": TO, "text": format!("burst {i}")}),
                    )
                    .await;
                ok &= r.status == 202;
            }
            ok.then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_full_is_429_with_retry_after() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "sq", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("q")]).await;
    let key = node.tenant("small", json!({"queue_limit": 2})).await;
    node.wait_bound().await;
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/q/drain", None)
        .await;
    assert_eq!(s, 200, "drain: {v}");
    let mut ids = Vec::new();
    for i in 0..2 {
        let r = node
            .post_json(
                "/v1/messages",
                &key,
                &json!({"to": TO, "text": format!("wait {i}")}),
            )
            .await;
        assert_eq!(r.status, 202, "within the queue limit: {}", r.text);
        ids.push(r.json["id"].as_str().expect("id").to_string());
    }
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "one too many"}),
        )
        .await;
    assert_error(
        &r,
        429,
        "queue_full",
        None,
        "third waiting message with queue_limit 2",
    );
    let ra = r
        .retry_after()
        .unwrap_or_else(|| panic!("Retry-After missing: {:?}", r.headers));
    assert!(ra >= 1, "Retry-After {ra}");
    // A batch item over the limit fails alone with the same code (an invalid item beside
    // it keeps the answer a 200 with one result per input, and Retry-After).
    let r = node
        .post_json(
            "/v1/messages/batch",
            &key,
            &json!({"messages": [{"to": TO, "text": "batch over"}, {"to": "x", "text": "bad"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_error_body(
        &r.json["results"][0],
        "queue_full",
        None,
        "batch item over the queue limit",
    );
    assert!(r.retry_after().is_some(), "Retry-After: {:?}", r.headers);
    // A batch of which nothing got in for the full queue is a 429, like a single send.
    let r = node
        .post_json(
            "/v1/messages/batch",
            &key,
            &json!({"messages": [{"to": TO, "text": "batch over"}]}),
        )
        .await;
    assert_error(
        &r,
        429,
        "queue_full",
        None,
        "batch all over the queue limit",
    );
    assert!(r.retry_after().is_some(), "Retry-After: {:?}", r.headers);
    // The waiting ones are still accepted (not sent); undrain lets them go and frees the queue.
    for id in &ids {
        let (_, v) = node.message(&key, id).await;
        assert_eq!(v["status"], "accepted", "{v}");
    }
    assert_eq!(
        smsc.stats().await.map(|s| s["submits"].clone()),
        Some(json!(0))
    );
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/q/undrain", None)
        .await;
    assert_eq!(s, 200, "undrain: {v}");
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(30))
        .await;
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "room again"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bodies_are_4xx_never_500() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), &[]).await;
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let deep_text = format!(
        "{{\"to\":\"{TO}\",\"text\":\"x\",\"dlt\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("whitespace", b"   \n ".to_vec()),
        ("[]", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("number", b"42".to_vec()),
        ("true", b"true".to_vec()),
        ("{}", b"{}".to_vec()),
        ("deep array", deep_array.into_bytes()),
        ("deep object", deep_object.into_bytes()),
        ("deep field", deep_text.into_bytes()),
        (
            "invalid utf-8",
            b"{\"to\":\"+4915112345678\",\"text\":\"\xff\xfe\xc3\x28\"}".to_vec(),
        ),
        ("invalid utf-8 key", b"{\"\xff\":1}".to_vec()),
        (
            "lone surrogate",
            br#"{"to":"+4915112345678","text":"\ud800"}"#.to_vec(),
        ),
        (
            "huge number",
            format!("{{\"to\":1{},\"text\":\"x\"}}", "0".repeat(5000)).into_bytes(),
        ),
        (
            "huge exponent",
            br#"{"to":"+4915112345678","text":"x","validity_seconds":1e999999}"#.to_vec(),
        ),
        (
            "u64 overflow",
            br#"{"to":"+4915112345678","text":"x","validity_seconds":99999999999999999999999}"#
                .to_vec(),
        ),
        (
            "float",
            br#"{"to":"+4915112345678","text":"x","validity_seconds":600.5}"#.to_vec(),
        ),
        (
            "NaN",
            br#"{"to":"+4915112345678","text":"x","validity_seconds":NaN}"#.to_vec(),
        ),
        ("nul bytes", b"\0\0\0\0".to_vec()),
        (
            "trailing garbage",
            br#"{"to":"+4915112345678","text":"x"}}"#.to_vec(),
        ),
        (
            "two documents",
            br#"{"to":"+4915112345678","text":"x"} {"to":"+4915112345678","text":"y"}"#.to_vec(),
        ),
        (
            "duplicate key",
            br#"{"to":"+4915112345678","to":"+4915112345679","text":"x"}"#.to_vec(),
        ),
        ("null fields", br#"{"to":null,"text":null}"#.to_vec()),
        ("messages not a list", br#"{"messages":"x"}"#.to_vec()),
        ("messages of null", br#"{"messages":[null]}"#.to_vec()),
        ("binary", (0u8..=255).collect()),
    ];
    let targets: Vec<(&str, &str)> = vec![
        ("/v1/messages", key.as_str()),
        ("/v1/messages/batch", key.as_str()),
        ("/v1/messages/preview", key.as_str()),
        ("/admin/v1/tenants", ADMIN_TOKEN),
        ("/admin/v1/channels", ADMIN_TOKEN),
        ("/admin/v1/routes", ADMIN_TOKEN),
    ];
    let mut bad = Vec::new();
    for (path, bearer) in &targets {
        for (label, body) in &bodies {
            let r = node
                .request(Method::POST, path, Some(bearer), &[], Some(body.clone()))
                .await;
            // A batch answers 200 with per-item errors for items it can read.
            let batch_item_errors = *path == "/v1/messages/batch" && r.status == 200;
            if batch_item_errors {
                for item in r.json["results"].as_array().into_iter().flatten() {
                    if item.get("error").is_none() {
                        bad.push(format!("POST {path} [{label}]: item accepted: {item}"));
                    }
                }
                continue;
            }
            if !(400..500).contains(&r.status) {
                bad.push(format!(
                    "POST {path} [{label}]: {} {}",
                    r.status,
                    r.text.chars().take(200).collect::<String>()
                ));
                continue;
            }
            let e = &r.json["error"];
            if !(e["code"].is_string() && e["message"].is_string()) {
                bad.push(format!(
                    "POST {path} [{label}]: {} without the error shape: {}",
                    r.status,
                    r.text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "garbage got a non-4xx or a malformed error:\n{}",
        bad.join("\n")
    );
    // Bad query strings too.
    for q in [
        "limit=abc",
        "limit=0",
        "limit=100000",
        "status=bogus",
        "since=yesterday",
        "to=abc",
        "unknown=1",
        "limit=-1",
    ] {
        let (s, v) = node.list(&key, q).await;
        assert!((400..500).contains(&s), "GET /v1/messages?{q}: {s} {v}");
        assert!(v["error"]["code"].is_string(), "GET /v1/messages?{q}: {v}");
    }
    // Odd paths and admin updates with garbage.
    let long_id = format!("/v1/messages/{}", "A".repeat(8000));
    for path in [
        "/v1/messages/%FF%FE",
        "/v1/messages/%00",
        long_id.as_str(),
        "/v1/messages/a%2Fb",
    ] {
        let r = node.request(Method::GET, path, Some(&key), &[], None).await;
        assert!(
            (400..500).contains(&r.status),
            "GET {}: {} {}",
            &path[..path.len().min(40)],
            r.status,
            r.text
        );
        assert!(
            r.json["error"]["code"].is_string(),
            "GET {}: {}",
            &path[..path.len().min(40)],
            r.text
        );
    }
    for (label, body) in &bodies {
        let r = node
            .request(
                Method::PATCH,
                "/admin/v1/tenants/acme",
                Some(ADMIN_TOKEN),
                &[],
                Some(body.clone()),
            )
            .await;
        let ok = (400..500).contains(&r.status) || (r.status == 200 && *label == "{}");
        assert!(
            ok,
            "PATCH /admin/v1/tenants/acme [{label}]: {} {}",
            r.status,
            r.text.chars().take(200).collect::<String>()
        );
    }
    // The node survived all of it and stored nothing.
    let r = client()
        .get(node.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    let (_, v) = node.list(&key, "").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    let problems = log_problems(&node.proc.log_text());
    assert!(
        problems.iter().all(|l| !l.contains("panicked")),
        "panics in the node log:\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_queue_limit_is_429_queue_full_for_every_tenant() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "sn", &[]).await;
    let node = GwNode::start(dir.path(), &["--node-queue-limit", "3"]).await;
    node.channels_and_route(&[smsc.channel("n")]).await;
    let a = node.tenant("a", json!({})).await;
    let b = node.tenant("b", json!({})).await;
    node.wait_bound().await;
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/n/drain", None)
        .await;
    assert_eq!(s, 200, "drain: {v}");
    for (k, t) in [(&a, "a0"), (&a, "a1"), (&b, "b0")] {
        let r = node
            .post_json("/v1/messages", k, &json!({"to": TO, "text": t}))
            .await;
        assert_eq!(r.status, 202, "{t}: {}", r.text);
    }
    // The node holds 3 waiting messages: both tenants are refused now.
    for (k, t) in [(&a, "a2"), (&b, "b1")] {
        let r = node
            .post_json("/v1/messages", k, &json!({"to": TO, "text": t}))
            .await;
        assert_error(
            &r,
            429,
            "queue_full",
            None,
            &format!("{t} over the node's queue limit"),
        );
        assert!(
            r.retry_after().is_some_and(|s| s >= 1),
            "Retry-After on {t}: {:?}",
            r.headers
        );
    }
}
