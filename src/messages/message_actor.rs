//! One actor per message while there is work for it: it encodes the text, submits each
//! part on a bind of its channel (respecting TPS and throttling), records every positive
//! response in Raft, and on failure requeues (possibly to another channel) or fails it.
//! It stops when its work is done; a message waiting for a receipt is only a row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{Instrument, debug, info_span, warn};

use crate::channels::ChannelRegistry;
use crate::cluster::Lease;
use crate::consensus::Consensus;
use crate::encoding;
use crate::metric_handles::ByLabel;
use crate::protocols::smpp::session::{SessionError, SubmitOutcome, SubmitRequest};
use crate::protocols::smpp::status_map::{
    SubmitErrorClass, classify_submit_status, describe_command_status, submit_error_code,
};
use crate::state::{ErrorInfo, Message, Op, PartStatus, Status};

/// How long an SMSC may keep answering a message with temporary errors (0x08, 0x64 ...)
/// before it fails: a hiccup of the operator's platform must not lose an accepted
/// message, an outage that long is worth telling the client about. The message's
/// validity ends it sooner.
pub const TEMPORARY_ERROR_PATIENCE: Duration = Duration::from_secs(300);
/// The first pause after a temporary error; it doubles with every further one.
const TEMPORARY_BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest pause between two tries after temporary errors.
const TEMPORARY_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Throttled answers for one part before the message fails over to the next channel of
/// its route; sooner when the throttling took the line out of rotation. Throttling never
/// fails a message.
const MAX_THROTTLE_RETRIES: u32 = 8;
/// How long a part may wait for its bind actor to answer.
const SUBMIT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Times a positive submit response is proposed before the actor gives up (each try
/// waits up to 5 s for a leader, `Consensus::write`).
const RECORD_TRIES: u32 = 4;

/// `smsgw_channel_submit_total{result="ok"}` by channel: counted for every part sent.
static SUBMITTED_OK: std::sync::LazyLock<ByLabel<metrics::Counter>> = std::sync::LazyLock::new(
    || {
        ByLabel::new(
            |channel| metrics::counter!("smsgw_channel_submit_total", "channel" => channel, "result" => "ok"),
        )
    },
);

/// The message actor.
pub struct MessageActor;

/// What a message actor works on.
pub struct MessageArgs {
    pub id: String,
    pub channel: String,
    pub consensus: Arc<Consensus>,
    pub registry: Arc<ChannelRegistry>,
    /// Submits happen only while this node holds its lease.
    pub lease: Arc<Lease>,
}

/// The only message: do the work (sent to itself at start).
#[derive(ractor_cluster::RactorMessage)]
pub enum MessageMsg {
    Work,
}

/// How a message's work ended, for logs and tests.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkEnd {
    AllPartsSubmitted,
    Requeued,
    Failed,
    NothingToDo,
    /// This node lost its lease: it stops without writing anything; the channel's next
    /// owner takes the message from its row.
    LeaseLost,
}

impl Actor for MessageActor {
    type Msg = MessageMsg;
    type State = MessageArgs;
    type Arguments = MessageArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MessageMsg>,
        args: MessageArgs,
    ) -> Result<MessageArgs, ActorProcessingErr> {
        let _ = myself.send_message(MessageMsg::Work);
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<MessageMsg>,
        _msg: MessageMsg,
        st: &mut MessageArgs,
    ) -> Result<(), ActorProcessingErr> {
        let span = info_span!("message", message_id = %st.id, channel = %st.channel, tenant = tracing::field::Empty);
        let end = work(st).instrument(span).await?;
        debug!(message_id = %st.id, ?end, "message work done");
        myself.stop(None);
        Ok(())
    }
}

fn err(code: &str, message: impl Into<String>, smsc: Option<String>) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        message: message.into(),
        smsc_code: smsc,
    }
}

/// Builds the submit_sm fields of each part from the message's stored
/// layout: UDH (8/16-bit reference, national shift IEs) with esm_class 0x40,
/// SAR TLVs, or one message_payload, and packed or unpacked GSM-7.
pub fn build_parts(m: &Message) -> Result<Vec<SubmitRequest>, encoding::EncodingError> {
    let segments = encoding::build_segments(&m.text, m.encoding, &m.layout, m.concat_ref)?;
    Ok(segments
        .into_iter()
        .map(|s| SubmitRequest {
            source_addr: m.from.to_string(),
            dest_addr: m.to.to_string(),
            esm_class: if s.udh.is_empty() { 0x00 } else { 0x40 },
            data_coding: m.encoding.data_coding(),
            registered_delivery: 1,
            short_message: s.user_data(),
            validity_period: String::new(),
            sar: s.sar,
            payload_tlv: s.payload_tlv,
            message_id: m.id.clone(),
            tlvs: Vec::new(),
        })
        .collect())
}

/// The pause before the next try after the `n`th temporary error in a row (0-based):
/// 1 s, 2 s, 4 s ... capped at [`TEMPORARY_BACKOFF_MAX`].
pub fn temporary_backoff(n: u32) -> Duration {
    TEMPORARY_BACKOFF_FIRST
        .saturating_mul(1u32 << n.min(16))
        .min(TEMPORARY_BACKOFF_MAX)
}

/// Puts the message back to wait (next channel of its route). Not when the lease is
/// gone: a node that may no longer own the channel must not move its messages.
async fn requeue(
    lease: &Lease,
    c: &Consensus,
    id: &str,
    note: String,
) -> Result<WorkEnd, ActorProcessingErr> {
    if !lease.valid() {
        return Ok(WorkEnd::LeaseLost);
    }
    c.propose(Op::Requeue {
        id: id.to_string(),
        note,
        at: crate::clock::now_ms(),
    })
    .await
    .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
    Ok(WorkEnd::Requeued)
}

/// Moves the message to the next channel of its route (failover after submit), recorded
/// in its events. Bounded: once it has left every candidate, it is requeued in strategy
/// order instead (it waits; only validity or a permanent error ends it).
async fn failover(
    lease: &Lease,
    c: &Consensus,
    row: &RowFacts,
    from: &str,
    reason: String,
    pinned: bool,
) -> Result<WorkEnd, ActorProcessingErr> {
    // Parts already acknowledged on `from` keep the rest of the message there.
    if pinned || row.route.len() <= 1 || row.avoid.len() >= row.route.len() {
        return requeue(lease, c, &row.id, format!("{reason} on {from}")).await;
    }
    if !lease.valid() {
        return Ok(WorkEnd::LeaseLost);
    }
    metrics::counter!("smsgw_failovers_total", "channel" => from.to_string()).increment(1);
    c.propose(Op::Failover {
        id: row.id.clone(),
        from: from.to_string(),
        reason,
        at: crate::clock::now_ms(),
    })
    .await
    .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
    Ok(WorkEnd::Requeued)
}

/// What the part loop needs of a message's row. The row itself is let go before the
/// first submit response is recorded: while the actor shared the cached row, recording
/// the response had to copy all of it (text, events, parts) instead of taking it.
struct RowFacts {
    id: String,
    route: Arc<[String]>,
    avoid: Vec<String>,
    /// When the message's validity ends (ms): what each submit's validity_period says.
    expires_at: i64,
    /// Per part: answered already (a positive response or a final state), never sent again.
    answered: Vec<bool>,
    /// Some part has the operator's id: the other parts must follow it on this channel.
    acknowledged: bool,
}

impl RowFacts {
    fn of(m: &Message) -> RowFacts {
        RowFacts {
            id: m.id.clone(),
            route: m.route.clone(),
            avoid: m.avoid.clone(),
            expires_at: m.expires_at,
            answered: m
                .part_states
                .iter()
                .map(|p| p.status != PartStatus::Pending || p.smsc_message_id.is_some())
                .collect(),
            acknowledged: m.part_states.iter().any(|p| p.smsc_message_id.is_some()),
        }
    }
}

/// Whether the message's route has a channel besides `from` it has not left yet.
fn has_other_candidate(row: &RowFacts, from: &str) -> bool {
    row.route
        .iter()
        .any(|c| c != from && !row.avoid.iter().any(|a| a == c))
}

/// Fails the message for good on `channel` (recorded, so the status and webhook name it).
/// When other parts already went out (`pinned`), only `part` and the parts after it are refused: the
/// message is `sent` and its receipts settle it (`Op::PartRefused`).
async fn fail(
    c: &Consensus,
    id: &str,
    channel: &str,
    error: ErrorInfo,
    part: u32,
    pinned: bool,
) -> Result<WorkEnd, ActorProcessingErr> {
    let (id, channel, at) = (id.to_string(), channel.to_string(), crate::clock::now_ms());
    c.propose(if pinned {
        Op::PartRefused {
            id,
            part,
            channel,
            error,
            at,
        }
    } else {
        Op::FailOnChannel {
            id,
            channel,
            error,
            at,
        }
    })
    .await
    .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
    Ok(WorkEnd::Failed)
}

async fn work(st: &MessageArgs) -> Result<WorkEnd, ActorProcessingErr> {
    let c = &st.consensus;
    let Some(m) = c
        .store()
        .get_message(&st.id)
        .map_err(|e| ActorProcessingErr::from(e.to_string()))?
    else {
        return Ok(WorkEnd::NothingToDo);
    };
    tracing::Span::current().record("tenant", &*m.tenant);
    if crate::failpoints::fire("message_actor_crash") {
        return Err(ActorProcessingErr::from("failpoint message_actor_crash"));
    }
    if m.status != Status::Accepted {
        return Ok(WorkEnd::NothingToDo);
    }
    if m.expires_at <= crate::clock::now_ms() {
        c.propose(Op::Expire {
            id: m.id.clone(),
            at: crate::clock::now_ms(),
        })
        .await
        .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
        return Ok(WorkEnd::Failed);
    }
    let parts = match build_parts(&m) {
        Ok(p) => p,
        Err(e) => {
            let e = err("rejected_by_carrier", e.to_string(), None);
            return fail(c, &m.id, &st.channel, e, 0, false).await;
        }
    };
    // India DLT ids go to the operator as TLVs (tags per channel option `dlt_tlvs`).
    let dlt = {
        let cfg = c.store().config();
        crate::compliance::dlt::tlvs(&m, cfg.channels.get(&st.channel))
    };
    let row = RowFacts::of(&m);
    drop(m);
    let Some(rt) = st.registry.find(&st.channel) else {
        let pinned = row.acknowledged;
        return failover(
            &st.lease,
            c,
            &row,
            &st.channel,
            "channel not running here".into(),
            pinned,
        )
        .await;
    };
    let parts: Vec<_> = parts
        .into_iter()
        .map(|mut p| {
            p.tlvs.extend(dlt.iter().cloned());
            p
        })
        .collect();
    for (i, req) in parts.into_iter().enumerate() {
        if row.answered.get(i) == Some(&true) {
            continue; // a part with a positive response is never sent again
        }
        // Once any part is acknowledged on this channel, the others must follow it.
        let pinned = i > 0 || row.acknowledged;
        let mut throttles = 0;
        // Temporary errors in a row on this part, and when the first of them came.
        let mut temporary: Option<(u32, Instant)> = None;
        let mut req = req;
        loop {
            let paced_at = rt.acquire_send_slot().await;
            if !st.lease.valid() {
                warn!(message_id = %row.id, channel = %st.channel, "lease lost before submit; leaving the message to the channel's next owner");
                return Ok(WorkEnd::LeaseLost);
            }
            let Some(bind) = rt.pick_bind() else {
                return failover(
                    &st.lease,
                    c,
                    &row,
                    &st.channel,
                    "no bound session".into(),
                    pinned,
                )
                .await;
            };
            // What is left of the validity, as the operator should keep trying (SMPP
            // relative time; CMPP/SMGP/SGIP carry the same format).
            let left_s = (row.expires_at - crate::clock::now_ms()).max(0) as u64 / 1000;
            req.validity_period = crate::protocols::smpp::codec::relative_validity(left_s);
            let started = Instant::now();
            let answer = bind
                .call(
                    |port| crate::channels::bind_actor::BindMsg::Submit(req.clone(), port),
                    Some(SUBMIT_CALL_TIMEOUT),
                )
                .await;
            let result = match answer {
                Ok(ractor::rpc::CallResult::Success(r)) => r,
                Ok(_) => Err(SessionError::ResponseTimeout),
                // The bind actor is gone (stopped for a drain or a channel change): the
                // part never reached it, so nothing was sent.
                Err(_) => Err(SessionError::Unbinding),
            };
            // No answer at all (timeout, transport error) on a line with nowhere else to go.
            let mut unknown_outcome = false;
            let refusal = match result {
                Ok(SubmitOutcome::Accepted { message_id }) => {
                    rt.submit_ok(started.elapsed());
                    SUBMITTED_OK.get(&st.channel).increment(1);
                    let op = Op::PartSubmitted {
                        id: row.id.clone(),
                        part: i as u32,
                        channel: st.channel.clone(),
                        keys: rt.receipt_id_format().response_keys(&message_id),
                        smsc_message_id: message_id,
                        at: crate::clock::now_ms(),
                    };
                    record_submitted(c, op)
                        .await
                        .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
                    break;
                }
                Ok(SubmitOutcome::Rejected { command_status }) => (
                    classify_submit_status(command_status),
                    submit_error_code(command_status).to_string(),
                    format!("0x{command_status:08X}"),
                    format!(
                        "the operator refused the message: {}",
                        describe_command_status(command_status)
                    ),
                ),
                Ok(SubmitOutcome::Nacked { command_status }) => {
                    // The SMSC could not parse our submit_sm: a problem of this line (or
                    // of the gateway's PDU for it), not the carrier refusing the message.
                    let what = format!(
                        "generic_nack to submit_sm: {}",
                        describe_command_status(command_status)
                    );
                    rt.line_failed(what.clone());
                    warn!(message_id = %row.id, channel = %st.channel, part = i, status = format_args!("{command_status:#x}"), "SMSC answered generic_nack");
                    if !pinned && has_other_candidate(&row, &st.channel) {
                        return failover(&st.lease, c, &row, &st.channel, what, pinned).await;
                    }
                    rt.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let e = err(
                        "channel_unavailable",
                        format!("the SMSC could not process the submit ({what})"),
                        Some(format!("0x{command_status:08X}")),
                    );
                    return fail(c, &row.id, &st.channel, e, i as u32, pinned).await;
                }
                Ok(SubmitOutcome::Refused {
                    class,
                    code,
                    provider_code,
                    message,
                }) => (class, code, provider_code, message),
                Err(SessionError::Unbinding) => {
                    // Nothing was sent (the session is finishing its outstanding submits
                    // before it unbinds): move on without a resubmit.
                    return failover(
                        &st.lease,
                        c,
                        &row,
                        &st.channel,
                        "session unbinding (channel drained or changed); not sent".into(),
                        pinned,
                    )
                    .await;
                }
                Err(e) => {
                    // The submit may or may not have reached the operator. A lost session
                    // is not a failed submit for the line's health (the bind's state and
                    // reconnect counter show it), nor is every submit in flight on it.
                    let closed = matches!(e, SessionError::Closed);
                    let elsewhere = !pinned && has_other_candidate(&row, &st.channel);
                    if closed || elsewhere {
                        // Sent again (counted): on the next channel of the route, or on
                        // this one once its session is back (the dispatcher holds it).
                        metrics::counter!("smsgw_resubmits_total", "channel" => st.channel.clone())
                            .increment(1);
                        if !closed {
                            rt.line_failed(format!("no response: {e}"));
                        }
                        warn!(message_id = %row.id, channel = %st.channel, part = i, error = %e, elsewhere, "submit outcome unknown; requeued");
                        let reason = if elsewhere {
                            format!(
                                "no response: {e}; sent again elsewhere (the operator may still deliver the first copy)"
                            )
                        } else {
                            format!(
                                "no response: {e}; sent again once the line is back (the operator may still deliver the first copy)"
                            )
                        };
                        return failover(&st.lease, c, &row, &st.channel, reason, pinned).await;
                    }
                    // Nowhere else to go: this line again after a pause, like a temporary
                    // error (requeueing would resend it at once, without end).
                    unknown_outcome = true;
                    (
                        SubmitErrorClass::Temporary,
                        "channel_unavailable".to_string(),
                        String::new(),
                        format!("no response: {e}"),
                    )
                }
            };
            // (class, contract code, operator's code, what it said)
            let (class, code, smsc, detail) = refusal;
            // No operator code (a refusal on the gateway's side, nothing sent): none shown.
            let smsc_code = (!smsc.is_empty()).then(|| smsc.clone());
            if !unknown_outcome {
                metrics::counter!("smsgw_channel_submit_total", "channel" => st.channel.clone(),
                    "result" => match class { SubmitErrorClass::Throttled => "throttled", SubmitErrorClass::Temporary => "temporary", SubmitErrorClass::Permanent => "permanent" })
                .increment(1);
            }
            match class {
                SubmitErrorClass::Throttled => {
                    rt.throttled(paced_at);
                    throttles += 1;
                    // A line the throttling took out of rotation: queued messages move on
                    // to the rest of their routes (dispatcher), and so does this one
                    // rather than wait out the cool-downs, when it has somewhere to go.
                    let out_of_rotation = !rt.health.allows(Instant::now())
                        && !pinned
                        && has_other_candidate(&row, &st.channel);
                    if throttles >= MAX_THROTTLE_RETRIES || out_of_rotation {
                        return failover(
                            &st.lease,
                            c,
                            &row,
                            &st.channel,
                            format!("throttling storm ({throttles} throttled answers)"),
                            pinned,
                        )
                        .await;
                    }
                }
                SubmitErrorClass::Temporary => {
                    rt.line_failed(detail.clone());
                    // Another line of the route may take it now.
                    if !pinned && has_other_candidate(&row, &st.channel) {
                        return failover(
                            &st.lease,
                            c,
                            &row,
                            &st.channel,
                            format!("temporary error {smsc}"),
                            pinned,
                        )
                        .await;
                    }
                    // Else this line again, after a pause that doubles (1 s .. 60 s), until
                    // the errors have lasted TEMPORARY_ERROR_PATIENCE or validity ends.
                    let (n, since) = *temporary.get_or_insert((0, Instant::now()));
                    let wait = temporary_backoff(n);
                    temporary = Some((n + 1, since));
                    let past_validity =
                        crate::clock::now_ms() + wait.as_millis() as i64 >= row.expires_at;
                    let what = if unknown_outcome {
                        "no answers"
                    } else {
                        "temporary errors"
                    };
                    if since.elapsed() + wait > TEMPORARY_ERROR_PATIENCE || past_validity {
                        rt.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let why = if past_validity {
                            "until the validity ran out"
                        } else {
                            "for too long"
                        };
                        let e = err(
                            &code,
                            format!(
                                "{what} {why} ({} tries over {} s; last: {detail})",
                                n + 1,
                                since.elapsed().as_secs()
                            ),
                            smsc_code,
                        );
                        return fail(c, &row.id, &st.channel, e, i as u32, pinned).await;
                    }
                    warn!(message_id = %row.id, channel = %st.channel, part = i, smsc_code = %smsc, detail = %detail, retry_ms = wait.as_millis() as u64, "temporary error or no answer; trying the same line again after a pause");
                    // The first retry of a part says in its history why it waits (the
                    // retries that follow are the same story; the log and
                    // `smsgw_channel_submit_total` count them).
                    let note = if n > 0 {
                        None
                    } else if unknown_outcome {
                        Some(format!(
                            "{detail} on {}; the operator may have it: sending it again on the same line (no other channel) after pauses of 1 s doubling, for up to {} s",
                            st.channel,
                            TEMPORARY_ERROR_PATIENCE.as_secs()
                        ))
                    } else {
                        Some(format!(
                            "temporary error {smsc} on {} ({detail}); trying the same line again after pauses of 1 s doubling, for up to {} s",
                            st.channel,
                            TEMPORARY_ERROR_PATIENCE.as_secs()
                        ))
                    };
                    if let Some(note) = note {
                        let op = Op::Note {
                            id: row.id.clone(),
                            note,
                            at: crate::clock::now_ms(),
                        };
                        if let Err(e) = c.propose_batched(op).await {
                            warn!(message_id = %row.id, error = %e, "note of a retry not recorded");
                        }
                    }
                    let _lent = st.registry.lend_slot(&rt);
                    tokio::time::sleep(wait).await;
                    if unknown_outcome {
                        // The part goes out again though the first copy may have arrived.
                        metrics::counter!("smsgw_resubmits_total", "channel" => st.channel.clone())
                            .increment(1);
                    }
                }
                SubmitErrorClass::Permanent => {
                    // The operator answered about this message: the line works. Only a
                    // refusal that is not the recipient's (a bad or barred number) counts
                    // against the line's health.
                    if crate::protocols::smpp::status_map::counts_against_line(&code) {
                        rt.line_failed(detail.clone());
                    }
                    rt.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let e = err(&code, detail, smsc_code);
                    return fail(c, &row.id, &st.channel, e, i as u32, pinned).await;
                }
            }
        }
    }
    Ok(WorkEnd::AllPartsSubmitted)
}

/// Records a positive submit response. The operator has the part now, so losing this
/// write would make the message's next owner send it again: a duplicate, and on a graceful
/// leader change one the promises forbid (a rolling restart's leader stopped while a
/// follower's response was on its way to it: "outcome unknown", the actor failed, the
/// message was requeued and resubmitted). Proposing it again is safe whatever happened to
/// the first try: a part that already has its SMSC id is left as it is
/// (`transitions::part_submitted`). Gives up after `RECORD_TRIES` tries or when Raft has
/// stopped; the message is then requeued from its row, as before.
async fn record_submitted(c: &Consensus, op: Op) -> Result<(), crate::consensus::WriteError> {
    let mut tries = 1;
    loop {
        let written = if crate::failpoints::fire("submit_record_lost") {
            Err(crate::consensus::WriteError::Ambiguous(
                "failpoint submit_record_lost: the write's answer was lost".into(),
            ))
        } else {
            c.propose_batched(op.clone()).await
        };
        match written {
            Ok(_) => return Ok(()),
            Err(e @ crate::consensus::WriteError::Fatal(_)) => return Err(e),
            Err(e) if tries >= RECORD_TRIES => return Err(e),
            Err(e) => {
                warn!(error = %e, tries, "submit response not recorded; proposing it again");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
            }
        }
    }
}
