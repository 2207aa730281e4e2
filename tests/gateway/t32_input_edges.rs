//! Edges of the message API's input (contract sections 2–4) found by a black-box audit,
//! one test per finding: each failed before its fix.
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

/// Asserts status, the contract's error code and (when given) `field`; returns the message.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str, field: Option<&str>, what: &str) -> String {
    assert_eq!(r.status, status, "{what}: status (body {})", r.text);
    assert_error_body(&r.json, code, field, what)
}

/// Asserts `{"error": {"code", "message", "field"?}}`; returns the message.
#[track_caller]
fn assert_error_body(v: &Value, code: &str, field: Option<&str>, what: &str) -> String {
    let e = &v["error"];
    assert_eq!(e["code"], code, "{what}: code in {v}");
    if let Some(f) = field {
        assert_eq!(e["field"], f, "{what}: field in {v}");
    }
    let msg = e["message"].as_str().unwrap_or_default().to_string();
    assert!(!msg.is_empty(), "{what}: no message in {v}");
    msg
}

/// A node with one tenant and no channel (validation never needs one).
async fn node_and_tenant(dir: &std::path::Path, tenant: Value) -> (GwNode, String) {
    let node = GwNode::start(dir, &[]).await;
    let key = node.tenant("acme", tenant).await;
    (node, key)
}

/// Thirteen elements in the order of SendRequest's fields: serde reads an array into a
/// struct field by field, so this was taken as a message.
const ARRAY_BODY: &[u8] =
    br#"["+4915112345678","hi",null,null,null,null,null,null,null,null,null,null,null]"#;

async fn post_raw(node: &GwNode, path: &str, bearer: &str, body: &[u8]) -> Resp {
    node.request(Method::POST, path, Some(bearer), &[], Some(body.to_vec()))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_scheme_is_case_insensitive() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {key}");
        let r = node
            .request(
                Method::GET,
                "/v1/messages",
                None,
                &[("authorization", &auth)],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{scheme} with the API key: {}", r.text);
        let r = node
            .request(
                Method::POST,
                "/v1/messages",
                None,
                &[("authorization", &auth)],
                Some(serde_json::to_vec(&json!({"to": TO, "text": scheme})).expect("json")),
            )
            .await;
        assert_eq!(r.status, 202, "{scheme} send: {}", r.text);
        let admin = format!("{scheme} {ADMIN_TOKEN}");
        let r = node
            .request(
                Method::GET,
                "/admin/v1/tenants",
                None,
                &[("authorization", &admin)],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{scheme} with the admin token: {}", r.text);
    }
    // Another scheme, or the right one with a wrong key, is still refused.
    for auth in [
        format!("Basic {key}"),
        format!("bearer{key}"),
        "bearer sk_nope".to_string(),
    ] {
        let r = node
            .request(
                Method::GET,
                "/v1/messages",
                None,
                &[("authorization", &auth)],
                None,
            )
            .await;
        assert_error(&r, 401, "unauthorized", None, &auth);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_echo_the_callers_input() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    let r = node
        .post_json(
            "/admin/v1/tenants/acme/opt_outs",
            ADMIN_TOKEN,
            &json!({"numbers": ["+4915199999999", "bad"]}),
        )
        .await;
    let msg = assert_error(
        &r,
        422,
        "invalid_phone_number",
        Some("numbers[1]"),
        "opt-out",
    );
    assert!(
        msg.contains("\"bad\"") && !msg.contains("+bad"),
        "opt-out: {msg}"
    );
    let r = node
        .request(Method::GET, "/v1/messages?to=abc", Some(&key), &[], None)
        .await;
    let msg = assert_error(&r, 422, "invalid_phone_number", Some("to"), "to=abc");
    assert!(
        msg.contains("\"abc\"") && !msg.contains("+abc"),
        "to=abc: {msg}"
    );
    let r = node
        .request(
            Method::DELETE,
            "/admin/v1/tenants/acme/opt_outs/12ab",
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    let msg = assert_error(&r, 422, "invalid_phone_number", Some("number"), "delete");
    assert!(
        msg.contains("\"12ab\"") && !msg.contains("+12ab"),
        "delete: {msg}"
    );
    // A number without its '+' is still found (an unencoded '+' arrives as a space).
    let (s, v) = node.list(&key, "to=+4915112345678").await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_text_over_max_parts_is_too_long() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    let wide = node.tenant("wide", json!({"max_parts": 255})).await;
    // The default tenant (10 parts) and one at the highest max_parts alike.
    for (k, who, lengths) in [
        (&key, "max_parts 10", &[20_000usize, 50_000, 100_000][..]),
        (&wide, "max_parts 255", &[50_000, 100_000][..]),
    ] {
        for &n in lengths {
            let r = node
                .post_json("/v1/messages", k, &json!({"to": TO, "text": "a".repeat(n)}))
                .await;
            assert_error(
                &r,
                422,
                "too_long",
                Some("text"),
                &format!("{n} chars, {who}"),
            );
        }
    }
    // 255 parts of 153 fit the wide tenant; one character more does not.
    let r = node
        .post_json(
            "/v1/messages/preview",
            &wide,
            &json!({"to": TO, "text": "a".repeat(255 * 153)}),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "255 parts: {}",
        &r.text[..r.text.len().min(300)]
    );
    assert_eq!(r.json["parts"], 255);
    let r = node
        .post_json(
            "/v1/messages/preview",
            &wide,
            &json!({"to": TO, "text": "a".repeat(255 * 153 + 1)}),
        )
        .await;
    assert_error(&r, 422, "too_long", Some("text"), "256 parts");
    // Binary text is hex, two characters an octet: 50,000 of them are 187 parts.
    let r = node
        .post_json(
            "/v1/messages/preview",
            &wide,
            &json!({"to": TO, "text": "ab".repeat(25_000), "encoding": "binary"}),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "binary: {}",
        &r.text[..r.text.len().min(300)]
    );
    assert_eq!(r.json["parts"], 187, "binary parts");
    // The body size limit still bounds everything.
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "a".repeat(1_100_000)}),
        )
        .await;
    assert_error(&r, 413, "body_too_large", None, "text over max_body_bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_cursor_is_checked_and_the_last_page_has_no_next() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    for i in 0..4 {
        let r = node
            .post_json(
                "/v1/messages",
                &key,
                &json!({"to": TO, "text": format!("m{i}"), "client_ref": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    for q in [
        "cursor=garbage",
        "cursor=",
        "cursor=%2F..%2F",
        "limit=2&cursor=01JD000000000000000000000",
        "cursor=01JD00000000000000000000UU",
    ] {
        let r = node
            .request(
                Method::GET,
                &format!("/v1/messages?{q}"),
                Some(&key),
                &[],
                None,
            )
            .await;
        assert_error(&r, 422, "invalid_field", Some("cursor"), q);
    }
    // A full page with nothing after it has no next.
    let (s, v) = node.list(&key, "limit=4").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(4), "{v}");
    assert!(v["next"].is_null(), "nothing after a full last page: {v}");
    // Two full pages: the first leads to the second, the second ends.
    let (_, v) = node.list(&key, "limit=2").await;
    let next = v["next"]
        .as_str()
        .unwrap_or_else(|| panic!("first of two pages needs a next: {v}"))
        .to_string();
    let (s, v) = node.list(&key, &format!("limit=2&cursor={next}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(v["next"].is_null(), "second of two pages ends: {v}");
    // With a filter: the only match fills the page, and nothing follows it.
    let (_, v) = node.list(&key, "limit=1&to=%2B4915112345678").await;
    assert!(v["next"].is_string(), "four matches, pages of one: {v}");
    let (_, v) = node.list(&key, "limit=1&client_ref=m2").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(v["next"].is_null(), "one match, nothing after it: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_objects() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    let targets = [
        ("/v1/messages", key.as_str()),
        ("/v1/messages/preview", key.as_str()),
        ("/v1/messages/batch", key.as_str()),
        ("/admin/v1/tenants", ADMIN_TOKEN),
        ("/admin/v1/tenants/acme/opt_outs", ADMIN_TOKEN),
    ];
    for (path, bearer) in targets {
        for body in [ARRAY_BODY, b"[]", b"\"x\"", b"42", b"null", b" true "] {
            let what = format!("POST {path} {}", String::from_utf8_lossy(body));
            let r = post_raw(&node, path, bearer, body).await;
            let msg = assert_error(&r, 422, "invalid_field", Some("body"), &what);
            assert!(msg.contains("expected a JSON object"), "{what}: {msg}");
        }
        // Malformed JSON stays 400.
        let r = post_raw(&node, path, bearer, b"[1,").await;
        assert_error(&r, 400, "invalid_json", None, &format!("POST {path} [1,"));
    }
    // No message was stored by the array.
    let (_, v) = node.list(&key, "").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
    // A nested object of the wrong type names the field, not a Rust type.
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": TO, "text": "x", "dlt": 5}),
        )
        .await;
    let msg = assert_error(&r, 422, "invalid_field", Some("dlt"), "dlt: 5");
    assert!(
        !msg.contains("struct") && !msg.contains("DltIds"),
        "Rust names in {msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_items_that_are_not_objects_are_named_by_place() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    // Batch items that are not objects fail alone, named by their place in the list.
    let items: Value = serde_json::from_str(&format!(
        r#"{{"messages":[1,"x",null,{},{{"to":"{TO}","text":"ok"}},true,{{"to":"{TO}"}}]}}"#,
        String::from_utf8_lossy(ARRAY_BODY)
    ))
    .expect("json");
    let r = node.post_json("/v1/messages/batch", &key, &items).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 7, "{}", r.text);
    for i in [0usize, 1, 2, 3, 5] {
        let field = format!("messages[{i}]");
        let msg = assert_error_body(&results[i], "invalid_field", Some(&field), &field);
        assert!(msg.contains("expected a JSON object"), "{field}: {msg}");
        assert!(!msg.contains("struct"), "{field}: {msg}");
    }
    assert_eq!(results[4]["status"], "accepted", "{}", results[4]);
    // An error inside an item names the field relative to the item.
    assert_error_body(&results[6], "invalid_field", Some("text"), "item 6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_compares_the_parsed_request() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    let idem = [("idempotency-key", "order-7")];
    let send = |body: &'static str| {
        node.request(
            Method::POST,
            "/v1/messages",
            Some(&key),
            &idem,
            Some(body.as_bytes().to_vec()),
        )
    };
    let first = send(r#"{"to":"+4915112345678","text":"pay 10 EUR","client_ref":"p-1"}"#).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let id = first.json["id"].as_str().expect("id").to_string();
    for same in [
        r#"{"client_ref":"p-1","text":"pay 10 EUR","to":"+4915112345678"}"#,
        r#"{"to":"+49 151 12345678","text":"pay 10 EUR","client_ref":"p-1"}"#,
        r#"{ "text" : "pay 10 EUR" , "to" : "+49 (151) 123-45678" , "client_ref" : "p-1" }"#,
    ] {
        let r = send(same).await;
        assert_eq!(r.status, 200, "same request {same}: {}", r.text);
        assert_eq!(r.json["id"], id.as_str(), "{same}");
    }
    for other in [
        r#"{"to":"+4915112345678","text":"pay 99 EUR","client_ref":"p-1"}"#,
        r#"{"to":"+4915112345679","text":"pay 10 EUR","client_ref":"p-1"}"#,
        r#"{"to":"+4915112345678","text":"pay 10 EUR"}"#,
    ] {
        let r = send(other).await;
        assert_error(&r, 409, "idempotency_conflict", None, other);
    }
    let (_, v) = node.list(&key, "").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "{v}");
}

/// Second audit: numbers written with separators are stripped in every field that holds a
/// number (`from`, a tenant's `senders` and `sender_pool`), not only in `to`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_numbers_may_carry_separators() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    for from in ["+49 151 9999-9999", "+49 (151) 99999999"] {
        let r = node
            .post_json(
                "/v1/messages",
                &key,
                &json!({"to": TO, "text": "hi", "from": from}),
            )
            .await;
        assert_eq!(r.status, 202, "{from}: {}", r.text);
        assert_eq!(r.json["from"], "+4915199999999", "{from}: {}", r.text);
    }
    let (status, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/tenants/acme",
            Some(json!({"senders": ["+49 151 99999997"], "sender_pool": ["+1 202-555-0102"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, t) = node
        .admin(Method::GET, "/admin/v1/tenants/acme", None)
        .await;
    assert_eq!(t["senders"], json!(["+4915199999997"]), "{t}");
    assert_eq!(t["sender_pool"], json!(["+12025550102"]), "{t}");
    let (status, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/tenants/acme",
            Some(json!({"sender_pool": ["ACME"]})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert_error_body(
        &v,
        "invalid_field",
        Some("sender_pool[0]"),
        "alphanumeric pool",
    );
}

/// Second audit: a body that is not UTF-8, or holds a lone surrogate, is malformed (400),
/// and a bad query parameter is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_text_and_query_parameters_are_named() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    let r = post_raw(
        &node,
        "/v1/messages",
        &key,
        b"{\"to\":\"+4915112345678\",\"text\":\"\xff\xfe\"}",
    )
    .await;
    assert_error(&r, 400, "invalid_json", None, "invalid UTF-8");
    let r = post_raw(
        &node,
        "/v1/messages",
        &key,
        br#"{"to":"+4915112345678","text":"\ud800"}"#,
    )
    .await;
    assert_error(&r, 400, "invalid_json", None, "lone surrogate");
    for (query, field) in [
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("bogus=1", "bogus"),
    ] {
        let r = node
            .request(
                Method::GET,
                &format!("/v1/messages?{query}"),
                Some(&key),
                &[],
                None,
            )
            .await;
        assert_error(&r, 422, "invalid_field", Some(field), query);
    }
    // Oversized ids are refused, and an oversized URL is not echoed whole.
    let long = "x".repeat(10_000);
    for (body, field) in [
        (
            json!({"to": TO, "text": "hi", "campaign_id": long}),
            "campaign_id",
        ),
        (
            json!({"to": TO, "text": "hi", "dlt": {"entity_id": long, "template_id": "1"}}),
            "dlt.entity_id",
        ),
        (
            json!({"to": TO, "text": "hi", "callback_url": format!("https://{long}")}),
            "callback_url",
        ),
    ] {
        let r = node.post_json("/v1/messages", &key, &body).await;
        let msg = assert_error(&r, 422, "invalid_field", Some(field), field);
        assert!(msg.len() < 400, "{field}: message of {} bytes", msg.len());
    }
}

/// Second audit: `Idempotency-Key` on a batch makes each item idempotent (the key and its
/// place), so a retried batch creates no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_with_an_idempotency_key_creates_no_duplicates() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    let batch = |second: &str| {
        json!({"messages": [
            {"to": TO, "text": "first"},
            {"to": TO, "text": second},
        ]})
        .to_string()
        .into_bytes()
    };
    let idem = [("idempotency-key", "batch-7")];
    let post = |body: Vec<u8>| {
        node.request(
            Method::POST,
            "/v1/messages/batch",
            Some(&key),
            &idem,
            Some(body),
        )
    };
    let first = post(batch("second")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let ids: Vec<String> = (0..2)
        .map(|i| {
            first.json["results"][i]["id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    let again = post(batch("second")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            again.json["results"][i]["id"],
            id.as_str(),
            "{}",
            again.text
        );
    }
    let changed = post(batch("other")).await;
    assert_eq!(
        changed.json["results"][0]["id"],
        ids[0].as_str(),
        "{}",
        changed.text
    );
    assert_error_body(
        &changed.json["results"][1],
        "idempotency_conflict",
        Some("Idempotency-Key"),
        "changed item",
    );
    let (_, v) = node.list(&key, "").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(2), "{v}");
}

/// Second audit: channel options are checked like every other field: an unknown key (a
/// typo), a bad `dlr_id_format`, `dlt_tlvs` that is not an object, an SMGP `login_mode`
/// out of range; the contract's SGIP names `login_name` / `login_password` are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_options_are_checked_and_named() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    // Nothing listens on `port`: the channels that are created only try to connect.
    let port = free_port();
    let channel = |id: &str, protocol: &str, options: Value| {
        json!({"id": id, "protocol": protocol, "host": "127.0.0.1", "port": port,
               "system_id": "sp", "password": "pw", "options": options})
    };
    for (protocol, options, field) in [
        (
            "smpp",
            json!({"dlr_timeout_second": 5}),
            "options.dlr_timeout_second",
        ),
        (
            "smpp",
            json!({"dlr_id_format": "bogus"}),
            "options.dlr_id_format",
        ),
        ("smpp", json!({"dlt_tlvs": "x"}), "options.dlt_tlvs"),
        (
            "smpp",
            json!({"dlt_tlvs": {"entity": 1}}),
            "options.dlt_tlvs.entity",
        ),
        ("smpp", json!({"login_mode": 2}), "options.login_mode"),
        ("smgp", json!({"login_mode": 99}), "options.login_mode"),
        ("smgp", json!({"login_mode": "x"}), "options.login_mode"),
        (
            "sgip",
            json!({"login_name": "a", "listen_login_name": "b"}),
            "options.listen_login_name",
        ),
    ] {
        let (status, v) = node
            .admin(
                Method::POST,
                "/admin/v1/channels",
                Some(channel("c", protocol, options.clone())),
            )
            .await;
        assert_eq!(status, 422, "{protocol} {options}: {v}");
        assert_error_body(&v, "invalid_field", Some(field), &options.to_string());
    }
    for (id, protocol, options) in [
        (
            "ok1",
            "smpp",
            json!({"dlr_id_format": "hex", "dlt_tlvs": {"entity_id": 5120}}),
        ),
        ("ok2", "smgp", json!({"login_mode": 0})),
        (
            "ok3",
            "sgip",
            json!({"listen": format!("127.0.0.1:{}", free_port()), "login_name": "smg", "login_password": "pw"}),
        ),
    ] {
        let (status, v) = node
            .admin(
                Method::POST,
                "/admin/v1/channels",
                Some(channel(id, protocol, options)),
            )
            .await;
        assert_eq!(status, 201, "{id}: {v}");
    }
    // Nothing listens on its port: the bind keeps retrying, shown as `connecting` with its
    // bind listed (it was `down` with no bind at all).
    let v = eventually("ok1 connecting", Duration::from_secs(10), || async {
        let v = node.channel_view("ok1").await;
        (v["state"] == "connecting").then_some(v)
    })
    .await;
    assert_eq!(v["binds"][0]["state"], "connecting", "{v}");
}

/// Reads one HTTP/1.1 response head (status line and headers) and as much body as
/// `Content-Length` says, from a raw socket; None when the node closes first.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    Some((head, body))
}

/// Audit: with `Expect: 100-continue` and a `Content-Length` over `max_body_bytes` the
/// node answered `100 Continue`, so the client uploaded megabytes before the 413. The
/// 413 now comes first, from the headers, and says the limit in bytes; a body without
/// a `Content-Length` (chunked) is still cut at the limit with the same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_before_it_is_sent() {
    use tokio::io::AsyncWriteExt;
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &["--max-body-bytes", "2048"]).await;
    let key = node.tenant("acme", json!({})).await;
    for path in ["/v1/messages", "/v1/messages/batch"] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", node.http))
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 2800000\r\n\
             Expect: 100-continue\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        // No body is sent: the node must answer from the headers alone.
        let (head, body) = read_response(&mut s)
            .await
            .expect("an answer without the body");
        assert!(
            head.starts_with("HTTP/1.1 413"),
            "{path}: the first answer must be the 413, not 100 Continue: {head}"
        );
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let msg = assert_error_body(&v, "body_too_large", None, path);
        assert!(
            msg.contains("2048 bytes") && msg.contains("2800000"),
            "{path}: the limit and the length in {msg}"
        );
    }
    // Under the limit, 100-continue works as before (reqwest sends no Expect; curl would).
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": "hi"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Chunked, no Content-Length: read up to the limit, then the same 413 and message.
    let big = serde_json::to_vec(&json!({"to": TO, "text": "a".repeat(3000)})).expect("json");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", node.http))
        .await
        .expect("connect");
    let mut req = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for c in big.chunks(512) {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The node may answer and close before it has read everything: a failed write is fine.
    let _ = s.write_all(&req).await;
    let (head, body) = read_response(&mut s)
        .await
        .expect("an answer to the chunked body");
    assert!(head.starts_with("HTTP/1.1 413"), "chunked: {head}");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let msg = assert_error_body(&v, "body_too_large", None, "chunked");
    assert!(msg.contains("2048 bytes"), "chunked: {msg}");
}

/// Audit: `Content-Encoding: gzip` was ignored and the compressed bytes parsed as JSON
/// (a confusing 400). Any encoding but `identity` is now 415 `unsupported_media_type`
/// naming the header, on every endpoint that reads a body; `identity` is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_body_is_415_naming_the_header() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, key) = node_and_tenant(dir.path(), json!({})).await;
    let body = serde_json::to_vec(&json!({"to": TO, "text": "hi"})).expect("json");
    for (path, bearer, encoding) in [
        ("/v1/messages", key.as_str(), "gzip"),
        ("/v1/messages/batch", key.as_str(), "br"),
        ("/v1/messages/preview", key.as_str(), "deflate"),
        ("/admin/v1/tenants", ADMIN_TOKEN, "gzip"),
    ] {
        let r = node
            .request(
                Method::POST,
                path,
                Some(bearer),
                &[("content-encoding", encoding)],
                Some(body.clone()),
            )
            .await;
        let what = format!("{path} with Content-Encoding {encoding}");
        let msg = assert_error(
            &r,
            415,
            "unsupported_media_type",
            Some("Content-Encoding"),
            &what,
        );
        assert!(msg.contains(encoding), "{what}: {msg}");
    }
    let r = node
        .request(
            Method::POST,
            "/v1/messages/preview",
            Some(&key),
            &[("content-encoding", "identity")],
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "identity: {}", r.text);
    // Nothing was stored by the refused sends.
    let (_, v) = node.list(&key, "").await;
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "{v}");
}
