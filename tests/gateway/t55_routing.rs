//! Routing and channel health against several simulator processes of different quality:
//! success_rate converges to the best line and finds a recovered one again, least_cost
//! takes the cheapest healthy line, a channel going down loses and fails nothing,
//! throttling fails nothing, A/B splits hold their share, precedence (prefix, operator
//! from the number-range table, HLR override), and SLA breach alerts.
use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

async fn control(s: &Smsc, body: Value) {
    let r = client()
        .post(format!("http://127.0.0.1:{}/control", s.control))
        .json(&body)
        .send()
        .await
        .expect("control");
    assert!(r.status().is_success(), "control {body}");
}

async fn accepted(s: &Smsc) -> u64 {
    s.stats()
        .await
        .and_then(|v| v["accepted"].as_u64())
        .unwrap_or(0)
}

async fn post(node: &GwNode, path: &str, body: Value) -> Value {
    let (s, v) = node.admin(Method::POST, path, Some(body.clone())).await;
    assert!(s == 201 || s == 200, "{path} {body}: {s} {v}");
    v
}

fn bodies(n: usize, tag: &str, to: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"to": to, "text": format!("{tag} {i:05}")}))
        .collect()
}

/// Sends `n` messages in batches of `batch`, waiting for each batch to be final so the
/// receipts feed routing before the next batch. Returns the ids.
async fn send_waves(node: &GwNode, key: &str, n: usize, batch: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for w in 0..n.div_ceil(batch) {
        let got = node
            .send_all_accepted(
                key,
                bodies(batch.min(n - w * batch), &format!("{tag}{w}"), TO),
            )
            .await;
        for id in &got {
            node.wait_final(key, id, Duration::from_secs(30)).await;
        }
        ids.extend(got);
    }
    ids
}

const TO: &str = "+4915112345678";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_rate_converges_to_the_best_line_and_rediscovers_a_recovered_one() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let dlr = ["--dlr-delay-ms", "5"];
    let bad = Smsc::start(
        dir.path(),
        "bad",
        &[&dlr[..], &["--dlr-mix", "delivered=20,undeliverable=80"]].concat(),
    )
    .await;
    let good = Smsc::start(
        dir.path(),
        "good",
        &[&dlr[..], &["--dlr-mix", "delivered=95,undeliverable=5"]].concat(),
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    post(&node, "/admin/v1/channels", bad.channel("bad")).await;
    post(&node, "/admin/v1/channels", good.channel("good")).await;
    let (s, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/routing/settings",
            Some(json!({"success_window_seconds": 10})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    post(
        &node,
        "/admin/v1/routes",
        json!({"id": "sr", "match": {}, "strategy": "success_rate",
        "channels": [{"id": "bad"}, {"id": "good"}]}),
    )
    .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    // Phase 1: 200 messages to learn, then the next 100 must mostly take the good line.
    send_waves(&node, &key, 200, 20, "learn").await;
    let (b0, g0) = (accepted(&bad).await, accepted(&good).await);
    send_waves(&node, &key, 100, 20, "steady").await;
    let (b1, g1) = (accepted(&bad).await, accepted(&good).await);
    let share = (g1 - g0) as f64 / ((g1 - g0) + (b1 - b0)) as f64;
    assert!(
        share >= 0.8,
        "good line share after 200 messages: {share} (bad {}, good {})",
        b1 - b0,
        g1 - g0
    );

    // Phase 2: the lines swap quality; after the window slides the recovered one wins.
    control(&bad, json!({"dlr_mix": "delivered=98,undeliverable=2"})).await;
    control(&good, json!({"dlr_mix": "delivered=10,undeliverable=90"})).await;
    let started = Instant::now();
    let mut waves = 0;
    while started.elapsed() < Duration::from_secs(12) || waves < 5 {
        send_waves(&node, &key, 20, 20, &format!("swap{waves}-")).await;
        waves += 1;
        assert!(waves < 1000, "bounded");
    }
    let (b2, g2) = (accepted(&bad).await, accepted(&good).await);
    send_waves(&node, &key, 100, 20, "again").await;
    let (b3, g3) = (accepted(&bad).await, accepted(&good).await);
    let share = (b3 - b2) as f64 / ((b3 - b2) + (g3 - g2)) as f64;
    assert!(
        share >= 0.7,
        "recovered line share: {share} (recovered {}, degraded {})",
        b3 - b2,
        g3 - g2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_cost_takes_the_cheapest_healthy_line_and_fails_over_after_submit() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let cheap = Smsc::start(dir.path(), "cheap", &["--dlr-delay-ms", "5"]).await;
    let mid = Smsc::start(dir.path(), "mid", &["--dlr-delay-ms", "5"]).await;
    let dear = Smsc::start(dir.path(), "dear", &["--dlr-delay-ms", "5"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    for (s, id, price) in [
        (&dear, "dear", 0.009),
        (&mid, "mid", 0.004),
        (&cheap, "cheap", 0.001),
    ] {
        let mut c = s.channel(id);
        c["cost"] = json!({"default": 0.05, "+49": price});
        post(&node, "/admin/v1/channels", c).await;
    }
    post(
        &node,
        "/admin/v1/routes",
        json!({"id": "lc", "match": {"prefix": ["+49"]}, "strategy": "least_cost",
        "channels": [{"id": "dear"}, {"id": "mid"}, {"id": "cheap"}]}),
    )
    .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let ids = node.send_all_accepted(&key, bodies(30, "lc", TO)).await;
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(30))
        .await;
    assert_eq!(
        accepted(&cheap).await,
        30,
        "every message on the cheapest line"
    );
    assert_eq!(accepted(&mid).await + accepted(&dear).await, 0);

    // A price list overrides the cost maps: now "mid" is cheapest.
    let r = node
        .request(
            Method::PUT,
            "/admin/v1/routing/price-list",
            Some(ADMIN_TOKEN),
            &[],
            Some(b"channel,prefix,price\nmid,+49,0.0005\n".to_vec()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids = node.send_all_accepted(&key, bodies(10, "pl", TO)).await;
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(30))
        .await;
    assert_eq!(accepted(&mid).await, 10, "price list makes mid cheapest");
    let r = node
        .request(
            Method::PUT,
            "/admin/v1/routing/price-list",
            Some(ADMIN_TOKEN),
            &[],
            Some(Vec::new()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The cheap line starts answering temporary errors: messages fail over to the next
    // cheapest (recorded in events), the breaker takes the line out, nothing fails.
    control(&cheap, json!({"temp_error_rate": 1.0})).await;
    let ids = node.send_all_accepted(&key, bodies(40, "fo", TO)).await;
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(60))
        .await;
    assert_eq!(accepted(&dear).await, 0, "the dear line is never needed");
    assert_eq!(accepted(&mid).await, 50, "the next cheapest took them all");
    let mut failovers = 0;
    for id in &ids {
        let (_, v) = node.message(&key, id).await;
        failovers += v["events"]
            .as_array()
            .map(|e| {
                // Kept as `notes` of the `accepted` event.
                e.iter()
                    .flat_map(|e| e["notes"].as_array().cloned().unwrap_or_default())
                    .filter(|n| {
                        n["note"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("failover from cheap"))
                    })
                    .count()
            })
            .unwrap_or(0);
    }
    assert!(failovers >= 1, "failover recorded in events");
    let cheap_errors = cheap
        .stats()
        .await
        .and_then(|v| v["errors"].as_u64())
        .unwrap_or(0);
    // All 40 were accepted at once, before the breaker opened, so all were ranked
    // cheap-first at accept time; the breaker (and the 1 s reroute of queued messages)
    // keeps most of them off the broken line.
    assert!(
        cheap_errors < 30,
        "the breaker stopped sending to the broken line: {cheap_errors} errors"
    );
    let v = node.channel_view("cheap").await;
    assert_ne!(v["health"]["breaker"], "closed", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_going_down_loses_and_fails_no_message() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let mut a = Smsc::start(
        dir.path(),
        "down",
        &["--dlr-delay-ms", "5", "--submit-latency-ms", "20"],
    )
    .await;
    let b = Smsc::start(dir.path(), "up", &["--dlr-delay-ms", "5"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ca = a.channel("down");
    ca["tps"] = json!(100);
    post(&node, "/admin/v1/channels", ca).await;
    post(&node, "/admin/v1/channels", b.channel("up")).await;
    post(
        &node,
        "/admin/v1/routes",
        json!({"id": "p", "match": {}, "strategy": "priority",
        "channels": [{"id": "down"}, {"id": "up"}]}),
    )
    .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let ids = node.send_all_accepted(&key, bodies(200, "dn", TO)).await;
    eventually(
        "some sent on the first line",
        Duration::from_secs(20),
        || async { (accepted(&a).await >= 20).then_some(()) },
    )
    .await;
    a.proc.terminate(Duration::from_secs(10));
    let mut statuses = std::collections::HashMap::new();
    for id in &ids {
        let v = eventually(&format!("{id} sent"), Duration::from_secs(60), || async {
            let (_, v) = node.message(&key, id).await;
            let st = v["status"].as_str().unwrap_or("").to_string();
            matches!(
                st.as_str(),
                "sent" | "delivered" | "failed" | "undelivered" | "expired"
            )
            .then_some(v)
        })
        .await;
        *statuses
            .entry(v["status"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        statuses.get("failed"),
        None,
        "no message failed: {statuses:?}"
    );
    let texts: HashSet<String> = a
        .ledger_lines()
        .into_iter()
        .chain(b.ledger_at_least(1).await)
        .filter_map(|l| l["short_message_hex"].as_str().map(String::from))
        .collect();
    assert_eq!(
        texts.len(),
        200,
        "every message reached an SMSC; statuses {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_never_fails_a_message_and_backs_off() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let storm = Smsc::start(
        dir.path(),
        "storm",
        &["--throttle-rate", "0.9", "--dlr-delay-ms", "5"],
    )
    .await;
    let calm = Smsc::start(
        dir.path(),
        "calm",
        &["--throttle-rate", "0.3", "--dlr-delay-ms", "5"],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    post(&node, "/admin/v1/channels", storm.channel("storm")).await;
    post(&node, "/admin/v1/channels", calm.channel("calm")).await;
    post(
        &node,
        "/admin/v1/routes",
        json!({"id": "p", "match": {}, "channels": [{"id": "storm"}, {"id": "calm"}]}),
    )
    .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    let ids = node.send_all_accepted(&key, bodies(60, "th", TO)).await;
    // The storm line is taken out of rotation once most of its answers are throttled:
    // queued messages and the ones being sent on it move on to the calm line, and the
    // answers of one window halve the line's rate once, not once each. All 60 are final
    // within seconds (3-7 s measured); before those two rules it took 55-90 s, with
    // messages retried on the storm line 8 times each after a doubling pause.
    let started = std::time::Instant::now();
    for id in &ids {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        let v = node
            .wait_final(&key, id, left.max(Duration::from_secs(1)))
            .await;
        assert_eq!(
            v["status"], "delivered",
            "throttling must never fail a message: {v}"
        );
    }
    let st = storm.stats().await.unwrap_or_default();
    assert!(st["throttled"].as_u64().unwrap_or(0) > 0, "{st}");
    let v = node.channel_view("storm").await;
    let rate = v["health"]["send_rate"].as_f64().unwrap_or(f64::MAX);
    assert!(
        rate < 2000.0,
        "AIMD backed the storm line off below its TPS: {v}"
    );
    assert_eq!(
        accepted(&storm).await + accepted(&calm).await,
        60,
        "each message accepted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_split_holds_its_share_and_reports_significance() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let a = Smsc::start(dir.path(), "va", &["--dlr-delay-ms", "5"]).await;
    let b = Smsc::start(
        dir.path(),
        "vb",
        &[
            "--dlr-delay-ms",
            "5",
            "--dlr-mix",
            "delivered=60,undeliverable=40",
        ],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ca = a.channel("va");
    ca["cost"] = json!({"default": 0.01});
    post(&node, "/admin/v1/channels", ca).await;
    let mut cb = b.channel("vb");
    cb["cost"] = json!({"default": 0.002});
    post(&node, "/admin/v1/channels", cb).await;
    post(&node, "/admin/v1/routes", json!({"id": "ab", "match": {}, "channels": [{"id": "va"}],
        "ab": {"split_percent": 30, "variant_b": {"strategy": "priority", "channels": [{"id": "vb"}]}}})).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    let n = 3000;
    // Which variant each message was given: the split hashes the message id, so the test
    // knows each message's variant from its id and text alone.
    let mut variant_b_of_text = std::collections::HashMap::new();
    for k in 0..3 {
        let r = node
            .post_json(
                "/v1/messages/batch",
                &key,
                &json!({"messages": bodies(1000, &format!("ab{k}-"), TO)}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for (i, item) in r.json["results"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let id = item["id"]
                .as_str()
                .unwrap_or_else(|| panic!("item {i}: {item}"));
            variant_b_of_text.insert(
                format!("ab{k}- {i:05}"),
                smsgw::routing::engine::ab_bucket(id) < 30,
            );
        }
    }
    assert_eq!(
        variant_b_of_text.len(),
        n as usize,
        "every message accepted"
    );
    let report = eventually(
        "all A/B messages final",
        Duration::from_secs(120),
        || async {
            let (s, v) = node
                .admin(Method::GET, "/admin/v1/routes/ab/ab", None)
                .await;
            (s == 200
                && v["a"]["finals"].as_u64().unwrap_or(0) + v["b"]["finals"].as_u64().unwrap_or(0)
                    >= n)
                .then_some(v)
        },
    )
    .await;
    let (na, nb) = (accepted(&a).await, accepted(&b).await);
    // Every message went out on its own variant's line: read from the simulators' ledgers
    // (flushed every 100 ms) which texts each one took.
    let texts = |s: &Smsc| -> Vec<String> {
        s.ledger_lines()
            .iter()
            .map(|l| {
                let hex = l["short_message_hex"].as_str().unwrap_or("");
                let bytes: Vec<u8> = (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .collect()
    };
    let (on_a, on_b) = eventually("ledgers flushed", Duration::from_secs(10), || async {
        let (ta, tb) = (texts(&a), texts(&b));
        (ta.len() as u64 == na && tb.len() as u64 == nb).then_some((ta, tb))
    })
    .await;
    let astray_a = on_a
        .iter()
        .filter(|t| variant_b_of_text.get(*t) != Some(&false));
    let astray_b = on_b
        .iter()
        .filter(|t| variant_b_of_text.get(*t) != Some(&true));
    let (astray_a, astray_b): (Vec<_>, Vec<_>) = (astray_a.collect(), astray_b.collect());
    assert!(
        astray_a.is_empty() && astray_b.is_empty(),
        "on A but not variant A: {:?}; on B but not variant B: {:?}; {report}",
        &astray_a[..astray_a.len().min(5)],
        &astray_b[..astray_b.len().min(5)]
    );
    assert_eq!(
        na + nb,
        n,
        "each message accepted once (A {na}, B {nb}): {report}"
    );
    let assigned_b = variant_b_of_text.values().filter(|b| **b).count() as u64;
    assert_eq!(
        report["a"]["messages"].as_u64(),
        Some(n - assigned_b),
        "{report}"
    );
    assert_eq!(
        report["b"]["messages"].as_u64(),
        Some(assigned_b),
        "{report}"
    );
    // 3,000 draws at 30 %: one standard deviation is 0.84 points.
    let share = nb as f64 / n as f64;
    assert!(
        (share - 0.30).abs() <= 0.03,
        "variant B share {share} (A {na}, B {nb}): {report}"
    );
    assert!(
        report["a"]["delivery_rate"].as_f64().unwrap_or(0.0) > 0.99,
        "{report}"
    );
    assert!(
        (report["b"]["delivery_rate"].as_f64().unwrap_or(0.0) - 0.6).abs() < 0.08,
        "{report}"
    );
    assert_eq!(report["significant"], true, "{report}");
    assert!(
        report["p_value"].as_f64().unwrap_or(1.0) < 0.001,
        "{report}"
    );
    assert!(
        report["a"]["dlr_latency_ms_p50"].as_u64().is_some(),
        "{report}"
    );
    let cost_a = report["a"]["cost"].as_f64().unwrap_or(0.0);
    assert!(
        (cost_a - na as f64 * 0.01).abs() < 1e-6,
        "cost of A: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_operator_table_and_hlr_override() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let s = Smsc::start(dir.path(), "p", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    for id in ["any", "de", "vodafone", "acme-otp", "short"] {
        let mut ch = s.channel(id);
        if id == "vodafone" {
            // Text is planned for the channel of the route the message takes.
            ch["options"] = json!({"text_coding": "latin1"});
        }
        post(&node, "/admin/v1/channels", ch).await;
    }
    for r in [
        json!({"id": "default", "match": {}, "channels": [{"id": "any"}]}),
        json!({"id": "de", "match": {"prefix": ["+49"]}, "channels": [{"id": "de"}]}),
        json!({"id": "vodafone", "match": {"operator": "26202"}, "channels": [{"id": "vodafone"}]}),
        json!({"id": "short", "match": {"sender_type": "short_code", "prefix": ["+49"]}, "channels": [{"id": "short"}]}),
        json!({"id": "acme-otp", "match": {"tenant": "acme", "category": "otp"}, "channels": [{"id": "acme-otp"}]}),
    ] {
        post(&node, "/admin/v1/routes", r).await;
    }
    let key = node.tenant("acme", json!({})).await;
    let route_of = |to: &'static str, extra: Value| {
        let node = &node;
        let key = key.clone();
        async move {
            let mut body = json!({"to": to, "text": "hi"});
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    b.insert(k.clone(), v.clone());
                }
            }
            let r = node.post_json("/v1/messages/preview", &key, &body).await;
            assert_eq!(r.status, 200, "{}", r.text);
            let route = r.json["route"]["id"].as_str().unwrap_or("").to_string();
            let coding = if route == "vodafone" {
                "latin1"
            } else {
                "gsm7"
            };
            assert_eq!(r.json["encoding"], coding, "{}", r.text);
            route
        }
    };
    assert_eq!(route_of("+33612345678", json!({})).await, "default");
    assert_eq!(route_of("+4930123456", json!({})).await, "de");
    // +49172 is Vodafone (26202) in the built-in table: operator beats prefix.
    assert_eq!(route_of("+4917212345678", json!({})).await, "vodafone");
    assert_eq!(
        route_of("+4917212345678", json!({"from": "12345"})).await,
        "short"
    );
    assert_eq!(
        route_of(
            "+4917212345678",
            json!({"from": "12345", "category": "otp"})
        )
        .await,
        "acme-otp"
    );

    // Replace the number-range table: +49172 now belongs to another operator.
    let r = node
        .request(Method::PUT, "/admin/v1/routing/number-ranges", Some(ADMIN_TOKEN), &[],
            Some(b"prefix,country,mcc,mnc,operator\n+49172,DE,262,03,Other\n+49151,DE,262,02,Ported\n".to_vec()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ranges"], 2);
    assert_eq!(route_of("+4917212345678", json!({})).await, "de");
    assert_eq!(route_of("+4915112345678", json!({})).await, "vodafone");
    let bad = node
        .request(
            Method::PUT,
            "/admin/v1/routing/number-ranges",
            Some(ADMIN_TOKEN),
            &[],
            Some(b"+49,Germany,1,2".to_vec()),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);

    // HLR hook: the number-portability answer overrides the table; a dead hook falls back.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hlr = l.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/hlr",
        axum::routing::get(
            |q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                let ported = q.get("msisdn").map(|m| m == "+4930123456").unwrap_or(false);
                axum::Json(if ported {
                    json!({"mccmnc": "26202"})
                } else {
                    json!({})
                })
            },
        ),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    let (st, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/routing/settings",
            Some(json!({"hlr_url": format!("http://{hlr}/hlr"), "hlr_timeout_ms": 500})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(route_of("+4930123456", json!({})).await, "vodafone");
    assert_eq!(route_of("+4930123457", json!({})).await, "de");
    let (st, _) = node
        .admin(
            Method::PATCH,
            "/admin/v1/routing/settings",
            Some(json!({"hlr_url": "http://127.0.0.1:9/none", "hlr_timeout_ms": 200})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(route_of("+4930123456", json!({})).await, "de");
    let (st, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(
                json!({"id": "x", "match": {}, "strategy": "fastest", "channels": [{"id": "any"}]}),
            ),
        )
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (422, Some("strategy")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_breach_fires_a_signed_alert_and_windows_are_reported() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let s = Smsc::start(
        dir.path(),
        "sla",
        &[
            "--dlr-delay-ms",
            "5",
            "--dlr-mix",
            "delivered=40,undeliverable=60",
        ],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    let alerts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let sink = alerts.clone();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/alert",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let sig = h
                    .get("smsgw-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                sink.lock().expect("lock").push((sig, body));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    let mut c = s.channel("a");
    c["sla"] = json!({"window": "5m", "min_success_rate": 0.9, "alert_url": format!("http://{addr}/alert"), "alert_secret": "alert-secret-1"});
    post(&node, "/admin/v1/channels", c).await;
    post(
        &node,
        "/admin/v1/routes",
        json!({"id": "d", "match": {}, "channels": [{"id": "a"}]}),
    )
    .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    let ids = node.send_all_accepted(&key, bodies(40, "sla", TO)).await;
    for id in &ids {
        node.wait_final(&key, id, Duration::from_secs(30)).await;
    }
    let (sig, body) = eventually("SLA alert", Duration::from_secs(20), || async {
        alerts.lock().expect("lock").first().cloned()
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    assert!(
        smsgw::webhooks::signature::verify(b"alert-secret-1", &sig, body.as_bytes(), now, 300),
        "signature {sig}"
    );
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["type"], "channel.sla_breached", "{v}");
    assert_eq!(v["breaches"][0]["metric"], "success_rate", "{v}");
    let view = node.channel_view("a").await;
    for w in ["5m", "1h", "24h"] {
        assert!(
            view["stats"]["sla"][w]["success_rate"]
                .as_f64()
                .is_some_and(|r| r < 0.9),
            "{w}: {view}"
        );
        assert!(
            view["stats"]["sla"][w]["availability"].as_f64().is_some(),
            "{w}: {view}"
        );
    }
    let m = node.metrics_text().await;
    assert!(
        metric_value(
            &m,
            "smsgw_channel_sla_success_rate",
            &[("channel", "a"), ("window", "5m")]
        )
        .is_some(),
        "{m}"
    );
}

/// The preview's `route` and `cost` for `TO`.
async fn preview(node: &GwNode, key: &str) -> Value {
    let r = node
        .post_json(
            "/v1/messages/preview",
            key,
            &json!({"to": TO, "text": "hi"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn patch_route(node: &GwNode, id: &str, body: Value) -> Value {
    let (s, v) = node
        .admin(
            Method::PATCH,
            &format!("/admin/v1/routes/{id}"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 200, "PATCH {id} {body}: {v}");
    v
}

/// Audit s18 defects 1, 2, 3, 9, 10: weight 0 is failover only, the preview names the
/// channel a send takes now (strategy, live drain state, price list) with the price
/// routing uses, routes change in place with PATCH, and `/ab` of a route without a test
/// is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_zero_is_failover_only_and_the_preview_names_the_channel_a_send_takes() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let a = Smsc::start(dir.path(), "a", &["--dlr-delay-ms", "5"]).await;
    let b = Smsc::start(dir.path(), "b", &["--dlr-delay-ms", "5"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    post(&node, "/admin/v1/channels", a.channel("a")).await;
    post(&node, "/admin/v1/channels", b.channel("b")).await;
    let key = node.tenant("acme", json!({})).await;

    // Every weight 0: nothing would carry traffic.
    let zero = |id: &str| json!({"id": id, "weight": 0});
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(
                json!({"id": "w0", "match": {"prefix": ["+49"]}, "strategy": "weighted",
                        "channels": [zero("a"), zero("b")]}),
            ),
        )
        .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (422, &json!("invalid_field")),
        "{v}"
    );
    assert_eq!(v["error"]["field"], "channels", "{v}");

    post(
        &node,
        "/admin/v1/routes",
        json!({"id": "w0", "match": {"prefix": ["+49"]}, "strategy": "weighted",
               "channels": [zero("a"), {"id": "b", "weight": 1}]}),
    )
    .await;
    node.wait_bound().await;
    let p = preview(&node, &key).await;
    assert_eq!(p["route"]["channel"], "b", "{p}");
    assert_eq!(p["route"]["candidates"], json!(["b", "a"]), "{p}");
    let ids = node.send_all_accepted(&key, bodies(40, "w0", TO)).await;
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(30))
        .await;
    assert_eq!(accepted(&a).await, 0, "weight 0 is never chosen first");
    assert_eq!(accepted(&b).await, 40);

    // /ab of a route without a test: 404, not zeros.
    let (s, v) = node
        .admin(Method::GET, "/admin/v1/routes/w0/ab", None)
        .await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_found")), "{v}");

    // Weights changed in place: the preview follows the likelier channel.
    patch_route(
        &node,
        "w0",
        json!({"channels": [{"id": "a", "weight": 9}, {"id": "b", "weight": 1}]}),
    )
    .await;
    let p = preview(&node, &key).await;
    assert_eq!(p["route"]["channel"], "a", "{p}");
    assert_eq!(p["route"]["most_likely"], true, "{p}");
    let (s, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/routes/nope",
            Some(json!({"strategy": "priority"})),
        )
        .await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_found")), "{v}");
    let (s, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/routes/w0",
            Some(json!({"channels": [{"id": "a"}, {"id": "a"}]})),
        )
        .await;
    assert_eq!(
        (s, &v["error"]["field"]),
        (422, &json!("channels[1].id")),
        "{v}"
    );

    // least_cost with a price list: the preview names the cheapest line and its price.
    let r = node
        .request(
            Method::PUT,
            "/admin/v1/routing/price-list",
            Some(ADMIN_TOKEN),
            &[],
            Some(b"channel,prefix,price\na,+49,0.006\nb,+49,0.001\n".to_vec()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = patch_route(&node, "w0", json!({"strategy": "least_cost"})).await;
    assert_eq!(v["strategy"], "least_cost", "{v}");
    let p = preview(&node, &key).await;
    assert_eq!(p["route"]["channel"], "b", "{p}");
    assert_eq!(p["route"]["most_likely"], false, "{p}");
    assert_eq!(p["cost"], 0.001, "{p}");
    assert_eq!(p["cost_per_part"], 0.001, "{p}");
    let ids = node.send_all_accepted(&key, bodies(10, "lc", TO)).await;
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(30))
        .await;
    assert_eq!(
        accepted(&b).await,
        50,
        "the send took the previewed channel"
    );

    // priority with the first channel drained: the preview names the second.
    patch_route(
        &node,
        "w0",
        json!({"strategy": "priority", "channels": [{"id": "a"}, {"id": "b"}]}),
    )
    .await;
    assert_eq!(preview(&node, &key).await["route"]["channel"], "a");
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/a/drain", None)
        .await;
    assert!(s == 200 || s == 204, "{v}");
    let p = preview(&node, &key).await;
    assert_eq!(p["route"]["channel"], "b", "{p}");
}
