//! SLA monitoring: once a second, samples each channel's availability into its health
//! windows, exports the SLA figures to `/metrics`, and compares them with the channel's
//! SLA policy. Crossing a threshold fires one signed `channel.sla_breached` alert to
//! the policy's `alert_url` (and `channel.sla_recovered` when it is met again), signed
//! like status webhooks (`Smsgw-Signature`, HMAC-SHA256 with the policy's secret).
//! Each node judges the binds it runs; the alert body names the node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tracing::warn;

use super::health::{SLA_WINDOWS, SlaWindow};
use super::registry::ChannelRegistry;
use crate::consensus::Consensus;
use crate::state::SlaPolicy;

/// Attempts per alert before giving up (alerts are advisory, not an outbox).
const ALERT_ATTEMPTS: u32 = 5;

/// Which thresholds of `p` the window `w` misses, as (metric, value, threshold).
/// A metric with no data yet is not judged.
pub fn breaches(p: &SlaPolicy, w: &SlaWindow) -> Vec<(&'static str, f64, f64)> {
    let mut out = Vec::new();
    if let (Some(min), Some(v)) = (p.min_availability, w.availability)
        && v < min
    {
        out.push(("availability", v, min));
    }
    if let (Some(min), Some(v)) = (p.min_success_rate, w.success_rate)
        && v < min
    {
        out.push(("success_rate", v, min));
    }
    if let (Some(max), Some(v)) = (p.max_submit_latency_ms_p99, w.submit_latency_ms_p99)
        && v > max
    {
        out.push(("submit_latency_ms_p99", v, max));
    }
    out
}

fn window_minutes(name: &str) -> i64 {
    SLA_WINDOWS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .unwrap_or(5)
}

async fn send_alert(client: reqwest::Client, p: SlaPolicy, body: String) {
    let mut backoff = Duration::from_millis(500);
    for _ in 0..ALERT_ATTEMPTS {
        let t = crate::clock::now_ms() / 1000;
        let sig = crate::webhooks::signature::sign(p.alert_secret.as_bytes(), t, body.as_bytes());
        let r = client
            .post(&p.alert_url)
            .header("content-type", "application/json")
            .header("Smsgw-Signature", sig)
            .body(body.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => warn!(url = %p.alert_url, status = %r.status(), "SLA alert refused"),
            Err(e) => warn!(url = %p.alert_url, error = %e, "SLA alert failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// Runs forever: availability samples, SLA gauges and alerts.
pub async fn run(consensus: Arc<Consensus>, registry: Arc<ChannelRegistry>) {
    let client = crate::http_client::builder()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let node = consensus.node_id();
    let mut breached: HashMap<String, bool> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now_ms = crate::clock::now_ms();
        let channels: Vec<(String, bool, Option<SlaPolicy>)> = consensus
            .store()
            .config()
            .channels
            .values()
            .map(|c| (c.id.clone(), c.drained, c.sla.clone()))
            .collect();
        for (id, drained, policy) in channels {
            let Some(rt) = registry.find(&id) else {
                continue;
            };
            rt.health.sample(rt.is_up() && !drained, now_ms);
            for (name, minutes) in SLA_WINDOWS {
                let w = rt.health.window(minutes, now_ms);
                let g = |metric: &'static str, v: Option<f64>| {
                    if let Some(v) = v {
                        metrics::gauge!(metric, "channel" => id.clone(), "window" => name).set(v);
                    }
                };
                g("smsgw_channel_sla_availability", w.availability);
                g("smsgw_channel_sla_success_rate", w.success_rate);
                g(
                    "smsgw_channel_sla_submit_latency_ms_p50",
                    w.submit_latency_ms_p50,
                );
                g(
                    "smsgw_channel_sla_submit_latency_ms_p99",
                    w.submit_latency_ms_p99,
                );
                g(
                    "smsgw_channel_sla_receipt_latency_ms_p50",
                    w.receipt_latency_ms_p50,
                );
                g(
                    "smsgw_channel_sla_receipt_latency_ms_p99",
                    w.receipt_latency_ms_p99,
                );
            }
            let now = std::time::Instant::now();
            metrics::gauge!("smsgw_channel_health_score", "channel" => id.clone())
                .set(rt.health.score(now, now_ms));
            metrics::gauge!("smsgw_channel_breaker_open", "channel" => id.clone())
                .set(f64::from(u8::from(!rt.health.allows(now))));
            metrics::gauge!("smsgw_channel_send_rate", "channel" => id.clone())
                .set(rt.health.rate());
            let Some(p) = policy else {
                breached.remove(&id);
                continue;
            };
            let w = rt.health.window(window_minutes(&p.window), now_ms);
            let missed = breaches(&p, &w);
            let was = breached.get(&id).copied().unwrap_or(false);
            let is = !missed.is_empty();
            if was == is {
                continue;
            }
            breached.insert(id.clone(), is);
            let kind = if is {
                "channel.sla_breached"
            } else {
                "channel.sla_recovered"
            };
            let body = json!({
                "event_id": format!("sla-{id}-{node}-{now_ms}"),
                "type": kind,
                "channel": id,
                "node": node,
                "window": p.window,
                "breaches": missed.iter().map(|(m, v, t)| json!({"metric": m, "value": v, "threshold": t})).collect::<Vec<_>>(),
                "sla": w,
                "at": crate::clock::rfc3339(now_ms),
            })
            .to_string();
            metrics::counter!("smsgw_channel_sla_alerts_total", "channel" => id.clone(), "type" => kind)
                .increment(1);
            warn!(channel = %id, kind, "SLA state changed");
            tokio::spawn(send_alert(client.clone(), p, body));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breach_rules() {
        let p = SlaPolicy {
            window: "5m".into(),
            min_availability: Some(0.99),
            min_success_rate: Some(0.9),
            max_submit_latency_ms_p99: Some(500.0),
            alert_url: "http://x".into(),
            alert_secret: "s".into(),
        };
        let good = SlaWindow {
            availability: Some(1.0),
            success_rate: Some(0.95),
            submit_latency_ms_p99: Some(100.0),
            ..Default::default()
        };
        assert!(breaches(&p, &good).is_empty());
        let bad = SlaWindow {
            success_rate: Some(0.5),
            submit_latency_ms_p99: Some(900.0),
            ..good
        };
        let b: Vec<&str> = breaches(&p, &bad).iter().map(|b| b.0).collect();
        assert_eq!(b, ["success_rate", "submit_latency_ms_p99"]);
        assert!(
            breaches(&p, &SlaWindow::default()).is_empty(),
            "no data, no verdict"
        );
        assert_eq!(window_minutes("1h"), 60);
    }
}
