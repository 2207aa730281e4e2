//! The oracle: checks the invariants I1–I8 of `shared/RELIABILITY.md` from what the run
//! observed outside the gateway — the SMSC simulators' ledgers, the webhook receiver's log,
//! the status API and the client's own record — and computes the run's figures.
//!
//! Pure: [`judge`] takes the observations and returns figures and verdicts, so it is unit
//! tested with hand-made inputs that must fail.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::load::{Request, is_accepted, is_available};
use super::webhook::Delivery;
use crate::state::Status;

/// One copy of a message at an SMSC.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    /// From the message text.
    pub client_ref: String,
    /// The SMSC's id.
    pub smsc_id: String,
    /// When the SMSC accepted it, ms since the run started.
    pub t_ms: i64,
    /// The SMSC took this copy but dropped its response on purpose (a response-loss
    /// storm), so the gateway had to resend: one extra copy is owed to it.
    pub response_lost: bool,
}

/// A fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    /// When it started, ms since the load started.
    pub t_ms: u64,
    /// When it was undone (restart, heal), if it was.
    pub end_ms: Option<u64>,
    /// What it was.
    pub label: String,
    /// A crash or partition (not graceful).
    pub abrupt: bool,
    /// Time to a new leader, ms, when the fault hit the leader.
    pub leader_failover_ms: Option<f64>,
    /// Time until every channel was bound again on a healthy node, ms, when it hit a bind owner.
    pub bind_failover_ms: Option<f64>,
    /// Time to the first 202 of a request started after the fault, ms.
    pub first_accept_ms: Option<f64>,
    /// Why the fault was not injected (its target was not up when it fired); None when it
    /// was. A fault not injected is not abrupt and has no failover figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_injected: Option<String>,
}

/// The liveness phase's findings (I8).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Liveness {
    /// Every live node names the same leader.
    pub one_leader: bool,
    /// Every channel is bound on some node.
    pub channels_bound: bool,
    /// A fresh message sent after the faults reached a final status.
    pub probe_final: bool,
    /// Every accepted message reached the SMSC or a final status within `settle_s`.
    pub drained: bool,
    /// Seconds the liveness phase took.
    pub settle_s: f64,
    /// What was wrong, if anything.
    pub detail: String,
}

/// Everything the oracle looks at.
pub struct Observations<'a> {
    /// Client records.
    pub requests: &'a [Request],
    /// Unknown outcomes resolved afterwards by client_ref: ref → id.
    pub resolved: &'a HashMap<String, String>,
    /// Every SMSC ledger line, all simulators.
    pub ledger: &'a [LedgerEntry],
    /// Status API bodies by message id.
    pub statuses: &'a HashMap<String, Value>,
    /// Webhook receiver log.
    pub webhooks: &'a [Delivery],
    /// Faults.
    pub faults: &'a [FaultEvent],
    /// Liveness phase.
    pub liveness: &'a Liveness,
    /// Graceful scenario: 0 duplicates allowed.
    pub graceful: bool,
    /// Receipts are requested and sent (dlr mix not "none").
    pub receipts_expected: bool,
    /// Webhooks are configured.
    pub webhooks_expected: bool,
    /// Targets.
    pub targets: &'a super::scenario::Targets,
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// I1..I8.
    pub id: &'static str,
    /// What it checks.
    pub name: &'static str,
    /// Held?
    pub pass: bool,
    /// Numbers behind it.
    pub detail: String,
}

/// The run's figures (the JSON line carries a subset).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// Send requests made.
    pub requests: u64,
    /// Distinct messages accepted (202/200, incl. unknown outcomes found afterwards).
    pub accepted: u64,
    /// Accepted and neither at an SMSC nor in a final failed/expired status.
    pub lost: u64,
    /// Extra copies at the SMSCs.
    pub duplicates: u64,
    /// Most copies of one message, minus one.
    pub max_copies_minus_one: u64,
    /// Requests with no definite answer after the retry (timeouts, resets, 5xx).
    pub unknown: u64,
    /// ... of which the gateway had stored the message.
    pub unknown_resolved: u64,
    /// Share of requests answered 2xx/429 on the first attempt.
    pub availability_first_try: f64,
    /// Share answered 2xx/429 with one retry on another node.
    pub availability: f64,
    /// 429 answers (all with Retry-After?).
    pub throttled_429: u64,
    /// 429 answers without Retry-After.
    pub throttled_429_without_retry_after: u64,
    /// Accept latency (the client's, incl. retry) p50/p99/max, ms.
    pub accept_ms_p50: f64,
    /// p99.
    pub accept_ms_p99: f64,
    /// max.
    pub accept_ms_max: f64,
    /// Leader failover p50/p99/max, ms.
    pub leader_failover_ms_p50: f64,
    /// p99.
    pub leader_failover_ms_p99: f64,
    /// max.
    pub leader_failover_ms_max: f64,
    /// Bind failover p50/p99/max, ms.
    pub bind_failover_ms_p50: f64,
    /// p99.
    pub bind_failover_ms_p99: f64,
    /// max.
    pub bind_failover_ms_max: f64,
    /// Messages in a final status.
    pub final_statuses: u64,
    /// Webhook deliveries received.
    pub webhook_deliveries: u64,
    /// Distinct webhook events.
    pub webhook_events: u64,
}

/// Nearest-rank percentile of `v` (0 for none).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// The accepted messages: client_ref → message id.
pub fn accepted_set(
    requests: &[Request],
    resolved: &HashMap<String, String>,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for r in requests {
        if is_accepted(r.final_code())
            && let Some(id) = &r.id
        {
            m.insert(r.client_ref.clone(), id.clone());
        }
    }
    for (k, v) in resolved {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    m
}

/// Checks that a status body's events follow the contract's transitions with
/// non-decreasing timestamps; the error says where not.
pub fn legal_history(body: &Value) -> Result<(), String> {
    let events = body["events"].as_array().ok_or("no events")?;
    let mut prev: Option<(Status, i64)> = None;
    for e in events {
        let s = e["status"]
            .as_str()
            .and_then(Status::parse)
            .ok_or_else(|| format!("bad status {}", e["status"]))?;
        let at = e["at"]
            .as_str()
            .and_then(crate::clock::parse_rfc3339)
            .ok_or_else(|| format!("bad time {}", e["at"]))?;
        // A note event (retry, requeue, failover) repeats the status: not a transition.
        let note_only = prev.is_some_and(|(p, _)| p == s) && e["note"].is_string();
        match prev {
            Some((_, pt)) if note_only && at < pt => {
                return Err(format!("time goes back at a {} note", s.as_str()));
            }
            _ if note_only => {}
            None if !matches!(s, Status::Accepted | Status::Scheduled) => {
                return Err(format!("starts at {}", s.as_str()));
            }
            Some((p, _)) if !p.may_become(s) => {
                return Err(format!("{} -> {}", p.as_str(), s.as_str()));
            }
            Some((_, pt)) if at < pt => {
                return Err(format!("time goes back at {}", s.as_str()));
            }
            _ => {}
        }
        prev = Some((s, at));
    }
    let last = prev.map(|p| p.0.as_str()).unwrap_or("");
    if body["status"].as_str() != Some(last) {
        return Err(format!("status {} but last event {last}", body["status"]));
    }
    Ok(())
}

fn is_final(body: &Value) -> bool {
    body["status"]
        .as_str()
        .and_then(Status::parse)
        .is_some_and(Status::is_final)
}

/// Judges a run.
pub fn judge(o: &Observations<'_>) -> (Figures, Vec<Verdict>) {
    let mut f = Figures {
        requests: o.requests.len() as u64,
        ..Default::default()
    };
    let accepted = accepted_set(o.requests, o.resolved);
    f.accepted = accepted.len() as u64;
    let sample = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join("; ");

    // Copies at the SMSCs per client_ref.
    let mut copies: HashMap<&str, u64> = HashMap::new();
    for l in o.ledger {
        *copies.entry(l.client_ref.as_str()).or_default() += 1;
    }

    // I1: no loss.
    let mut lost = Vec::new();
    for (r, id) in &accepted {
        if copies.contains_key(r.as_str()) {
            continue;
        }
        let body = o.statuses.get(id);
        let settled = body.is_some_and(|b| {
            matches!(b["status"].as_str(), Some("failed" | "expired")) && !b["error"].is_null()
        });
        if !settled {
            lost.push(r.clone());
        }
    }
    f.lost = lost.len() as u64;

    // I2: bounded duplicates. Per message, extra copies are allowed only for abrupt
    // faults (crash, partition) active between its first and last copy (±1 s): the
    // ambiguity window; graceful scenarios count none. A copy whose response the SMSC
    // dropped on purpose owes one more on its own: the gateway could not know it was
    // taken, however many storms or crashes the run counts.
    let abrupt = o.faults.iter().filter(|e| e.abrupt).count() as u64;
    f.duplicates = copies.values().map(|c| c - 1).sum();
    f.max_copies_minus_one = copies.values().map(|c| c - 1).max().unwrap_or(0);
    let mut span: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut responses_lost: HashMap<&str, u64> = HashMap::new();
    for l in o.ledger {
        let e = span
            .entry(l.client_ref.as_str())
            .or_insert((l.t_ms, l.t_ms));
        e.0 = e.0.min(l.t_ms);
        e.1 = e.1.max(l.t_ms);
        if l.response_lost {
            *responses_lost.entry(l.client_ref.as_str()).or_default() += 1;
        }
    }
    let mut over_bound = Vec::new();
    for (r, c) in &copies {
        if *c <= 1 {
            continue;
        }
        let (first, last) = span.get(r).copied().unwrap_or((0, 0));
        let faults_in_window = if o.graceful {
            0
        } else {
            o.faults
                .iter()
                .filter(|e| {
                    let (a, b) = (e.t_ms as i64, e.end_ms.unwrap_or(e.t_ms) as i64);
                    e.abrupt && a <= last + 1000 && b >= first - 1000
                })
                .count() as u64
        };
        let bound = responses_lost.get(r).copied().unwrap_or(0) + faults_in_window;
        if c - 1 > bound {
            over_bound.push(format!("{r}: {c} copies, bound {bound}"));
        }
    }
    over_bound.sort();

    // I3: legal histories.
    let mut illegal = Vec::new();
    for (id, b) in o.statuses {
        if let Err(e) = legal_history(b) {
            illegal.push(format!("{id}: {e}"));
        }
        if is_final(b) {
            f.final_statuses += 1;
        }
    }
    illegal.sort();

    // I4: every message the SMSC took (and so sent a receipt for) is final.
    let mut not_final = 0u64;
    let mut missing_status = 0u64;
    for (r, id) in &accepted {
        if !copies.contains_key(r.as_str()) {
            continue;
        }
        match o.statuses.get(id) {
            Some(b) if is_final(b) => {}
            Some(_) => not_final += 1,
            None => missing_status += 1,
        }
    }

    // I5: webhooks.
    let mut by_event: HashMap<&str, &str> = HashMap::new();
    let mut changed_body = 0u64;
    let mut bad_sig = 0u64;
    let mut acked: HashSet<(&str, &str)> = HashSet::new();
    for d in o.webhooks {
        if !d.signature_ok {
            bad_sig += 1;
        }
        match by_event.get(d.event_id.as_str()) {
            Some(b) if *b != d.body.as_str() => changed_body += 1,
            Some(_) => {}
            None => {
                by_event.insert(&d.event_id, &d.body);
            }
        }
        if d.acked {
            acked.insert((d.id.as_str(), d.status.as_str()));
        }
    }
    f.webhook_deliveries = o.webhooks.len() as u64;
    f.webhook_events = by_event.len() as u64;
    let mut missing_hooks = 0u64;
    if o.webhooks_expected {
        for id in accepted.values() {
            if let Some(b) = o.statuses.get(id) {
                for e in b["events"].as_array().into_iter().flatten() {
                    let s = e["status"].as_str().unwrap_or("");
                    if !acked.contains(&(id.as_str(), s)) {
                        missing_hooks += 1;
                    }
                }
            }
        }
    }

    // I6: failover times.
    let leader: Vec<f64> = o
        .faults
        .iter()
        .filter_map(|e| e.leader_failover_ms)
        .collect();
    let bind: Vec<f64> = o.faults.iter().filter_map(|e| e.bind_failover_ms).collect();
    f.leader_failover_ms_p50 = percentile(&leader, 50.0);
    f.leader_failover_ms_p99 = percentile(&leader, 99.0);
    f.leader_failover_ms_max = percentile(&leader, 100.0);
    f.bind_failover_ms_p50 = percentile(&bind, 50.0);
    f.bind_failover_ms_p99 = percentile(&bind, 99.0);
    f.bind_failover_ms_max = percentile(&bind, 100.0);

    // I7: availability and latency.
    let n = o.requests.len().max(1) as f64;
    let first_ok = o.requests.iter().filter(|r| is_available(r.first)).count();
    let final_ok = o
        .requests
        .iter()
        .filter(|r| is_available(r.final_code()))
        .count();
    f.availability_first_try = first_ok as f64 / n;
    f.availability = final_ok as f64 / n;
    if o.requests.is_empty() {
        f.availability_first_try = 0.0;
        f.availability = 0.0;
    }
    for r in o.requests {
        if r.final_code() == 429 {
            f.throttled_429 += 1;
            if !r.retry_after {
                f.throttled_429_without_retry_after += 1;
            }
        }
        if !is_available(r.final_code()) {
            f.unknown += 1;
            if o.resolved.contains_key(&r.client_ref) {
                f.unknown_resolved += 1;
            }
        }
    }
    let lat: Vec<f64> = o
        .requests
        .iter()
        .filter(|r| is_accepted(r.final_code()))
        .map(|r| r.final_ms)
        .collect();
    f.accept_ms_p50 = percentile(&lat, 50.0);
    f.accept_ms_p99 = percentile(&lat, 99.0);
    f.accept_ms_max = percentile(&lat, 100.0);

    let t = o.targets;
    let verdicts = vec![
        Verdict {
            id: "I1",
            name: "no loss",
            pass: f.lost == 0 && f.accepted > 0,
            detail: format!(
                "{} accepted, {} lost{}",
                f.accepted,
                f.lost,
                if lost.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", sample(&lost))
                }
            ),
        },
        Verdict {
            id: "I2",
            name: "bounded duplicates",
            pass: over_bound.is_empty(),
            detail: format!(
                "{} extra copies, at most {} of one message; {} messages over their bound (its responses the SMSC dropped, plus abrupt faults in its ambiguity window{}; {} responses dropped, {} abrupt faults in the run){}",
                f.duplicates,
                f.max_copies_minus_one,
                over_bound.len(),
                if o.graceful {
                    ", none on a graceful run"
                } else {
                    ""
                },
                responses_lost.values().sum::<u64>(),
                abrupt,
                if over_bound.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", sample(&over_bound))
                }
            ),
        },
        Verdict {
            id: "I3",
            name: "legal history",
            pass: illegal.is_empty() && missing_status == 0,
            detail: format!(
                "{} histories checked, {} illegal, {} without a status{}",
                o.statuses.len(),
                illegal.len(),
                missing_status,
                if illegal.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", sample(&illegal))
                }
            ),
        },
        Verdict {
            id: "I4",
            name: "receipt completeness",
            pass: !o.receipts_expected || not_final == 0,
            detail: if o.receipts_expected {
                format!("{not_final} messages at an SMSC without a final status")
            } else {
                "no receipts in this scenario".into()
            },
        },
        Verdict {
            id: "I5",
            name: "webhooks",
            pass: !o.webhooks_expected || (missing_hooks == 0 && bad_sig == 0 && changed_body == 0),
            detail: format!(
                "{} deliveries, {} events; {} status changes without an acknowledged delivery, {} bad signatures, {} event ids with differing bodies",
                f.webhook_deliveries, f.webhook_events, missing_hooks, bad_sig, changed_body
            ),
        },
        Verdict {
            id: "I6",
            name: "failover time",
            pass: (leader.is_empty() || f.leader_failover_ms_p99 <= t.leader_failover_ms_p99)
                && (bind.is_empty() || f.bind_failover_ms_p99 <= t.bind_failover_ms_p99),
            detail: format!(
                "leader {} samples p50/p99/max {:.0}/{:.0}/{:.0} ms (target p99 ≤ {:.0}); binds {} samples {:.0}/{:.0}/{:.0} ms (target p99 ≤ {:.0})",
                leader.len(),
                f.leader_failover_ms_p50,
                f.leader_failover_ms_p99,
                f.leader_failover_ms_max,
                t.leader_failover_ms_p99,
                bind.len(),
                f.bind_failover_ms_p50,
                f.bind_failover_ms_p99,
                f.bind_failover_ms_max,
                t.bind_failover_ms_p99
            ),
        },
        Verdict {
            id: "I7",
            name: "API availability",
            pass: t.availability.is_none_or(|a| f.availability >= a)
                && f.throttled_429_without_retry_after == 0,
            detail: format!(
                "{:.4}% first try, {:.4}% with one retry on another node ({}); {} unknown outcomes ({} found stored); {} 429s ({} without Retry-After)",
                f.availability_first_try * 100.0,
                f.availability * 100.0,
                t.availability.map_or_else(
                    || "no target: targets.availability not set".to_string(),
                    |a| format!("target ≥ {:.2}%", a * 100.0)
                ),
                f.unknown,
                f.unknown_resolved,
                f.throttled_429,
                f.throttled_429_without_retry_after
            ),
        },
        Verdict {
            id: "I8",
            name: "liveness",
            pass: o.liveness.one_leader
                && o.liveness.channels_bound
                && o.liveness.probe_final
                && o.liveness.drained,
            detail: format!(
                "one leader {}, channels bound {}, probe final {}, drained {} after {:.1}s{}",
                o.liveness.one_leader,
                o.liveness.channels_bound,
                o.liveness.probe_final,
                o.liveness.drained,
                o.liveness.settle_s,
                if o.liveness.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", o.liveness.detail)
                }
            ),
        },
        faults_injected(o.faults),
    ];
    (f, verdicts)
}

/// The fault schedule took effect: a scenario with faults none of which could be injected
/// (every target was down or unknown when its time came) tested nothing and fails. Faults
/// not injected beside injected ones are listed but do not fail the run.
fn faults_injected(faults: &[FaultEvent]) -> Verdict {
    let skipped: Vec<&FaultEvent> = faults.iter().filter(|e| e.not_injected.is_some()).collect();
    let injected = faults.len() - skipped.len();
    let detail = if faults.is_empty() {
        "no faults in this scenario".to_string()
    } else {
        let mut d = format!("{injected} injected, {} not injected", skipped.len());
        if let Some(e) = skipped.first() {
            let _ = std::fmt::Write::write_fmt(
                &mut d,
                format_args!(
                    " (e.g. {}: {})",
                    e.label,
                    e.not_injected.as_deref().unwrap_or("")
                ),
            );
        }
        d
    };
    Verdict {
        id: "faults",
        name: "faults injected",
        pass: faults.is_empty() || injected > 0,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(r: &str, code: u16, id: &str) -> Request {
        Request {
            client_ref: r.into(),
            t_ms: 0,
            first: code,
            first_ms: 1.0,
            retry: None,
            final_ms: 1.0,
            id: Some(id.into()),
            retry_after: false,
        }
    }

    fn delivered(id: &str) -> Value {
        json!({"id": id, "status": "delivered", "error": null, "events": [
            {"status": "accepted", "at": "2026-01-01T00:00:00.000Z"},
            {"status": "sent", "at": "2026-01-01T00:00:00.100Z"},
            {"status": "delivered", "at": "2026-01-01T00:00:01.000Z"}]})
    }

    fn ledger(r: &str) -> LedgerEntry {
        LedgerEntry {
            client_ref: r.into(),
            smsc_id: "1".into(),
            t_ms: 0,
            response_lost: false,
        }
    }

    fn verdicts(
        requests: &[Request],
        ledger: &[LedgerEntry],
        statuses: &HashMap<String, Value>,
        graceful: bool,
    ) -> (Figures, HashMap<&'static str, bool>) {
        let live = Liveness {
            one_leader: true,
            channels_bound: true,
            probe_final: true,
            drained: true,
            ..Default::default()
        };
        let targets = crate::chaos::scenario::Targets::default();
        let resolved = HashMap::new();
        let (f, v) = judge(&Observations {
            requests,
            resolved: &resolved,
            ledger,
            statuses,
            webhooks: &[],
            faults: &[],
            liveness: &live,
            graceful,
            receipts_expected: true,
            webhooks_expected: false,
            targets: &targets,
        });
        (f, v.into_iter().map(|v| (v.id, v.pass)).collect())
    }

    #[test]
    fn a_clean_run_passes() {
        let reqs = [req("a", 202, "m1"), req("b", 202, "m2"), req("c", 503, "")];
        let st = HashMap::from([
            ("m1".into(), delivered("m1")),
            ("m2".into(), delivered("m2")),
        ]);
        let (f, v) = verdicts(&reqs, &[ledger("a"), ledger("b")], &st, true);
        assert!(v.values().all(|p| *p), "{v:?}");
        assert_eq!((f.accepted, f.lost, f.duplicates), (2, 0, 0));
        assert!((f.availability - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn loss_duplicates_and_illegal_histories_are_caught() {
        let reqs = [req("a", 202, "m1"), req("b", 202, "m2")];
        let mut bad = delivered("m1");
        bad["events"][1]["status"] = json!("delivered");
        bad["events"][2]["status"] = json!("sent");
        bad["status"] = json!("sent");
        let st = HashMap::from([("m1".into(), bad), ("m2".into(), delivered("m2"))]);
        // b never reached the SMSC: lost. a twice on a graceful run: duplicate.
        let (f, v) = verdicts(&reqs, &[ledger("a"), ledger("a")], &st, true);
        assert_eq!((f.lost, f.duplicates), (1, 1));
        assert!(!v["I1"] && !v["I2"] && !v["I3"] && !v["I4"]);
    }

    #[test]
    fn failed_with_a_reason_is_not_lost() {
        let reqs = [req("a", 202, "m1")];
        let st = HashMap::from([(
            "m1".into(),
            json!({"status": "failed", "error": {"code": "no_route"}, "events": [
                {"status": "accepted", "at": "2026-01-01T00:00:00Z"},
                {"status": "failed", "at": "2026-01-01T00:00:01Z"}]}),
        )]);
        let (f, v) = verdicts(&reqs, &[], &st, false);
        assert_eq!(f.lost, 0);
        assert!(v["I1"] && v["I3"]);
    }

    #[test]
    fn note_events_are_not_transitions_but_repeats_are() {
        let mut b = delivered("m1");
        b["events"] = json!([
            {"status": "accepted", "at": "2026-01-01T00:00:00Z"},
            {"status": "accepted", "at": "2026-01-01T00:00:01Z", "note": "requeued"},
            {"status": "sent", "at": "2026-01-01T00:00:02Z"},
            {"status": "delivered", "at": "2026-01-01T00:00:03Z"}]);
        assert_eq!(legal_history(&b), Ok(()));
        b["events"][1]["note"] = Value::Null;
        assert!(legal_history(&b).is_err());
    }

    #[test]
    fn duplicates_are_allowed_only_inside_a_fault_window() {
        let reqs = [req("a", 202, "m1"), req("b", 202, "m2")];
        let st = HashMap::from([
            ("m1".into(), delivered("m1")),
            ("m2".into(), delivered("m2")),
        ]);
        let at = |r: &str, t: i64| LedgerEntry {
            client_ref: r.into(),
            smsc_id: "x".into(),
            t_ms: t,
            response_lost: false,
        };
        // a: copies around a crash at 10 s; b: copies at 30 s, far from it.
        let ledger = [
            at("a", 9_500),
            at("a", 12_000),
            at("b", 30_000),
            at("b", 30_010),
        ];
        let faults = [FaultEvent {
            t_ms: 10_000,
            end_ms: Some(15_000),
            label: "kill".into(),
            abrupt: true,
            leader_failover_ms: None,
            bind_failover_ms: None,
            first_accept_ms: None,
            not_injected: None,
        }];
        let live = Liveness {
            one_leader: true,
            channels_bound: true,
            probe_final: true,
            drained: true,
            ..Default::default()
        };
        let targets = crate::chaos::scenario::Targets::default();
        let resolved = HashMap::new();
        let (_, v) = judge(&Observations {
            requests: &reqs,
            resolved: &resolved,
            ledger: &ledger,
            statuses: &st,
            webhooks: &[],
            faults: &faults,
            liveness: &live,
            graceful: false,
            receipts_expected: true,
            webhooks_expected: false,
            targets: &targets,
        });
        let i2 = v.iter().find(|v| v.id == "I2").unwrap();
        assert!(
            !i2.pass && i2.detail.contains("1 messages over") && i2.detail.contains("b: 2 copies"),
            "{}",
            i2.detail
        );
    }

    #[test]
    fn each_response_the_smsc_dropped_owes_one_copy() {
        let reqs = [req("a", 202, "m1"), req("b", 202, "m2")];
        let st = HashMap::from([
            ("m1".into(), delivered("m1")),
            ("m2".into(), delivered("m2")),
        ]);
        let dropped = |r: &str| LedgerEntry {
            response_lost: true,
            ..ledger(r)
        };
        // a: two responses dropped, then the third copy answered: 3 copies, bound 2.
        // b: one dropped, yet 3 copies: one more than the drops explain.
        let ledger = [
            dropped("a"),
            dropped("a"),
            ledger("a"),
            dropped("b"),
            ledger("b"),
            ledger("b"),
        ];
        let (f, v) = verdicts(&reqs, &ledger, &st, true);
        assert_eq!(f.duplicates, 4);
        assert!(!v["I2"]);
        let (_, v) = verdicts(&reqs[..1], &ledger[..3], &st, true);
        assert!(
            v["I2"],
            "a's copies are all explained by its dropped responses"
        );
    }

    #[test]
    fn percentiles() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 99.0), 5.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    fn kill(not_injected: Option<&str>) -> FaultEvent {
        FaultEvent {
            t_ms: 1_000,
            end_ms: None,
            label: "kill -9 leadr".into(),
            abrupt: not_injected.is_none(),
            leader_failover_ms: None,
            bind_failover_ms: None,
            first_accept_ms: None,
            not_injected: not_injected.map(str::to_string),
        }
    }

    /// The verdicts of a clean run with these faults and targets.
    fn judged(faults: &[FaultEvent], targets: &crate::chaos::scenario::Targets) -> Vec<Verdict> {
        let reqs = [req("a", 202, "m1"), req("b", 503, "")];
        let st = HashMap::from([("m1".into(), delivered("m1"))]);
        let live = Liveness {
            one_leader: true,
            channels_bound: true,
            probe_final: true,
            drained: true,
            ..Default::default()
        };
        let resolved = HashMap::new();
        judge(&Observations {
            requests: &reqs,
            resolved: &resolved,
            ledger: &[ledger("a")],
            statuses: &st,
            webhooks: &[],
            faults,
            liveness: &live,
            graceful: false,
            receipts_expected: true,
            webhooks_expected: false,
            targets,
        })
        .1
    }

    /// Audit: a run whose every fault was skipped (no such node up) said PASS.
    #[test]
    fn a_run_with_no_fault_injected_fails() {
        let targets = crate::chaos::scenario::Targets::default();
        let find = |v: &[Verdict]| v.iter().find(|v| v.id == "faults").cloned().unwrap();
        let none = find(&judged(&[kill(Some("node 9 is not up"))], &targets));
        assert!(!none.pass, "{}", none.detail);
        assert!(
            none.detail.contains("0 injected, 1 not injected")
                && none.detail.contains("node 9 is not up"),
            "{}",
            none.detail
        );
        let some = find(&judged(
            &[kill(None), kill(Some("no node names a leader"))],
            &targets,
        ));
        assert!(
            some.pass && some.detail.contains("1 injected, 1 not injected"),
            "{}",
            some.detail
        );
        let empty = find(&judged(&[], &targets));
        assert!(
            empty.pass && empty.detail.contains("no faults"),
            "{}",
            empty.detail
        );
        // Every other verdict holds: only the fault schedule fails the run.
        let v = judged(&[kill(Some("x"))], &targets);
        assert!(v.iter().filter(|v| v.id != "faults").all(|v| v.pass));
    }

    #[test]
    fn availability_is_checked_only_when_its_target_is_set() {
        let i7 = |t: &crate::chaos::scenario::Targets| {
            judged(&[], t).into_iter().find(|v| v.id == "I7").unwrap()
        };
        // 1 of 2 requests answered: 50 %.
        let unset = i7(&crate::chaos::scenario::Targets::default());
        assert!(
            unset.pass && unset.detail.contains("targets.availability not set"),
            "{}",
            unset.detail
        );
        let set = crate::chaos::scenario::Targets {
            availability: Some(0.99),
            ..Default::default()
        };
        let v = i7(&set);
        assert!(
            !v.pass && v.detail.contains("target ≥ 99.00%"),
            "{}",
            v.detail
        );
    }
}
