//! Tenants sharing a channel take turns within each priority lane: one tenant's campaign
//! does not hold up another tenant's marketing behind the whole backlog, and one tenant's
//! OTP flood does not hold up another tenant's OTPs. The channel is drained while the
//! tenants queue, so the queue holds everything when the line opens and the order the
//! simulator records depends on the dispatcher alone, not on timing.
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// Acme's campaign, acme's OTPs and beta's messages go to different numbers, so the
/// simulator's ledger tells them apart.
const ACME_CAMPAIGN: &str = "+4915112340001";
const ACME_OTP: &str = "+4915112340002";
const BETA: &str = "+4915112340003";

/// The ledger's `dest` of a number (without '+').
fn dest(number: &str) -> &str {
    number.trim_start_matches('+')
}

/// Ledger lines whose destination is `number`.
fn count_to(lines: &[Value], number: &str) -> usize {
    lines.iter().filter(|l| l["dest"] == dest(number)).count()
}

/// How many lines to `before_other` come before the last line to `last_of`.
fn ahead_of_last(lines: &[Value], last_of: &str, before_other: &str) -> usize {
    let last = lines
        .iter()
        .rposition(|l| l["dest"] == dest(last_of))
        .unwrap_or_else(|| panic!("no line to {last_of}"));
    count_to(&lines[..last], before_other)
}

async fn drain(node: &GwNode, on: bool) {
    let path = format!(
        "/admin/v1/channels/f/{}",
        if on { "drain" } else { "undrain" }
    );
    let (s, v) = node.admin(Method::POST, &path, None).await;
    assert!(s < 300, "{path}: {s} {v}");
}

/// Queues `n` messages of `category` to `to` for the tenant of `key`, in batches.
async fn queue(node: &GwNode, key: &str, to: &str, category: &str, n: usize) {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"to": to, "text": format!("{category} {to} {i}"), "category": category}))
        .collect();
    for chunk in items.chunks(500) {
        let r = node
            .post_json("/v1/messages/batch", key, &json!({ "messages": chunk }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let accepted = r.json["results"]
            .as_array()
            .map(|rs| rs.iter().filter(|v| v["status"] == "accepted").count());
        assert_eq!(accepted, Some(chunk.len()), "{}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_on_a_shared_channel_take_turns_within_each_lane() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "sf", &["--dlr-delay-ms", "50"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("f");
    ch["tps"] = json!(20);
    node.channels_and_route(&[ch]).await;
    let acme = node.tenant("acme", json!({})).await;
    let beta = node.tenant("beta", json!({})).await;
    node.wait_bound().await;

    // ---- marketing: acme's campaign of 300 first, then beta's 5 ----
    drain(&node, true).await;
    queue(&node, &acme, ACME_CAMPAIGN, "marketing", 300).await;
    queue(&node, &beta, BETA, "marketing", 5).await;
    drain(&node, false).await;
    eventually("beta's marketing sent", Duration::from_secs(30), || async {
        (count_to(&smsc.ledger_lines(), BETA) >= 5).then_some(())
    })
    .await;
    let lines = smsc.ledger_lines();
    // First in, first out it would be all 300 of acme's; taking turns, about 5 (a few
    // more as the message actors of one claim race for the line's rate).
    let ahead = ahead_of_last(&lines, BETA, ACME_CAMPAIGN);
    assert!(
        ahead <= 40,
        "{ahead} of acme's campaign went out before beta's last message"
    );
    let before_otp = lines.len();

    // ---- otp: beta's flood of 200 first, then acme's 3 (acme's campaign still waits) ----
    drain(&node, true).await;
    queue(&node, &beta, BETA, "otp", 200).await;
    queue(&node, &acme, ACME_OTP, "otp", 3).await;
    drain(&node, false).await;
    eventually("acme's otp sent", Duration::from_secs(30), || async {
        (count_to(&smsc.ledger_lines(), ACME_OTP) >= 3).then_some(())
    })
    .await;
    let lines = smsc.ledger_lines();
    let since = &lines[before_otp.min(lines.len())..];
    let ahead = ahead_of_last(since, ACME_OTP, BETA);
    assert!(
        ahead <= 40,
        "{ahead} of beta's OTPs went out before acme's last OTP"
    );
    assert_eq!(ledger_duplicates(&lines), 0, "resent: {lines:?}");
}
