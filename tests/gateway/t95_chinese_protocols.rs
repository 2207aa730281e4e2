//! CMPP 2.0/3.0, SMGP 3.0 and SGIP 1.2 end to end: the real gateway binary
//! against `smsgw sim smsc --protocol …` over TCP. Per protocol: a short
//! message and a two-part Chinese message reach `delivered` through the
//! protocol's own status reports (per part), with msg_fmt and TP_udhi on the
//! wire; a simulator that answers some submits with malformed PDUs makes the
//! session close and reconnect, the node stays up and no message is lost.
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+8613800138000";

/// Simulator + node + channel "a" (with `options`) + tenant, all bound.
async fn setup(
    dir: &std::path::Path,
    name: &str,
    protocol: &str,
    options: Value,
    flags: &[&str],
) -> (Smsc, GwNode, String) {
    let smsc = Smsc::start_protocol(dir, name, protocol, flags).await;
    let node = GwNode::start(dir, &[]).await;
    let mut ch = smsc.channel("a");
    ch["options"] = options;
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    (smsc, node, key)
}

/// SGIP needs the gateway's listener address on both sides.
fn sgip_parts() -> (u16, Value, Vec<String>) {
    let port = free_port();
    let options = json!({"listen": format!("127.0.0.1:{port}"), "listen_login_name": "smg",
        "listen_password": "smgpw", "node_id": 3_010_012_345u64, "sp_code": "10655"});
    let flags = vec![
        "--report-to".to_string(),
        format!("127.0.0.1:{port}"),
        "--report-login".into(),
        "smg".into(),
        "--report-password".into(),
        "smgpw".into(),
    ];
    (port, options, flags)
}

async fn send_short_and_long(protocol: &str, name: &str, options: Value, extra: &[String]) {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let mut flags = vec!["--dlr-delay-ms", "50"];
    flags.extend(extra.iter().map(String::as_str));
    let (smsc, node, key) = setup(dir.path(), name, protocol, options, &flags).await;

    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "Hello from smsgw"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id, "delivered", Duration::from_secs(30))
        .await;
    assert_eq!(done["part_states"][0]["status"], "delivered", "{done}");

    // 2 parts of UCS-2 (67 + 13 characters): each part reported on its own.
    let text = "你好，世界！这是一条很长的中文短信。".repeat(4) + "结束";
    let (s, v) = node.send(&key, json!({"to": TO, "text": text})).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["parts"], 2, "{v}");
    let id2 = v["id"].as_str().expect("id").to_string();
    let done = node
        .wait_status(&key, &id2, "delivered", Duration::from_secs(30))
        .await;
    let parts = done["part_states"].as_array().expect("part_states");
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p["status"] == "delivered"), "{done}");

    let ledger = smsc.ledger_at_least(3).await;
    let short = ledger
        .iter()
        .find(|l| l["data_coding"] == 0)
        .expect("an ASCII (msg_fmt 0) submit");
    assert_eq!(
        short["short_message_hex"],
        hex::encode("Hello from smsgw"),
        "ASCII content as is"
    );
    assert_eq!(short["dest"], "8613800138000", "terminal id without '+'");
    let long: Vec<&Value> = ledger.iter().filter(|l| l["data_coding"] == 8).collect();
    assert_eq!(long.len(), 2, "two UCS-2 (msg_fmt 8) parts: {ledger:?}");
    for (i, p) in long.iter().enumerate() {
        assert_eq!(p["esm_class"], 0x40, "TP_udhi set");
        let hex = p["short_message_hex"].as_str().unwrap_or("");
        assert!(hex.starts_with("050003"), "UDH in the content: {hex}");
        assert_eq!(&hex[8..12], format!("02{:02x}", i + 1));
    }
    let st = smsc.stats().await.expect("stats");
    assert_eq!(st["receipts_acked"], 3, "every report answered ok: {st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmpp30_send_long_message_and_receipts() {
    let opts = json!({"version": "3.0", "service_id": "MTEST", "src_id": "10690"});
    send_short_and_long("cmpp", "cm30", opts, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmpp20_send_long_message_and_receipts() {
    let opts = json!({"version": "2.0", "service_id": "MTEST", "src_id": "10690"});
    send_short_and_long("cmpp", "cm20", opts, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smgp_send_long_message_and_receipts() {
    let opts = json!({"service_id": "MTEST", "src_id": "10659"});
    send_short_and_long("smgp", "smgp1", opts, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sgip_send_long_message_and_reports_via_listener() {
    let (_, mut opts, flags) = sgip_parts();
    // The contract's names for the listener's credentials (the other SGIP tests use the
    // README's older `listen_login_name` / `listen_password`, still accepted).
    if let Some(o) = opts.as_object_mut() {
        let name = o.remove("listen_login_name").unwrap_or_default();
        let password = o.remove("listen_password").unwrap_or_default();
        o.insert("login_name".into(), name);
        o.insert("login_password".into(), password);
    }
    send_short_and_long("sgip", "sgip1", opts, &flags).await;
}

/// A failed report carries the protocol's own code into the message's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smgp_failed_report_maps_to_undelivered() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) = setup(
        dir.path(),
        "smgpf",
        "smgp",
        json!({}),
        &["--dlr-delay-ms", "20", "--dlr-mix", "undeliverable=100"],
    )
    .await;
    let (s, v) = node.send(&key, json!({"to": TO, "text": "x"})).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let done = node.wait_final(&key, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "undelivered", "{done}");
    assert_eq!(done["error"]["smsc_code"], "UNDELIV:003", "{done}");
}

async fn malformed_pdus_reconnect_without_loss(
    protocol: &str,
    name: &str,
    opts: Value,
    extra: &[String],
) {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let mut flags = vec!["--dlr-delay-ms", "20", "--malformed-after", "4"];
    flags.extend(extra.iter().map(String::as_str));
    let (smsc, node, key) = setup(dir.path(), name, protocol, opts, &flags).await;
    let bodies: Vec<Value> = (0..12)
        .map(|i| json!({"to": TO, "text": format!("{protocol} {i:03}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(90)).await;
        assert_eq!(v["status"], "delivered", "no message lost: {v}");
    }
    let st = smsc.stats().await.expect("stats");
    assert!(
        st["binds"].as_u64().unwrap_or(0) >= 2,
        "the session closed on the malformed PDU and logged in again: {st}"
    );
    let (s, _) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels", None)
        .await;
    assert_eq!(s, 200, "the node stays up");
    let texts: std::collections::HashSet<String> = smsc
        .ledger_at_least(12)
        .await
        .iter()
        .filter_map(|l| l["short_message_hex"].as_str().map(str::to_string))
        .collect();
    assert_eq!(texts.len(), 12, "every message reached the operator");
    assert!(
        log_problems(&node.proc.log_text()).is_empty(),
        "no panic in the node log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmpp_malformed_pdus_reconnect_without_loss() {
    malformed_pdus_reconnect_without_loss("cmpp", "cmm", json!({}), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smgp_malformed_pdus_reconnect_without_loss() {
    malformed_pdus_reconnect_without_loss("smgp", "smgpm", json!({}), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sgip_malformed_pdus_reconnect_without_loss() {
    let (_, opts, flags) = sgip_parts();
    malformed_pdus_reconnect_without_loss("sgip", "sgipm", opts, &flags).await;
}

/// The simulator process dies and comes back on the same port: the channel
/// reconnects with back-off and what was queued meanwhile is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmpp_reconnects_after_the_operator_restarts() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (mut smsc, node, key) = setup(
        dir.path(),
        "cmr",
        "cmpp",
        json!({}),
        &["--dlr-delay-ms", "20"],
    )
    .await;
    smsc.proc.kill9();
    let bodies: Vec<Value> = (0..5)
        .map(|i| json!({"to": TO, "text": format!("queued {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    let port = smsc.port.to_string();
    let listen = format!("127.0.0.1:{port}");
    let control = free_port();
    let mut args: Vec<String> = vec![
        "sim",
        "smsc",
        "--protocol",
        "cmpp",
        "--listen",
        &listen,
        "--system-id",
        "cmr",
        "--password",
        "pw",
        "--dlr-delay-ms",
        "20",
        "--control",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.push(format!("127.0.0.1:{control}"));
    let _again = std::process::Command::new(bin())
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("restart simulator");
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Channel creation checks each protocol's account limits and options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_options_are_validated_per_protocol() {
    let dir = tempdir();
    let node = GwNode::start(dir.path(), &[]).await;
    let base = json!({"id": "x", "host": "127.0.0.1", "port": 7890, "password": "secret"});
    let cases = [
        (
            json!({"protocol": "cmpp", "system_id": "9012345"}),
            "system_id",
        ),
        (
            json!({"protocol": "smgp", "system_id": "123456789"}),
            "system_id",
        ),
        (
            json!({"protocol": "cmpp", "system_id": "901234", "options": {"version": "4.0"}}),
            "options.version",
        ),
        (
            json!({"protocol": "sgip", "system_id": "sp", "options": {"listen": "nowhere"}}),
            "options.listen",
        ),
        (
            json!({"protocol": "smgp", "system_id": "1234", "options": {"src_id": "10a"}}),
            "options.src_id",
        ),
    ];
    for (extra, field) in cases {
        let mut body = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (s, v) = node
            .admin(reqwest::Method::POST, "/admin/v1/channels", Some(body))
            .await;
        assert_eq!(s, 422, "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    // A valid CMPP channel gets the contract's window of 10 by default (audit defect 10);
    // the SGIP option `service_type` is the contract's name of `service_id` (defect 7).
    let mut body = base.clone();
    body["protocol"] = json!("cmpp");
    body["system_id"] = json!("901234");
    let (s, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels", Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(node.channel_view("x").await["window"], 10);
    let mut body = base.clone();
    body["id"] = json!("u");
    body["protocol"] = json!("sgip");
    body["system_id"] = json!("sp");
    body["options"] = json!({"service_type": "USVC001", "login_password": "smgpw"});
    let (s, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels", Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
    let view = node.channel_view("u").await;
    assert_eq!(view["options"]["service_type"], "USVC001", "{view}");
    assert_eq!(view["options"]["login_password"], "<redacted>", "{view}");
}

/// CMPP Result 8 (flow control) slows the channel down and retries, as SMPP's 0x58 does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmpp_flow_control_is_retried_until_delivered() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(
        dir.path(),
        "cmt",
        "cmpp",
        json!({"version": "2.0"}),
        &["--dlr-delay-ms", "20", "--throttle-rate", "0.4"],
    )
    .await;
    let bodies: Vec<Value> = (0..15)
        .map(|i| json!({"to": TO, "text": format!("throttled {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    let st = smsc.stats().await.expect("stats");
    assert!(st["throttled"].as_u64().unwrap_or(0) > 0, "{st}");
    assert_eq!(st["accepted"], 15, "{st}");
}

/// Audit defect 2 (and 9): GSM-7 text with non-ASCII characters was accepted as `gsm7`,
/// then failed after the 202 as `rejected_by_carrier` without a PDU sent: CN channels
/// carry GSM text only as ASCII. It is planned as UCS-2 at accept (preview agrees) and
/// delivered as Msg_Fmt 8; an explicit `gsm7` is refused before anything is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_gsm_text_is_planned_as_ucs2_on_cn_routes() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = setup(
        dir.path(),
        "cmgsm",
        "cmpp",
        json!({"version": "3.0"}),
        &["--dlr-delay-ms", "20"],
    )
    .await;
    let text = format!("Dear José, {}", "your order has shipped. ".repeat(8));
    assert_eq!(text.chars().count(), 203);
    let body = json!({"to": TO, "text": text});
    let client = client();
    let preview: Value = client
        .post(node.url("/v1/messages/preview"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .expect("preview")
        .json()
        .await
        .expect("json");
    assert_eq!(preview["encoding"], "ucs2", "{preview}");
    assert_eq!(preview["parts"], 4, "{preview}");
    let (s, v) = node.send(&key, body).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        (v["encoding"].clone(), v["parts"].clone()),
        (json!("ucs2"), json!(4)),
        "{v}"
    );
    let id = v["id"].as_str().expect("id").to_string();
    let done = node.wait_final(&key, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "delivered", "{done}");
    let ledger = smsc.ledger_at_least(4).await;
    assert!(ledger.iter().all(|l| l["data_coding"] == 8), "{ledger:?}");

    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "é".repeat(100), "encoding": "gsm7"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "encoding_mismatch", "{v}");

    // Defect 10: an SP access number with an extension (16-21 digits) is a CMPP Src_Id.
    let (s, v) = node
        .send(
            &key,
            json!({"to": TO, "text": "ext", "from": "106900123456789012"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["from"], "106900123456789012", "{v}");
}

/// Audit defect 4: `smsc_code` kept the SMPP translation (0x00000045) of a CMPP
/// SUBMIT_RESP Result 9 instead of the operator's own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_submit_keeps_the_operators_result_code() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) = setup(
        dir.path(),
        "cmerr",
        "cmpp",
        json!({"version": "3.0"}),
        &["--error-rate", "1.0"],
    )
    .await;
    let (s, v) = node.send(&key, json!({"to": TO, "text": "refused"})).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let done = node.wait_final(&key, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "rejected_by_carrier", "{done}");
    assert_eq!(done["error"]["smsc_code"], "9", "{done}");
    let msg = done["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("CMPP 3.0 SUBMIT_RESP Result 9"), "{done}");
}

/// Audit defect 5: a refused login left the channel `connecting` with no reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_login_shows_the_channel_down_with_the_reason() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start_protocol(dir.path(), "cmpw", "cmpp", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("a");
    ch["password"] = json!("WRONG");
    node.channels_and_route(&[ch]).await;
    let v = eventually("login refusal shown", Duration::from_secs(30), || async {
        let v = node.channel_view("a").await;
        (v["state"] == "down" && !v["last_error"].is_null()).then_some(v)
    })
    .await;
    let reason = v["last_error"].as_str().unwrap_or("");
    assert!(
        reason.contains("CMPP 3.0 CONNECT status 3 (authentication failed)"),
        "{v}"
    );
    assert!(
        !node.proc.log_text().contains("command_status 0x3"),
        "SMPP terms in the log"
    );
}

/// Audit defect 6: a second SGIP channel on a listener address already in use was
/// created and shown `bound`, though its Reports could never arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sgip_listener_address_in_use_is_refused() {
    let dir = tempdir();
    let node = GwNode::start(dir.path(), &[]).await;
    let port = free_port();
    let body = |id: &str| {
        json!({"id": id, "protocol": "sgip", "host": "127.0.0.1", "port": 8801, "system_id": "sp",
               "password": "pw", "options": {"listen": format!("127.0.0.1:{port}")}})
    };
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/channels",
            Some(body("u1")),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/channels",
            Some(body("u2")),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["field"], "options.listen", "{v}");

    // A listener that cannot bind (the node's own HTTP port): never `bound`, and why.
    let (_, _, flags) = sgip_parts();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let smsc = Smsc::start_protocol(dir.path(), "sgl", "sgip", &flags).await;
    let mut ch = smsc.channel("u3");
    ch["options"] = json!({"listen": format!("127.0.0.1:{}", node.http)});
    let (s, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels", Some(ch))
        .await;
    assert_eq!(s, 201, "{v}");
    let v = eventually(
        "listener failure shown",
        Duration::from_secs(30),
        || async {
            let v = node.channel_view("u3").await;
            (!v["last_error"].is_null()).then_some(v)
        },
    )
    .await;
    assert!(
        v["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("report listener"),
        "{v}"
    );
    for _ in 0..10 {
        assert_ne!(node.channel_view("u3").await["state"], "bound");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
