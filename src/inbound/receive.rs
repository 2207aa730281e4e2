//! Storing one whole inbound message: its keyword's opt-out or opt-in and the message
//! itself in one proposal, answered to the operator only once committed.

use crate::compliance::mo;
use crate::consensus::{Consensus, WriteError};
use crate::encoding::reassembly::Assembled;
use crate::state::{Op, OpResult};

use super::{InboundMessage, KeywordAction};

/// Commits `m`, which came in on `channel`, and says whether any tenant owns the number it
/// was sent to (an MO to a number nobody sends from is not stored).
///
/// # Errors
/// The write did not commit: the caller must not acknowledge the parts (the operator
/// sends them again).
pub async fn store(
    consensus: &Consensus,
    channel: &str,
    m: &Assembled,
) -> Result<bool, WriteError> {
    let (keyword, mut ops) = mo::keyword_ops(consensus, channel, &m.source, &m.dest, &m.text);
    let message = InboundMessage {
        id: ulid::Ulid::new().to_string(),
        channel: channel.to_string(),
        from: mo::canonical(&m.source),
        to: mo::canonical(&m.dest),
        text: m.text.clone(),
        parts: u32::from(m.total),
        complete: m.complete,
        missing_parts: m.missing.clone(),
        keyword: keyword.map(|k| match k {
            mo::MoKeyword::OptOut => KeywordAction::OptOut,
            mo::MoKeyword::OptIn => KeywordAction::OptIn,
        }),
        received_at: crate::clock::now_ms(),
    };
    let id = message.id.clone();
    ops.push(Op::Inbound(Box::new(message)));
    let results = consensus.propose_many(ops).await?;
    if let Some(k) = keyword {
        mo::keyword_committed(channel, &m.source, &m.dest, k);
    }
    let owned = matches!(results.last(), Some(OpResult::Done));
    metrics::counter!("smsgw_mo_messages_total", "channel" => channel.to_string(),
        "complete" => if m.complete { "yes" } else { "no" },
        "owner" => if owned { "tenant" } else { "none" })
    .increment(1);
    if owned {
        tracing::info!(channel, inbound_id = %id, from = %m.source, to = %m.dest, parts = m.total,
            complete = m.complete, "mobile-originated message stored for its tenant");
    } else {
        tracing::info!(channel, from = %m.source, to = %m.dest, parts = m.total,
            "mobile-originated message to a number no tenant sends from; not stored");
    }
    Ok(owned)
}
