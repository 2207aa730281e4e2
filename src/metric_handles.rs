//! Metric handles registered once per label value. `metrics::counter!` with an owned
//! label builds a key, hashes it and looks it up in the registry on every call; on the
//! per-message paths (a submit response, a receipt, a status change) that was about 1.5 %
//! of a loaded node's CPU (docs/benchmarks.md). The exporter drops no idle series, so a
//! handle kept here stays the one `/metrics` reads.

use std::sync::RwLock;

use rustc_hash::FxHashMap;

/// `# HELP` lines for the contract's metrics (http-api.md §7) and the others operators
/// graph most; `/metrics` shows them above each family. Called once, when the recorder is
/// installed.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "smsgw_messages_total",
        "Status changes of messages on this node's replica, by status entered"
    );
    describe_counter!(
        "smsgw_http_requests_total",
        "HTTP requests answered, by route and status code"
    );
    describe_counter!(
        "smsgw_channel_submit_total",
        "Submits to the operator by channel and result (ok, throttled, error, timeout)"
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
        "smsgw_raft_leader",
        "1 on the node that leads the Raft cluster, else 0"
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
        "smsgw_webhook_deliveries_total",
        "Webhook delivery attempts by result (ok, error, timeout, gave_up)"
    );
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

#[cfg(test)]
mod tests {
    use super::*;

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
