//! Opt-out and opt-in keywords in mobile-originated messages: `STOP` (and the usual
//! synonyms) from a recipient to one of a tenant's numbers puts the recipient on that
//! tenant's opt-out list; `START` takes them off. Committed before the operator's MO is
//! acknowledged, so a crash makes the SMSC deliver it again.

use crate::consensus::Consensus;
use crate::state::compliance::{ComplianceOp, ComplianceRegistry, number_key};
use crate::state::{ConfigView, Op};

/// What an inbound keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoKeyword {
    /// STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT.
    OptOut,
    /// START, UNSTOP, SUBSCRIBE, YES.
    OptIn,
}

/// The keyword of an inbound text: the whole text (trimmed, any case, trailing
/// punctuation ignored) must be the keyword, so "please stop by" is not an opt-out.
pub fn keyword(text: &str) -> Option<MoKeyword> {
    let t = text
        .trim()
        .trim_end_matches(['.', '!'])
        .to_ascii_uppercase();
    match t.as_str() {
        "STOP" | "STOPALL" | "STOP ALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT"
        | "OPT OUT" | "OPT-OUT" => Some(MoKeyword::OptOut),
        "START" | "UNSTOP" | "SUBSCRIBE" | "YES" => Some(MoKeyword::OptIn),
        _ => None,
    }
}

/// Canonical form of an address: `+digits` for numbers, as is for anything else.
pub fn canonical(addr: &str) -> String {
    let t = addr.trim();
    // `+49...`, `0049...` (the international prefix most countries dial) and `49...`
    // are the same number.
    let d = match t.strip_prefix('+') {
        Some(rest) => rest,
        None => t
            .strip_prefix("00")
            .filter(|r| !r.starts_with('0'))
            .unwrap_or(t),
    };
    if d.len() > 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{d}")
    } else {
        addr.trim().to_string()
    }
}

/// Tenants that send from `dest`: registered sender ids, sender pools, 10DLC campaign
/// numbers and the tenants' own `senders`.
pub fn owners(reg: &ComplianceRegistry, cfg: &ConfigView, dest: &str) -> Vec<String> {
    let d = canonical(dest);
    let mut out: Vec<String> = Vec::new();
    let mut add = |t: &str| {
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    };
    for (t, senders) in &reg.senders {
        if senders.contains_key(&d) || senders.contains_key(dest) {
            add(t);
        }
    }
    for (t, campaigns) in &reg.campaigns {
        if campaigns.values().any(|c| c.numbers.contains(&d)) {
            add(t);
        }
    }
    for t in cfg.tenants.values() {
        if t.sender_pool.contains(&d) || t.senders.iter().any(|s| canonical(s) == d) {
            add(&t.id);
        }
    }
    out.sort();
    out
}

/// The opt-out (or opt-in) operations one MO asks for: one per tenant that owns `dest`,
/// none for a text that is not a keyword, a sender that is not a number, or a number no
/// tenant owns. Proposed with the inbound message itself (`inbound::receive`), so both
/// are committed before the operator's MO is acknowledged.
pub fn keyword_ops(
    consensus: &Consensus,
    channel: &str,
    source: &str,
    dest: &str,
    text: &str,
) -> (Option<MoKeyword>, Vec<Op>) {
    let Some(kw) = keyword(text) else {
        return (None, Vec::new());
    };
    let number = canonical(source);
    if number_key(&number).is_none() {
        return (None, Vec::new());
    }
    let tenants = {
        let store = consensus.store();
        let cfg = store.config();
        owners(&store.compliance(), &cfg, dest)
    };
    if tenants.is_empty() {
        tracing::info!(channel, to = %dest, "opt-out keyword to a number no tenant owns; ignored");
        return (None, Vec::new());
    }
    let ops = tenants
        .iter()
        .map(|t| {
            Op::Compliance(Box::new(match kw {
                MoKeyword::OptOut => ComplianceOp::AddOptOuts {
                    tenant: t.clone(),
                    numbers: vec![number.clone()],
                },
                MoKeyword::OptIn => ComplianceOp::RemoveOptOut {
                    tenant: t.clone(),
                    number: number.clone(),
                },
            }))
        })
        .collect();
    (Some(kw), ops)
}

/// Counts and logs a committed keyword.
pub fn keyword_committed(channel: &str, source: &str, dest: &str, kw: MoKeyword) {
    let action = match kw {
        MoKeyword::OptOut => "opt_out",
        MoKeyword::OptIn => "opt_in",
    };
    tracing::info!(channel, from = %canonical(source), to = %dest, action, "MO keyword committed");
    super::record("mo_keyword", action);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords() {
        for (t, k) in [
            ("STOP", Some(MoKeyword::OptOut)),
            (" stop. ", Some(MoKeyword::OptOut)),
            ("Unsubscribe", Some(MoKeyword::OptOut)),
            ("start", Some(MoKeyword::OptIn)),
            ("please stop by", None),
            ("", None),
        ] {
            assert_eq!(keyword(t), k, "{t:?}");
        }
        assert_eq!(canonical("4915112345678"), "+4915112345678");
        assert_eq!(canonical("55555"), "55555");
        assert_eq!(canonical("004915112345678"), "+4915112345678");
        assert_eq!(canonical(" +4915112345678"), "+4915112345678");
        assert_eq!(canonical("0055555"), "0055555");
    }
}
