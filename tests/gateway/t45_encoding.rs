//! Encoding end to end: the preview is exact (encoding, national table,
//! per-part split, replacements, cost), `too_long` instead of truncation,
//! and what the simulator receives follows the channel's carrier: 16-bit
//! reference UDH, SAR TLVs, one message_payload; references to one number
//! never collide.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";
const TO_SAR: &str = "+4915112345679";
const TO_PAYLOAD: &str = "+4915112345670";

async fn route(node: &GwNode, id: &str, prefix: &str, channel: &str) {
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": id, "match": {"prefix": [prefix]}, "channels": [{"id": channel}]})),
        )
        .await;
    assert_eq!(s, 201, "route {id}: {v}");
}

fn lines_to(lines: &[Value], to: &str) -> Vec<Value> {
    let digits = to.trim_start_matches('+');
    lines
        .iter()
        .filter(|l| {
            l["dest"]
                .as_str()
                .is_some_and(|d| d.trim_start_matches('+') == digits)
        })
        .cloned()
        .collect()
}

fn hex(l: &Value) -> String {
    l["short_message_hex"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_is_exact_and_carriers_reach_the_smsc() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "enc", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut a = smsc.channel("a");
    a["cost"] = json!({"default": 0.01});
    a["options"] = json!({"udh": "16bit", "national_tables": ["tr", "es"]});
    let mut s = smsc.channel("s");
    s["options"] = json!({"udh": "sar"});
    let mut p = smsc.channel("p");
    p["options"] = json!({"udh": "payload"});
    node.channels_and_route(&[a]).await;
    for ch in [s, p] {
        let (st, v) = node
            .admin(reqwest::Method::POST, "/admin/v1/channels", Some(ch))
            .await;
        assert_eq!(st, 201, "{v}");
    }
    route(&node, "sar", TO_SAR, "s").await;
    route(&node, "payload", TO_PAYLOAD, "p").await;
    // A bad option is a clear 422 naming the field, not a silently ignored one.
    let mut bad = smsc.channel("bad");
    bad["options"] = json!({"national_tables": ["xx"]});
    let (st, v) = node
        .admin(reqwest::Method::POST, "/admin/v1/channels", Some(bad))
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["field"], "options.national_tables", "{v}");
    let key = node.tenant("acme", json!({"max_parts": 255})).await;
    let small = node
        .tenant("small", json!({"max_parts": 2, "smart_encoding": true}))
        .await;
    node.wait_bound().await;

    // Turkish text: UCS-2 would take 2 parts; the Turkish locking shift table 1.
    let turkish = "Çığ düşün şişe ".repeat(7);
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": turkish}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = &r.json;
    assert_eq!(v["encoding"], "gsm7", "{v}");
    assert_eq!(v["data_coding"], 0, "{v}");
    assert_eq!(v["national_tables"]["locking"], "tr", "{v}");
    assert_eq!(v["parts"], 1, "{v}");
    assert_eq!(v["characters"], 105, "{v}");
    assert_eq!(v["carrier"], "16bit", "{v}");
    assert_eq!(v["split"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(
        (v["cost"].as_f64().unwrap_or(-1.0) - 0.01).abs() < 1e-9,
        "{v}"
    );

    // Smart encoding per request: curly quotes and dashes become GSM, the preview says so.
    let curly = "\u{201C}Hi\u{201D} \u{2013} it\u{2019}s done\u{2026}";
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": curly, "smart_encoding": true}),
        )
        .await;
    let v = &r.json;
    assert_eq!(v["encoding"], "gsm7", "{v}");
    assert_eq!(v["text"], "\"Hi\" - it's done...", "{v}");
    let reps = v["replacements"].as_array().cloned().unwrap_or_default();
    assert!(
        reps.iter()
            .any(|x| x["from"] == "\u{2026}" && x["to"] == "..." && x["count"] == 1),
        "{v}"
    );
    // Off by default for this tenant: UCS-2, nothing replaced.
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": curly}),
        )
        .await;
    assert_eq!(r.json["encoding"], "ucs2", "{}", r.text);
    assert_eq!(r.json["replacements"], json!([]), "{}", r.text);
    // On by default for tenant "small".
    let r = node
        .post_json(
            "/v1/messages/preview",
            &small,
            &json!({"to": TO, "text": curly}),
        )
        .await;
    assert_eq!(r.json["encoding"], "gsm7", "{}", r.text);

    // Emoji ZWJ sequence kept in one part; per-part split shown (16-bit UDH: 66 units).
    let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
    let text = format!("{}{family}{}", "a".repeat(62), "b".repeat(60));
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": text}),
        )
        .await;
    let v = &r.json;
    assert_eq!(v["encoding"], "ucs2", "{v}");
    let split = v["split"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        split.len(),
        v["parts"].as_u64().unwrap_or(0) as usize,
        "{v}"
    );
    assert!(split.iter().all(|x| x["capacity"] == 66), "{v}");
    assert!(
        split
            .iter()
            .any(|x| x["text"].as_str().is_some_and(|t| t.contains(family))),
        "{v}"
    );
    let joined: String = split.iter().filter_map(|x| x["text"].as_str()).collect();
    assert_eq!(joined, text);

    // More parts than the tenant allows: 422 too_long, nothing stored.
    let r = node
        .post_json(
            "/v1/messages",
            &small,
            &json!({"to": TO, "text": "x".repeat(400)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "too_long", "{}", r.text);
    // 255 parts is allowed, 256 is not.
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": "x".repeat(152 * 255)}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["parts"].clone()),
        (200, json!(255)),
        "{}",
        r.text
    );
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": "x".repeat(152 * 255 + 1)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // 300 long messages to one number at once: every reference distinct (16-bit UDH).
    let bodies: Vec<Value> = (0..300)
        .map(|i| json!({"to": TO, "text": format!("{i:03} {}", "y".repeat(200))}))
        .collect();
    let r = node
        .post_json("/v1/messages/batch", &key, &json!({"messages": bodies}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // SAR and payload channels.
    let long = "z".repeat(300);
    for to in [TO_SAR, TO_PAYLOAD] {
        let (st, v) = node.send(&key, json!({"to": to, "text": long})).await;
        assert_eq!(st, 202, "{v}");
    }
    let lines = smsc.ledger_at_least(600 + 2 + 1).await;

    let mut by_ref: HashMap<String, Vec<(u8, u8)>> = HashMap::new();
    for l in lines_to(&lines, TO) {
        let h = hex(&l);
        assert_eq!(l["esm_class"], 0x40, "{l}");
        assert!(h.starts_with("060804"), "16-bit reference UDH: {l}");
        let total = u8::from_str_radix(&h[10..12], 16).unwrap_or(0);
        let seq = u8::from_str_radix(&h[12..14], 16).unwrap_or(0);
        by_ref
            .entry(h[6..10].to_string())
            .or_default()
            .push((total, seq));
    }
    assert_eq!(by_ref.len(), 300, "one reference per message");
    for (r, mut parts) in by_ref {
        parts.sort_unstable();
        assert_eq!(parts, vec![(2, 1), (2, 2)], "reference {r}");
    }
    let sar = lines_to(&lines, TO_SAR);
    assert_eq!(sar.len(), 2, "{sar:?}");
    for (i, l) in sar.iter().enumerate() {
        assert_eq!(l["esm_class"], 0, "no UDH with SAR: {l}");
        assert_eq!(l["sar"][1], 2, "{l}");
        assert!(l["sar"][2] == 1 || l["sar"][2] == 2, "{l} #{i}");
        assert_eq!(l["sar"][0], sar[0]["sar"][0], "one reference: {l}");
        assert!(hex(l).len() <= 2 * 152, "room for the SMSC's UDH: {l}");
    }
    let payload = lines_to(&lines, TO_PAYLOAD);
    assert_eq!(payload.len(), 1, "{payload:?}");
    assert_eq!(payload[0]["message_payload"], true, "{}", payload[0]);
    assert_eq!(hex(&payload[0]).len(), 600, "{}", payload[0]);

    // The stored message agrees with what was planned.
    let (st, v) = node.send(&key, json!({"to": TO, "text": turkish})).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["parts"], 1, "{v}");
    let lines = eventually("the Turkish message", Duration::from_secs(10), || async {
        let l: Vec<Value> = lines_to(&smsc.ledger_lines(), TO)
            .into_iter()
            .filter(|l| hex(l).starts_with("03250101"))
            .collect();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(lines[0]["esm_class"], 0x40, "{}", lines[0]);
    assert_eq!(lines[0]["data_coding"], 0, "{}", lines[0]);
}
