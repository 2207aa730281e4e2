//! The operator side under stress: throttling (0x58) is retried, a dropped connection
//! is re-bound without losing messages, and a permanent error fails the message.
use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

async fn setup(dir: &std::path::Path, name: &str, flags: &[&str]) -> (Smsc, GwNode, String) {
    gateway_with_smsc(dir, name, flags, &[]).await
}

/// Distinct texts so the ledger can tell copies apart.
fn bodies(n: usize, tag: &str) -> Vec<Value> {
    (0..n).map(|i| json!({"to": TO, "text": format!("{tag} {i:04}"), "client_ref": format!("{tag}-{i}")})).collect()
}

/// A channel configured above the operator's contract (tps 2000 against an SMSC that
/// takes 100 submits/s and throttles the rest, as real SMSCs do) runs near the contract:
/// the throttled answers of one window halve the rate once, not once each, and the rate
/// climbs back in time. 400 messages take about 4 s; when every answer halved the rate
/// they took 26 s (`simulations/contract_rate.py`, `docs/benchmarks.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_above_its_contract_runs_near_the_contract() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(
        dir.path(),
        "ct",
        &["--max-tps", "100", "--dlr-delay-ms", "5"],
    )
    .await;
    let r = node
        .post_json(
            "/v1/messages/batch",
            &key,
            &json!({"messages": bodies(400, "ct")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // 4 s at the contract; the bound leaves room for a loaded machine, not for 1/6 of it.
    eventually(
        "400 submits accepted by the SMSC",
        Duration::from_secs(15),
        || async {
            let st = smsc.stats().await?;
            (st["accepted"].as_u64()? >= 400).then_some(())
        },
    )
    .await;
    let st = smsc.stats().await.expect("stats");
    assert!(
        st["throttled"].as_u64().unwrap_or(0) > 0,
        "the channel did run into the contract: {st}"
    );
    assert_eq!(st["accepted"], 400, "each message accepted once: {st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_submits_are_retried_until_delivered() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(
        dir.path(),
        "st",
        &["--throttle-rate", "0.5", "--dlr-delay-ms", "20"],
    )
    .await;
    let ids = node.send_all_accepted(&key, bodies(40, "thr")).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(
            v["status"], "delivered",
            "a throttled message must be retried, not failed: {v}"
        );
    }
    let st = smsc.stats().await.expect("stats");
    assert!(
        st["throttled"].as_u64().unwrap_or(0) > 0,
        "the SMSC throttled something: {st}"
    );
    assert_eq!(
        st["accepted"], 40,
        "each message accepted once by the SMSC: {st}"
    );
    assert_eq!(
        ledger_duplicates(&smsc.ledger_at_least(40).await),
        0,
        "a throttled submit is not a copy"
    );
    let m = node.metrics_text().await;
    let throttled = metric_value(
        &m,
        "smsgw_channel_submit_total",
        &[("channel", "a"), ("result", "throttled")],
    );
    assert!(
        throttled.is_some_and(|v| v >= 1.0),
        "smsgw_channel_submit_total{{result=\"throttled\"}} missing:\n{m}"
    );
    let ok = metric_value(
        &m,
        "smsgw_channel_submit_total",
        &[("channel", "a"), ("result", "ok")],
    );
    assert_eq!(ok, Some(40.0), "ok submits:\n{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_rebinds_and_delivers_everything() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // Two binds: receipts of a dropped connection arrive on the other bind.
    let smsc = Smsc::start(
        dir.path(),
        "sr",
        &["--drop-after", "50", "--dlr-delay-ms", "20"],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("a");
    ch["binds"] = json!(2);
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    let ids = node.send_all_accepted(&key, bodies(200, "drop")).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    let st = smsc.stats().await.expect("stats");
    let binds = st["binds"].as_u64().unwrap_or(0);
    assert!(
        binds >= 5,
        "200 submits with a drop every 50 submits per connection need at least 5 binds: {st}"
    );
    // Every message reached the SMSC; only submits cut off by a drop may be resent.
    let ledger = smsc.ledger_at_least(200).await;
    let texts: HashSet<String> = ledger
        .iter()
        .filter_map(|l| l["short_message_hex"].as_str().map(String::from))
        .collect();
    assert_eq!(texts.len(), 200, "every message in the SMSC ledger");
    let dups = ledger_duplicates(&ledger);
    let window = 16 * binds as usize;
    assert!(
        dups <= window,
        "{dups} copies for {binds} drops is more than a window per drop"
    );
    // The channel is bound again.
    node.wait_bound().await;
    let ch = node.channel_view("a").await;
    assert_eq!(ch["state"], "bound", "{ch}");
    let m = node.metrics_text().await;
    assert_eq!(
        metric_value(&m, "smsgw_channel_up", &[("channel", "a")]),
        Some(1.0),
        "channel_up after rebind:\n{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_submit_error_fails_with_an_error_object() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(dir.path(), "sf", &["--error-rate", "1.0"]).await;
    let ids = node.send_all_accepted(&key, bodies(3, "perm")).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(20)).await;
        assert_eq!(v["status"], "failed", "{v}");
        let statuses: Vec<&str> = v["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["status"].as_str())
            .collect();
        assert_eq!(statuses, ["accepted", "failed"], "{v}");
        // The channel that refused it is named, in the status and in its event.
        assert_eq!(v["channel"], "a", "{v}");
        assert_eq!(v["events"][1]["channel"], "a", "{v}");
        let e = &v["error"];
        assert!(e.is_object(), "failed needs an error object: {v}");
        assert!(
            e["code"]
                .as_str()
                .is_some_and(|c| NORMALISED_ERROR_CODES.contains(&c)),
            "normalised code: {v}"
        );
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        let raw = e["smsc_code"].as_str().unwrap_or("");
        assert!(
            raw.to_ascii_lowercase().contains("45"),
            "raw command_status 0x45 kept: {v}"
        );
        // The part was never accepted by the SMSC: it ended with the message.
        assert_eq!(v["part_states"][0]["status"], "failed", "{v}");
        assert_eq!(v["part_states"][0]["error"]["code"], e["code"], "{v}");
    }
    // A permanent error is not retried.
    let st = smsc.stats().await.expect("stats");
    assert_eq!(st["errors"], 3, "one submit per message: {st}");
    let m = node.metrics_text().await;
    assert_eq!(
        metric_value(&m, "smsgw_channel_submit_total", &[("channel", "a")]),
        Some(3.0),
        "{m}"
    );
}

/// The SMSC answers 6 submits and closes the connection on the 7th (unanswered, not in
/// its ledger). Every response it wrote before closing must be used: a part with an
/// ESME_ROK response is never submitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_between_parts_resends_only_the_missing_part() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // An odd drop count so that drops land between the two parts of a message.
    let (smsc, node, key) = setup(
        dir.path(),
        "sp",
        &["--drop-after", "7", "--dlr-delay-ms", "20"],
    )
    .await;
    let bodies: Vec<Value> = (0..100)
        .map(|i| json!({"to": TO, "text": format!("{i:03} {}", "two parts each ".repeat(12))}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
        assert_eq!(v["parts"], 2, "{v}");
    }
    let ledger = smsc.ledger_at_least(200).await;
    let st = smsc.stats().await.expect("stats");
    assert!(
        st["binds"].as_u64().unwrap_or(0) >= 28,
        "200 parts with a drop every 7 submits: {st}"
    );
    // The dropped submit is never answered, so it is not in the ledger: every copy in the
    // ledger is a part that had been acknowledged and was sent again.
    assert_eq!(
        ledger_duplicates(&ledger),
        0,
        "acknowledged parts were sent again ({} lines for 200 parts)",
        ledger.len()
    );
    assert_eq!(ledger.len(), 200, "{st}");
    // Both parts of a message carry the same concatenation reference, resent or not.
    let mut refs: std::collections::HashMap<String, Vec<(String, String)>> =
        std::collections::HashMap::new();
    for l in &ledger {
        let hex = l["short_message_hex"].as_str().unwrap_or("");
        assert!(
            hex.starts_with("050003") && hex.len() > 12,
            "8-bit concatenation UDH: {hex}"
        );
        let (reference, total, seq) = (&hex[6..8], &hex[8..10], &hex[10..12]);
        assert_eq!(total, "02", "{hex}");
        refs.entry(reference.to_string())
            .or_default()
            .push((seq.to_string(), hex[12..].to_string()));
    }
    for (r, parts) in &refs {
        let mut seqs: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
        seqs.sort();
        assert!(
            seqs.chunks(2).all(|c| c == ["01", "02"]),
            "reference {r}: parts {seqs:?}"
        );
    }
}

/// A message that expires while it waits on a channel that cannot send leaves the
/// channel's queue: its depth (admin API and `smsgw_queue_depth`) goes back to 0 instead
/// of counting the expired message until the line comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_message_leaves_a_dead_channels_queue() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let faults = dir.path().join("faults");
    std::fs::write(&faults, "").expect("faults file");
    let faults_env = faults.to_string_lossy().to_string();
    let node = GwNode::start_with_env(
        dir.path(),
        &[],
        &[("SMSGW_FAULTS_FILE", faults_env.as_str())],
    )
    .await;
    // Nothing listens on the channel's port: it never binds.
    let dead = json!({"id": "dead", "protocol": "smpp", "host": "127.0.0.1", "port": free_port(),
                      "system_id": "x", "password": "pw", "tps": 100, "window": 4});
    node.channels_and_route(&[dead]).await;
    let key = node.tenant("acme", json!({})).await;
    let (s, v) = node
        .send(
            &key,
            json!({"to": "+4915112345678", "text": "waits", "validity_seconds": 60}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    eventually("the message queued", Duration::from_secs(10), || async {
        (dead_queue_depth(&node).await == Some(1)).then_some(())
    })
    .await;
    // Two minutes later, as far as the node can tell: validity has passed.
    std::fs::write(&faults, "clock_skew_ms=120000").expect("skew the clock");
    let v = node.wait_final(&key, &id, Duration::from_secs(20)).await;
    assert_eq!(v["status"], "expired", "{v}");
    assert_eq!(v["part_states"][0]["status"], "expired", "{v}");
    eventually("the queue emptied", Duration::from_secs(10), || async {
        (dead_queue_depth(&node).await == Some(0)).then_some(())
    })
    .await;
    eventually("the gauge at 0", Duration::from_secs(10), || async {
        let m = node.metrics_text().await;
        (metric_value(&m, "smsgw_queue_depth", &[("channel", "dead")]) == Some(0.0)).then_some(())
    })
    .await;
}

/// The `dead` channel's queue depth as the admin API shows it.
async fn dead_queue_depth(node: &GwNode) -> Option<u64> {
    let (_, v) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels", None)
        .await;
    v.as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == "dead"))
        .and_then(|c| c["queue_depth"].as_u64())
}

/// `options.response_timeout_seconds` sets how long a submit waits for the operator's
/// answer: at 1 s against an SMSC that answers after 2.5 s the part is sent again
/// (counted in `smsgw_resubmits_total`) and the late positive answer is counted in
/// `smsgw_late_submit_responses_total`, the sign that a recipient may get two copies.
/// Values outside 1..=300 are refused naming the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_timeout_is_a_channel_option_and_late_answers_are_counted() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "slow", &["--submit-latency-ms", "2500"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    for bad in [json!(0), json!(301), json!("10")] {
        let mut ch = smsc.channel("bad");
        ch["options"] = json!({"response_timeout_seconds": bad});
        let (s, v) = node
            .admin(reqwest::Method::POST, "/admin/v1/channels", Some(ch))
            .await;
        assert_eq!(s, 422, "{bad}: {v}");
        assert_eq!(
            v["error"]["field"], "options.response_timeout_seconds",
            "{v}"
        );
    }
    let mut ch = smsc.channel("a");
    ch["options"] = json!({"response_timeout_seconds": 1});
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    node.send_all_accepted(&key, bodies(1, "slow")).await;
    let counted = |name: &'static str| {
        let node = &node;
        async move {
            let m = node.metrics_text().await;
            metric_value(&m, name, &[]).unwrap_or(0.0)
        }
    };
    eventually(
        "a resubmit and a late answer",
        Duration::from_secs(20),
        || async {
            (counted("smsgw_resubmits_total").await >= 1.0
                && counted("smsgw_late_submit_responses_total").await >= 1.0)
                .then_some(())
        },
    )
    .await;
}

/// An SMSC that refuses the bind (wrong password: ESME_RINVPASWD) shows the channel
/// `down` with the reason in words, as a refused CMPP/SMGP/SGIP login does, while the
/// bind keeps retrying with back-off; a line nothing answers on stays `connecting`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_smpp_bind_shows_the_channel_down_with_the_reason() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "pw", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("a");
    ch["password"] = json!("WRONG");
    node.channels_and_route(&[ch]).await;
    let v = eventually("bind refusal shown", Duration::from_secs(30), || async {
        let v = node.channel_view("a").await;
        (v["state"] == "down" && !v["last_error"].is_null()).then_some(v)
    })
    .await;
    let reason = v["last_error"].as_str().unwrap_or("");
    assert!(reason.contains("0xe (invalid password)"), "{v}");
}
