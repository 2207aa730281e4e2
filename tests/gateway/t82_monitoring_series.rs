//! Monitoring audit (items 3, 7, 8): a deleted channel leaves `/metrics` and the stats
//! history; the contract's counters are there at zero before their first event; an SLA
//! without `alert_url` is a metrics-only policy.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// `/metrics` lines that name `channel`.
fn series_of(text: &str, channel: &str) -> Vec<String> {
    let label = format!("channel=\"{channel}\"");
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_start_at_zero_and_a_deleted_channel_leaves_metrics_and_history() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "mon", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    // Node-wide counters before any webhook.
    let m = node.metrics_text().await;
    for result in ["ok", "error", "timeout", "gave_up"] {
        assert_eq!(
            metric_value(&m, "smsgw_webhook_deliveries_total", &[("result", result)]),
            Some(0.0),
            "{result}: {m}"
        );
    }
    let mut c = smsc.channel("smsc-c");
    c["sla"] = json!({"window": "5m", "min_availability": 0.5});
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels", Some(c))
        .await;
    assert_eq!(s, 201, "{v}");
    // Per-channel counters at zero once the channel is there, and its gauges.
    let m = eventually("channel series", Duration::from_secs(20), || async {
        let m = node.metrics_text().await;
        metric_value(
            &m,
            "smsgw_channel_sla_availability",
            &[("channel", "smsc-c"), ("window", "5m")],
        )
        .is_some()
        .then_some(m)
    })
    .await;
    for name in ["smsgw_resubmits_total", "smsgw_mo_total"] {
        assert_eq!(
            metric_value(&m, name, &[("channel", "smsc-c")]),
            Some(0.0),
            "{name}: {m}"
        );
    }
    assert!(
        metric_value(&m, "smsgw_channel_up", &[("channel", "smsc-c")]).is_some(),
        "{m}"
    );
    eventually(
        "history lists the channel",
        Duration::from_secs(20),
        || async {
            let (_, h) = node
                .admin(Method::GET, "/admin/v1/stats/history", None)
                .await;
            h["channels"].get("smsc-c").map(|_| ())
        },
    )
    .await;
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/channels/smsc-c", None)
        .await;
    assert!(s == 204 || s == 200, "{s} {v}");
    // Give the SLA loop a few ticks: it must not bring the series back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = node.metrics_text().await;
    assert_eq!(
        series_of(&m, "smsc-c"),
        Vec::<String>::new(),
        "a deleted channel's series"
    );
    let (_, h) = node
        .admin(Method::GET, "/admin/v1/stats/history", None)
        .await;
    assert!(h["channels"].get("smsc-c").is_none(), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sla_without_alert_url_is_metrics_only_and_a_bad_url_is_refused() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let channel = |id: &str, sla: Value| {
        json!({"id": id, "protocol": "smpp", "host": "127.0.0.1", "port": free_port(),
               "system_id": "nobody", "password": "pw", "sla": sla})
    };
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/channels",
            Some(channel(
                "quiet",
                json!({"window": "1h", "min_availability": 0.99}),
            )),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["sla"]["window"], "1h", "{v}");
    assert!(v["sla"]["alert_url"].is_null(), "{v}");
    for url in ["", "ftp://x/alert", "http://"] {
        let body = channel(
            "loud",
            json!({"min_availability": 0.99, "alert_url": url, "alert_secret": "secret-123"}),
        );
        let (s, v) = node
            .admin(Method::POST, "/admin/v1/channels", Some(body))
            .await;
        if url.is_empty() {
            assert_eq!(s, 201, "an empty URL is no URL: {v}");
            let (s, _) = node
                .admin(Method::DELETE, "/admin/v1/channels/loud", None)
                .await;
            assert!(s < 300);
            continue;
        }
        assert_eq!(s, 422, "{url}: {v}");
        assert_eq!(v["error"]["field"], "sla.alert_url", "{url}: {v}");
    }
    // A given URL still needs its signing secret.
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/channels",
            Some(channel(
                "unsigned",
                json!({"min_availability": 0.99, "alert_url": "http://127.0.0.1:9/a"}),
            )),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].clone()),
        (422, json!("sla.alert_secret")),
        "{v}"
    );
}
