//! Compliance through the HTTP API: content rules (keyword, regex, URL domain, URL allow
//! list, link shorteners; reject and flag), opt-outs, frequency caps (exact across three
//! nodes), India DLT, US 10DLC, sender ids and pools, quiet hours, metrics and the CLI;
//! and a rule change reaching every node within a second.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const DE: &str = "+4915112345678";
const DE2: &str = "+4915112345679";
const IN: &str = "+919876543210";
const US: &str = "+12025550199";

async fn put(node: &GwNode, path: &str, body: Value) -> Value {
    let (s, v) = node.admin(Method::PUT, path, Some(body)).await;
    assert!(s == 200 || s == 201, "PUT {path}: {s} {v}");
    v
}

async fn post(node: &GwNode, path: &str, body: Value) -> Value {
    let (s, v) = node.admin(Method::POST, path, Some(body)).await;
    assert!(s == 200 || s == 201, "POST {path}: {s} {v}");
    v
}

async fn patch_tenant(node: &GwNode, body: Value) {
    let (s, v) = node
        .admin(Method::PATCH, "/admin/v1/tenants/acme", Some(body))
        .await;
    assert_eq!(s, 200, "PATCH tenant: {v}");
}

/// Sends and asserts the status and (for errors) the code; returns the body.
async fn expect(node: &GwNode, key: &str, body: Value, status: u16, code: &str) -> Value {
    let (s, v) = node.send(key, body.clone()).await;
    assert_eq!(s, status, "{body} → {v}");
    if !code.is_empty() {
        assert_eq!(v["error"]["code"], code, "{body} → {v}");
    }
    v
}

fn note_of(status: &Value) -> String {
    status["events"][0]["note"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_and_action_through_the_api() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = gateway_with_smsc(dir.path(), "c65", &[], &[]).await;

    // ---- content rules: reject names the rule; flag is on the events ----
    put(
        &node,
        "/admin/v1/compliance/rules/kw-loan",
        json!({"scope": "global", "kind": "keyword", "pattern": "payday loan", "action": "reject"}),
    )
    .await;
    put(
        &node,
        "/admin/v1/compliance/rules/re-win",
        json!({"kind": "regex", "pattern": r"(?i)\bwin\s+\$\d+", "action": "reject"}),
    )
    .await;
    put(
        &node,
        "/admin/v1/compliance/rules/dom-evil",
        json!({"kind": "url_domain", "pattern": "evil.example", "action": "reject"}),
    )
    .await;
    put(
        &node,
        "/admin/v1/compliance/rules/short",
        json!({"kind": "link_shortener", "pattern": "*", "action": "flag"}),
    )
    .await;
    let v = expect(
        &node,
        &key,
        json!({"to": DE, "text": "Get a PAYDAY LOAN now"}),
        403,
        "content_blocked",
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("kw-loan"),
        "{v}"
    );
    let v = expect(
        &node,
        &key,
        json!({"to": DE, "text": "WIN $500 today"}),
        403,
        "content_blocked",
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("re-win"),
        "{v}"
    );
    expect(
        &node,
        &key,
        json!({"to": DE, "text": "log in at https://www.evil.example/x"}),
        403,
        "content_blocked",
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": DE, "text": "a loan for your payday"}),
        202,
        "",
    )
    .await;
    let v = expect(
        &node,
        &key,
        json!({"to": DE, "text": "track it: bit.ly/abc"}),
        202,
        "",
    )
    .await;
    let (_, st) = node.message(&key, v["id"].as_str().unwrap_or("")).await;
    assert_eq!(st["compliance"]["flags"], json!(["short"]), "{st}");
    assert!(
        note_of(&st).contains("flagged by content rule short"),
        "{st}"
    );
    // A tenant allow list: other domains hit the rule, allowed ones pass.
    put(&node, "/admin/v1/compliance/rules/allow-acme",
        json!({"scope": "tenant:acme", "kind": "url_allow", "pattern": "acme.com", "action": "reject"})).await;
    expect(
        &node,
        &key,
        json!({"to": DE, "text": "see https://shop.acme.com/o/1"}),
        202,
        "",
    )
    .await;
    let v = expect(
        &node,
        &key,
        json!({"to": DE, "text": "see https://other.org"}),
        403,
        "content_blocked",
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("allow-acme"),
        "{v}"
    );
    // Bad patterns are refused, rules are listed and deleted.
    let (s, v) = node
        .admin(
            Method::PUT,
            "/admin/v1/compliance/rules/bad",
            Some(json!({"kind": "regex", "pattern": "(", "action": "reject"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].clone()),
        (422, json!("pattern")),
        "{v}"
    );
    let (_, rules) = node
        .admin(Method::GET, "/admin/v1/compliance/rules", None)
        .await;
    assert_eq!(rules.as_array().map(Vec::len), Some(5), "{rules}");
    let (s, _) = node
        .admin(Method::DELETE, "/admin/v1/compliance/rules/kw-loan", None)
        .await;
    assert_eq!(s, 204);
    expect(
        &node,
        &key,
        json!({"to": DE, "text": "Get a PAYDAY LOAN now"}),
        202,
        "",
    )
    .await;
    let (s, _) = node
        .admin(Method::DELETE, "/admin/v1/compliance/rules/kw-loan", None)
        .await;
    assert_eq!(s, 404);
    node.admin(
        Method::DELETE,
        "/admin/v1/compliance/rules/allow-acme",
        None,
    )
    .await;

    // ---- opt-outs: marketing refused; other categories configurable ----
    let v = post(
        &node,
        "/admin/v1/tenants/acme/opt_outs",
        json!({"numbers": [DE2, "+4915112340000"]}),
    )
    .await;
    assert_eq!(v["added"], 2);
    expect(
        &node,
        &key,
        json!({"to": DE2, "text": "sale", "category": "marketing"}),
        403,
        "opted_out",
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": DE2, "text": "receipt", "category": "transactional"}),
        202,
        "",
    )
    .await;
    patch_tenant(
        &node,
        json!({"opt_out_categories": ["marketing", "transactional"]}),
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": DE2, "text": "receipt", "category": "transactional"}),
        403,
        "opted_out",
    )
    .await;
    let (_, list) = node
        .admin(Method::GET, "/admin/v1/tenants/acme/opt_outs", None)
        .await;
    assert_eq!(list["total"], 2, "{list}");
    let (s, _) = node
        .admin(
            Method::DELETE,
            &format!(
                "/admin/v1/tenants/acme/opt_outs/{}",
                DE2.replace('+', "%2B")
            ),
            None,
        )
        .await;
    assert_eq!(s, 204);
    expect(
        &node,
        &key,
        json!({"to": DE2, "text": "sale", "category": "marketing"}),
        202,
        "",
    )
    .await;

    // ---- frequency caps per recipient and category ----
    patch_tenant(
        &node,
        json!({"frequency_caps": [{"category": "otp", "max": 3, "per_seconds": 600}]}),
    )
    .await;
    let to = "+4915112345600";
    for i in 0..3 {
        expect(
            &node,
            &key,
            json!({"to": to, "text": format!("code {i}"), "category": "otp"}),
            202,
            "",
        )
        .await;
    }
    let r = node
        .post_json(
            "/v1/messages",
            &key,
            &json!({"to": to, "text": "code 4", "category": "otp"}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["error"]["code"].clone()),
        (429, json!("frequency_capped")),
        "{}",
        r.text
    );
    assert!(
        r.retry_after().is_some_and(|s| s > 500 && s <= 600),
        "{:?}",
        r.headers
    );
    expect(
        &node,
        &key,
        json!({"to": to, "text": "news", "category": "marketing"}),
        202,
        "",
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": "+4915112345601", "text": "code", "category": "otp"}),
        202,
        "",
    )
    .await;

    // ---- sender ids: registration required, registered id chosen ----
    put(
        &node,
        "/admin/v1/compliance/countries/DE",
        json!({"sender_registration_required": true}),
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": DE, "text": "hi", "from": "ACME"}),
        403,
        "sender_not_allowed",
    )
    .await;
    post(
        &node,
        "/admin/v1/tenants/acme/senders",
        json!({"sender": "ACME", "type": "alphanumeric", "countries": ["DE"]}),
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": DE, "text": "hi", "from": "ACME"}),
        202,
        "",
    )
    .await;
    let v = expect(&node, &key, json!({"to": DE, "text": "hi"}), 202, "").await;
    assert_eq!(v["from"], "ACME", "registered sender chosen: {v}");
    let (_, st) = node.message(&key, v["id"].as_str().unwrap_or("")).await;
    assert!(
        st["compliance"]["sender_choice"]
            .as_str()
            .unwrap_or("")
            .contains("ACME"),
        "{st}"
    );
    let (s, _) = node
        .admin(Method::DELETE, "/admin/v1/compliance/countries/DE", None)
        .await;
    assert_eq!(s, 204);

    // ---- quiet hours: marketing scheduled to the end of the window, not refused ----
    let now = chrono::Utc::now();
    let hm = |d: chrono::DateTime<chrono::Utc>| d.format("%H:%M").to_string();
    let end = now + chrono::Duration::hours(1);
    put(&node, "/admin/v1/compliance/countries/DE",
        json!({"quiet_hours": {"start": hm(now - chrono::Duration::hours(1)), "end": hm(end), "timezone": "UTC"}})).await;
    let v = expect(
        &node,
        &key,
        json!({"to": DE, "text": "big sale", "category": "marketing"}),
        202,
        "",
    )
    .await;
    assert_eq!(v["status"], "scheduled", "{v}");
    let (_, st) = node.message(&key, v["id"].as_str().unwrap_or("")).await;
    assert!(note_of(&st).contains("quiet hours"), "{st}");
    let send_at = st["send_at"].as_str().unwrap_or("").to_string();
    assert!(
        send_at.contains(&format!("T{}:00", hm(end))),
        "{send_at} vs {}",
        hm(end)
    );
    let v = expect(
        &node,
        &key,
        json!({"to": DE, "text": "your receipt"}),
        202,
        "",
    )
    .await;
    assert_eq!(
        v["status"], "accepted",
        "transactional ignores quiet hours: {v}"
    );
    node.admin(Method::DELETE, "/admin/v1/compliance/countries/DE", None)
        .await;

    // ---- India: the header (sender id) must be registered, as on DLT ----
    expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 1234"}),
        403,
        "sender_not_allowed",
    )
    .await;
    post(
        &node,
        "/admin/v1/tenants/acme/senders",
        json!({"sender": "SMSGW", "type": "alphanumeric", "countries": ["IN"]}),
    )
    .await;

    // ---- India DLT: ids required, template registry, {#var#} matching ----
    expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 1234"}),
        422,
        "dlt_required",
    )
    .await;
    let dlt = json!({"entity_id": "1101234567890123456", "template_id": "1107000000000000001"});
    expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 1234", "dlt": dlt}),
        422,
        "dlt_template_mismatch",
    )
    .await;
    post(&node, "/admin/v1/tenants/acme/dlt_templates",
        json!({"template_id": "1107000000000000001", "entity_id": "1101234567890123456", "text": "Your OTP is {#var#}. Do not share it."})).await;
    // A second create with the same id does not overwrite the first.
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/tenants/acme/dlt_templates",
            Some(json!({"template_id": "1107000000000000001", "entity_id": "1101234567890123456", "text": "Something else {#var#}"})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your code is 1234. Do not share it.", "dlt": dlt}),
        422,
        "dlt_template_mismatch",
    )
    .await;
    let other = json!({"entity_id": "1109999999999999999", "template_id": "1107000000000000001"});
    expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 1234. Do not share it.", "dlt": other}),
        422,
        "dlt_template_mismatch",
    )
    .await;
    let v = expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 1234. Do not share it.", "dlt": dlt}),
        202,
        "",
    )
    .await;
    let (_, st) = node.message(&key, v["id"].as_str().unwrap_or("")).await;
    assert_eq!(
        st["compliance"]["dlt"]["template_id"], "1107000000000000001",
        "{st}"
    );
    // The ids reach the operator as TLVs 0x1400 / 0x1401 (the channel's defaults).
    let line = eventually(
        "DLT submit in the ledger",
        Duration::from_secs(20),
        || async {
            smsc.ledger_lines().into_iter().find(|l| {
                l["dest"]
                    .as_str()
                    .is_some_and(|d| d.ends_with("919876543210"))
            })
        },
    )
    .await;
    assert_eq!(
        line["tlvs"],
        json!({"1400": "1101234567890123456", "1401": "1107000000000000001"}),
        "{line}"
    );

    // ---- US 10DLC: long codes need a campaign; pool for alphanumerics; toll-free, short codes ----
    expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "+12025550123"}),
        403,
        "unregistered_10dlc",
    )
    .await;
    post(&node, "/admin/v1/tenants/acme/campaigns",
        json!({"id": "CAMP1", "use_case": "2fa", "numbers": ["+12025550123", "+12025550124"], "tps": 1})).await;
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/tenants/acme/campaigns",
            Some(json!({"id": "CAMP1", "use_case": "marketing", "numbers": ["+12025550199"]})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    let v = expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "+12025550123"}),
        202,
        "",
    )
    .await;
    let (_, st) = node.message(&key, v["id"].as_str().unwrap_or("")).await;
    assert_eq!(st["compliance"]["campaign_id"], "CAMP1", "{st}");
    expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "+12025550123", "campaign_id": "NOPE"}),
        403,
        "unregistered_10dlc",
    )
    .await;
    // Per-campaign throughput: 1 per second, exactly, under concurrent sends.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let burst: Vec<Value> = (0..4)
        .map(|i| json!({"to": US, "text": format!("t{i}"), "from": "+12025550124"}))
        .collect();
    let answers = node.send_all(&key, burst).await;
    let ok = answers.iter().filter(|(s, _)| *s == 202).count();
    assert!(ok <= 1, "campaign tps 1: {answers:?}");
    assert!(
        answers
            .iter()
            .any(|(s, v)| *s == 429 && v["error"]["code"] == "rate_limited"),
        "{answers:?}"
    );
    expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "ACME"}),
        403,
        "sender_not_allowed",
    )
    .await;
    patch_tenant(&node, json!({"sender_pool": ["+12025550123"]})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let v = expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "ACME"}),
        202,
        "",
    )
    .await;
    assert_eq!(v["from"], "+12025550123", "pool number: {v}");
    let (_, st) = node.message(&key, v["id"].as_str().unwrap_or("")).await;
    assert!(note_of(&st).contains("sender pool"), "{st}");
    expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "+18005550100"}),
        403,
        "sender_not_allowed",
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "55555"}),
        403,
        "sender_not_allowed",
    )
    .await;
    post(
        &node,
        "/admin/v1/tenants/acme/senders",
        json!({"sender": "55555", "type": "short_code", "countries": ["US"]}),
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": US, "text": "hi", "from": "55555"}),
        202,
        "",
    )
    .await;

    // ---- MO STOP / START to the tenant's short code ----
    let handset = "+4915112345690";
    let mo = |text: &'static str| {
        let url = format!("http://127.0.0.1:{}/mo", smsc.control);
        async move {
            let r = client()
                .post(url)
                .json(
                    &json!({"from": handset.trim_start_matches('+'), "to": "55555", "text": text}),
                )
                .send()
                .await
                .expect("mo");
            assert_eq!(r.status().as_u16(), 200);
        }
    };
    mo("Stop").await;
    eventually(
        "MO STOP on the opt-out list",
        Duration::from_secs(10),
        || async {
            let (s, _) = node
                .send(
                    &key,
                    json!({"to": handset, "text": "sale", "category": "marketing"}),
                )
                .await;
            (s == 403).then_some(())
        },
    )
    .await;
    mo("START").await;
    eventually(
        "MO START off the opt-out list",
        Duration::from_secs(10),
        || async {
            let (s, _) = node
                .send(
                    &key,
                    json!({"to": handset, "text": "sale", "category": "marketing"}),
                )
                .await;
            (s == 202).then_some(())
        },
    )
    .await;

    // ---- metrics ----
    let m = node.metrics_text().await;
    for (check, action) in [
        ("content", "reject"),
        ("content", "flag"),
        ("opt_out", "reject"),
        ("frequency", "reject"),
        ("dlt", "reject"),
        ("dlt", "pass"),
        ("ten_dlc", "reject"),
        ("sender", "pool"),
        ("quiet_hours", "schedule"),
        ("campaign_throughput", "reject"),
    ] {
        assert!(
            metric_value(
                &m,
                "smsgw_compliance_decisions_total",
                &[("check", check), ("action", action)]
            )
            .unwrap_or(0.0)
                >= 1.0,
            "no {check}/{action} in metrics"
        );
    }

    // ---- CLI ----
    let url = format!("http://127.0.0.1:{}", node.http);
    // A reader that stops early (`| head -1`, `| true`): the command exits 0 quietly (it
    // panicked on the broken pipe, exit 101).
    {
        let mut child = std::process::Command::new(bin())
            .args([
                "compliance",
                "rule",
                "list",
                "--url",
                &url,
                "--token",
                ADMIN_TOKEN,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn smsgw");
        drop(child.stdout.take());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // `smsgw compliance <args> --url .. --token ..`: exit 0, its stdout.
    let cli = |args: &[&str]| {
        let mut argv = vec!["compliance"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--url", &url, "--token", ADMIN_TOKEN]);
        let (code, out, err) = run_bounded(&argv, &[], dir.path(), Duration::from_secs(20));
        assert_eq!(code, Some(0), "{argv:?}: {out} {err}");
        out
    };
    cli(&[
        "rule",
        "put",
        "cli-kw",
        "--kind",
        "keyword",
        "--pattern",
        "forbidden",
    ]);
    expect(
        &node,
        &key,
        json!({"to": DE, "text": "a forbidden word"}),
        403,
        "content_blocked",
    )
    .await;
    let out = cli(&["opt-out", "list", "acme"]);
    assert!(out.contains("number(s) opted out"), "a summary line: {out}");
    let out = cli(&["opt-out", "list", "acme", "--json"]);
    assert!(
        out.contains("\"total\""),
        "the API's JSON with --json: {out}"
    );
    let out = cli(&["rule", "list"]);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("ID") && l.contains("PATTERN"))
            && out.contains("cli-kw"),
        "a table with the rule just put: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_frequency_cap_is_exact_and_rules_reach_every_node_within_a_second() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let nodes = start_cluster(dir.path(), 3).await;
    let key = nodes[0]
        .tenant(
            "acme",
            json!({"frequency_caps": [{"category": "otp", "max": 5, "per_seconds": 600}]}),
        )
        .await;
    // Every node knows the tenant before the race starts.
    for n in &nodes {
        eventually("tenant on every node", Duration::from_secs(5), || async {
            let (s, _) = n
                .send(&key, json!({"to": "+4915112349999", "text": "warm-up"}))
                .await;
            (s == 202).then_some(())
        })
        .await;
    }

    // The same number from all three nodes at once: exactly 5 pass.
    let bodies = |node: usize| -> Vec<Value> {
        (0..8)
            .map(|i| json!({"to": DE, "text": format!("otp {node}-{i}"), "category": "otp"}))
            .collect()
    };
    let (a, b, c) = tokio::join!(
        nodes[0].send_all(&key, bodies(0)),
        nodes[1].send_all(&key, bodies(1)),
        nodes[2].send_all(&key, bodies(2)),
    );
    let all: Vec<(u16, Value)> = a.into_iter().chain(b).chain(c).collect();
    let passed = all.iter().filter(|(s, _)| *s == 202).count();
    let capped = all
        .iter()
        .filter(|(s, v)| *s == 429 && v["error"]["code"] == "frequency_capped")
        .count();
    assert_eq!((passed, capped), (5, 19), "{all:?}");

    // A rule change on one node is enforced on every node within a second.
    let started = Instant::now();
    put(
        &nodes[0],
        "/admin/v1/compliance/rules/kw-x",
        json!({"kind": "keyword", "pattern": "zebra", "action": "reject"}),
    )
    .await;
    for (i, n) in nodes.iter().enumerate() {
        eventually(
            &format!("rule on node {}", i + 1),
            Duration::from_secs(3),
            || async {
                let (s, _) = n.send(&key, json!({"to": DE2, "text": "a zebra"})).await;
                (s == 403).then_some(())
            },
        )
        .await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "node {} enforced the rule after {took:?}",
            i + 1
        );
    }
}

/// `smsgw <args> --url .. --token ..`: exit code, stdout, stderr.
fn cli_run(dir: &std::path::Path, url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut argv: Vec<&str> = args.to_vec();
    argv.extend_from_slice(&["--url", url, "--token", ADMIN_TOKEN]);
    run_bounded(&argv, &[], dir, Duration::from_secs(20))
}

/// Asserts a 422/409 answer naming `field`; returns the message.
async fn refused(node: &GwNode, path: &str, body: Value, status: u16, field: &str) -> String {
    let (s, v) = node.admin(Method::POST, path, Some(body.clone())).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (status, Some(field)),
        "{body} → {v}"
    );
    v["error"]["message"].as_str().unwrap_or("").to_string()
}

/// Audit s18 defects 3, 5-12: bad DLT and 10DLC definitions are refused naming the field,
/// a campaign's tps counts parts, a DLT entity mismatch names `dlt.entity_id`, an empty
/// quiet window is refused, India needs registered headers, opt-outs count only new
/// numbers, and the CLI merges country rules, reads like a table and updates tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_checked_and_the_cli_changes_only_what_it_is_told() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) = gateway_with_smsc(dir.path(), "c65b", &[], &[]).await;
    node.tenant("beta", json!({})).await;
    let url = format!("http://127.0.0.1:{}", node.http);

    // ---- DLT ids are 19 digits; near-miss placeholders are refused ----
    const TPL: &str = "/admin/v1/tenants/acme/dlt_templates";
    const E: &str = "1101234567890123456";
    refused(
        &node,
        TPL,
        json!({"template_id": "123", "entity_id": E, "text": "x {#var#}"}),
        422,
        "template_id",
    )
    .await;
    refused(
        &node,
        TPL,
        json!({"template_id": "1107000000000000003", "entity_id": "abc", "text": "x {#var#}"}),
        422,
        "entity_id",
    )
    .await;
    for text in [
        "Your code {#var}",
        "Hi {#VAR#} there",
        "Hi {var}",
        "Hi {#var #}",
    ] {
        let m = refused(
            &node,
            TPL,
            json!({"template_id": "1107000000000000004", "entity_id": E, "text": text}),
            422,
            "text",
        )
        .await;
        assert!(m.contains("{#var#}"), "a hint: {m}");
    }
    post(
        &node,
        TPL,
        json!({"template_id": "1107000000000000005", "entity_id": E, "text": "Static notice"}),
    )
    .await;
    post(&node, TPL, json!({"template_id": "1107000000000000001", "entity_id": E, "text": "Your OTP is {#var#}"})).await;

    // ---- India: unregistered headers refused; an entity mismatch names dlt.entity_id ----
    let dlt = json!({"entity_id": E, "template_id": "1107000000000000001"});
    expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 42", "from": "RANDOM", "dlt": dlt}),
        403,
        "sender_not_allowed",
    )
    .await;
    post(
        &node,
        "/admin/v1/tenants/acme/senders",
        json!({"sender": "ACMEIN", "type": "alphanumeric", "countries": ["IN"]}),
    )
    .await;
    expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 42", "from": "ACMEIN", "dlt": dlt}),
        202,
        "",
    )
    .await;
    let wrong = json!({"entity_id": "9999999999999999999", "template_id": "1107000000000000001"});
    let v = expect(
        &node,
        &key,
        json!({"to": IN, "text": "Your OTP is 42", "from": "ACMEIN", "dlt": wrong}),
        422,
        "dlt_template_mismatch",
    )
    .await;
    assert_eq!(v["error"]["field"], "dlt.entity_id", "{v}");

    // ---- sender type errors use the API's names ----
    let m = refused(
        &node,
        "/admin/v1/tenants/acme/senders",
        json!({"sender": "12345", "type": "alphanumeric"}),
        422,
        "type",
    )
    .await;
    assert!(
        m.contains("alphanumeric") && m.contains("short_code") && !m.contains("ShortCode"),
        "{m}"
    );

    // ---- 10DLC numbers: NANP long codes, in one campaign only ----
    const CAMP: &str = "/admin/v1/tenants/acme/campaigns";
    refused(
        &node,
        CAMP,
        json!({"id": "C2", "use_case": "2FA", "numbers": ["+4915112345678"], "tps": 1}),
        422,
        "numbers[0]",
    )
    .await;
    refused(&node, CAMP, json!({"id": "C2", "use_case": "2FA", "numbers": ["+12025550101", "+18005550100"], "tps": 1}), 422, "numbers[1]").await;
    post(
        &node,
        CAMP,
        json!({"id": "C1", "use_case": "2FA", "numbers": ["+12025550100"], "tps": 1}),
    )
    .await;
    let m = refused(
        &node,
        CAMP,
        json!({"id": "C3", "use_case": "2FA", "numbers": ["+12025550100"]}),
        409,
        "numbers[0]",
    )
    .await;
    assert!(m.contains("C1"), "names the other campaign: {m}");
    let m = refused(
        &node,
        "/admin/v1/tenants/beta/campaigns",
        json!({"id": "B1", "use_case": "2FA", "numbers": ["+12025550109", "+12025550100"]}),
        409,
        "numbers[1]",
    )
    .await;
    assert!(m.contains("C1") && m.contains("acme"), "{m}");

    // ---- campaign tps counts parts: a 3-part message takes 3 of the second's slots ----
    post(
        &node,
        CAMP,
        json!({"id": "C6", "use_case": "2FA", "numbers": ["+12025550105"], "tps": 3}),
    )
    .await;
    let long = "x".repeat(400);
    let v = expect(
        &node,
        &key,
        json!({"to": US, "text": long, "from": "+12025550105"}),
        202,
        "",
    )
    .await;
    assert_eq!(v["parts"], 3, "{v}");
    expect(
        &node,
        &key,
        json!({"to": US, "text": "one more", "from": "+12025550105"}),
        429,
        "rate_limited",
    )
    .await;

    // ---- quiet hours start == end is refused ----
    let (s, v) = node
        .admin(
            Method::PUT,
            "/admin/v1/compliance/countries/FR",
            Some(json!({"quiet_hours": {"start": "08:00", "end": "08:00", "timezone": "UTC"}})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (422, Some("quiet_hours.end")),
        "{v}"
    );

    // ---- opt-outs: an already-listed number is not counted as added ----
    const OPT: &str = "/admin/v1/tenants/acme/opt_outs";
    let v = post(&node, OPT, json!({"numbers": ["+4915112340021"]})).await;
    assert_eq!(v["added"], 1, "{v}");
    let v = post(
        &node,
        OPT,
        json!({"numbers": ["+49 151 1234-0021", "+4915112340022"]}),
    )
    .await;
    assert_eq!(
        (v["added"].as_u64(), v["already_listed"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    let (code, out, err) = cli_run(
        dir.path(),
        &url,
        &[
            "compliance",
            "opt-out",
            "add",
            "acme",
            "+49 151 1234-0023",
            "+4915112340021",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.trim(),
        "opted out: +4915112340023, +4915112340021 (1 new, 1 already listed)"
    );
    let (code, out, err) = cli_run(
        dir.path(),
        &url,
        &[
            "compliance",
            "opt-out",
            "remove",
            "acme",
            "+49 151 1234-0021",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "removed opt out +4915112340021");

    // ---- country set changes only the flags given, and prints the result ----
    let (code, _, err) = cli_run(
        dir.path(),
        &url,
        &[
            "compliance",
            "country",
            "set",
            "DE",
            "--sender-registration-required",
            "true",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cli_run(
        dir.path(),
        &url,
        &[
            "compliance",
            "country",
            "set",
            "DE",
            "--quiet-start",
            "21:00",
            "--quiet-end",
            "08:00",
            "--timezone",
            "Europe/Berlin",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("COUNTRY") && out.contains("21:00-08:00"),
        "{out}"
    );
    let (_, v) = node
        .admin(Method::GET, "/admin/v1/compliance/countries/DE", None)
        .await;
    assert_eq!(v["sender_registration_required"], true, "kept: {v}");
    assert_eq!(v["quiet_hours"]["timezone"], "Europe/Berlin", "{v}");
    let (code, _, err) = cli_run(
        dir.path(),
        &url,
        &[
            "compliance",
            "country",
            "set",
            "DE",
            "--alphanumeric-allowed",
            "true",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, v) = node
        .admin(Method::GET, "/admin/v1/compliance/countries/DE", None)
        .await;
    assert!(
        v["sender_registration_required"] == true && v["quiet_hours"]["start"] == "21:00",
        "kept: {v}"
    );
    let (code, out, _) = run_bounded(
        &["compliance", "country", "set", "--help"],
        &[],
        dir.path(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0));
    assert!(
        out.contains("keep the rules") && out.contains("Quiet hours end"),
        "{out}"
    );

    // ---- country list shows the built-in rules in force ----
    let (code, out, err) = cli_run(dir.path(), &url, &["compliance", "country", "list"]);
    assert_eq!(code, Some(0), "{err}");
    let row = |cc: &str| {
        out.lines()
            .find(|l| l.starts_with(cc))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        row("IN").contains("built-in") && row("US").contains("built-in"),
        "{out}"
    );
    assert!(row("DE").contains("configured"), "{out}");

    // ---- tenant show as labelled lines; tenant update patches and prints one row ----
    let (code, out, err) = cli_run(dir.path(), &url, &["tenant", "show", "acme"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("id:") && out.contains("rate limit:"),
        "{out}"
    );
    let (code, out, err) = cli_run(
        dir.path(),
        &url,
        &[
            "tenant",
            "update",
            "acme",
            "--max-parts",
            "4",
            "--frequency-caps",
            "otp:5/600",
            "--opt-out-categories",
            "marketing,transactional",
            "--per-second",
            "7",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("ID") && out.lines().count() == 2 && out.contains("otp:5/600s"),
        "{out}"
    );
    let (_, v) = node
        .admin(Method::GET, "/admin/v1/tenants/acme", None)
        .await;
    assert_eq!(v["max_parts"], 4, "{v}");
    assert_eq!(
        v["rate_limit"],
        json!({"per_second": 7, "burst": 20000}),
        "burst kept: {v}"
    );
    assert_eq!(
        v["opt_out_categories"],
        json!(["marketing", "transactional"]),
        "{v}"
    );
}

/// What changes while a message waits for its `send_at` is asked again when it is due:
/// a recipient who opted out since, or a content rule added since, fails it as `blocked`
/// (through `accepted`, the contract's only way to `failed`) instead of sending it; a
/// transactional message to the same number still goes. Quiet hours are judged at the
/// time the message would be sent, so a `send_at` inside them moves to the window's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_messages_are_checked_again_and_quiet_hours_follow_send_at() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) = gateway_with_smsc(dir.path(), "c65due", &[], &[]).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let scheduled = |to: &str, text: &str, category: &str| json!({"to": to, "text": text, "category": category, "send_at": soon});
    let mut ids = Vec::new();
    for body in [
        scheduled(DE2, "big sale tomorrow", "marketing"),
        scheduled(DE, "visit our crypto giveaway", "marketing"),
        scheduled(DE2, "your receipt", "transactional"),
    ] {
        let v = expect(&node, &key, body, 202, "").await;
        assert_eq!(v["status"], "scheduled", "{v}");
        ids.push(v["id"].as_str().unwrap_or("").to_string());
    }
    post(
        &node,
        "/admin/v1/tenants/acme/opt_outs",
        json!({"numbers": [DE2]}),
    )
    .await;
    put(
        &node,
        "/admin/v1/compliance/rules/kw-crypto",
        json!({"kind": "keyword", "pattern": "crypto", "action": "reject"}),
    )
    .await;

    let opted_out = node
        .wait_final(&key, &ids[0], Duration::from_secs(20))
        .await;
    assert_eq!(opted_out["status"], "failed", "{opted_out}");
    assert_eq!(opted_out["error"]["code"], "blocked", "{opted_out}");
    let why = opted_out["error"]["message"].as_str().unwrap_or("");
    assert!(why.contains("opted out"), "{opted_out}");
    let statuses: Vec<&str> = opted_out["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(statuses, ["scheduled", "accepted", "failed"], "{opted_out}");

    let ruled = node
        .wait_final(&key, &ids[1], Duration::from_secs(20))
        .await;
    assert_eq!(ruled["status"], "failed", "{ruled}");
    assert_eq!(ruled["error"]["code"], "blocked", "{ruled}");
    assert!(
        ruled["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("kw-crypto"),
        "{ruled}"
    );
    let receipt = node
        .wait_final(&key, &ids[2], Duration::from_secs(20))
        .await;
    assert_eq!(receipt["status"], "delivered", "{receipt}");

    // Quiet hours around now and for the next hour: a send_at a minute ahead is inside.
    let now = chrono::Utc::now();
    let hm = |d: chrono::DateTime<chrono::Utc>| d.format("%H:%M").to_string();
    let end = now + chrono::Duration::hours(1);
    put(&node, "/admin/v1/compliance/countries/DE",
        json!({"quiet_hours": {"start": hm(now - chrono::Duration::hours(1)), "end": hm(end), "timezone": "UTC"}})).await;
    let in_a_minute = (now + chrono::Duration::seconds(60)).to_rfc3339();
    let v = expect(
        &node,
        &key,
        json!({"to": DE, "text": "night promo", "category": "marketing", "send_at": in_a_minute}),
        202,
        "",
    )
    .await;
    assert_eq!(v["status"], "scheduled", "{v}");
    let (_, st) = node.message(&key, v["id"].as_str().unwrap_or("")).await;
    assert!(note_of(&st).contains("quiet hours"), "{st}");
    let send_at = st["send_at"].as_str().unwrap_or("");
    assert!(send_at.contains(&format!("T{}:00", hm(end))), "{st}");
}
