//! The operations carried by Raft entries. One entry holds a batch of operations
//! (group commit): the proposer packs whatever is waiting into one entry.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::model::{Channel, ErrorInfo, Message, Route, RoutingSettings, Tenant};
use super::placement::BindReport;

/// What the operator said about one part, normalised for every protocol.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ReceiptOutcome {
    Delivered,
    Undelivered,
    Expired,
    /// ENROUTE / ACCEPTD: recorded, not final.
    Intermediate,
}

/// One change to the replicated state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Op {
    PutTenant(Box<Tenant>),
    DeleteTenant {
        id: String,
    },
    PutChannel(Box<Channel>),
    DeleteChannel {
        id: String,
    },
    SetChannelDrained {
        id: String,
        drained: bool,
    },
    PutRoute(Box<Route>),
    DeleteRoute {
        id: String,
    },
    /// A new message; refused (not stored) when the tenant's queue is full or the idempotency key clashes.
    Accept(Box<Message>),
    /// `send_at` reached: scheduled → accepted.
    Release {
        id: String,
        at: i64,
    },
    /// One part got a positive submit response; `keys` are the normalised forms of the SMSC id.
    PartSubmitted {
        id: String,
        part: u32,
        channel: String,
        smsc_message_id: String,
        keys: Vec<String>,
        at: i64,
    },
    /// A temporary failure: the message waits again (possibly for another channel).
    Requeue {
        id: String,
        note: String,
        at: i64,
    },
    /// A permanent failure or no channel left: accepted → failed.
    Fail {
        id: String,
        error: ErrorInfo,
        at: i64,
    },
    /// Validity passed before sending: scheduled/accepted → expired.
    Expire {
        id: String,
        at: i64,
    },
    /// A delivery receipt from `channel`, matched by any of `keys`.
    Receipt {
        channel: String,
        smsc_message_id: String,
        keys: Vec<String>,
        outcome: ReceiptOutcome,
        error: Option<ErrorInfo>,
        at: i64,
    },
    /// No final receipt within the channel's `dlr_timeout`: settle as undelivered/unknown.
    SettleUnknown {
        id: String,
        at: i64,
    },
    /// Replaces the cluster-wide routing settings (number ranges, price list, HLR hook).
    PutRoutingSettings(Box<RoutingSettings>),
    /// Failover after submit: the message leaves `from` (temporary error, throttling storm,
    /// response timeout, unbound channel) for the next channel of its route. Parts that
    /// already have a positive response keep it (the message stays pinned to that channel).
    Failover {
        id: String,
        from: String,
        reason: String,
        at: i64,
    },
    /// A webhook was answered 2xx (or gave up after 24 h): drop it from the outbox.
    WebhookDone {
        event_id: String,
    },
    /// A member is alive and reachable through a quorum (its lease renewal), and where
    /// it listens.
    Heartbeat {
        node: u64,
        cluster_addr: String,
        http_addr: String,
        draining: bool,
        at: i64,
    },
    /// Changes a channel's owner; applied only when the placement is still at
    /// `expected_epoch` (compare-and-set), so racing proposers cannot both win.
    Place {
        channel: String,
        expected_epoch: u64,
        owner: Option<u64>,
        handoff_to: Option<u64>,
    },
    /// A bind changed state on the node running it.
    BindState(BindReport),
    /// The owner of `channel` (at `epoch`) is about to submit these messages. Refused
    /// when the node is no longer the owner at that epoch.
    Claim {
        channel: String,
        node: u64,
        epoch: u64,
        ids: Vec<String>,
        at: i64,
    },
    /// A member left the cluster: forget its row and bind reports.
    ForgetNode {
        node: u64,
    },
    /// Final messages past the retention time: drop their rows and indexes.
    Purge {
        ids: Vec<String>,
    },
    /// A change to the compliance rows (rules, countries, senders, templates, campaigns, opt-outs).
    Compliance(Box<super::compliance::ComplianceOp>),
    /// Like `Accept`, but refused (`Capped`, nothing stored) when any window counter is full;
    /// counted in the same step, so concurrent sends from several nodes cannot all pass.
    AcceptCapped {
        message: Box<Message>,
        caps: Vec<super::compliance::CapKey>,
    },
    /// Drops window counters that expired by `at` (proposed by the leader's sweeper).
    ComplianceGc {
        at: i64,
    },
    /// Drops the receipts parked before `before` that no submit response claimed
    /// (`state::parked`; proposed by the leader's sweeper), counting them as unmatched.
    DropUnmatchedReceipts {
        before: i64,
    },
    /// The operator refused the message for good on `channel`: accepted → failed, with
    /// the channel recorded (status and webhook name the operator that refused it).
    /// (Last, so that the log entries written before it existed still decode.)
    FailOnChannel {
        id: String,
        channel: String,
        error: ErrorInfo,
        at: i64,
    },
    /// `AcceptCapped` whose campaign throughput counters take one slot per part of the
    /// message (carriers count a 10DLC campaign's rate in parts). A variant of its own so
    /// that an `AcceptCapped` written by an older build is decided as that build decided
    /// it (one slot per message) when a log is applied again.
    AcceptCappedByParts {
        message: Box<Message>,
        caps: Vec<super::compliance::CapKey>,
    },
    /// The operator refused a part for good on `channel` after other parts of the message
    /// had gone out (their responses recorded): the handset may already hold them, so the
    /// message is not `failed`. The refused part becomes undelivered with `error`, the parts
    /// never sent undelivered saying so, and the message becomes `sent`; the acknowledged parts' receipts settle it
    /// (`partially_delivered` or `undelivered`). With no part acknowledged, as `FailOnChannel`.
    PartRefused {
        id: String,
        /// The part the operator refused (from 0); later parts were never sent.
        part: u32,
        channel: String,
        error: ErrorInfo,
        at: i64,
    },
    /// A mobile-originated message (whole, or what arrived of it): stored for every tenant
    /// that sends from the number it was sent to, with a webhook to each; `NotFound` when
    /// no tenant does (nothing stored).
    Inbound(Box<crate::inbound::InboundMessage>),
    /// Inbound messages received before `before` are past the retention time: dropped
    /// (proposed by the leader's sweeper).
    PurgeInbound {
        before: i64,
    },
    /// The tenant withdraws a message (`POST /v1/messages/{id}/cancel`): scheduled or
    /// accepted → canceled, decided here so that a message a channel claimed or sent
    /// meanwhile is not canceled (`OpResult::NotCancelable`). Another tenant's id is
    /// `NotFound`. (Last, so that older log entries still decode.)
    Cancel {
        id: String,
        tenant: String,
        at: i64,
    },
    /// A new webhook secret for `tenant`; the one it replaces keeps signing (a second
    /// `v1=` in `Smsgw-Signature`) until `previous_until` (unix ms; 0: not at all). Not a
    /// `PutTenant` with new fields: tenant rows are bincode and could not gain one.
    /// (Last, so that older log entries still decode.)
    RotateWebhookSecret {
        tenant: String,
        secret: String,
        previous_until: i64,
    },
    /// A note in the history of a message still being worked, with no status change:
    /// a temporary error the message is retried on the same line after, so that its
    /// history says why it waits minutes. Ignored once the message left `accepted`.
    /// (Last, so that older log entries still decode.)
    Note {
        id: String,
        note: String,
        at: i64,
    },
}

impl Op {
    /// True when proposing this operation a second time, after the first try's outcome
    /// was lost with a connection, cannot apply it twice: accepts are keyed by their
    /// message id, so a repeat answers `Duplicate` with that id.
    pub fn is_retry_safe(&self) -> bool {
        matches!(
            self,
            Op::Accept(_) | Op::AcceptCapped { .. } | Op::AcceptCappedByParts { .. }
        )
    }
}

/// The answer to one operation, in the order the operations were proposed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum OpResult {
    Done,
    Accepted {
        id: String,
    },
    /// Same idempotency key and body: the original message.
    Duplicate {
        id: String,
    },
    /// Same idempotency key, different body.
    IdempotencyConflict {
        id: String,
    },
    QueueFull,
    NotFound,
    /// The operation no longer applies (e.g. the message is already final); nothing changed.
    Stale,
    ReceiptMatched {
        id: String,
    },
    /// No message carries this SMSC id yet: kept until its submit response is recorded.
    ReceiptParked,
    /// A claim: the ids that may be submitted now, and among them those that an earlier
    /// claim had already taken (possibly written to the operator: a resubmit).
    Claimed {
        granted: Vec<String>,
        reclaimed: u32,
    },
    /// A window counter of `AcceptCapped` is full; a slot frees in `retry_after_ms`.
    Capped {
        kind: super::compliance::CapKind,
        key: String,
        retry_after_ms: i64,
    },
    /// `DeleteChannel` refused: these routes still name the channel.
    InUse {
        by: Vec<String>,
    },
    /// `PutRoute` refused: it names channels that do not exist.
    MissingChannels {
        ids: Vec<String>,
    },
    /// `Cancel` refused: the message is past the point where it can be withdrawn (claimed
    /// by a channel, partly or wholly sent, or final); `status` is its status now.
    /// (Last, so that older answers still decode.)
    NotCancelable {
        status: super::model::Status,
    },
}

/// A Raft entry's application data: a batch of operations. Shared, not owned: the
/// writer keeps its operations to forward them if this node turns out not to lead, and the
/// log's decoded tail hands entries to apply and replication; with `Vec` each of those
/// copied every message of a batch (6 % of a loaded node's CPU). Encoded as a sequence,
/// the same bytes as before.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Proposal {
    pub ops: std::sync::Arc<[Op]>,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proposal({} ops)", self.ops.len())
    }
}

/// A Raft entry's result: one `OpResult` per operation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Outcome {
    pub results: Vec<OpResult>,
}
