//! The message status machine as pure functions over a `Message`: every status
//! change goes through `set_status`, which refuses transitions the contract forbids.

use super::model::{ErrorInfo, Event, Message, PartStatus, Status};
use super::ops::ReceiptOutcome;

/// Moves the message to `next` and records the event; false (and no change) when the
/// contract does not allow that transition.
pub fn set_status(m: &mut Message, next: Status, at: i64, event: Event) -> bool {
    if !m.status.may_become(next) {
        return false;
    }
    m.status = next;
    m.updated_at = m.updated_at.max(at);
    let mut event = event;
    event.status = next;
    event.at = event.at.max(m.events.last().map(|e| e.at).unwrap_or(0));
    m.events.push(event);
    true
}

/// A plain event for `status` at `at`.
pub fn event(status: Status, at: i64) -> Event {
    Event {
        status,
        at,
        channel: None,
        smsc_message_ids: Vec::new(),
        note: None,
    }
}

/// Whether the tenant may still withdraw `m`: while it is `scheduled`, or `accepted` and
/// never handed to a channel: no claim (`claimed`), no earlier attempt (a requeue drops
/// the claim row, and the attempt may have reached the operator), no part with a
/// response. Anything later may already be at the operator, so it is not canceled.
pub fn cancelable(m: &Message, claimed: bool) -> bool {
    match m.status {
        Status::Scheduled => true,
        Status::Accepted => {
            !claimed
                && m.attempts == 0
                && m.part_states
                    .iter()
                    .all(|p| p.status == PartStatus::Pending && p.smsc_message_id.is_none())
        }
        _ => false,
    }
}

/// scheduled/accepted → canceled (the caller checked `cancelable`). Returns the statuses
/// entered.
pub fn cancel(m: &mut Message, at: i64) -> Vec<Status> {
    if !set_status(m, Status::Canceled, at, event(Status::Canceled, at)) {
        return Vec::new();
    }
    m.error = None;
    vec![Status::Canceled]
}

/// The `sent` event: the channel and the operator's id of every acknowledged part.
fn sent_event(m: &Message, channel: &str, at: i64) -> Event {
    Event {
        channel: Some(channel.to_string()),
        smsc_message_ids: m
            .part_states
            .iter()
            .filter_map(|p| p.smsc_message_id.clone())
            .collect(),
        ..event(Status::Sent, at)
    }
}

/// accepted → failed with `error`; `channel` when an operator refused it, recorded on the
/// event and (unless the message already has one) on the message. Returns the statuses
/// entered (empty if the transition is not allowed).
pub fn fail(m: &mut Message, channel: Option<&String>, error: &ErrorInfo, at: i64) -> Vec<Status> {
    let mut ev = event(Status::Failed, at);
    ev.channel = channel.cloned();
    if !set_status(m, Status::Failed, at, ev) {
        return vec![];
    }
    m.error = Some(error.clone());
    if let Some(ch) = channel {
        m.channel.get_or_insert_with(|| ch.clone());
    }
    vec![Status::Failed]
}

/// The operator refused part `refused` of `m` for good on `channel`. With no part
/// acknowledged this is `fail`. Otherwise earlier parts are already with the operator
/// (perhaps on the handset), so the message is not `failed`: the refused part becomes
/// undelivered with `error`, every other part without a response undelivered as never
/// sent, and the message becomes `sent`, noting the refusal; the acknowledged parts'
/// receipts then settle it. Returns the statuses entered.
pub fn refuse_unsent_parts(
    m: &mut Message,
    refused: u32,
    channel: &str,
    error: &ErrorInfo,
    at: i64,
) -> Vec<Status> {
    let channel = channel.to_string();
    if !m.part_states.iter().any(|p| p.smsc_message_id.is_some()) {
        return fail(m, Some(&channel), error, at);
    }
    if m.status != Status::Accepted {
        return Vec::new();
    }
    let refused = refused as usize;
    for (i, p) in m.part_states.iter_mut().enumerate() {
        if p.smsc_message_id.is_some() {
            continue;
        }
        p.status = PartStatus::Undelivered;
        p.error = Some(if i == refused {
            error.clone()
        } else {
            ErrorInfo {
                code: error.code.clone(),
                message: format!("not sent: the operator refused part {}", refused + 1),
                smsc_code: None,
            }
        });
    }
    let ev = Event {
        note: Some(format!(
            "part {} refused by the operator ({}): {}; the parts before it were sent",
            refused + 1,
            error.smsc_code.as_deref().unwrap_or(&error.code),
            error.message
        )),
        ..sent_event(m, &channel, at)
    };
    m.channel = Some(channel);
    m.updated_at = m.updated_at.max(at);
    let mut entered = Vec::new();
    if set_status(m, Status::Sent, at, ev) {
        entered.push(Status::Sent);
        if let Some(s) = settle_if_complete(m, at) {
            entered.push(s);
        }
    }
    entered
}

/// Records a positive submit response for one part; when every part has one, the message
/// becomes `sent`. Returns the statuses entered, in order (empty if nothing changed).
pub fn part_submitted(
    m: &mut Message,
    part: u32,
    channel: &str,
    smsc_id: &str,
    at: i64,
) -> Vec<Status> {
    let Some(p) = m.part_states.get_mut(part as usize) else {
        return Vec::new();
    };
    if p.smsc_message_id.is_some() {
        return Vec::new();
    }
    p.smsc_message_id = Some(smsc_id.to_string());
    if p.status == PartStatus::Pending {
        p.status = PartStatus::Sent;
    }
    m.channel = Some(channel.to_string());
    m.updated_at = m.updated_at.max(at);
    let all_submitted = m.part_states.iter().all(|p| p.smsc_message_id.is_some());
    let mut entered = Vec::new();
    if all_submitted && m.status == Status::Accepted {
        let ev = sent_event(m, channel, at);
        if set_status(m, Status::Sent, at, ev) {
            entered.push(Status::Sent);
            // Receipts that came before the last response may already settle it.
            if let Some(s) = settle_if_complete(m, at) {
                entered.push(s);
            }
        }
    }
    entered
}

/// Records a receipt for one part and rolls the parts up into the message status when
/// every part is final. Returns the statuses entered.
pub fn receipt(
    m: &mut Message,
    part: u32,
    outcome: ReceiptOutcome,
    error: Option<ErrorInfo>,
    at: i64,
) -> Vec<Status> {
    let Some(p) = m.part_states.get_mut(part as usize) else {
        return Vec::new();
    };
    let new = match outcome {
        ReceiptOutcome::Delivered => PartStatus::Delivered,
        ReceiptOutcome::Undelivered => PartStatus::Undelivered,
        ReceiptOutcome::Expired => PartStatus::Expired,
        ReceiptOutcome::Intermediate => return Vec::new(),
    };
    if matches!(
        p.status,
        PartStatus::Delivered | PartStatus::Undelivered | PartStatus::Expired
    ) {
        // A duplicate or late receipt never changes a final part.
        return Vec::new();
    }
    p.status = new;
    p.error = error;
    m.updated_at = m.updated_at.max(at);
    if m.status != Status::Sent {
        return Vec::new();
    }
    settle_if_complete(m, at).into_iter().collect()
}

/// If every part has a final receipt, the rolled-up status (entered), else None.
fn settle_if_complete(m: &mut Message, at: i64) -> Option<Status> {
    let next = rollup(m)?;
    let error = if next == Status::Delivered {
        None
    } else {
        m.part_states
            .iter()
            .find_map(|p| p.error.clone())
            .or_else(|| {
                Some(ErrorInfo {
                    code: if next == Status::Expired {
                        "expired"
                    } else {
                        "rejected_by_carrier"
                    }
                    .into(),
                    message: format!("operator reported {}", next.as_str()),
                    smsc_code: None,
                })
            })
    };
    if set_status(m, next, at, event(next, at)) {
        m.error = error;
        Some(next)
    } else {
        None
    }
}

/// The message status implied by its parts' receipts, once all are final.
pub fn rollup(m: &Message) -> Option<Status> {
    let mut delivered = 0;
    let mut expired = 0;
    for p in &m.part_states {
        match p.status {
            PartStatus::Delivered => delivered += 1,
            PartStatus::Expired => expired += 1,
            PartStatus::Undelivered => {}
            PartStatus::Pending | PartStatus::Sent => return None,
        }
    }
    let n = m.part_states.len();
    Some(if delivered == n {
        Status::Delivered
    } else if delivered > 0 {
        Status::PartiallyDelivered
    } else if expired == n {
        Status::Expired
    } else {
        Status::Undelivered
    })
}

/// Settles a sent message whose receipts never came: parts still waiting become
/// undelivered with code `unknown`.
pub fn settle_unknown(m: &mut Message, at: i64) -> Vec<Status> {
    if m.status != Status::Sent {
        return Vec::new();
    }
    for p in &mut m.part_states {
        if matches!(p.status, PartStatus::Pending | PartStatus::Sent) {
            p.status = PartStatus::Undelivered;
            p.error = Some(unknown_error());
        }
    }
    match settle_if_complete(m, at) {
        Some(s) => {
            if s != Status::Delivered
                && m.error.as_ref().map(|e| e.code.as_str()) != Some("unknown")
            {
                m.error = Some(unknown_error());
            }
            vec![s]
        }
        None => Vec::new(),
    }
}

fn unknown_error() -> ErrorInfo {
    ErrorInfo {
        code: "unknown".into(),
        message: "no final delivery receipt before the channel's dlr_timeout".into(),
        smsc_code: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::TextEncoding;
    use crate::state::model::{Category, PartState};

    fn msg(parts: u32) -> Message {
        Message {
            id: "m1".into(),
            tenant: "t".into(),
            to: "+4915112345678".into(),
            from: "ACME".into(),
            text: "hi".into(),
            encoding: TextEncoding::Gsm7,
            parts,
            category: Category::Otp,
            client_ref: None,
            callback_url: None,
            created_at: 1,
            updated_at: 1,
            expires_at: 1_000_000,
            send_at: None,
            status: Status::Accepted,
            route: vec!["a".into()].into(),
            channel: None,
            part_states: (0..parts)
                .map(|_| PartState {
                    smsc_message_id: None,
                    status: PartStatus::Pending,
                    error: None,
                })
                .collect(),
            events: vec![event(Status::Accepted, 1)],
            error: None,
            attempts: 0,
            concat_ref: 7,
            idempotency_key: None,
            body_hash: None,
            route_id: None,
            ab_variant: None,
            avoid: Vec::new(),
            operator: None,
            compliance: None,
            layout: Default::default(),
        }
    }

    #[test]
    fn a_part_refused_after_others_went_out_leaves_the_message_sent_not_failed() {
        let refusal = ErrorInfo {
            code: "rejected_by_carrier".into(),
            message: "the operator refused the message".into(),
            smsc_code: Some("0x00000045".into()),
        };
        // Nothing acknowledged yet: failed, as before.
        let mut m = msg(2);
        assert_eq!(
            refuse_unsent_parts(&mut m, 0, "a", &refusal, 2),
            vec![Status::Failed]
        );
        // Part 1 out, part 2 refused: sent, then the receipt settles it.
        let mut m = msg(3);
        part_submitted(&mut m, 0, "a", "x1", 2);
        assert_eq!(
            refuse_unsent_parts(&mut m, 1, "a", &refusal, 3),
            vec![Status::Sent]
        );
        assert_eq!(m.part_states[1].status, PartStatus::Undelivered);
        assert_eq!(m.part_states[1].error, Some(refusal.clone()));
        let never_sent = m.part_states[2].error.clone().unwrap_or_else(unknown_error);
        assert_eq!(never_sent.smsc_code, None);
        assert!(never_sent.message.contains("refused part 2"));
        assert!(
            m.events[1]
                .note
                .as_deref()
                .unwrap_or("")
                .contains("part 2 refused")
        );
        assert_eq!(
            receipt(&mut m, 0, ReceiptOutcome::Delivered, None, 4),
            vec![Status::PartiallyDelivered]
        );
        assert_eq!(m.error, Some(refusal.clone()));
        // Its receipt already in (before the refusal): settled at once.
        let mut m = msg(2);
        part_submitted(&mut m, 0, "a", "x1", 2);
        receipt(&mut m, 0, ReceiptOutcome::Undelivered, None, 3);
        assert_eq!(
            refuse_unsent_parts(&mut m, 1, "a", &refusal, 4),
            vec![Status::Sent, Status::Undelivered]
        );
    }

    #[test]
    fn sent_only_when_every_part_acknowledged() {
        let mut m = msg(2);
        assert!(part_submitted(&mut m, 0, "a", "x1", 2).is_empty());
        assert_eq!(m.status, Status::Accepted);
        assert_eq!(part_submitted(&mut m, 1, "a", "x2", 3), vec![Status::Sent]);
        assert_eq!(
            m.events.last().map(|e| e.smsc_message_ids.clone()),
            Some(vec!["x1".to_string(), "x2".to_string()])
        );
    }

    #[test]
    fn rollup_table() {
        use ReceiptOutcome::*;
        let cases = [
            (vec![Delivered, Delivered], Status::Delivered),
            (vec![Delivered, Undelivered], Status::PartiallyDelivered),
            (vec![Undelivered, Expired], Status::Undelivered),
            (vec![Expired, Expired], Status::Expired),
        ];
        for (outcomes, want) in cases {
            let mut m = msg(2);
            part_submitted(&mut m, 0, "a", "1", 2);
            part_submitted(&mut m, 1, "a", "2", 2);
            let mut got = Vec::new();
            for (i, o) in outcomes.iter().enumerate() {
                got.extend(receipt(&mut m, i as u32, *o, None, 3));
            }
            assert_eq!(got, vec![want]);
            assert_eq!(m.status, want);
        }
    }

    #[test]
    fn receipt_before_response_settles_at_sent() {
        let mut m = msg(1);
        assert!(receipt(&mut m, 0, ReceiptOutcome::Delivered, None, 2).is_empty());
        assert_eq!(
            part_submitted(&mut m, 0, "a", "1", 3),
            vec![Status::Sent, Status::Delivered]
        );
    }

    #[test]
    fn final_is_final_and_duplicates_ignored() {
        let mut m = msg(1);
        part_submitted(&mut m, 0, "a", "1", 2);
        assert_eq!(
            receipt(&mut m, 0, ReceiptOutcome::Delivered, None, 3),
            vec![Status::Delivered]
        );
        assert!(receipt(&mut m, 0, ReceiptOutcome::Undelivered, None, 4).is_empty());
        assert!(settle_unknown(&mut m, 5).is_empty());
        assert_eq!(m.status, Status::Delivered);
        assert!(!set_status(&mut m, Status::Sent, 6, event(Status::Sent, 6)));
    }

    #[test]
    fn settle_unknown_marks_waiting_parts() {
        let mut m = msg(2);
        part_submitted(&mut m, 0, "a", "1", 2);
        part_submitted(&mut m, 1, "a", "2", 2);
        receipt(&mut m, 0, ReceiptOutcome::Delivered, None, 3);
        assert_eq!(settle_unknown(&mut m, 4), vec![Status::PartiallyDelivered]);
        let mut m = msg(1);
        part_submitted(&mut m, 0, "a", "1", 2);
        assert_eq!(settle_unknown(&mut m, 4), vec![Status::Undelivered]);
        assert_eq!(m.error.map(|e| e.code), Some("unknown".to_string()));
    }

    #[test]
    fn event_times_never_go_backwards() {
        let mut m = msg(1);
        part_submitted(&mut m, 0, "a", "1", 0);
        assert!(m.events.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
