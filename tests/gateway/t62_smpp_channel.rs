//! SMPP channel behaviour an operator sees (from the SMPP audit): a drain finishes the
//! submits in flight before it unbinds (no copy sent twice), temporary errors back off
//! instead of failing a message within milliseconds, `tps` holds in every second at the
//! SMSC, an SMSC that drops each bind does not get a reconnect storm (nor does the lost
//! session count as failed submits), the remaining validity and the channel's
//! service_type / TON / NPI are on the wire, and a transmitter channel gets its receipts
//! through a receiver bind.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112340073";

async fn control(s: &Smsc, body: Value) {
    let r = client()
        .post(format!("http://127.0.0.1:{}/control", s.control))
        .json(&body)
        .send()
        .await
        .expect("control");
    assert!(r.status().is_success(), "control {body}");
}

async fn smsc_stat(s: &Smsc, key: &str) -> u64 {
    s.stats().await.and_then(|v| v[key].as_u64()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_held_responses_and_sends_nothing_twice() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // Responses held 2 s: the drain lands with every submit unanswered.
    let smsc = Smsc::start(
        dir.path(),
        "dr",
        &["--submit-latency-ms", "2000", "--dlr-delay-ms", "20"],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("d");
    ch["window"] = json!(4);
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let bodies: Vec<Value> = (0..4)
        .map(|i| json!({"to": TO, "text": format!("drain me {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    eventually("4 submits held", Duration::from_secs(10), || async {
        (smsc_stat(&smsc, "submits").await >= 4).then_some(())
    })
    .await;
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/d/drain", None)
        .await;
    assert!(s < 300, "drain: {s} {v}");
    // The held responses are waited for before the unbind: every message is sent, and
    // (receipts of this simulator follow at once) delivered, without waiting for undrain.
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(15)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/d/undrain", None)
        .await;
    assert!(s < 300, "undrain: {s} {v}");
    node.wait_bound().await;
    // Undrained, the channel has nothing to send again.
    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "after undrain"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    node.wait_final(&key, &id, Duration::from_secs(30)).await;
    let ledger = smsc.ledger_at_least(5).await;
    assert_eq!(ledger_duplicates(&ledger), 0, "drain resent: {ledger:?}");
    assert_eq!(ledger.len(), 5);
    let resubmits = metric_value(&node.metrics_text().await, "smsgw_resubmits_total", &[]);
    assert!(
        resubmits.unwrap_or(0.0) == 0.0,
        "resubmits after a drain: {resubmits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_errors_back_off_and_the_message_gets_through() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) =
        gateway_with_smsc(dir.path(), "te", &["--dlr-delay-ms", "20"], &[]).await;
    control(&smsc, json!({"temp_error_rate": 1.0})).await;
    let started = Instant::now();
    let (s, v) = node.send(&key, json!({"to": TO, "text": "hiccup"})).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    eventually("a temporary error", Duration::from_secs(10), || async {
        (smsc_stat(&smsc, "errors").await >= 1).then_some(())
    })
    .await;
    // Tries at about 0 s, 1 s, 3 s (pauses of 1 s, 2 s, ...): not five in 120 ms.
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(started.elapsed())).await;
    let errors = smsc_stat(&smsc, "errors").await;
    assert!(
        (1..=3).contains(&errors),
        "{errors} temporary errors in 2.5 s"
    );
    let (_, v) = node.message(&key, &id).await;
    assert_eq!(v["status"], "accepted", "still trying: {v}");
    // Its history says why it waits, once (not a note per retry).
    let notes: Vec<&Value> = v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["notes"].as_array().into_iter().flatten())
        .filter(|n| {
            n["note"]
                .as_str()
                .is_some_and(|t| t.contains("temporary error"))
        })
        .collect();
    assert_eq!(notes.len(), 1, "{v}");
    // The SMSC recovers: the next try gets through.
    control(&smsc, json!({"temp_error_rate": 0.0})).await;
    let v = node.wait_final(&key, &id, Duration::from_secs(20)).await;
    assert_eq!(v["status"], "delivered", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_pausing_after_temporary_errors_do_not_hold_the_line() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "hol", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("narrow");
    ch["window"] = json!(2);
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    // The SMSC cannot serve one destination for a while: two messages to it fill the
    // channel's window of 2 and back off for minutes.
    control(&smsc, json!({"temp_error_to": "4479990"})).await;
    let stuck = node
        .send_all_accepted(
            &key,
            (0..2)
                .map(|i| json!({"to": format!("+447999000{i:03}"), "text": "stuck"}))
                .collect(),
        )
        .await;
    eventually(
        "both stuck ones refused",
        Duration::from_secs(10),
        || async { (smsc_stat(&smsc, "errors").await >= 2).then_some(()) },
    )
    .await;
    // Others still go through meanwhile, on the slots the pausing ones lent.
    let ids = node
        .send_all_accepted(
            &key,
            (0..3)
                .map(|i| json!({"to": TO, "text": format!("others {i}")}))
                .collect(),
        )
        .await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(10)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    for id in &stuck {
        let (_, v) = node.message(&key, id).await;
        assert_eq!(v["status"], "accepted", "still trying: {v}");
    }
}

/// Most ledger lines whose `at_ms` fall within `span_ms` of each other.
fn busiest(at: &[i64], span_ms: i64) -> usize {
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t - at[i] < span_ms).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tps_holds_in_every_second_at_the_smsc() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "tp", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("slow");
    ch["tps"] = json!(5);
    ch["window"] = json!(50);
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let bodies: Vec<Value> = (0..15)
        .map(|i| json!({"to": TO, "text": format!("paced {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(30))
        .await;
    let mut at: Vec<i64> = smsc
        .ledger_at_least(15)
        .await
        .iter()
        .filter_map(|l| l["at_ms"].as_i64())
        .collect();
    at.sort_unstable();
    // 950 ms: a little room for scheduling jitter between gateway and simulator; the old
    // bucket put 9 submits into the first second.
    let most = busiest(&at, 950);
    assert!(
        most <= 5,
        "{most} submits within one second at tps 5: {at:?}"
    );
    // And the rate is kept: 15 submits take about 2 s, not 3.
    let took = at[at.len() - 1] - at[0];
    assert!(took < 2900, "15 submits at tps 5 took {took} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smsc_dropping_every_bind_gets_no_reconnect_storm_and_health_stays() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "st", &["--drop-after-bind-ms", "50"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("storm");
    ch["binds"] = json!(3);
    node.channels_and_route(&[ch]).await;
    let _key = node.tenant("t", json!({})).await;
    let started = Instant::now();
    eventually("first binds", Duration::from_secs(10), || async {
        (smsc_stat(&smsc, "binds").await >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;
    let binds = smsc_stat(&smsc, "binds").await;
    // Doubling back-off per bind (0.1, 0.2, 0.4 ... s, jittered): a handful each in
    // 6 s; the audit saw about 6 per second per bind.
    assert!(
        binds <= 30,
        "{binds} binds in 6 s from 3 binds of one channel"
    );
    let v = node.channel_view("storm").await;
    assert!(
        v["stats"]["session_losses"].as_u64().unwrap_or(0) >= 3,
        "lost sessions shown: {v}"
    );
    // Lost sessions are not failed submits: no submit was made, health is untouched.
    let score = v["health"]["score"].as_f64().unwrap_or(0.0);
    assert!(score > 0.5, "health of a channel that sent nothing: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validity_service_type_and_ton_npi_are_on_the_wire() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "vw", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    // Bad options are refused naming the field.
    for (opts, field) in [
        (json!({"service_type": "TOOLONG"}), "options.service_type"),
        (json!({"source_ton": 9}), "options.source_ton"),
        (json!({"dest_npi": 2}), "options.dest_npi"),
    ] {
        let mut ch = smsc.channel("bad");
        ch["options"] = opts.clone();
        let (s, v) = node
            .admin(Method::POST, "/admin/v1/channels", Some(ch))
            .await;
        assert_eq!(s, 422, "{opts}: {v}");
        assert!(v.to_string().contains(field), "{opts}: {v}");
    }
    let mut ch = smsc.channel("w");
    ch["options"] = json!({"service_type": "CMT", "source_ton": 1, "source_npi": 1,
                           "dest_ton": 2, "dest_npi": 8});
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "from": "ACME", "text": "otp 1234", "validity_seconds": 300}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let line = smsc.ledger_at_least(1).await.remove(0);
    let validity = line["validity_period"].as_str().unwrap_or("");
    // SMPP relative time: what is left of 300 s when it went out (4:xx or 5:00).
    assert!(
        validity == "000000000500000R"
            || (validity.starts_with("0000000004") && validity.ends_with("000R")),
        "validity_period {validity:?}: {line}"
    );
    assert_eq!(line["service_type"], "CMT", "{line}");
    assert_eq!(line["ton_npi"], json!([1, 1, 2, 8]), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transmitter_channel_gets_its_receipts_on_a_receiver_bind() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "tx", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("t");
    ch["bind"] = json!("transmitter");
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let bodies: Vec<Value> = (0..3)
        .map(|i| json!({"to": TO, "text": format!("tx only {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(30)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    // One transmitter and one receiver bind.
    assert!(smsc_stat(&smsc, "binds").await >= 2);
    // The channel shows its receiver, so an operator sees whether receipts can arrive.
    let (status, v) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels/t", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["binds"][0]["receiver"], "bound", "{v}");
}

/// Audit: an SMSC that binds and answers enquire_link but never a submit kept its
/// session for good (never recycled, `session_losses` 0) while the gateway sent the
/// same parts again on it, 70 unanswered submit_sm with a window of 10. Now a timed-out
/// submit keeps its window slot until answered, so the unanswered PDUs on one
/// connection never exceed the window, and a session whose slots are all held by
/// unanswered submits is unbound and closed as hung: a session loss, then a new bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_smsc_session_is_recycled_and_unanswered_submits_stay_within_the_window() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(
        dir.path(),
        "hung",
        &["--submit-latency-ms", "100000000", "--dlr-mix", "none"],
    )
    .await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("h");
    ch["window"] = json!(3);
    ch["options"] = json!({"response_timeout_seconds": 1});
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let bodies: Vec<Value> = (0..20)
        .map(|i| json!({"to": TO, "text": format!("hung {i}")}))
        .collect();
    node.send_all_accepted(&key, bodies).await;
    // Each session fills its 3 slots, they time out after 1 s, it is closed and the
    // bind comes back (back-off 0.1 s doubling): three binds within seconds.
    let v = eventually(
        "hung sessions recycled",
        Duration::from_secs(30),
        || async {
            let v = node.channel_view("h").await;
            (smsc_stat(&smsc, "binds").await >= 3
                && v["stats"]["session_losses"].as_u64().unwrap_or(0) >= 2)
                .then_some(v)
        },
    )
    .await;
    let submits = smsc_stat(&smsc, "submits").await;
    let most = smsc_stat(&smsc, "max_unanswered_submits").await;
    assert!(submits >= 6, "two sessions' windows went out: {submits}");
    assert!(
        (1..=3).contains(&most),
        "{most} submits unanswered on one connection with a window of 3"
    );
    let m = node.metrics_text().await;
    let losses = metric_value(&m, "smsgw_session_losses_total", &[("channel", "h")]);
    assert!(
        losses.unwrap_or(0.0) >= 2.0,
        "losses metric {losses:?}: {v}"
    );
    let resubmits = metric_value(&m, "smsgw_resubmits_total", &[("channel", "h")]);
    assert!(
        resubmits.unwrap_or(0.0) >= 3.0,
        "timed-out parts counted as resubmits: {resubmits:?}"
    );
    let log = node.proc.log_text();
    assert!(
        log.contains("SMSC answers no submits") && log.contains("hung:"),
        "the recycle is logged with its reason"
    );
}
