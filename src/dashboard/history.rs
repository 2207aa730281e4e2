//! The last 15 minutes of this node's figures, sampled every 2 s into a ring buffer, for
//! the dashboard's charts (`GET /admin/v1/stats/history`). Node-local memory, never
//! replicated: a restarted node starts an empty history.
//!
//! Message counts come from this node's own `/metrics` text (`smsgw_messages_total{status}`,
//! which every replica counts as it applies the log, so any node shows cluster-wide
//! rates), 429s from `smsgw_http_requests_total{code="429"}` (this node's answers),
//! receipt latency from the `smsgw_receipt_latency_seconds{channel}` histogram, and the
//! per-channel figures from the same view `GET /admin/v1/channels` answers with: the
//! channel owner's live figures, asked over the actor mesh (`api::cluster::owners_stats`),
//! so every node shows the same sends, queue and health for a channel whichever node
//! runs it. `failed`, `undelivered` and `expired` are counted apart, as
//! `smsgw_messages_total{status}` counts them. A deleted channel leaves the history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::prom::{self, Bound};
use crate::api::error::ApiError;
use crate::api::{AppState, require_admin};

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// How many samples are kept: 15 minutes.
pub const KEEP: usize = 450;
/// Receipt latency quantiles are taken over this many intervals (30 s).
const LATENCY_WINDOW: usize = 15;
/// The delivery success rate is taken over this many intervals (60 s).
const RATE_WINDOW: usize = 30;
/// The receipt latency histogram (seconds) the store records into.
pub const RECEIPT_LATENCY: &str = "smsgw_receipt_latency_seconds";

/// Cumulative counters read at one instant.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Monotonic time of the reading, ms.
    pub mono_ms: u64,
    pub accepted: f64,
    pub sent: f64,
    pub delivered: f64,
    /// Status `failed` (the gateway or the operator refused the message).
    pub failed: f64,
    /// Status `undelivered` (the receipt said not delivered).
    pub undelivered: f64,
    /// Status `expired` (validity period over).
    pub expired: f64,
    /// Every final status (the success rate's denominator).
    pub finals: f64,
    pub http_429: f64,
    pub receipt: BTreeMap<Bound, f64>,
    pub channel_receipt: BTreeMap<String, BTreeMap<Bound, f64>>,
    /// Parts sent per channel (from the channel view's `stats.sent`).
    pub channel_sent: BTreeMap<String, f64>,
    /// Throttling answers per channel (from the channel view's `stats.throttled`).
    pub channel_throttled: BTreeMap<String, f64>,
}

impl Totals {
    /// Reads the message counters and histograms out of the `/metrics` text.
    pub fn from_metrics(text: &str, mono_ms: u64) -> Totals {
        let lines = prom::parse(text);
        let status = |s: &str| prom::sum(&lines, "smsgw_messages_total", &[("status", s)]);
        let delivered = status("delivered");
        let (failed, undelivered, expired) =
            (status("failed"), status("undelivered"), status("expired"));
        let mut channel_receipt = BTreeMap::new();
        for l in &lines {
            if l.name.len() == RECEIPT_LATENCY.len() + 7
                && l.name.starts_with(RECEIPT_LATENCY)
                && let Some(c) = l.label("channel")
                && !channel_receipt.contains_key(c)
            {
                channel_receipt.insert(
                    c.to_string(),
                    prom::buckets(&lines, RECEIPT_LATENCY, &[("channel", c)]),
                );
            }
        }
        Totals {
            mono_ms,
            accepted: status("accepted"),
            sent: status("sent"),
            delivered,
            failed,
            undelivered,
            expired,
            finals: delivered + failed + undelivered + expired + status("partially_delivered"),
            http_429: prom::sum(&lines, "smsgw_http_requests_total", &[("code", "429")]),
            receipt: prom::buckets(&lines, RECEIPT_LATENCY, &[]),
            channel_receipt,
            channel_sent: BTreeMap::new(),
            channel_throttled: BTreeMap::new(),
        }
    }
}

/// One channel's figures at one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelPoint {
    pub state: Option<String>,
    pub success_rate: Option<f64>,
    pub sent_per_s: f64,
    pub throttled_per_s: f64,
    pub queue_depth: Option<f64>,
    pub submit_latency_ms_p99: Option<f64>,
    pub receipt_latency_ms_p50: Option<f64>,
    pub receipt_latency_ms_p99: Option<f64>,
    pub health_score: Option<f64>,
}

/// One sample of the whole node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    /// Wall-clock time, ms since the epoch.
    pub at: i64,
    pub accepted_per_s: f64,
    pub sent_per_s: f64,
    pub delivered_per_s: f64,
    pub failed_per_s: f64,
    pub undelivered_per_s: f64,
    pub expired_per_s: f64,
    pub http_429_per_s: f64,
    pub queue_depth: f64,
    pub success_rate: Option<f64>,
    pub receipt_latency_ms_p50: Option<f64>,
    pub receipt_latency_ms_p99: Option<f64>,
    pub channels: BTreeMap<String, ChannelPoint>,
}

/// The ring buffer.
#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    points: VecDeque<Point>,
    /// The last readings (enough for the widest window).
    totals: VecDeque<Totals>,
}

/// A figure named `name` in a channel view: top level first, then under `stats`
/// (the dashboard looks fields up the same way).
pub fn field<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view.get(name)
        .filter(|v| !v.is_null())
        .or_else(|| view.get("stats").and_then(|s| s.get(name)))
        .filter(|v| !v.is_null())
}

fn num(view: &Value, name: &str) -> Option<f64> {
    field(view, name).and_then(Value::as_f64)
}

fn per_s(now: f64, before: f64, dt_ms: u64) -> f64 {
    if dt_ms == 0 {
        return 0.0;
    }
    let r = ((now - before).max(0.0) * 1000.0) / dt_ms as f64;
    (r * 1000.0).round() / 1000.0
}

fn ms(q: Option<f64>) -> Option<f64> {
    q.map(|s| (s * 1000.0 * 100.0).round() / 100.0)
}

impl History {
    /// Adds a reading: `totals` from the metrics, `views` as `GET /admin/v1/channels`
    /// answers, `queue_depth` the node's waiting messages, `at` wall-clock ms.
    pub fn record(&self, mut totals: Totals, views: &[Value], queue_depth: f64, at: i64) {
        for v in views {
            let Some(id) = v.get("id").and_then(Value::as_str) else {
                continue;
            };
            if let Some(sent) = num(v, "sent") {
                totals.channel_sent.insert(id.to_string(), sent);
            }
            if let Some(t) = num(v, "throttled") {
                totals.channel_throttled.insert(id.to_string(), t);
            }
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(prev) = inner.totals.back().cloned() else {
            inner.totals.push_back(totals);
            return;
        };
        let dt = totals.mono_ms.saturating_sub(prev.mono_ms);
        let back = |n: usize| {
            let len = inner.totals.len();
            inner.totals[len.saturating_sub(n)].clone()
        };
        let lat_base = back(LATENCY_WINDOW);
        let rate_base = back(RATE_WINDOW);
        let finals = totals.finals - rate_base.finals;
        let mut channels = BTreeMap::new();
        for v in views {
            let Some(id) = v.get("id").and_then(Value::as_str) else {
                continue;
            };
            let empty = BTreeMap::new();
            let now_r = totals.channel_receipt.get(id).unwrap_or(&empty);
            let base_r = lat_base.channel_receipt.get(id).unwrap_or(&empty);
            let sent_now = totals.channel_sent.get(id).copied().unwrap_or(0.0);
            let sent_before = prev.channel_sent.get(id).copied().unwrap_or(sent_now);
            let thr_now = totals.channel_throttled.get(id).copied().unwrap_or(0.0);
            let thr_before = prev.channel_throttled.get(id).copied().unwrap_or(thr_now);
            channels.insert(
                id.to_string(),
                ChannelPoint {
                    state: field(v, "state").and_then(Value::as_str).map(String::from),
                    success_rate: num(v, "success_rate"),
                    sent_per_s: per_s(sent_now, sent_before, dt),
                    throttled_per_s: per_s(thr_now, thr_before, dt),
                    queue_depth: num(v, "queue_depth"),
                    submit_latency_ms_p99: num(v, "submit_latency_ms_p99"),
                    receipt_latency_ms_p50: ms(prom::quantile(0.5, now_r, base_r)),
                    receipt_latency_ms_p99: ms(prom::quantile(0.99, now_r, base_r)),
                    // The view's `health.score` (smsgw_channel_health_score of the owner).
                    health_score: v
                        .get("health")
                        .and_then(|h| h.get("score"))
                        .and_then(Value::as_f64),
                },
            );
        }
        let point = Point {
            at,
            accepted_per_s: per_s(totals.accepted, prev.accepted, dt),
            sent_per_s: per_s(totals.sent, prev.sent, dt),
            delivered_per_s: per_s(totals.delivered, prev.delivered, dt),
            failed_per_s: per_s(totals.failed, prev.failed, dt),
            undelivered_per_s: per_s(totals.undelivered, prev.undelivered, dt),
            expired_per_s: per_s(totals.expired, prev.expired, dt),
            http_429_per_s: per_s(totals.http_429, prev.http_429, dt),
            queue_depth,
            success_rate: (finals > 0.0).then(|| (totals.delivered - rate_base.delivered) / finals),
            receipt_latency_ms_p50: ms(prom::quantile(0.5, &totals.receipt, &lat_base.receipt)),
            receipt_latency_ms_p99: ms(prom::quantile(0.99, &totals.receipt, &lat_base.receipt)),
            channels,
        };
        inner.totals.push_back(totals);
        while inner.totals.len() > RATE_WINDOW.max(LATENCY_WINDOW) + 1 {
            inner.totals.pop_front();
        }
        inner.points.push_back(point);
        while inner.points.len() > KEEP {
            inner.points.pop_front();
        }
    }

    /// The samples taken after `since` (ms), oldest first, as columns; per-channel columns
    /// only for the channels `exists` (a deleted channel is gone from every sample).
    pub fn to_json(&self, since: i64, exists: &dyn Fn(&str) -> bool) -> Value {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let pts: Vec<&Point> = inner.points.iter().filter(|p| p.at > since).collect();
        let col = |f: &dyn Fn(&Point) -> Value| Value::Array(pts.iter().map(|p| f(p)).collect());
        let mut ids: Vec<&String> = pts
            .iter()
            .flat_map(|p| p.channels.keys())
            .filter(|id| exists(id))
            .collect();
        ids.sort();
        ids.dedup();
        let mut channels = serde_json::Map::new();
        for id in ids {
            let c = |f: &dyn Fn(&ChannelPoint) -> Value| {
                Value::Array(
                    pts.iter()
                        .map(|p| p.channels.get(id).map(f).unwrap_or(Value::Null))
                        .collect(),
                )
            };
            channels.insert(
                id.clone(),
                json!({
                    "state": c(&|x| json!(x.state)),
                    "success_rate": c(&|x| json!(x.success_rate)),
                    "sent_per_s": c(&|x| json!(x.sent_per_s)),
                    "throttled_per_s": c(&|x| json!(x.throttled_per_s)),
                    "queue_depth": c(&|x| json!(x.queue_depth)),
                    "submit_latency_ms_p99": c(&|x| json!(x.submit_latency_ms_p99)),
                    "receipt_latency_ms_p50": c(&|x| json!(x.receipt_latency_ms_p50)),
                    "receipt_latency_ms_p99": c(&|x| json!(x.receipt_latency_ms_p99)),
                    "health_score": c(&|x| json!(x.health_score)),
                }),
            );
        }
        json!({
            "interval_ms": INTERVAL.as_millis() as u64,
            "keep": KEEP,
            "t": col(&|p| json!(p.at)),
            "series": {
                "accepted_per_s": col(&|p| json!(p.accepted_per_s)),
                "sent_per_s": col(&|p| json!(p.sent_per_s)),
                "delivered_per_s": col(&|p| json!(p.delivered_per_s)),
                "failed_per_s": col(&|p| json!(p.failed_per_s)),
                "undelivered_per_s": col(&|p| json!(p.undelivered_per_s)),
                "expired_per_s": col(&|p| json!(p.expired_per_s)),
                "http_429_per_s": col(&|p| json!(p.http_429_per_s)),
                "queue_depth": col(&|p| json!(p.queue_depth)),
                "success_rate": col(&|p| json!(p.success_rate)),
                "receipt_latency_ms_p50": col(&|p| json!(p.receipt_latency_ms_p50)),
                "receipt_latency_ms_p99": col(&|p| json!(p.receipt_latency_ms_p99)),
            },
            "channels": channels,
        })
    }

    /// How many samples are held.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .points
            .len()
    }

    /// True before the second reading.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Aborts the sampler when dropped (it lives as long as the node's HTTP server).
pub struct SamplerGuard(tokio::task::JoinHandle<()>);

impl Drop for SamplerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts sampling into `st.history` every `INTERVAL`.
pub fn spawn_sampler(st: AppState) -> SamplerGuard {
    SamplerGuard(tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let text = st.metrics.render();
            let mono = started.elapsed().as_millis() as u64;
            let totals = Totals::from_metrics(&text, mono);
            let views = crate::api::admin::channel_views(&st).await;
            let depth = st.consensus.store().work().waiting_total as f64;
            st.history
                .record(totals, &views, depth, crate::clock::now_ms());
        }
    }))
}

/// Query of `GET /admin/v1/stats/history`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only samples taken after this time (ms since the epoch).
    since: Option<i64>,
}

/// `GET /admin/v1/stats/history`: the samples of the last 15 minutes as columns.
pub async fn get_history(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let configured: std::collections::HashSet<String> = st
        .consensus
        .store()
        .config()
        .channels
        .keys()
        .cloned()
        .collect();
    let mut body = st
        .history
        .to_json(q.since.unwrap_or(i64::MIN), &|id| configured.contains(id));
    body["node"] = json!(st.consensus.node_id());
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(accepted: u64, delivered: u64, undelivered: u64, fast: u64, slow: u64) -> String {
        format!(
            "smsgw_messages_total{{status=\"accepted\"}} {accepted}\n\
             smsgw_messages_total{{status=\"sent\"}} {accepted}\n\
             smsgw_messages_total{{status=\"delivered\"}} {delivered}\n\
             smsgw_messages_total{{status=\"undelivered\"}} {undelivered}\n\
             smsgw_http_requests_total{{route=\"/v1/messages\",code=\"429\"}} 4\n\
             {RECEIPT_LATENCY}_bucket{{channel=\"a\",le=\"0.1\"}} {fast}\n\
             {RECEIPT_LATENCY}_bucket{{channel=\"a\",le=\"1\"}} {t}\n\
             {RECEIPT_LATENCY}_bucket{{channel=\"a\",le=\"+Inf\"}} {t}\n",
            t = fast + slow
        )
    }

    fn view(sent: u64) -> Value {
        json!({"id": "a", "state": "bound", "queue_depth": 3, "health": {"score": 0.75},
               "stats": {"sent": sent, "success_rate": 0.9, "submit_latency_ms_p99": 4.5}})
    }

    #[test]
    fn rates_windows_and_channel_figures() {
        let h = History::default();
        h.record(
            Totals::from_metrics(&metrics(0, 0, 0, 0, 0), 0),
            &[view(0)],
            0.0,
            1,
        );
        assert!(h.is_empty(), "one reading is no rate yet");
        h.record(
            Totals::from_metrics(&metrics(20, 9, 1, 10, 0), 2000),
            &[view(30)],
            5.0,
            2,
        );
        h.record(
            Totals::from_metrics(&metrics(20, 9, 1, 10, 10), 4000),
            &[view(30)],
            0.0,
            3,
        );
        let j = h.to_json(i64::MIN, &|_| true);
        assert_eq!(j["t"], json!([2, 3]));
        assert_eq!(j["series"]["accepted_per_s"], json!([10.0, 0.0]));
        assert_eq!(j["series"]["queue_depth"], json!([5.0, 0.0]));
        assert_eq!(j["series"]["success_rate"], json!([0.9, 0.9]));
        // 10 receipts ≤ 100 ms, then 10 more in (0.1, 1]: the window's median moves up.
        assert_eq!(j["series"]["receipt_latency_ms_p50"][0], json!(50.0));
        assert_eq!(j["series"]["receipt_latency_ms_p50"][1], json!(100.0));
        let a = &j["channels"]["a"];
        assert_eq!(a["sent_per_s"], json!([15.0, 0.0]));
        assert_eq!(a["success_rate"], json!([0.9, 0.9]));
        assert_eq!(a["state"], json!(["bound", "bound"]));
        assert_eq!(a["queue_depth"], json!([3.0, 3.0]));
        assert_eq!(
            a["health_score"],
            json!([0.75, 0.75]),
            "the view's health.score"
        );
        // Counted apart, as smsgw_messages_total{status} counts them: 1 undelivered, 0 failed.
        assert_eq!(j["series"]["undelivered_per_s"], json!([0.5, 0.0]));
        assert_eq!(j["series"]["failed_per_s"], json!([0.0, 0.0]));
        assert_eq!(j["series"]["expired_per_s"], json!([0.0, 0.0]));
        // A deleted channel leaves the history.
        let gone = h.to_json(i64::MIN, &|id| id != "a");
        assert_eq!(gone["channels"], json!({}));
        assert_eq!(h.to_json(2, &|_| true)["t"], json!([3]), "since filters");
    }

    #[test]
    fn keeps_fifteen_minutes() {
        let h = History::default();
        for i in 0..(KEEP as u64 + 20) {
            h.record(Totals::from_metrics("", i * 2000), &[], 0.0, i as i64);
        }
        assert_eq!(h.len(), KEEP);
    }
}
