//! Compliance: the checks every message passes before its Raft write (so refused traffic
//! costs nothing durable), and the glue that applies a verdict to the message row.
//!
//! - `content`: keyword / regex / URL-domain / link-shortener rules, compiled once per change.
//! - `dlt`: India DLT `{#var#}` template matching.
//! - `quiet`: quiet hours by the recipient country's time zone.
//! - `check`: the verdict for one message (pure).
//!
//! The rows they read (and the exact window counters of frequency caps) are replicated
//! state: `crate::state::compliance`. Every decision is counted in
//! `smsgw_compliance_decisions_total{check,action}`; flags, sender choice and quiet hours
//! are also written on the message's first event and its `compliance` record.

pub mod check;
pub mod content;
pub mod dlt;
pub mod mo;
pub mod quiet;

use axum::http::StatusCode;

use crate::api::error::ApiError;
use crate::messages::intake::{Intake, SendRequest};
use crate::state::compliance::{CapKey, CapKind};
use crate::state::transitions::event;
use crate::state::{ErrorInfo, Message, Op, StateStore, Status, Tenant};

pub use check::{Refusal, Verdict};

/// Counts one decision.
pub fn record(check: &'static str, action: &'static str) {
    metrics::counter!("smsgw_compliance_decisions_total", "check" => check, "action" => action)
        .increment(1);
}

/// The contract's answer to a refusal.
pub fn refusal_error(r: &Refusal) -> ApiError {
    let msg = r.to_string();
    match r {
        Refusal::ContentBlocked { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "content_blocked", msg).field("text")
        }
        Refusal::SenderNotAllowed(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "sender_not_allowed", msg).field("from")
        }
        Refusal::Unregistered10dlc(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "unregistered_10dlc", msg).field("from")
        }
        Refusal::OptedOut(..) => ApiError::new(StatusCode::FORBIDDEN, "opted_out", msg).field("to"),
        Refusal::DltRequired(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "dlt_required", msg).field("dlt")
        }
        Refusal::DltTemplateMismatch(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "dlt_template_mismatch",
            msg,
        )
        .field("dlt.template_id"),
        Refusal::DltEntityMismatch(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "dlt_template_mismatch",
            msg,
        )
        .field("dlt.entity_id"),
        Refusal::FrequencyCapped { retry_after_ms, .. } => {
            ApiError::too_many("frequency_capped", msg, ms_to_s(*retry_after_ms))
        }
        Refusal::CampaignThroughput { retry_after_ms, .. } => {
            ApiError::too_many("rate_limited", msg, ms_to_s(*retry_after_ms))
        }
    }
}

fn ms_to_s(ms: i64) -> u64 {
    ((ms.max(1) + 999) / 1000) as u64
}

/// The refusal of a full window counter (from the intake pre-check or the state machine).
pub fn capped(cap: &CapKey, retry_after_ms: i64) -> Refusal {
    match cap.kind {
        CapKind::Frequency => Refusal::FrequencyCapped {
            max: cap.max,
            category: cap
                .key
                .rsplit('\0')
                .next()
                .map(category_name)
                .unwrap_or("any"),
            per_seconds: cap.per_ms / 1000,
            retry_after_ms,
        },
        CapKind::CampaignThroughput => Refusal::CampaignThroughput {
            campaign: cap.key.rsplit('\0').next().unwrap_or("").to_string(),
            tps: cap.max,
            retry_after_ms,
        },
    }
}

fn category_name(s: &str) -> &'static str {
    match s {
        "otp" => "otp",
        "marketing" => "marketing",
        _ => "transactional",
    }
}

/// The answer to `OpResult::Capped` for a message proposed with `caps`.
pub fn capped_answer(caps: &[CapKey], key: &str, retry_after_ms: i64) -> ApiError {
    let r = match caps.iter().find(|c| c.key == key) {
        Some(cap) => capped(cap, retry_after_ms),
        None => Refusal::FrequencyCapped {
            max: 0,
            category: "any",
            per_seconds: 0,
            retry_after_ms,
        },
    };
    record(r.check(), "reject");
    refusal_error(&r)
}

/// The operation that stores a checked message: `AcceptCappedByParts` when a campaign's
/// throughput counter must take the message's parts, `AcceptCapped` when other window
/// counters apply, else the plain `Accept`.
pub fn accept_op(message: Message, caps: Vec<CapKey>) -> Op {
    let by_parts = message.parts > 1 && caps.iter().any(|c| c.kind == CapKind::CampaignThroughput);
    match (caps.is_empty(), by_parts) {
        (true, _) => Op::Accept(Box::new(message)),
        (false, true) => Op::AcceptCappedByParts {
            message: Box::new(message),
            caps,
        },
        (false, false) => Op::AcceptCapped {
            message: Box::new(message),
            caps,
        },
    }
}

/// Runs every compliance check on a built message and applies the verdict to it (sender,
/// schedule, record, event note). Returns the window counters the accept must fit into.
/// `count` is false for previews (no metrics).
pub fn screen(
    store: &StateStore,
    req: &SendRequest,
    tenant: &Tenant,
    intake: &mut Intake,
    count: bool,
) -> Result<Vec<CapKey>, ApiError> {
    let country = intake.country.as_deref();
    let m = &mut intake.message;
    let rules = content::compiled(store);
    let input = check::Input {
        tenant,
        to: &m.to,
        country,
        from: &m.from,
        explicit_from: req.from.is_some(),
        text: &m.text,
        category: m.category,
        dlt: req
            .dlt
            .as_ref()
            .map(|d| (d.entity_id.as_str(), d.template_id.as_str())),
        campaign_id: req.campaign_id.as_deref(),
        send_time: m.send_at.unwrap_or(m.created_at),
    };
    let verdict = {
        let reg = store.compliance();
        check::check(&input, &reg, &rules)
    };
    let refuse = |r: Refusal| {
        if count {
            record(r.check(), "reject");
        }
        refusal_error(&r)
    };
    let v = verdict.map_err(refuse)?;
    // Early refusal when a window is full already; the state machine decides exactly.
    for cap in &v.caps {
        if let Some(row) = store.window_row(&cap.key)?
            && let Err(ms) = row.check(cap, m.created_at, cap.cost(m.parts))
        {
            return Err(refuse(capped(cap, ms)));
        }
    }
    if count {
        for (c, a) in &v.decisions {
            record(c, a);
        }
    }
    apply(m, v.clone());
    Ok(v.caps)
}

/// Writes a verdict into the row: sender, quiet-hours schedule, record and event note.
pub fn apply(m: &mut Message, v: Verdict) {
    m.from = v.from.into();
    if let Some(t) = v.send_at {
        let validity = m.expires_at - m.send_at.unwrap_or(m.created_at);
        m.send_at = Some(t);
        m.status = Status::Scheduled;
        m.expires_at = t + validity;
        m.events = vec![event(Status::Scheduled, m.created_at)];
    }
    if !v.notes.is_empty()
        && let Some(first) = m.events.first_mut()
    {
        first.note = Some(format!("compliance: {}", v.notes.join("; ")));
    }
    if v.record != Default::default() {
        m.compliance = Some(std::sync::Arc::new(v.record));
    }
}

/// The checks that can change while a message waits for its `send_at` (or the end of
/// quiet hours), asked again when it is released: the recipient opted out since, or a
/// content rule added since rejects the text. The error it then fails with, code
/// `blocked` (a scheduled message passes through `accepted` to `failed`).
pub fn refusal_at_release(store: &StateStore, m: &Message) -> Option<ErrorInfo> {
    // The tenant is copied out so that the config and compliance locks are not nested.
    let tenant = store.config().tenants.get(&*m.tenant).cloned();
    let opted_out = tenant.and_then(|t| check::opt_out(&t, &store.compliance(), &m.to, m.category));
    let refusal = if let Some(r) = opted_out {
        r
    } else {
        let rules = content::compiled(store);
        let hits = rules.evaluate(&m.tenant, &m.text);
        let rule = hits
            .into_iter()
            .find(|h| h.action == crate::state::compliance::RuleAction::Reject)?
            .rule;
        Refusal::ContentBlocked { rule }
    };
    record(refusal.check(), "reject");
    Some(ErrorInfo {
        code: "blocked".into(),
        message: format!("{refusal} (checked again when it was due)"),
        smsc_code: None,
    })
}
