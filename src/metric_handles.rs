//! Metric handles registered once per label value. `metrics::counter!` with an owned
//! label builds a key, hashes it and looks it up in the registry on every call; on the
//! per-message paths (a submit response, a receipt, a status change) that was about 1.5 %
//! of a loaded node's CPU (docs/benchmarks.md). The exporter drops no idle series, so a
//! handle kept here stays the one `/metrics` reads.
//!
//! Since the exporter cannot forget a series either, `/metrics` passes its text through
//! [`channel_series_view`]: the series of deleted channels, and the owner-only health and
//! SLA gauges of channels this node does not run, are left out at scrape time.

use std::collections::HashSet;
use std::sync::RwLock;

use rustc_hash::FxHashMap;

/// `# HELP` lines for every metric the node registers (the contract's, http-api.md §7,
/// and the rest); `/metrics` shows them above each family. Called once, when the recorder
/// is installed. A family missing here has no HELP line: the black-box test
/// `every_metric_family_has_help` fails on it.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    // Messages and the HTTP API.
    describe_counter!(
        "smsgw_messages_total",
        "Status changes of messages on this node's replica, by status entered"
    );
    describe_counter!(
        "smsgw_accepted_total",
        "Messages this node answered 202 Accepted (single sends and batch items)"
    );
    describe_counter!(
        "smsgw_http_requests_total",
        "HTTP requests answered, by route and status code"
    );
    describe_histogram!(
        "smsgw_http_request_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, all routes"
    );
    describe_gauge!(
        "smsgw_waiting_messages",
        "Messages accepted or scheduled and not yet sent, all tenants"
    );
    describe_gauge!(
        "smsgw_scheduled_messages",
        "Of smsgw_waiting_messages, those waiting for send_at; node_queue_limit holds them and the rest (due now) apart"
    );
    describe_gauge!(
        "smsgw_active_cache_rows",
        "Messages not yet final held in this node's in-memory cache"
    );
    describe_counter!(
        "smsgw_messages_purged_total",
        "Final messages dropped after retention_hours"
    );
    describe_counter!(
        "smsgw_compliance_decisions_total",
        "Compliance decisions, by check and action (reject, flag, ...)"
    );
    describe_counter!(
        "smsgw_hlr_lookups_total",
        "HLR/number-portability lookups by result (ok, cached, error, timeout)"
    );
    // Channels and the operator side.
    describe_counter!(
        "smsgw_channel_submit_total",
        "Submits answered by the operator, by channel and result (ok, throttled, temporary, permanent)"
    );
    describe_gauge!(
        "smsgw_channel_up",
        "1 while a channel has a bound session on this node, else 0"
    );
    describe_histogram!(
        "smsgw_submit_latency_seconds",
        Unit::Seconds,
        "Time from writing a submit to its response from the operator"
    );
    describe_gauge!(
        "smsgw_queue_depth",
        "Messages waiting for a channel this node dispatches"
    );
    describe_counter!(
        "smsgw_resubmits_total",
        "Parts submitted again because an earlier submit's answer was not recorded (failover)"
    );
    describe_counter!(
        "smsgw_late_submit_responses_total",
        "Submit responses that came after the response timeout (the part may be sent twice)"
    );
    describe_counter!(
        "smsgw_channel_throttled_total",
        "Operator throttling answers (0x58 throttled, 0x14 queue full), all channels"
    );
    describe_counter!(
        "smsgw_failovers_total",
        "Messages moved to another channel after a temporary error, by the channel left"
    );
    describe_gauge!(
        "smsgw_channel_health_score",
        "Channel health score 0..1 used by routing (success, latency, availability)"
    );
    describe_gauge!(
        "smsgw_channel_breaker_open",
        "1 while a channel's circuit breaker keeps new submits off it, else 0"
    );
    describe_gauge!(
        "smsgw_channel_send_rate",
        "Parts per second a channel may send now (its adaptive rate, at most tps)"
    );
    describe_gauge!(
        "smsgw_channel_sla_availability",
        "Share of the SLA window a channel was bound, by channel and window"
    );
    describe_gauge!(
        "smsgw_channel_sla_success_rate",
        "Share of final receipts that were delivered in the SLA window, by channel and window"
    );
    describe_gauge!(
        "smsgw_channel_sla_submit_latency_ms_p50",
        "Median submit response time in the SLA window, ms, by channel and window"
    );
    describe_gauge!(
        "smsgw_channel_sla_submit_latency_ms_p99",
        "99th percentile submit response time in the SLA window, ms, by channel and window"
    );
    describe_gauge!(
        "smsgw_channel_sla_receipt_latency_ms_p50",
        "Median time from submit to final receipt in the SLA window, ms, by channel and window"
    );
    describe_gauge!(
        "smsgw_channel_sla_receipt_latency_ms_p99",
        "99th percentile time from submit to final receipt in the SLA window, ms, by channel and window"
    );
    describe_counter!(
        "smsgw_channel_sla_alerts_total",
        "SLA alert webhooks fired, by channel and type (channel.sla_breached, channel.sla_recovered)"
    );
    // Receipts and mobile-originated messages.
    describe_counter!(
        "smsgw_receipts_total",
        "Delivery receipts taken, by channel and matched (yes: to its message; parked: before the submit response)"
    );
    describe_counter!(
        "smsgw_receipts_unmatched_total",
        "Receipts for an id no message has (kept parked, then dropped), by channel"
    );
    describe_counter!(
        "smsgw_receipts_refused_total",
        "Receipts posted to /v1/receipts refused (bad signature or body), by channel"
    );
    describe_gauge!(
        "smsgw_receipts_parked",
        "Receipts waiting for their submit response to be recorded"
    );
    describe_histogram!(
        "smsgw_receipt_latency_seconds",
        Unit::Seconds,
        "Time from submit to a final receipt, by channel"
    );
    describe_counter!(
        "smsgw_mo_total",
        "Mobile-originated PDUs received (one per part), by channel"
    );
    describe_counter!(
        "smsgw_mo_messages_total",
        "Mobile-originated messages reassembled, by channel and complete (yes, no)"
    );
    // Webhooks.
    describe_counter!(
        "smsgw_webhook_deliveries_total",
        "Webhook delivery attempts by result (ok, error, timeout, gave_up)"
    );
    describe_gauge!(
        "smsgw_webhook_queue",
        "Webhook deliveries waiting or in flight on this node"
    );
    // Cluster and Raft.
    describe_gauge!(
        "smsgw_raft_leader",
        "1 on the node that leads the Raft cluster, else 0"
    );
    describe_gauge!("smsgw_raft_term", "Current Raft term as this node knows it");
    describe_gauge!(
        "smsgw_lease_valid",
        "1 while this node holds a valid lease to run channels, else 0"
    );
    describe_gauge!(
        "smsgw_actor_mesh_peers",
        "Peers this node's actor mesh is connected to"
    );
    describe_histogram!(
        "smsgw_rate_lease_seconds",
        Unit::Seconds,
        "Time to get a tenant rate-limit lease from the rate home, by via (local, mesh)"
    );
    describe_histogram!(
        "smsgw_raft_write_seconds",
        Unit::Seconds,
        "Time from proposing a write to its commit (or forward to the leader)"
    );
    describe_histogram!(
        "smsgw_raft_ops_per_entry",
        "Operations packed into one Raft log entry"
    );
    describe_histogram!(
        "smsgw_raft_log_append_seconds",
        Unit::Seconds,
        "Time to append entries to the Raft log (before fsync)"
    );
    describe_histogram!(
        "smsgw_raft_fsync_seconds",
        Unit::Seconds,
        "Time of one fsync of the Raft log"
    );
    describe_histogram!(
        "smsgw_raft_entries_per_fsync",
        "Raft log entries made durable by one fsync"
    );
    describe_counter!("smsgw_raft_log_fsync_total", "Fsyncs of the Raft log");
    describe_histogram!(
        "smsgw_state_commit_seconds",
        Unit::Seconds,
        "Time to write applied entries to the state store"
    );
    describe_gauge!(
        "smsgw_store_write_buffer_bytes",
        Unit::Bytes,
        "Memtable bytes of the store (Raft log and state), the store's share of memory"
    );
    // The async runtime.
    describe_gauge!(
        "smsgw_runtime_workers",
        "Worker threads of the node's async runtime"
    );
    describe_gauge!(
        "smsgw_runtime_alive_tasks",
        "Tasks alive in the node's async runtime"
    );
    describe_gauge!(
        "smsgw_runtime_global_queue_depth",
        "Tasks waiting in the async runtime's global queue"
    );
    describe_gauge!(
        "smsgw_runtime_busy_ratio",
        "Share of the last sample window the runtime's workers were busy, 0..1"
    );
}

/// Registers the node-wide counters of the contract at zero when the recorder is
/// installed, so `/metrics` has their series before the first event (Grafana shows 0,
/// not "No data", and `rate(...) > x` alerts have something to evaluate). Per-channel
/// counters are registered when a channel first appears (`channels::sla`).
pub fn register_at_zero() {
    for result in ["ok", "error", "timeout", "gave_up"] {
        let _ = metrics::counter!("smsgw_webhook_deliveries_total", "result" => result);
    }
}

/// The handles of one metric, by the value of its one varying label (a channel id, a
/// status). Values come from the configuration or from a closed set, never from a
/// request, so the map stays as small as the label's cardinality in the registry.
pub struct ByLabel<H> {
    handles: RwLock<FxHashMap<String, H>>,
    register: fn(String) -> H,
}

impl<H: Clone> ByLabel<H> {
    /// `register` makes the handle for a label value the first time it is seen.
    pub fn new(register: fn(String) -> H) -> Self {
        ByLabel {
            handles: RwLock::new(FxHashMap::default()),
            register,
        }
    }

    /// The handle for `label`, registered on first use.
    pub fn get(&self, label: &str) -> H {
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(label)
        {
            return h.clone();
        }
        let mut handles = self.handles.write().unwrap_or_else(|e| e.into_inner());
        handles
            .entry(label.to_string())
            .or_insert_with(|| (self.register)(label.to_string()))
            .clone()
    }
}

/// Gauges only the channel's owner can know (health, breaker, send rate and the SLA
/// windows, `channels::sla`): a node that does not run the channel leaves them out rather
/// than showing its own empty view (or figures from when it last ran it).
fn owner_only(name: &str) -> bool {
    matches!(
        name,
        "smsgw_channel_health_score" | "smsgw_channel_breaker_open" | "smsgw_channel_send_rate"
    ) || (name.starts_with("smsgw_channel_sla_") && name != "smsgw_channel_sla_alerts_total")
}

/// The Prometheus `text` without the series of channels that no longer exist
/// (`configured`: the replicated channel list) and without the owner-only gauges of
/// channels this node does not own (`owned`); a family left with no series loses its
/// `# HELP`/`# TYPE` lines too. Series without a `channel` label pass unchanged.
pub fn channel_series_view(
    text: &str,
    configured: &HashSet<String>,
    owned: &HashSet<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    // Header lines of the current family, written before its first kept series.
    let mut pending = String::new();
    let mut last_was_sample = false;
    for line in text.lines() {
        if line.starts_with('#') {
            if last_was_sample {
                pending.clear();
            }
            pending.push_str(line);
            pending.push('\n');
            last_was_sample = false;
            continue;
        }
        if line.trim().is_empty() {
            if pending.is_empty() {
                out.push('\n');
            }
            pending.clear();
            last_was_sample = false;
            continue;
        }
        last_was_sample = true;
        let keep = !line.contains("channel=\"")
            || crate::dashboard::prom::parse_line(line).is_none_or(|l| match l.label("channel") {
                None => true,
                Some(ch) => configured.contains(ch) && (owned.contains(ch) || !owner_only(l.name)),
            });
        if keep {
            out.push_str(&pending);
            pending.clear();
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_channels_and_other_owners_gauges_are_left_out() {
        let text = "# HELP smsgw_channel_up up\n# TYPE smsgw_channel_up gauge\n\
                    smsgw_channel_up{channel=\"a\"} 1\nsmsgw_channel_up{channel=\"gone\"} 0\n\n\
                    # HELP smsgw_channel_sla_availability av\n# TYPE smsgw_channel_sla_availability gauge\n\
                    smsgw_channel_sla_availability{channel=\"b\",window=\"5m\"} 0\n\n\
                    # TYPE smsgw_channel_sla_alerts_total counter\n\
                    smsgw_channel_sla_alerts_total{channel=\"b\",type=\"channel.sla_breached\"} 1\n\n\
                    # HELP smsgw_raft_leader leader\n# TYPE smsgw_raft_leader gauge\nsmsgw_raft_leader 1\n\n";
        let configured: HashSet<String> = ["a".to_string(), "b".to_string()].into();
        let owned: HashSet<String> = ["a".to_string()].into();
        let v = channel_series_view(text, &configured, &owned);
        assert!(v.contains("smsgw_channel_up{channel=\"a\"} 1"), "{v}");
        assert!(!v.contains("gone"), "a deleted channel: {v}");
        assert!(
            !v.contains("smsgw_channel_sla_availability"),
            "b runs elsewhere: no gauge, no HELP: {v}"
        );
        assert!(
            v.contains("smsgw_channel_sla_alerts_total{channel=\"b\""),
            "{v}"
        );
        assert!(v.contains("# HELP smsgw_raft_leader leader\n# TYPE smsgw_raft_leader gauge\nsmsgw_raft_leader 1\n"), "{v}");
        let owned_b: HashSet<String> = ["b".to_string()].into();
        let v = channel_series_view(text, &configured, &owned_b);
        assert!(v.contains("# TYPE smsgw_channel_sla_availability gauge\nsmsgw_channel_sla_availability{channel=\"b\",window=\"5m\"} 0"), "{v}");
    }

    #[test]
    fn a_cached_handle_counts_into_the_registered_series() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let by_channel = ByLabel::new(|ch| metrics::counter!("t_total", "channel" => ch));
            by_channel.get("c0").increment(1);
            by_channel.get("c0").increment(2);
            by_channel.get("c1").increment(1);
        });
        let text = handle.render();
        assert!(text.contains("t_total{channel=\"c0\"} 3"), "{text}");
        assert!(text.contains("t_total{channel=\"c1\"} 1"), "{text}");
    }
}
