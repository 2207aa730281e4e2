//! The replicated state on fjall: rows written only by `apply`, read by everyone.
//!
//! The Raft log is the durable copy: applying writes rows without fsync, and the
//! last applied log id is written in the same atomic batch, so after a crash the
//! state is a consistent prefix and Raft re-applies the rest.
//!
//! Besides the rows, the store keeps derived in-memory indexes (config maps, timers,
//! waiting counts) that are rebuilt from the rows at start.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use super::message_key::MessageKey;
use super::model::{Channel, Message, Route, Status, Tenant};
use super::ops::{Op, OpResult, Outcome, Proposal, ReceiptOutcome};
use super::placement::{BindReport, ClaimRow, NodeRow, Placement};
use super::transitions::{self, event, set_status};
use crate::wire;

/// A hash map keyed by message ids, which the gateway makes (never a client): rustc-hash's
/// hasher is several times cheaper than SipHash on the apply path.
type FastMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// Decoded non-final rows kept in memory at most (~1.5 KB each): a CPU shortcut for the
/// rows being worked, bounded so that a deep backlog stays on disk (docs/benchmarks.md).
pub const ACTIVE_CACHE_MAX: usize = 50_000;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// How many slots of its window counters an accept takes (`Op::AcceptCapped` one,
/// `Op::AcceptCappedByParts` its parts for a campaign's throughput).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CapCost {
    OnePerMessage,
    Parts,
}

/// A storage failure: fatal for the node (Raft stops rather than diverge).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Fjall(#[from] fjall::Error),
    #[error(transparent)]
    Wire(#[from] wire::WireError),
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

/// A status webhook waiting to be delivered; removed by `Op::WebhookDone`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookJob {
    pub event_id: String,
    pub tenant: String,
    pub message_id: String,
    pub url: String,
    pub body: String,
    pub created_at: i64,
}

/// What the dispatcher needs to queue a waiting message, taken from its row when it
/// becomes ready, so that queueing needs no read of the row.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyInfo {
    pub id: String,
    /// Whose message: the dispatcher's lanes take tenants in turn. Shared with the row,
    /// not copied.
    pub tenant: std::sync::Arc<str>,
    /// Priority lane (category).
    pub lane: usize,
    /// Candidate channels in failover order (only the pinned one once parts went out);
    /// shared with the row, not copied.
    pub route: std::sync::Arc<[String]>,
    /// Parts already went out: the rest must follow on the same channel.
    pub pinned: bool,
    pub attempts: u32,
    /// The channel it waits on: decided by the row alone (the pinned channel, or the
    /// route's candidate at `attempts`), so every node agrees on who dispatches it.
    pub channel: Option<String>,
}

impl ReadyInfo {
    /// The queueing facts of a message, if it waits to be sent.
    pub fn of(m: &Message) -> Option<ReadyInfo> {
        if m.status != Status::Accepted {
            return None;
        }
        let pinned = m
            .part_states
            .iter()
            .any(|p| p.status != super::model::PartStatus::Pending);
        let route = match (&m.channel, pinned) {
            (Some(ch), true) => std::sync::Arc::from([ch.clone()]),
            _ => m.route.clone(),
        };
        let channel = waiting_channel(&route, pinned, m.attempts);
        Some(ReadyInfo {
            id: m.id.clone(),
            tenant: m.tenant.clone(),
            lane: m.category.lane(),
            route,
            pinned,
            attempts: m.attempts,
            channel,
        })
    }
}

/// The channel a waiting message belongs to: the pinned one, else the route's candidate
/// at `attempts` (each requeue moves it to the next).
pub fn waiting_channel(route: &[String], pinned: bool, attempts: u32) -> Option<String> {
    if route.is_empty() {
        return None;
    }
    if pinned {
        return route.first().cloned();
    }
    route.get(attempts as usize % route.len()).cloned()
}

/// Records sent → final-receipt time in `smsgw_receipt_latency_seconds{channel}` (on every
/// replica, like `smsgw_messages_total`; the dashboard's receipt latency reads it).
fn receipt_latency(m: &Message, entered: Status) {
    if !matches!(
        entered,
        Status::Delivered | Status::PartiallyDelivered | Status::Undelivered | Status::Expired
    ) {
        return;
    }
    let Some(sent) = m.events.iter().rev().find(|e| e.status == Status::Sent) else {
        return;
    };
    let done = m.events.last().map(|e| e.at).unwrap_or(m.updated_at);
    RECEIPT_LATENCY
        .get(m.channel.as_deref().unwrap_or_default())
        .record((done - sent.at).max(0) as f64 / 1000.0);
}

/// `smsgw_receipt_latency_seconds` by channel.
static RECEIPT_LATENCY: std::sync::LazyLock<crate::metric_handles::ByLabel<metrics::Histogram>> =
    std::sync::LazyLock::new(|| {
        crate::metric_handles::ByLabel::new(
            |ch| metrics::histogram!("smsgw_receipt_latency_seconds", "channel" => ch),
        )
    });

/// Something node-local actors must react to, sent after the batch is committed.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A message waits for a channel.
    Ready(ReadyInfo),
    /// A webhook was added to the outbox.
    Webhook { event_id: String },
    /// Tenants, channels or routes changed.
    ConfigChanged,
    /// A message changed status (for metrics).
    Status { status: Status },
    /// A member renewed its lease (for the leader's placement controller).
    Heartbeat { node: u64 },
    /// An outcome the routing engine and channel health learn from (sent with `Status`).
    Feedback(Feedback),
    /// A message that was waiting for a channel ended without being sent (validity
    /// passed, failed, purged): the dispatcher drops it from its queue, which would
    /// otherwise hold it (and count it in the queue depth) until the channel sends again.
    Left { id: String },
}

/// What happened to a routed message, for live routing statistics (node-local).
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub route_id: Option<String>,
    pub ab_variant: Option<u8>,
    pub channel: Option<String>,
    pub to: String,
    pub operator: Option<String>,
    pub parts: u32,
    pub kind: FeedbackKind,
}

/// The kinds of [`Feedback`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedbackKind {
    /// Accepted (A/B message count).
    Accepted,
    /// A final receipt for one part; latency from the message's `sent`.
    PartFinal {
        delivered: bool,
        latency_ms: Option<i64>,
    },
    /// The message reached a final status.
    MessageFinal {
        delivered: bool,
        latency_ms: Option<i64>,
    },
}

impl Feedback {
    fn of(m: &Message, kind: FeedbackKind) -> Feedback {
        Feedback {
            route_id: m.route_id.clone(),
            ab_variant: m.ab_variant,
            channel: m.channel.clone(),
            to: m.to.to_string(),
            operator: m.operator.clone(),
            parts: m.parts,
            kind,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdemRecord {
    id: String,
    body_hash: String,
    at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ParkedReceipt {
    smsc_message_id: String,
    outcome: ReceiptOutcome,
    error: Option<super::model::ErrorInfo>,
    at: i64,
}

/// The earliest time a receipt can have arrived for a part whose positive submit response
/// `channel` recorded at `responded_at`: the submit went out at most one response timeout
/// before its answer counted (a later answer is not recorded), and nodes' clocks may differ
/// by up to `CLOCK_SKEW_ALLOWANCE_MS`. A receipt parked earlier is for an older message
/// the SMSC gave the same id (its counter restarted, its ids wrapped).
fn earliest_receipt_for(cfg: &ConfigView, channel: &str, responded_at: i64) -> i64 {
    let timeout = cfg
        .channels
        .get(channel)
        .map_or(crate::protocols::session::DEFAULT_RESPONSE_TIMEOUT, |c| {
            crate::protocols::session::response_timeout(c)
        });
    responded_at - timeout.as_millis() as i64 - CLOCK_SKEW_ALLOWANCE_MS
}

/// How far apart two members' clocks may be when one parks a receipt and another records
/// the submit response it belongs to.
const CLOCK_SKEW_ALLOWANCE_MS: i64 = 5_000;

/// When the parked receipt in `row` arrived. A row that does not decode is still parked,
/// dated 0: it expires at the first drop.
fn parked_at(row: &[u8]) -> i64 {
    wire::decode::<ParkedReceipt>(row).map_or(0, |p| p.at)
}

/// Tenants, channels and routes, kept whole in memory (they are few).
#[derive(Debug, Default, Clone)]
pub struct ConfigView {
    pub tenants: HashMap<String, Tenant>,
    /// API key hash → tenant id.
    pub keys: HashMap<String, String>,
    pub channels: std::collections::BTreeMap<String, Channel>,
    pub routes: std::collections::BTreeMap<String, Route>,
    /// Members as they last announced themselves.
    pub nodes: std::collections::BTreeMap<u64, NodeRow>,
    /// Channel → owning node.
    pub placement: std::collections::BTreeMap<String, Placement>,
    /// (channel, bind index) → the state its node reported.
    pub bind_states: std::collections::BTreeMap<(String, u32), BindReport>,
    /// Bumped on every configuration change (caches of derived indexes key on it).
    pub generation: u64,
    pub routing: super::model::RoutingSettings,
    /// Tenant id → its webhook secret before the last rotation, while it still signs.
    pub previous_secrets: HashMap<String, super::model::PreviousSecret>,
}

impl ConfigView {
    /// The secrets a tenant's webhooks are signed with at `now_ms`: the current one
    /// first, then the one it replaced while the rotation's overlap lasts.
    pub fn webhook_secrets(&self, tenant: &str, now_ms: i64) -> Option<Vec<String>> {
        let t = self.tenants.get(tenant)?;
        let mut out = vec![t.webhook_secret.clone()];
        if let Some(p) = self.previous_secrets.get(tenant)
            && p.until > now_ms
            && p.secret != t.webhook_secret
        {
            out.push(p.secret.clone());
        }
        Some(out)
    }

    /// True when the placement puts `channel` on `node` (handing over or not): the node
    /// that runs its binds, judges its SLA and exports its owner-only gauges.
    pub fn placed_on(&self, node: u64, channel: &str) -> bool {
        self.placement
            .get(channel)
            .is_some_and(|p| p.owner == Some(node))
    }

    /// True when `node` owns `channel` and may start new submits on it.
    pub fn owns(&self, node: u64, channel: &str) -> bool {
        self.placement
            .get(channel)
            .map(|p| p.active_owner(node))
            .unwrap_or(false)
    }

    /// The routes that name `channel` (a channel cannot be deleted while any does).
    pub fn routes_using(&self, channel: &str) -> Vec<String> {
        self.routes
            .values()
            .filter(|r| r.channel_ids().any(|c| c == channel))
            .map(|r| r.id.clone())
            .collect()
    }

    /// The ids of every configured channel (to check references to them, and to notice
    /// deleted ones).
    pub fn channel_ids(&self) -> std::collections::BTreeSet<String> {
        self.channels.keys().cloned().collect()
    }

    /// True when some node reports a bound session for `channel` and it is not drained:
    /// the cluster-wide view used to decide whether moving a message there helps.
    pub fn channel_usable(&self, channel: &str) -> bool {
        let Some(c) = self.channels.get(channel) else {
            return false;
        };
        if c.drained {
            return false;
        }
        let owner = self.placement.get(channel).and_then(|p| p.owner);
        self.bind_states
            .range(
                (channel.to_string(), 0)
                    ..(channel.to_string(), super::placement::RECEIVER_INDEX_BASE),
            )
            .any(|(_, b)| b.state == "bound" && Some(b.node) == owner)
    }
}

/// Timers and counters derived from the rows.
#[derive(Debug, Default)]
pub struct WorkIndex {
    /// (send_at, id) of scheduled messages.
    pub scheduled: BTreeSet<(i64, MessageKey)>,
    /// (expires_at, id) of scheduled and accepted messages.
    pub expiry: BTreeSet<(i64, MessageKey)>,
    /// (settle_at, id) of sent messages waiting for receipts.
    pub dlr_deadline: BTreeSet<(i64, MessageKey)>,
    /// Waiting (scheduled + accepted) messages per tenant.
    pub waiting: HashMap<Arc<str>, u64>,
    /// Waiting (scheduled + accepted) messages, all tenants.
    pub waiting_total: u64,
    /// Of `waiting`, the scheduled messages per tenant: admission holds them to the
    /// limits apart from those due now (`state::admission`).
    pub scheduled_waiting: HashMap<Arc<str>, u64>,
    /// Of `waiting_total`, the scheduled messages.
    pub scheduled_total: u64,
}

impl WorkIndex {
    /// How many of `tenant`'s messages wait in `queue` (its admission count).
    pub fn tenant_count(&self, tenant: &str, queue: super::admission::Queue) -> u64 {
        let scheduled = self.scheduled_waiting.get(tenant).copied().unwrap_or(0);
        match queue {
            super::admission::Queue::Scheduled => scheduled,
            super::admission::Queue::DueNow => self
                .waiting
                .get(tenant)
                .copied()
                .unwrap_or(0)
                .saturating_sub(scheduled),
        }
    }

    /// How many messages of all tenants wait in `queue` (the node limit's count).
    pub fn total_count(&self, queue: super::admission::Queue) -> u64 {
        match queue {
            super::admission::Queue::Scheduled => self.scheduled_total,
            super::admission::Queue::DueNow => {
                self.waiting_total.saturating_sub(self.scheduled_total)
            }
        }
    }
}

/// Channels through which the store tells node-local actors what changed.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub ready: UnboundedSender<Notice>,
    pub webhooks: UnboundedSender<Notice>,
    pub config: UnboundedSender<Notice>,
    pub status: UnboundedSender<Notice>,
    /// Heartbeats, for the placement controller.
    pub cluster: UnboundedSender<Notice>,
}

/// The state machine's rows and indexes.
pub struct StateStore {
    db: Database,
    meta: Keyspace,
    config_ks: Keyspace,
    messages: Keyspace,
    active: Keyspace,
    tenant_msgs: Keyspace,
    smsc_ids: Keyspace,
    orphans: Keyspace,
    idem: Keyspace,
    webhooks: Keyspace,
    claims: Keyspace,
    /// Compliance window counters (frequency caps, campaign throughput) and their expiry index.
    freq: Keyspace,
    /// Inbound (mobile-originated) messages per tenant, and their age index (`inbound::keys`).
    inbound: Keyspace,
    /// A snapshot transfer being received (`snapshot.rs`); not part of the state.
    staging: Keyspace,
    /// Staging a chunk and installing a transfer exclude each other.
    staging_lock: Mutex<()>,
    config: RwLock<ConfigView>,
    /// Compliance rows (rules, countries, senders, templates, campaigns, opt-outs) in memory.
    compliance: RwLock<super::compliance::ComplianceRegistry>,
    work: Mutex<WorkIndex>,
    /// Which receipts are parked in `orphans`, mirrored in memory (`state::parked`).
    parked: Mutex<super::parked::ParkedIndex>,
    /// The ids with a row in `claims`, mirrored in memory: every claim asks whether an
    /// earlier one took the message (a resubmit), and the answer is almost always no, which
    /// cost a fjall lookup per message. The rows are few (claimed, not yet submitted).
    claimed: Mutex<rustc_hash::FxHashSet<Vec<u8>>>,
    /// Non-final messages, decoded: the rows every apply, dispatch and send touches.
    /// Final messages are read from fjall.
    active_cache: RwLock<FastMap<String, Arc<Message>>>,
    /// The apply step's scratch maps, reused (only the state machine task applies).
    apply_scratch: Mutex<Option<ApplyCtx>>,
    notifier: OnceLock<Notifier>,
}

fn ks(db: &Database, name: &str) -> Result<Keyspace, StoreError> {
    Ok(super::memtables::open_keyspace(db, name)?)
}

/// The config-keyspace key of one bind's reported state.
fn bind_key(channel: &str, index: u32) -> Vec<u8> {
    let mut k = format!("b/{channel}").into_bytes();
    k.push(0);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// How much of a tenant's rows one list request may read before it answers a partial
/// page.
#[derive(Debug, Clone, Copy)]
pub struct ScanBudget {
    pub max_rows: usize,
    pub until: std::time::Instant,
}

impl ScanBudget {
    /// Whether a scan that has read `scanned` rows must stop here (the clock is read
    /// every 256 rows only).
    pub fn spent(&self, scanned: usize) -> bool {
        scanned >= self.max_rows
            || (scanned.is_multiple_of(256) && std::time::Instant::now() >= self.until)
    }
}

/// One page of [`StateStore::list_messages`] (or, with inbound messages,
/// [`StateStore::list_inbound`]).
#[derive(Debug)]
pub struct ListPage<T = Message> {
    pub messages: Vec<T>,
    /// Where the next page starts (an id, exclusive); None: nothing older matches.
    pub next: Option<String>,
    /// The scan budget ran out before `limit` matches: older matches may follow `next`.
    pub partial: bool,
}

impl<T> Default for ListPage<T> {
    fn default() -> Self {
        ListPage {
            messages: Vec::new(),
            next: None,
            partial: false,
        }
    }
}

/// One page of [`StateStore::list_inbound`].
pub type InboundPage = ListPage<crate::inbound::InboundMessage>;

impl<T> ListPage<T> {
    /// Takes the `scanned`th row of a scan, `id` (`item` when it matched), and says
    /// whether the scan stops here: `limit` matches, or the budget spent (the page is
    /// then `partial`); either way `next` goes on after `id`.
    fn take(
        &mut self,
        id: String,
        item: Option<T>,
        limit: usize,
        budget: &ScanBudget,
        scanned: usize,
    ) -> bool {
        if let Some(item) = item {
            self.messages.push(item);
            if self.messages.len() >= limit {
                self.next = Some(id);
                return true;
            }
        }
        if budget.spent(scanned) {
            self.next = Some(id);
            self.partial = true;
            return true;
        }
        false
    }

    /// Cuts a page asked for with one row more than `limit` (which tells whether anything
    /// follows) to `limit`: `next` is then the last row kept; a page that was not cut and
    /// not partial has no `next`.
    pub fn trim_to(&mut self, limit: usize, id_of: impl Fn(&T) -> &str) {
        if self.messages.len() > limit {
            self.messages.truncate(limit);
            self.next = self.messages.last().map(|m| id_of(m).to_string());
        } else if !self.partial {
            self.next = None;
        }
    }
}

/// The `sm_tenant_msgs` key indexing a message by its client_ref:
/// `\x01 tenant \0 client_ref \0 id`. The leading 1 keeps these rows out of the plain
/// per-tenant range (`tenant \0 id`; tenant ids never start with a control byte).
fn ref_key(tenant: &str, client_ref: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + client_ref.len() + id.len() + 3);
    k.push(1);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(client_ref.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The `sm_tenant_msgs` key indexing a message by its recipient:
/// `\x02 tenant \0 to \0 id` (kept out of the plain per-tenant range as `ref_key` is).
fn to_key(tenant: &str, to: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + to.len() + id.len() + 3);
    k.push(2);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(to.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The `sm_meta` key saying the client_ref index covers every stored message (written
/// once the rows accepted before the index existed have been indexed).
const REF_INDEX_DONE: &[u8] = b"index/client_ref/v1";

/// The same for the recipient index.
const TO_INDEX_DONE: &[u8] = b"index/to/v1";

/// How far a message's id (a ULID, minted by the node that took the request) may predate
/// its `created_at` (set by the same node a moment later): a newest-first scan for
/// `since` stops at ids older than `since` minus this.
const ID_CLOCK_SLACK_MS: i64 = 60_000;

/// Which of a tenant's messages a list reads, and through which index.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListScope<'a> {
    /// Only messages carrying this client_ref (read through its index).
    pub client_ref: Option<&'a str>,
    /// Only messages to this number (read through its index, unless `client_ref` is
    /// given too).
    pub to: Option<&'a str>,
    /// Only messages created at or after this time (ms): the scan stops once it reaches
    /// ids minted well before it.
    pub since_ms: Option<i64>,
}

impl ListScope<'_> {
    /// The key prefix whose rows are this scope's candidates, newest last.
    fn prefix(&self, tenant: &str) -> Vec<u8> {
        match (self.client_ref, self.to) {
            (Some(r), _) => ref_key(tenant, r, ""),
            (None, Some(to)) => to_key(tenant, to, ""),
            (None, None) => join_key(tenant, ""),
        }
    }

    /// Whether `m` is in scope (the index rows say so already; this checks the rest).
    fn holds(&self, m: &Message) -> bool {
        self.client_ref
            .is_none_or(|r| m.client_ref.as_deref() == Some(r))
            && self.to.is_none_or(|t| *m.to == *t)
            && self.since_ms.is_none_or(|s| m.created_at >= s)
    }

    /// Whether every id older than `id` (in key order) was minted before `since`, so a
    /// newest-first scan may stop: only for ULIDs, whose first 48 bits are their time.
    fn older_than_since(&self, id: &str) -> bool {
        let Some(since) = self.since_ms else {
            return false;
        };
        ulid::Ulid::from_string(id)
            .is_ok_and(|u| (u.timestamp_ms() as i64) < since.saturating_sub(ID_CLOCK_SLACK_MS))
    }
}

/// The end (exclusive) of a newest-first page over the keys `prefix` + id: the id
/// `before` when continuing a page, else just past every such key (the prefix ends with
/// the separator 0, so 1 in its place ends the range after it).
fn page_end(prefix: &[u8], before: Option<&str>) -> Vec<u8> {
    let mut end = prefix.to_vec();
    match before {
        Some(b) => end.extend_from_slice(b.as_bytes()),
        None => {
            if let Some(last) = end.last_mut() {
                *last = 1;
            }
        }
    }
    end
}

/// The apply step's key of message `id`'s claim row.
fn claim_key(id: &str) -> (u8, Vec<u8>) {
    (T_CLAIM, id.as_bytes().to_vec())
}

fn join_key(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// Where SMSC ids are indexed for receipt matching: under their channel (SMPP, HTTP:
/// an SMSC's ids are only unique on its own channel), or for CMPP, SMGP and SGIP under
/// one scope per protocol, `*cmpp`, `*smgp`, `*sgip` (`*` is never in a channel id).
/// Their ids are unique beyond one channel (Msg_Id and MsgID carry the operator
/// gateway's code and the time, an SGIP sequence our node id, the time and the node's
/// counter), and operators deliver a report on any connection of the account, an SGIP
/// SMG to whichever SP listener it knows: matched only within the receiving channel,
/// such receipts were acknowledged and then parked for good.
fn receipt_scope<'a>(cfg: &ConfigView, channel: &'a str) -> &'a str {
    match cfg.channels.get(channel).map(|c| c.protocol.as_str()) {
        Some("cmpp") => "*cmpp",
        Some("smgp") => "*smgp",
        Some("sgip") => "*sgip",
        _ => channel,
    }
}

/// The other SMPP channels logged in to the same SMSC account (host, port and
/// system_id) as `channel`. An SMSC's message ids are unique within the account, and it
/// may deliver a receipt on any of the account's binds: one that came on a sibling is
/// looked up under the sibling's channels too, instead of being acknowledged and then
/// parked for good (CMPP, SMGP and SGIP get the same from their per-protocol scope).
fn account_siblings(cfg: &ConfigView, channel: &str) -> Vec<String> {
    let Some(me) = cfg.channels.get(channel).filter(|c| c.protocol == "smpp") else {
        return Vec::new();
    };
    cfg.channels
        .values()
        .filter(|c| {
            c.id != me.id
                && c.protocol == "smpp"
                && c.port == me.port
                && c.system_id == me.system_id
                && c.host.eq_ignore_ascii_case(&me.host)
        })
        .map(|c| c.id.clone())
        .collect()
}

/// Pending writes of one apply call: reads see them before they are committed. Kept
/// between calls (emptied, capacity retained): maps allocated per apply, sized for the
/// batch, took fresh pages from the OS each time (page faults were 4 % of node CPU).
#[derive(Default)]
struct ApplyCtx {
    messages: FastMap<String, Message>,
    /// (keyspace tag, key) → Some(value) | None (removed)
    kv: HashMap<(u8, Vec<u8>), Option<Vec<u8>>>,
    notices: Vec<Notice>,
    config_changed: bool,
    /// Message rows removed by `Op::Purge`.
    purged: Vec<String>,
    /// A receipt was parked in this batch (a submit response then looks beyond its
    /// own channel's parked receipts even when none was committed).
    orphans_written: bool,
    /// Rows a claim read from fjall (unchanged): cached after the commit, since the
    /// message actor and the submit response are about to read them again.
    claimed_rows: Vec<Message>,
    /// Rows this batch changed that it took out of the cache (`with_message`): they go
    /// back whatever the cache's fill.
    was_cached: rustc_hash::FxHashSet<String>,
}

/// Where `with_message` found a row, so that an unchanged one goes back there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Batch,
    Cache,
    Fjall,
}

impl ApplyCtx {
    /// Empties what the commit did not drain, keeping the capacity; a rare huge batch (a
    /// snapshot, a bulk purge) does not keep its size.
    fn empty_for_reuse(&mut self) {
        self.messages.clear();
        self.kv.clear();
        self.notices.clear();
        self.purged.clear();
        self.claimed_rows.clear();
        self.was_cached.clear();
        self.config_changed = false;
        self.orphans_written = false;
        self.messages.shrink_to(1024);
        self.kv.shrink_to(4096);
    }
}

const T_SMSC: u8 = 1;
const T_ORPHAN: u8 = 2;
const T_IDEM: u8 = 3;
const T_WEBHOOK: u8 = 4;
const T_ACTIVE: u8 = 5;
const T_TENANT_MSG: u8 = 6;
const T_CONFIG: u8 = 7;
const T_CLAIM: u8 = 8;
const T_FREQ: u8 = 9;
const T_INBOUND: u8 = 10;

impl StateStore {
    /// Opens (or creates) the state keyspaces in `db` and rebuilds the in-memory indexes.
    pub fn open(db: &Database) -> Result<Self, StoreError> {
        let store = StateStore {
            db: db.clone(),
            meta: ks(db, "sm_meta")?,
            config_ks: ks(db, "sm_config")?,
            messages: ks(db, super::memtables::MESSAGE_ROWS)?,
            active: ks(db, "sm_active")?,
            tenant_msgs: ks(db, "sm_tenant_msgs")?,
            smsc_ids: ks(db, "sm_smsc_ids")?,
            orphans: ks(db, "sm_orphans")?,
            idem: ks(db, "sm_idem")?,
            webhooks: ks(db, "sm_webhooks")?,
            claims: ks(db, "sm_claims")?,
            freq: ks(db, "sm_freq")?,
            inbound: ks(db, "sm_inbound")?,
            staging: ks(db, "sm_snapshot_staging")?,
            staging_lock: Mutex::new(()),
            config: RwLock::new(ConfigView::default()),
            compliance: RwLock::new(Default::default()),
            work: Mutex::new(WorkIndex::default()),
            active_cache: RwLock::new(FastMap::default()),
            parked: Mutex::new(Default::default()),
            claimed: Mutex::new(Default::default()),
            apply_scratch: Mutex::new(None),
            notifier: OnceLock::new(),
        };
        if !store.resume_install()? {
            store.rebuild()?;
        }
        Ok(store)
    }

    /// Connects the node-local actors; until then notices are dropped (they are
    /// re-derived from the rows when the actors start).
    pub fn set_notifier(&self, n: Notifier) {
        let _ = self.notifier.set(n);
    }

    pub(super) fn rebuild(&self) -> Result<(), StoreError> {
        let mut cfg = ConfigView::default();
        let mut reg = super::compliance::ComplianceRegistry::default();
        for kv in self.config_ks.iter() {
            let (k, v) = kv.into_inner()?;
            match k.first() {
                Some(b't') => {
                    let t: Tenant = wire::decode(&v)?;
                    cfg.keys.insert(t.api_key_hash.clone(), t.id.clone());
                    cfg.tenants.insert(t.id.clone(), t);
                }
                Some(b'c') => {
                    let c: Channel = wire::decode(&v)?;
                    cfg.channels.insert(c.id.clone(), c);
                }
                Some(b'r') => {
                    let r: Route = wire::decode(&v)?;
                    cfg.routes.insert(r.id.clone(), r);
                }
                Some(b'n') => {
                    let n: NodeRow = wire::decode(&v)?;
                    cfg.nodes.insert(n.id, n);
                }
                Some(b'p') => {
                    let p: Placement = wire::decode(&v)?;
                    cfg.placement.insert(p.channel.clone(), p);
                }
                Some(b'b') => {
                    let b: BindReport = wire::decode(&v)?;
                    cfg.bind_states.insert(b.key(), b);
                }
                Some(b's') => cfg.routing = wire::decode(&v)?,
                Some(b'w') => {
                    let p: super::model::PreviousSecret = wire::decode(&v)?;
                    let tenant = String::from_utf8_lossy(k.get(2..).unwrap_or_default());
                    cfg.previous_secrets.insert(tenant.to_string(), p);
                }
                Some(b'x') => reg.load_row(&k, &v)?,
                _ => {}
            }
        }
        self.index_stored_messages()?;
        let mut work = WorkIndex::default();
        let mut cache = FastMap::default();
        for kv in self.active.iter() {
            let (k, _) = kv.into_inner()?;
            let id = String::from_utf8_lossy(&k).to_string();
            if let Some(v) = self.messages.get(id.as_bytes())? {
                let m: Message = wire::decode(&v)?;
                let dlr = cfg
                    .channels
                    .get(m.channel.as_deref().unwrap_or(""))
                    .map(|c| c.dlr_timeout_seconds)
                    .unwrap_or(72 * 3600);
                index_message(&mut work, &m, None, dlr);
                if cache.len() < ACTIVE_CACHE_MAX {
                    cache.insert(id, Arc::new(m));
                }
            }
        }
        let mut parked = super::parked::ParkedIndex::default();
        for kv in self.orphans.iter() {
            let (k, v) = kv.into_inner()?;
            parked.insert(k.to_vec(), parked_at(&v));
        }
        metrics::gauge!("smsgw_receipts_parked").set(parked.len() as f64);
        *self.parked.lock().unwrap_or_else(|e| e.into_inner()) = parked;
        let mut claimed = rustc_hash::FxHashSet::default();
        for kv in self.claims.iter() {
            claimed.insert(kv.key()?.to_vec());
        }
        *self.claimed.lock().unwrap_or_else(|e| e.into_inner()) = claimed;
        *self.active_cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = cfg;
        *self.compliance.write().unwrap_or_else(|e| e.into_inner()) = reg;
        *self.work.lock().unwrap_or_else(|e| e.into_inner()) = work;
        Ok(())
    }

    /// Indexes the client_refs and recipients of the messages stored before those indexes
    /// existed (once each: then `REF_INDEX_DONE` / `TO_INDEX_DONE` is set; also after
    /// installing a snapshot from a node without them). Every message accepted since is
    /// indexed when it is applied.
    fn index_stored_messages(&self) -> Result<(), StoreError> {
        let refs = self.meta.get(REF_INDEX_DONE)?.is_none();
        let recipients = self.meta.get(TO_INDEX_DONE)?.is_none();
        if !refs && !recipients {
            return Ok(());
        }
        let mut batch = self.db.batch();
        let mut n = 0u64;
        for kv in self.messages.iter() {
            let (_, v) = kv.into_inner()?;
            let m: Message = wire::decode(&v)?;
            if refs && let Some(r) = &m.client_ref {
                batch.insert(&self.tenant_msgs, ref_key(&m.tenant, r, &m.id), Vec::new());
            }
            if recipients {
                batch.insert(
                    &self.tenant_msgs,
                    to_key(&m.tenant, &m.to, &m.id),
                    Vec::new(),
                );
            }
            n += 1;
        }
        batch.insert(&self.meta, REF_INDEX_DONE, Vec::new());
        batch.insert(&self.meta, TO_INDEX_DONE, Vec::new());
        batch.commit()?;
        if n > 0 {
            tracing::info!(
                messages = n,
                refs,
                recipients,
                "indexed the stored messages"
            );
        }
        Ok(())
    }

    /// The fjall database this store lives in (shared with the Raft log).
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// A copy of the config maps.
    pub fn config(&self) -> std::sync::RwLockReadGuard<'_, ConfigView> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Every configured channel, copied out so that no caller holds the config lock
    /// while it works on them.
    pub fn channel_list(&self) -> Vec<Channel> {
        self.config().channels.values().cloned().collect()
    }

    /// The compliance rows (read by the checks at intake).
    pub fn compliance(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, super::compliance::ComplianceRegistry> {
        self.compliance.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A window counter as committed (intake refuses early when it is already full; the
    /// state machine decides again, exactly, on `AcceptCapped`).
    pub fn window_row(
        &self,
        key: &str,
    ) -> Result<Option<super::compliance::WindowRow>, StoreError> {
        match self.freq.get(super::compliance::counter_key(key))? {
            Some(v) => Ok(Some(wire::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The timers and counters.
    pub fn work(&self) -> std::sync::MutexGuard<'_, WorkIndex> {
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads one message row (from the cache while it is not final). Shared with the
    /// cache rather than copied: a message actor reads its row once per message, and
    /// copying every text and event of it was 3 % of a sending node's CPU.
    pub fn get_message(&self, id: &str) -> Result<Option<Arc<Message>>, StoreError> {
        if let Some(m) = self.cache().get(id) {
            return Ok(Some(m.clone()));
        }
        Ok(self.stored(id)?.map(Arc::new))
    }

    /// The decoded non-final rows.
    fn cache(&self) -> std::sync::RwLockReadGuard<'_, FastMap<String, Arc<Message>>> {
        self.active_cache.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A message row as fjall holds it (decoded; not from the cache).
    fn stored(&self, id: &str) -> Result<Option<Message>, StoreError> {
        match self.messages.get(id.as_bytes())? {
            Some(v) => Ok(Some(wire::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Ids of non-final messages (used at start to refill the queues).
    pub fn active_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for kv in self.active.iter() {
            let k = kv.key()?;
            out.push(String::from_utf8_lossy(&k).to_string());
        }
        Ok(out)
    }

    /// A tenant's messages in `scope`, newest first, starting strictly before `before`
    /// (an id), at most `limit` of those `filter` keeps. With a `client_ref` or a `to` only
    /// the messages carrying it are read (their indexes: exact, however many newer messages
    /// the tenant has), and with `since` the scan ends at ids minted before it; otherwise
    /// every row in turn, until `budget` runs out: the page then says `partial` and its
    /// `next` continues where the scan stopped, so an empty page with a `next` is never
    /// mistaken for "none".
    pub fn list_messages(
        &self,
        tenant: &str,
        before: Option<&str>,
        limit: usize,
        scope: ListScope<'_>,
        budget: ScanBudget,
        filter: impl Fn(&Message) -> bool,
    ) -> Result<ListPage, StoreError> {
        let prefix = scope.prefix(tenant);
        let end = page_end(&prefix, before);
        let mut page = ListPage::default();
        let mut scanned = 0;
        for kv in self.tenant_msgs.range(prefix.clone()..end).rev() {
            let k = kv.key()?;
            let id = String::from_utf8_lossy(k.get(prefix.len()..).unwrap_or_default()).to_string();
            if scope.older_than_since(&id) {
                break;
            }
            scanned += 1;
            let item = self
                .get_message(&id)?
                .filter(|m| scope.holds(m))
                .filter(|m| filter(m))
                .map(Arc::unwrap_or_clone);
            if page.take(id, item, limit, &budget, scanned) {
                return Ok(page);
            }
        }
        Ok(page)
    }

    /// Up to `limit` of `tenant`'s inbound messages, newest first, older than the id
    /// `before` when given.
    pub fn list_inbound(
        &self,
        tenant: &str,
        before: Option<&str>,
        limit: usize,
        budget: ScanBudget,
        filter: impl Fn(&crate::inbound::InboundMessage) -> bool,
    ) -> Result<InboundPage, StoreError> {
        let start = crate::inbound::keys::by_tenant(tenant, "");
        let end = page_end(&start, before);
        let mut page = InboundPage::default();
        let mut scanned = 0;
        for kv in self.inbound.range(start..end).rev() {
            let (_, v) = kv.into_inner()?;
            let m: crate::inbound::InboundMessage = wire::decode(&v)?;
            scanned += 1;
            let id = m.id.clone();
            let item = filter(&m).then_some(m);
            if page.take(id, item, limit, &budget, scanned) {
                return Ok(page);
            }
        }
        Ok(page)
    }

    /// `tenant`'s copy of inbound message `id`.
    pub fn get_inbound(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<crate::inbound::InboundMessage>, StoreError> {
        match self
            .inbound
            .get(crate::inbound::keys::by_tenant(tenant, id))?
        {
            Some(v) => Ok(Some(wire::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Whether an inbound message received before `before` is still stored (the sweeper
    /// asks before proposing `Op::PurgeInbound`).
    pub fn inbound_before(&self, before: i64) -> bool {
        let end = crate::inbound::keys::age_bound(before);
        self.inbound.range(b"a".to_vec()..end).next().is_some()
    }

    /// The oldest retained message of `tenant` (an id), if any row of that tenant id is
    /// still stored: a deleted tenant's messages stay until the retention purge.
    pub fn first_message_of(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        match self.tenant_msgs.prefix(join_key(tenant, "")).next() {
            Some(kv) => {
                let k = kv.key()?;
                Ok(Some(
                    String::from_utf8_lossy(&k[tenant.len() + 1..]).to_string(),
                ))
            }
            None => Ok(None),
        }
    }

    /// The whole webhook outbox (at start and for retries).
    pub fn webhook_jobs(&self) -> Result<Vec<WebhookJob>, StoreError> {
        let mut out = Vec::new();
        for kv in self.webhooks.iter() {
            let v = kv.value()?;
            out.push(wire::decode(&v)?);
        }
        Ok(out)
    }

    /// One webhook job, if still in the outbox.
    pub fn webhook_job(&self, event_id: &str) -> Result<Option<WebhookJob>, StoreError> {
        match self.webhooks.get(event_id.as_bytes())? {
            Some(v) => Ok(Some(wire::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The idempotency record for (tenant, key), if younger than 24 h at `now`.
    pub fn idempotent_lookup(
        &self,
        tenant: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        match self.idem.get(join_key(tenant, key))? {
            Some(v) => {
                let r: IdemRecord = wire::decode(&v)?;
                // A record whose message was purged (retention shorter than the key's
                // 24 h) answers nothing: the retry is a new message, as the state machine
                // decides too (`idem_replay`).
                let live = self.cache().contains_key(&r.id)
                    || self.messages.contains_key(r.id.as_bytes())?;
                Ok((live && now - r.at < IDEMPOTENCY_TTL_MS).then_some((r.id, r.body_hash)))
            }
            None => Ok(None),
        }
    }

    /// Writes an idempotency row directly (tests build rows no op sequence leaves now).
    #[cfg(test)]
    pub(super) fn put_idem_row(&self, tenant: &str, key: &str, id: &str, hash: &str, at: i64) {
        let rec = IdemRecord {
            id: id.into(),
            body_hash: hash.into(),
            at,
        };
        let bytes = wire::encode(&rec).expect("encode");
        self.idem
            .insert(join_key(tenant, key), bytes)
            .expect("insert");
    }

    /// The message id the idempotency row of (tenant, key) names, whatever its age or
    /// whether the message still exists (tests look at the row itself).
    #[cfg(test)]
    pub(super) fn idem_row(&self, tenant: &str, key: &str) -> Result<Option<String>, StoreError> {
        match self.idem.get(join_key(tenant, key))? {
            Some(v) => Ok(Some(wire::decode::<IdemRecord>(&v)?.id)),
            None => Ok(None),
        }
    }

    /// Applies a run of proposals as one atomic batch, together with the given meta
    /// rows (the consensus layer passes the last applied log id and membership).
    pub fn apply(
        &self,
        proposals: &[&Proposal],
        meta: &[(&str, Vec<u8>)],
    ) -> Result<Vec<Outcome>, StoreError> {
        // Reused between applies; an apply that failed midway left none behind.
        let mut ctx = self
            .apply_scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        let mut outcomes = Vec::with_capacity(proposals.len());
        for p in proposals {
            let mut results = Vec::with_capacity(p.ops.len());
            for op in p.ops.iter() {
                results.push(self.apply_op(&mut ctx, op)?);
            }
            outcomes.push(Outcome { results });
        }
        let mut batch = self.db.batch();
        for (id, m) in &ctx.messages {
            batch.insert(&self.messages, id.as_bytes(), wire::encode(m)?);
        }
        for id in &ctx.purged {
            batch.remove(&self.messages, id.as_bytes());
        }
        let mut parked_changes = Vec::new();
        let mut claim_changes = Vec::new();
        for ((tag, key), v) in ctx.kv.drain() {
            if tag == T_CLAIM {
                claim_changes.push((key.clone(), v.is_some()));
            } else if tag == T_ORPHAN {
                parked_changes.push((key.clone(), v.as_deref().map(parked_at)));
            }
            let ks = self.tag_ks(tag);
            match v {
                Some(v) => batch.insert(ks, key, v),
                None => batch.remove(ks, key),
            }
        }
        for (k, v) in meta {
            batch.insert(&self.meta, k.as_bytes(), v.clone());
        }
        // Timed: the journal is shared with the Raft log (the log's fsync no longer holds
        // its lock: `consensus::journal_sync`).
        let t0 = std::time::Instant::now();
        batch.commit()?;
        metrics::histogram!("smsgw_state_commit_seconds").record(t0.elapsed().as_secs_f64());
        if !claim_changes.is_empty() {
            let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
            for (key, present) in claim_changes {
                if present {
                    claimed.insert(key);
                } else {
                    claimed.remove(&key);
                }
            }
        }
        if !parked_changes.is_empty() {
            let mut parked = self.parked();
            for (key, at) in parked_changes {
                match at {
                    Some(at) => parked.insert(key, at),
                    None => parked.remove(&key),
                }
            }
            metrics::gauge!("smsgw_receipts_parked").set(parked.len() as f64);
        }
        if ctx.config_changed {
            self.config
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .generation += 1;
        }
        {
            let mut cache = self.active_cache.write().unwrap_or_else(|e| e.into_inner());
            // Being worked now: admitted like the rows of sent messages. First, so that a
            // row this batch went on to change (or finish) is replaced (or dropped) below:
            // the claimed copy is the row as it was before the batch.
            for m in ctx.claimed_rows.drain(..) {
                if cache.len() < ACTIVE_CACHE_MAX && !cache.contains_key(&m.id) {
                    cache.insert(m.id.clone(), Arc::new(m));
                }
            }
            for (id, m) in ctx.messages.drain() {
                if m.status.is_final() {
                    cache.remove(&id);
                } else if cache.contains_key(&id)
                    || ctx.was_cached.contains(&id)
                    || cache.len() < ACTIVE_CACHE_MAX / 2
                    || (cache.len() < ACTIVE_CACHE_MAX
                        && m.status != Status::Accepted
                        && m.status != Status::Scheduled)
                {
                    // Waiting rows may fill half of the cache; rows being worked the rest.
                    cache.insert(id, Arc::new(m));
                } else {
                    // Full: keep memory bounded; this row is read from fjall instead.
                    cache.remove(&id);
                }
            }
        }
        if let Some(n) = self.notifier.get() {
            for notice in ctx.notices.drain(..) {
                let _ = match &notice {
                    Notice::Ready { .. } | Notice::Left { .. } => n.ready.send(notice),
                    Notice::Webhook { .. } => n.webhooks.send(notice),
                    Notice::ConfigChanged => n.config.send(notice),
                    Notice::Status { .. } | Notice::Feedback(_) => n.status.send(notice),
                    Notice::Heartbeat { .. } => n.cluster.send(notice),
                };
            }
            if ctx.config_changed {
                let _ = n.config.send(Notice::ConfigChanged);
                let _ = n.ready.send(Notice::ConfigChanged);
            }
        }
        ctx.empty_for_reuse();
        *self.apply_scratch.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx);
        Ok(outcomes)
    }

    fn tag_ks(&self, tag: u8) -> &Keyspace {
        match tag {
            T_SMSC => &self.smsc_ids,
            T_ORPHAN => &self.orphans,
            T_IDEM => &self.idem,
            T_WEBHOOK => &self.webhooks,
            T_ACTIVE => &self.active,
            T_TENANT_MSG => &self.tenant_msgs,
            T_CLAIM => &self.claims,
            T_FREQ => &self.freq,
            T_INBOUND => &self.inbound,
            _ => &self.config_ks,
        }
    }

    /// Whether the claim row `probe` (`claim_key`) exists: written earlier in this batch,
    /// or committed (asked of the in-memory mirror, not fjall).
    fn claim_row_exists(&self, ctx: &ApplyCtx, probe: &(u8, Vec<u8>)) -> bool {
        match ctx.kv.get(probe) {
            Some(v) => v.is_some(),
            None => self
                .claimed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&probe.1),
        }
    }

    fn kv_get(&self, ctx: &ApplyCtx, tag: u8, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = ctx.kv.get(&(tag, key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self.tag_ks(tag).get(key)?.map(|v| v.to_vec()))
    }

    fn load(&self, ctx: &mut ApplyCtx, id: &str) -> Result<Option<Message>, StoreError> {
        if let Some(m) = ctx.messages.get(id) {
            return Ok(Some(m.clone()));
        }
        Ok(self.get_message(id)?.map(Arc::unwrap_or_clone))
    }

    /// Whether a message row exists (in this batch, the cache or fjall), without copying it.
    fn exists(&self, ctx: &ApplyCtx, id: &str) -> Result<bool, StoreError> {
        if ctx.messages.contains_key(id) || self.cache().contains_key(id) {
            return Ok(true);
        }
        Ok(self.messages.contains_key(id.as_bytes())?)
    }

    /// Stores a changed message, updates indexes, and queues webhooks and notices for
    /// each status entered.
    fn save(&self, ctx: &mut ApplyCtx, before: Option<&IndexKey>, m: Message, entered: &[Status]) {
        // One read of the config for what this save needs of it: the channel's receipt
        // timeout, and for events of a message without its own webhook URL its tenant's
        // URL as it is now (a changed or removed tenant URL applies to the events of
        // messages accepted before).
        let (dlr, url) = {
            let cfg = self.config();
            let dlr = m
                .channel
                .as_deref()
                .and_then(|c| cfg.channels.get(c))
                .map(|c| c.dlr_timeout_seconds)
                .unwrap_or(72 * 3600);
            let url = match (&m.callback_url, entered.is_empty()) {
                (_, true) => None,
                (Some(own), false) => Some(own.to_string()),
                (None, false) => cfg
                    .tenants
                    .get(m.tenant.as_ref())
                    .and_then(|t| t.callback_url.clone()),
            };
            (dlr, url)
        };
        {
            let mut work = self.work();
            index_message(&mut work, &m, before, dlr);
        }
        if before
            .map(|b| b.status == Status::Accepted)
            .unwrap_or(false)
            && m.status != Status::Accepted
        {
            ctx.kv.insert((T_CLAIM, m.id.as_bytes().to_vec()), None);
        }
        // The active index changes only when a row becomes active or final: most saves
        // (sent, an intermediate receipt) would rewrite the same empty value.
        let active = !m.status.is_final();
        if let Some(b) = before
            && matches!(b.status, Status::Accepted | Status::Scheduled)
            && !active
        {
            ctx.notices.push(Notice::Left { id: m.id.clone() });
        }
        if before.is_none_or(|b| b.status.is_final() == active) {
            let row = active.then(Vec::new);
            ctx.kv.insert((T_ACTIVE, m.id.as_bytes().to_vec()), row);
        }
        for s in entered {
            if s.is_final() && m.route_id.is_some() {
                let latency_ms = sent_event_at(&m).map(|t| m.updated_at - t);
                ctx.notices.push(Notice::Feedback(Feedback::of(
                    &m,
                    FeedbackKind::MessageFinal {
                        delivered: *s == Status::Delivered,
                        latency_ms,
                    },
                )));
            }
            ctx.notices.push(Notice::Status { status: *s });
            receipt_latency(&m, *s);
            if *s == Status::Accepted
                && let Some(r) = ReadyInfo::of(&m)
            {
                ctx.notices.push(Notice::Ready(r));
            }
        }
        if let Some(url) = url {
            for (i, s) in entered.iter().enumerate() {
                let seq = m.events.len() - entered.len() + i;
                let event_id = format!("{}-{}", m.id, seq);
                let at = m.events.get(seq).map(|e| e.at).unwrap_or(m.updated_at);
                let body = webhook_body(&event_id, &m, *s, at);
                let job = WebhookJob {
                    event_id: event_id.clone(),
                    tenant: m.tenant.to_string(),
                    message_id: m.id.clone(),
                    url: url.clone(),
                    body,
                    created_at: at,
                };
                if let Ok(v) = wire::encode(&job) {
                    ctx.kv
                        .insert((T_WEBHOOK, event_id.as_bytes().to_vec()), Some(v));
                    ctx.notices.push(Notice::Webhook { event_id });
                }
            }
        }
        ctx.messages.insert(m.id.clone(), m);
    }

    fn apply_op(&self, ctx: &mut ApplyCtx, op: &Op) -> Result<OpResult, StoreError> {
        Ok(match op {
            Op::PutTenant(t) => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                if let Some(old) = cfg.tenants.get(&t.id) {
                    let old_hash = old.api_key_hash.clone();
                    cfg.keys.remove(&old_hash);
                }
                cfg.keys.insert(t.api_key_hash.clone(), t.id.clone());
                cfg.tenants.insert(t.id.clone(), (**t).clone());
                ctx.kv.insert(
                    (T_CONFIG, format!("t/{}", t.id).into_bytes()),
                    Some(wire::encode(&**t)?),
                );
                ctx.config_changed = true;
                OpResult::Done
            }
            Op::DeleteTenant { id } => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                match cfg.tenants.remove(id) {
                    Some(t) => {
                        cfg.keys.remove(&t.api_key_hash);
                        ctx.kv
                            .insert((T_CONFIG, format!("t/{id}").into_bytes()), None);
                        if cfg.previous_secrets.remove(id).is_some() {
                            ctx.kv
                                .insert((T_CONFIG, format!("w/{id}").into_bytes()), None);
                        }
                        ctx.config_changed = true;
                        OpResult::Done
                    }
                    None => OpResult::NotFound,
                }
            }
            Op::PutChannel(c) => {
                self.config
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .channels
                    .insert(c.id.clone(), (**c).clone());
                ctx.kv.insert(
                    (T_CONFIG, format!("c/{}", c.id).into_bytes()),
                    Some(wire::encode(&**c)?),
                );
                ctx.config_changed = true;
                OpResult::Done
            }
            Op::DeleteChannel { id } => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                // The API refuses this too; checked here again because a route naming the
                // channel may have been committed between that check and this write.
                let by = cfg.routes_using(id);
                if !by.is_empty() {
                    return Ok(OpResult::InUse { by });
                }
                let removed = cfg.channels.remove(id);
                if removed.is_some() {
                    ctx.kv
                        .insert((T_CONFIG, format!("c/{id}").into_bytes()), None);
                    ctx.config_changed = true;
                    OpResult::Done
                } else {
                    OpResult::NotFound
                }
            }
            Op::SetChannelDrained { id, drained } => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                match cfg.channels.get_mut(id) {
                    Some(c) => {
                        c.drained = *drained;
                        ctx.kv.insert(
                            (T_CONFIG, format!("c/{id}").into_bytes()),
                            Some(wire::encode(&*c)?),
                        );
                        ctx.config_changed = true;
                        OpResult::Done
                    }
                    None => OpResult::NotFound,
                }
            }
            Op::PutRoute(r) => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                // Checked by the API too; again here, against a channel deleted meanwhile.
                let missing: Vec<String> = r
                    .channel_ids()
                    .filter(|c| !cfg.channels.contains_key(*c))
                    .map(str::to_string)
                    .collect();
                if !missing.is_empty() {
                    return Ok(OpResult::MissingChannels { ids: missing });
                }
                cfg.routes.insert(r.id.clone(), (**r).clone());
                ctx.kv.insert(
                    (T_CONFIG, format!("r/{}", r.id).into_bytes()),
                    Some(wire::encode(&**r)?),
                );
                ctx.config_changed = true;
                OpResult::Done
            }
            Op::DeleteRoute { id } => {
                let removed = self
                    .config
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .routes
                    .remove(id);
                if removed.is_some() {
                    ctx.kv
                        .insert((T_CONFIG, format!("r/{id}").into_bytes()), None);
                    ctx.config_changed = true;
                    OpResult::Done
                } else {
                    OpResult::NotFound
                }
            }
            Op::Accept(m) => self.accept(ctx, m)?,
            Op::Release { id, at } => self.with_message(ctx, id, |m| {
                let ok = set_status(m, Status::Accepted, *at, event(Status::Accepted, *at));
                if ok { vec![Status::Accepted] } else { vec![] }
            })?,
            Op::PartSubmitted {
                id,
                part,
                channel,
                smsc_message_id,
                keys,
                at,
            } => {
                let r = self.with_message(ctx, id, |m| {
                    transitions::part_submitted(m, *part, channel, smsc_message_id, *at)
                })?;
                if r == OpResult::Done || r == OpResult::Stale {
                    // Indexed under the id's own normalised form (`keys[0]`); a receipt looks
                    // up each of its readings (hex, decimal), so one row serves them all.
                    // A receipt that came first was parked the same way: look for each
                    // reading of this id.
                    let scope = receipt_scope(&self.config(), channel);
                    if let Some(own) = keys.first() {
                        let row = wire::encode(&(id.clone(), *part))?;
                        ctx.kv.insert((T_SMSC, join_key(scope, own)), Some(row));
                    }
                    self.apply_parked(ctx, id, *part, channel, scope, keys, *at)?;
                    // A receipt parked on another channel of the same SMSC account
                    // (`account_siblings`). Almost always nothing is parked at all.
                    if ctx.orphans_written || !self.parked().is_empty() {
                        for sibling in account_siblings(&self.config(), channel) {
                            self.apply_parked(ctx, id, *part, channel, &sibling, keys, *at)?;
                        }
                    }
                }
                r
            }
            Op::Requeue { id, note, at } => self
                .with_message(ctx, id, |m| {
                    if m.status != Status::Accepted {
                        return vec![];
                    }
                    m.attempts += 1;
                    m.updated_at = m.updated_at.max(*at);
                    let mut ev = event(Status::Accepted, *at);
                    ev.note = Some(note.clone());
                    ev.at = ev.at.max(m.events.last().map(|e| e.at).unwrap_or(0));
                    m.events.push(ev);
                    // Not a status change, but it must be worked again.
                    vec![]
                })
                .inspect(|r| {
                    if *r == OpResult::Done {
                        ctx.kv.insert((T_CLAIM, id.as_bytes().to_vec()), None);
                    }
                })
                .map(|r| {
                    if r == OpResult::Done
                        && let Some(info) = ctx.messages.get(id).and_then(ReadyInfo::of)
                    {
                        ctx.notices.push(Notice::Ready(info));
                    }
                    r
                })?,
            Op::Fail { id, error, at } => {
                self.with_message(ctx, id, |m| transitions::fail(m, None, error, *at))?
            }
            Op::FailOnChannel {
                id,
                channel,
                error,
                at,
            } => self.with_message(ctx, id, |m| transitions::fail(m, Some(channel), error, *at))?,
            Op::Inbound(m) => self.inbound(ctx, m)?,
            Op::PurgeInbound { before } => {
                let end = crate::inbound::keys::age_bound(*before);
                for kv in self.inbound.range(b"a".to_vec()..end) {
                    let k = kv.key()?;
                    if let Some((id, tenant)) = crate::inbound::keys::split_age(&k) {
                        ctx.kv.insert(
                            (T_INBOUND, crate::inbound::keys::by_tenant(&tenant, &id)),
                            None,
                        );
                    }
                    ctx.kv.insert((T_INBOUND, k.to_vec()), None);
                }
                OpResult::Done
            }
            Op::PartRefused {
                id,
                part,
                channel,
                error,
                at,
            } => self.with_message(ctx, id, |m| {
                transitions::refuse_unsent_parts(m, *part, channel, error, *at)
            })?,
            Op::Expire { id, at } => self.with_message(ctx, id, |m| {
                if (m.status == Status::Scheduled || m.status == Status::Accepted)
                    && set_status(m, Status::Expired, *at, event(Status::Expired, *at))
                {
                    m.error = Some(super::model::ErrorInfo {
                        code: "expired".into(),
                        message: "validity passed before the message could be sent".into(),
                        smsc_code: None,
                    });
                    return vec![Status::Expired];
                }
                vec![]
            })?,
            Op::Receipt {
                channel,
                smsc_message_id,
                keys,
                outcome,
                error,
                at,
            } => {
                let scope = receipt_scope(&self.config(), channel);
                // A CN channel's ids indexed before they were scoped per protocol are
                // under the channel: looked up there second.
                let scopes = [scope, channel.as_str()];
                let tried = if scope == channel.as_str() { 1 } else { 2 };
                let mut found = self.sent_part(ctx, &scopes[..tried], keys)?;
                if found.is_none() {
                    // Sent on another channel of the same SMSC account?
                    let siblings = account_siblings(&self.config(), channel);
                    found = self.sent_part(ctx, &siblings, keys)?;
                }
                match found {
                    Some((id, part)) => {
                        let r = self.with_message(ctx, &id, |m| {
                            transitions::receipt(m, part, *outcome, error.clone(), *at)
                        })?;
                        if r == OpResult::Done
                            && *outcome != ReceiptOutcome::Intermediate
                            && let Some(m) = ctx.messages.get(&id)
                        {
                            let mut fb = Feedback::of(
                                m,
                                FeedbackKind::PartFinal {
                                    delivered: *outcome == ReceiptOutcome::Delivered,
                                    latency_ms: sent_event_at(m).map(|t| *at - t),
                                },
                            );
                            // The channel that sent it (a CN receipt may come on another).
                            fb.channel = Some(m.channel.as_deref().unwrap_or(channel).to_string());
                            ctx.notices.push(Notice::Feedback(fb));
                        }
                        OpResult::ReceiptMatched { id }
                    }
                    None => {
                        let parked = wire::encode(&ParkedReceipt {
                            smsc_message_id: smsc_message_id.clone(),
                            outcome: *outcome,
                            error: error.clone(),
                            at: *at,
                        })?;
                        if let Some(own) = keys.first() {
                            ctx.kv
                                .insert((T_ORPHAN, join_key(scope, own)), Some(parked));
                            ctx.orphans_written = true;
                        }
                        OpResult::ReceiptParked
                    }
                }
            }
            Op::SettleUnknown { id, at } => {
                self.with_message(ctx, id, |m| transitions::settle_unknown(m, *at))?
            }
            Op::PutRoutingSettings(r) => {
                self.config
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .routing = (**r).clone();
                ctx.kv
                    .insert((T_CONFIG, b"s/routing".to_vec()), Some(wire::encode(&**r)?));
                ctx.config_changed = true;
                OpResult::Done
            }
            Op::Failover {
                id,
                from,
                reason,
                at,
            } => self
                .with_message(ctx, id, |m| {
                    if m.status != Status::Accepted {
                        return vec![];
                    }
                    m.attempts += 1;
                    if !m.avoid.contains(from) {
                        m.avoid.push(from.clone());
                    }
                    m.updated_at = m.updated_at.max(*at);
                    let mut ev = event(Status::Accepted, *at);
                    ev.channel = Some(from.clone());
                    ev.note = Some(format!("failover from {from}: {reason}"));
                    ev.at = ev.at.max(m.events.last().map(|e| e.at).unwrap_or(0));
                    m.events.push(ev);
                    vec![]
                })
                .map(|r| {
                    if r == OpResult::Done
                        && let Some(info) = ctx.messages.get(id).and_then(ReadyInfo::of)
                    {
                        ctx.notices.push(Notice::Ready(info));
                    }
                    r
                })?,
            Op::WebhookDone { event_id } => {
                ctx.kv
                    .insert((T_WEBHOOK, event_id.as_bytes().to_vec()), None);
                OpResult::Done
            }
            Op::Heartbeat {
                node,
                cluster_addr,
                http_addr,
                draining,
                at,
            } => {
                ctx.notices.push(Notice::Heartbeat { node: *node });
                let row = NodeRow {
                    id: *node,
                    cluster_addr: cluster_addr.clone(),
                    http_addr: http_addr.clone(),
                    last_heartbeat_at: *at,
                    draining: *draining,
                };
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                let changed = cfg
                    .nodes
                    .get(node)
                    .map(|old| {
                        old.cluster_addr != row.cluster_addr
                            || old.http_addr != row.http_addr
                            || old.draining != row.draining
                    })
                    .unwrap_or(true);
                if changed {
                    // Only what placement reads is persisted: a heartbeat that changes
                    // nothing costs no write.
                    ctx.kv.insert(
                        (T_CONFIG, format!("n/{node}").into_bytes()),
                        Some(wire::encode(&row)?),
                    );
                    ctx.config_changed = true;
                }
                cfg.nodes.insert(*node, row);
                OpResult::Done
            }
            Op::Place {
                channel,
                expected_epoch,
                owner,
                handoff_to,
            } => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                if !cfg.channels.contains_key(channel) {
                    return Ok(OpResult::NotFound);
                }
                let current = cfg.placement.get(channel).cloned().unwrap_or(Placement {
                    channel: channel.clone(),
                    ..Default::default()
                });
                if current.epoch != *expected_epoch {
                    return Ok(OpResult::Stale);
                }
                let next = Placement {
                    channel: channel.clone(),
                    owner: *owner,
                    epoch: current.epoch + 1,
                    handoff_to: *handoff_to,
                };
                ctx.kv.insert(
                    (T_CONFIG, format!("p/{channel}").into_bytes()),
                    Some(wire::encode(&next)?),
                );
                cfg.placement.insert(channel.clone(), next);
                ctx.config_changed = true;
                OpResult::Done
            }
            Op::BindState(report) => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                let key = report.key();
                if cfg.bind_states.get(&key) == Some(report) {
                    return Ok(OpResult::Stale);
                }
                ctx.kv.insert(
                    (T_CONFIG, bind_key(&report.channel, report.index)),
                    Some(wire::encode(report)?),
                );
                cfg.bind_states.insert(key, report.clone());
                ctx.config_changed = true;
                OpResult::Done
            }
            Op::Claim {
                channel,
                node,
                epoch,
                ids,
                at,
            } => {
                let owner_ok = self
                    .config()
                    .placement
                    .get(channel)
                    .map(|p| p.active_owner(*node) && p.epoch == *epoch)
                    .unwrap_or(false);
                if !owner_ok {
                    return Ok(OpResult::Stale);
                }
                let mut granted = Vec::with_capacity(ids.len());
                let mut reclaimed = 0;
                let row = wire::encode(&ClaimRow {
                    node: *node,
                    epoch: *epoch,
                    at: *at,
                })?;
                let waiting_here = |m: &Message| {
                    ReadyInfo::of(m).and_then(|r| r.channel).as_ref() == Some(channel)
                };
                for id in ids {
                    // From this batch or the cache without copying; else decoded once.
                    let known = ctx
                        .messages
                        .get(id)
                        .map(&waiting_here)
                        .or_else(|| self.cache().get(id).map(|m| waiting_here(m)));
                    let granted_here = match known {
                        Some(here) => here,
                        None => match self.stored(id)? {
                            Some(m) if waiting_here(&m) => {
                                ctx.claimed_rows.push(m);
                                true
                            }
                            _ => false,
                        },
                    };
                    if !granted_here {
                        continue;
                    }
                    // Taken by an earlier claim (in this batch, or committed: the mirror)?
                    let probe = claim_key(id);
                    if self.claim_row_exists(ctx, &probe) {
                        reclaimed += 1;
                    }
                    ctx.kv.insert(probe, Some(row.clone()));
                    granted.push(id.clone());
                }
                OpResult::Claimed { granted, reclaimed }
            }
            Op::ForgetNode { node } => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                cfg.nodes.remove(node);
                ctx.kv
                    .insert((T_CONFIG, format!("n/{node}").into_bytes()), None);
                let gone: Vec<(String, u32)> = cfg
                    .bind_states
                    .iter()
                    .filter(|(_, b)| b.node == *node)
                    .map(|(k, _)| k.clone())
                    .collect();
                for (ch, index) in gone {
                    cfg.bind_states.remove(&(ch.clone(), index));
                    ctx.kv.insert((T_CONFIG, bind_key(&ch, index)), None);
                }
                ctx.config_changed = true;
                OpResult::Done
            }
            Op::Purge { ids } => {
                for id in ids {
                    let Some(m) = self.load(ctx, id)? else {
                        continue;
                    };
                    if !m.status.is_final() {
                        continue;
                    }
                    ctx.messages.remove(id);
                    ctx.purged.push(id.clone());
                    // Its idempotency row goes with it (the key accept wrote), unless the
                    // key has since been taken by a newer message.
                    if let Some(key) = &m.idempotency_key {
                        let ik = join_key(&m.tenant, key);
                        if let Some(v) = self.kv_get(ctx, T_IDEM, &ik)?
                            && wire::decode::<IdemRecord>(&v)?.id == m.id
                        {
                            ctx.kv.insert((T_IDEM, ik), None);
                        }
                    }
                    ctx.kv
                        .insert((T_TENANT_MSG, join_key(&m.tenant, &m.id)), None);
                    if let Some(r) = &m.client_ref {
                        ctx.kv
                            .insert((T_TENANT_MSG, ref_key(&m.tenant, r, &m.id)), None);
                    }
                    ctx.kv
                        .insert((T_TENANT_MSG, to_key(&m.tenant, &m.to, &m.id)), None);
                    if let Some(ch) = &m.channel {
                        let scope = receipt_scope(&self.config(), ch);
                        for p in &m.part_states {
                            if let Some(sid) = &p.smsc_message_id {
                                // Every reading: rows written before the index kept one
                                // key per message were stored under all of them.
                                for k in crate::protocols::smpp::receipt::id_keys(sid) {
                                    ctx.kv.insert((T_SMSC, join_key(ch, &k)), None);
                                    if scope != *ch {
                                        ctx.kv.insert((T_SMSC, join_key(scope, &k)), None);
                                    }
                                }
                            }
                        }
                    }
                }
                OpResult::Done
            }
            Op::Compliance(c) => {
                let mut reg = self.compliance.write().unwrap_or_else(|e| e.into_inner());
                if let Some(by) = reg.campaign_conflict(c) {
                    return Ok(OpResult::InUse { by });
                }
                let (writes, found) = reg.apply(c)?;
                for (k, v) in writes {
                    ctx.kv.insert((T_CONFIG, k), v);
                }
                if found {
                    OpResult::Done
                } else {
                    OpResult::NotFound
                }
            }
            Op::AcceptCapped { message, caps } => {
                self.accept_capped(ctx, message, caps, CapCost::OnePerMessage)?
            }
            Op::AcceptCappedByParts { message, caps } => {
                self.accept_capped(ctx, message, caps, CapCost::Parts)?
            }
            Op::ComplianceGc { at } => self.compliance_gc(ctx, *at)?,
            Op::DropUnmatchedReceipts { before } => self.drop_unmatched(ctx, *before)?,
            Op::Cancel { id, tenant, at } => self.cancel(ctx, id, tenant, *at)?,
            // One more try on the same line after a temporary error or no answer: it
            // counts in `attempts`; a non-empty note also goes into the history (the
            // first retry of a part says why it waits, the others are counted only).
            Op::Note { id, note, at } => self.with_message(ctx, id, |m| {
                if m.status != Status::Accepted {
                    return vec![];
                }
                // Not `attempts`: that counts moves along the route and picks the
                // channel the message waits on (`waiting_channel`).
                if note.is_empty() {
                    return vec![];
                }
                m.updated_at = m.updated_at.max(*at);
                let mut ev = event(Status::Accepted, *at);
                ev.note = Some(note.clone());
                ev.at = ev.at.max(m.events.last().map(|e| e.at).unwrap_or(0));
                m.events.push(ev);
                vec![]
            })?,
            Op::RotateWebhookSecret {
                tenant,
                secret,
                previous_until,
            } => {
                let mut cfg = self.config.write().unwrap_or_else(|e| e.into_inner());
                let Some(t) = cfg.tenants.get_mut(tenant) else {
                    return Ok(OpResult::NotFound);
                };
                let old = std::mem::replace(&mut t.webhook_secret, secret.clone());
                ctx.kv.insert(
                    (T_CONFIG, format!("t/{tenant}").into_bytes()),
                    Some(wire::encode(&*t)?),
                );
                let key = (T_CONFIG, format!("w/{tenant}").into_bytes());
                if *previous_until > 0 {
                    let prev = super::model::PreviousSecret {
                        secret: old,
                        until: *previous_until,
                    };
                    ctx.kv.insert(key, Some(wire::encode(&prev)?));
                    cfg.previous_secrets.insert(tenant.clone(), prev);
                } else {
                    ctx.kv.insert(key, None);
                    cfg.previous_secrets.remove(tenant);
                }
                ctx.config_changed = true;
                OpResult::Done
            }
        })
    }

    /// Loads a message, lets `f` change it (returning the statuses entered), and saves it.
    /// `Stale` when `f` changed nothing observable, `NotFound` when there is no such row.
    fn with_message(
        &self,
        ctx: &mut ApplyCtx,
        id: &str,
        f: impl FnOnce(&mut Message) -> Vec<Status>,
    ) -> Result<OpResult, StoreError> {
        // Taken out of the batch's rows when an earlier op of it touched the row, else out
        // of the cache (put back if nothing changes), instead of copied: a copy and a drop
        // per change were 4 % of a loaded node's CPU. Until the commit puts the new row in
        // the cache, a reader of a taken row decodes the committed one from fjall.
        let (mut m, from) = match ctx.messages.remove(id) {
            Some(m) => (m, Source::Batch),
            None => {
                let cached = self
                    .active_cache
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                match cached {
                    // Copied only while a reader (a message actor) shares it.
                    Some(m) => (Arc::unwrap_or_clone(m), Source::Cache),
                    None => match self.stored(id)? {
                        Some(m) => (m, Source::Fjall),
                        None => return Ok(OpResult::NotFound),
                    },
                }
            }
        };
        let before = IndexKey::of(&m);
        let unchanged = fingerprint(&m);
        let entered = f(&mut m);
        if fingerprint(&m) == unchanged {
            match from {
                Source::Batch => {
                    ctx.messages.insert(id.to_string(), m);
                }
                Source::Cache => {
                    self.active_cache
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.to_string(), Arc::new(m));
                }
                Source::Fjall => {}
            }
            return Ok(OpResult::Stale);
        }
        if from == Source::Cache {
            // Keeps its place in the cache when the commit admits rows.
            ctx.was_cached.insert(id.to_string());
        }
        self.save(ctx, Some(&before), m, &entered);
        Ok(OpResult::Done)
    }

    /// `accept` behind window counters: a replay (same idempotency key or id) is answered
    /// as `accept` answers it without counting; a full window refuses with `Capped`; an
    /// accepted message is recorded in every window, taking one slot, or with
    /// `CapCost::Parts` `CapKey::cost` slots (its parts for a campaign's throughput).
    fn accept_capped(
        &self,
        ctx: &mut ApplyCtx,
        m: &Message,
        caps: &[super::compliance::CapKey],
        cost: CapCost,
    ) -> Result<OpResult, StoreError> {
        let cost = |cap: &super::compliance::CapKey| match cost {
            CapCost::OnePerMessage => 1,
            CapCost::Parts => cap.cost(m.parts),
        };
        use super::compliance::{WindowRow, counter_key, expiry_key};
        let replay = match (&m.idempotency_key, &m.body_hash) {
            (Some(key), Some(_)) => self
                .idem_replay(ctx, &m.tenant, key, m.created_at)?
                .is_some(),
            _ => false,
        } || self.exists(ctx, &m.id)?;
        if replay {
            return self.accept(ctx, m);
        }
        let at = m.created_at;
        let mut rows = Vec::with_capacity(caps.len());
        for cap in caps {
            let row: WindowRow = match self.kv_get(ctx, T_FREQ, &counter_key(&cap.key))? {
                Some(v) => wire::decode(&v)?,
                None => WindowRow::default(),
            };
            if let Err(retry_after_ms) = row.check(cap, at, cost(cap)) {
                return Ok(OpResult::Capped {
                    kind: cap.kind,
                    key: cap.key.clone(),
                    retry_after_ms,
                });
            }
            rows.push(row);
        }
        let r = self.accept(ctx, m)?;
        if matches!(r, OpResult::Accepted { .. }) {
            for (cap, mut row) in caps.iter().zip(rows) {
                if !row.stamps.is_empty() {
                    ctx.kv
                        .insert((T_FREQ, expiry_key(row.expires_at(), &cap.key)), None);
                }
                row.record(cap, at, cost(cap));
                ctx.kv.insert(
                    (T_FREQ, expiry_key(row.expires_at(), &cap.key)),
                    Some(Vec::new()),
                );
                ctx.kv
                    .insert((T_FREQ, counter_key(&cap.key)), Some(wire::encode(&row)?));
            }
        }
        Ok(r)
    }

    /// Drops every receipt parked before `before`: those committed earlier (the index)
    /// and those parked earlier in this batch, whatever the batch boundaries, so every
    /// replica drops the same rows.
    fn drop_unmatched(&self, ctx: &mut ApplyCtx, before: i64) -> Result<OpResult, StoreError> {
        let mut dropped: Vec<Vec<u8>> = self
            .parked()
            .parked_before(before)
            .map(|(_, k)| k.to_vec())
            .filter(|k| !ctx.kv.contains_key(&(T_ORPHAN, k.clone())))
            .collect();
        for ((tag, k), v) in ctx.kv.iter() {
            if *tag == T_ORPHAN
                && let Some(v) = v
                && parked_at(v) < before
            {
                dropped.push(k.clone());
            }
        }
        for k in dropped {
            let channel = super::parked::channel_of(&k);
            metrics::counter!("smsgw_receipts_unmatched_total", "channel" => channel).increment(1);
            ctx.kv.insert((T_ORPHAN, k), None);
        }
        Ok(OpResult::Done)
    }

    /// The (message, part) whose SMSC id, under one of `scopes` (tried in order), has one
    /// of the readings `keys`.
    fn sent_part<S: AsRef<str>>(
        &self,
        ctx: &ApplyCtx,
        scopes: &[S],
        keys: &[String],
    ) -> Result<Option<(String, u32)>, StoreError> {
        for sc in scopes {
            for k in keys {
                if let Some(v) = self.kv_get(ctx, T_SMSC, &join_key(sc.as_ref(), k))? {
                    return Ok(Some(wire::decode::<(String, u32)>(&v)?));
                }
            }
        }
        Ok(None)
    }

    /// Applies to part `part` of message `id`, just submitted on `channel`, a receipt
    /// parked under `scope` for any reading of its SMSC id (`keys`).
    #[allow(clippy::too_many_arguments)]
    fn apply_parked(
        &self,
        ctx: &mut ApplyCtx,
        id: &str,
        part: u32,
        channel: &str,
        scope: &str,
        keys: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        for k in keys {
            // Almost always nothing is parked: ask the index, not fjall.
            let probe = (T_ORPHAN, join_key(scope, k));
            let maybe = ctx.kv.contains_key(&probe) || self.parked().contains(&probe.1);
            let key = probe.1;
            if !maybe {
                continue;
            }
            if let Some(v) = self.kv_get(ctx, T_ORPHAN, &key)? {
                let p = wire::decode::<ParkedReceipt>(&v).ok();
                if p.as_ref()
                    .is_some_and(|p| p.at < earliest_receipt_for(&self.config(), channel, at))
                {
                    // Parked before this part can have been submitted: a receipt for an
                    // earlier message the SMSC gave the same id (its counter restarted).
                    // Left to expire unmatched.
                    continue;
                }
                ctx.kv.insert((T_ORPHAN, key), None);
                if let Some(p) = p {
                    self.with_message(ctx, id, |m| {
                        transitions::receipt(m, part, p.outcome, p.error.clone(), p.at.max(at))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The parked-receipt index (`state::parked`).
    fn parked(&self) -> std::sync::MutexGuard<'_, super::parked::ParkedIndex> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any receipt was parked before `before` (the sweeper asks before proposing
    /// `Op::DropUnmatchedReceipts`).
    pub fn unmatched_receipts_before(&self, before: i64) -> bool {
        self.parked().parked_before(before).next().is_some()
    }

    /// Removes window counters whose last accept left their window by `at` (a bounded
    /// number per call; the sweeper proposes this again while there are more).
    fn compliance_gc(&self, ctx: &mut ApplyCtx, at: i64) -> Result<OpResult, StoreError> {
        use super::compliance::{WindowRow, counter_key, expiry_key};
        let end = expiry_key(at.saturating_add(1), "");
        let mut expired = Vec::new();
        for kv in self.freq.range(b"e".to_vec()..end).take(10_000) {
            expired.push(kv.key()?.to_vec());
        }
        for ek in expired {
            ctx.kv.insert((T_FREQ, ek.clone()), None);
            let key = String::from_utf8_lossy(&ek[9..]).to_string();
            let ck = counter_key(&key);
            if let Some(v) = self.kv_get(ctx, T_FREQ, &ck)? {
                let row: WindowRow = wire::decode(&v)?;
                if row.expires_at() <= at {
                    ctx.kv.insert((T_FREQ, ck), None);
                }
            }
        }
        Ok(OpResult::Done)
    }

    /// Stores an inbound message for every tenant that sends from its `to`, each with a
    /// webhook when the tenant has a callback URL. Applied again (a retried proposal), a
    /// copy already stored is left alone.
    fn inbound(
        &self,
        ctx: &mut ApplyCtx,
        m: &crate::inbound::InboundMessage,
    ) -> Result<OpResult, StoreError> {
        let (tenants, urls) = {
            let cfg = self.config();
            let tenants = crate::compliance::mo::owners(&self.compliance(), &cfg, &m.to);
            let urls: Vec<Option<String>> = tenants
                .iter()
                .map(|t| cfg.tenants.get(t).and_then(|t| t.callback_url.clone()))
                .collect();
            (tenants, urls)
        };
        if tenants.is_empty() {
            return Ok(OpResult::NotFound);
        }
        let row = wire::encode(m)?;
        for (tenant, url) in tenants.iter().zip(urls) {
            let key = crate::inbound::keys::by_tenant(tenant, &m.id);
            if self.kv_get(ctx, T_INBOUND, &key)?.is_some() {
                continue;
            }
            ctx.kv.insert((T_INBOUND, key), Some(row.clone()));
            ctx.kv.insert(
                (T_INBOUND, crate::inbound::keys::by_age(tenant, &m.id)),
                Some(Vec::new()),
            );
            if let Some(url) = url {
                let event_id = m.event_id(tenant);
                let job = WebhookJob {
                    event_id: event_id.clone(),
                    tenant: tenant.clone(),
                    message_id: m.id.clone(),
                    url,
                    body: m.webhook_body(tenant),
                    created_at: m.received_at,
                };
                ctx.kv.insert(
                    (T_WEBHOOK, event_id.as_bytes().to_vec()),
                    Some(wire::encode(&job)?),
                );
                ctx.notices.push(Notice::Webhook { event_id });
            }
        }
        Ok(OpResult::Done)
    }

    /// `Op::Cancel`: decided on the row as this entry finds it, so a claim or a submit
    /// response committed before it wins (`NotCancelable` with the status now).
    fn cancel(
        &self,
        ctx: &mut ApplyCtx,
        id: &str,
        tenant: &str,
        at: i64,
    ) -> Result<OpResult, StoreError> {
        let Some(m) = self.load(ctx, id)? else {
            return Ok(OpResult::NotFound);
        };
        if *m.tenant != *tenant {
            return Ok(OpResult::NotFound);
        }
        let claimed = self.claim_row_exists(ctx, &claim_key(id));
        if !transitions::cancelable(&m, claimed) {
            return Ok(OpResult::NotCancelable { status: m.status });
        }
        let status = m.status;
        drop(m);
        match self.with_message(ctx, id, |m| transitions::cancel(m, at))? {
            OpResult::Stale => Ok(OpResult::NotCancelable { status }),
            r => Ok(r),
        }
    }

    /// The idempotency record of (tenant, key) that makes an accept at `at` a replay: one
    /// younger than the key's TTL whose message still exists. A record whose message was
    /// purged (or purged earlier in this batch) counts as absent, so the retry is a new
    /// message instead of a 404 or a 409 naming an id nobody can read. Decided from the
    /// replicated rows only, so every member answers the same.
    fn idem_replay(
        &self,
        ctx: &ApplyCtx,
        tenant: &str,
        key: &str,
        at: i64,
    ) -> Result<Option<IdemRecord>, StoreError> {
        let Some(v) = self.kv_get(ctx, T_IDEM, &join_key(tenant, key))? else {
            return Ok(None);
        };
        let r: IdemRecord = wire::decode(&v)?;
        if at - r.at >= IDEMPOTENCY_TTL_MS
            || ctx.purged.contains(&r.id)
            || !self.exists(ctx, &r.id)?
        {
            return Ok(None);
        }
        Ok(Some(r))
    }

    fn accept(&self, ctx: &mut ApplyCtx, m: &Message) -> Result<OpResult, StoreError> {
        if let (Some(key), Some(hash)) = (&m.idempotency_key, &m.body_hash) {
            let ik = join_key(&m.tenant, key);
            if let Some(r) = self.idem_replay(ctx, &m.tenant, key, m.created_at)? {
                return Ok(if &r.body_hash == hash {
                    OpResult::Duplicate { id: r.id }
                } else {
                    OpResult::IdempotencyConflict { id: r.id }
                });
            }
            let rec = IdemRecord {
                id: m.id.clone(),
                body_hash: hash.clone(),
                at: m.created_at,
            };
            ctx.kv.insert((T_IDEM, ik), Some(wire::encode(&rec)?));
        }
        if self.exists(ctx, &m.id)? {
            return Ok(OpResult::Duplicate { id: m.id.clone() });
        }
        let limit = self
            .config()
            .tenants
            .get(&*m.tenant)
            .map(|t| t.queue_limit)
            .unwrap_or(u64::MAX);
        let queue = super::admission::Queue::of_status(m.status);
        let waiting = self.work().tenant_count(&m.tenant, queue);
        if !super::admission::admits(waiting, limit, m.category) {
            if let (Some(key), Some(_)) = (&m.idempotency_key, &m.body_hash) {
                ctx.kv.insert((T_IDEM, join_key(&m.tenant, key)), None);
            }
            return Ok(OpResult::QueueFull);
        }
        ctx.kv
            .insert((T_TENANT_MSG, join_key(&m.tenant, &m.id)), Some(Vec::new()));
        if let Some(r) = &m.client_ref {
            ctx.kv.insert(
                (T_TENANT_MSG, ref_key(&m.tenant, r, &m.id)),
                Some(Vec::new()),
            );
        }
        ctx.kv.insert(
            (T_TENANT_MSG, to_key(&m.tenant, &m.to, &m.id)),
            Some(Vec::new()),
        );
        let entered = vec![m.status];
        if m.route_id.is_some() {
            ctx.notices
                .push(Notice::Feedback(Feedback::of(m, FeedbackKind::Accepted)));
        }
        self.save(ctx, None, m.clone(), &entered);
        Ok(OpResult::Accepted { id: m.id.clone() })
    }
}

/// Moves a message between the timer sets and waiting counts as its status changes.
/// What the indexes knew of a row before it changed: enough to take it out of them
/// (cheaper than keeping a whole copy of the row).
struct IndexKey {
    id: MessageKey,
    tenant: Arc<str>,
    status: Status,
    send_at: Option<i64>,
    expires_at: i64,
    sent_at: Option<i64>,
}

impl IndexKey {
    fn of(m: &Message) -> IndexKey {
        IndexKey {
            id: MessageKey::of(&m.id),
            tenant: m.tenant.clone(),
            status: m.status,
            send_at: m.send_at,
            expires_at: m.expires_at,
            sent_at: sent_at(m),
        }
    }
}

/// Everything the status machine can change in a row, compared to tell a real change
/// from a no-op (a duplicate receipt, a stale transition) without copying the row.
fn fingerprint(
    m: &Message,
) -> (
    Status,
    u32,
    usize,
    Vec<super::model::PartState>,
    bool,
    Option<String>,
    i64,
) {
    (
        m.status,
        m.attempts,
        m.events.len(),
        m.part_states.clone(),
        m.error.is_some(),
        m.channel.clone(),
        m.updated_at,
    )
}

fn index_message(work: &mut WorkIndex, m: &Message, before: Option<&IndexKey>, dlr_timeout_s: u64) {
    if let Some(b) = before {
        work.scheduled
            .remove(&(b.send_at.unwrap_or(0), b.id.clone()));
        work.expiry.remove(&(b.expires_at, b.id.clone()));
        if let Some(sent_at) = b.sent_at {
            work.dlr_deadline
                .remove(&(sent_at + dlr_timeout_s as i64 * 1000, b.id.clone()));
        }
        if matches!(b.status, Status::Scheduled | Status::Accepted) {
            if let Some(w) = work.waiting.get_mut(&*b.tenant) {
                *w = w.saturating_sub(1);
            }
            work.waiting_total = work.waiting_total.saturating_sub(1);
        }
        if b.status == Status::Scheduled {
            if let Some(w) = work.scheduled_waiting.get_mut(&*b.tenant) {
                *w = w.saturating_sub(1);
            }
            work.scheduled_total = work.scheduled_total.saturating_sub(1);
        }
    }
    // The same message: a key already made is reused (a ULID's key copies 16 bytes).
    let key = || match before {
        Some(b) => b.id.clone(),
        None => MessageKey::of(&m.id),
    };
    match m.status {
        Status::Scheduled => {
            work.scheduled.insert((m.send_at.unwrap_or(0), key()));
            work.expiry.insert((m.expires_at, key()));
        }
        Status::Accepted => {
            work.expiry.insert((m.expires_at, key()));
        }
        Status::Sent => {
            if let Some(sent_at) = sent_at(m) {
                work.dlr_deadline
                    .insert((sent_at + dlr_timeout_s as i64 * 1000, key()));
            }
        }
        _ => {}
    }
    if matches!(m.status, Status::Scheduled | Status::Accepted) {
        *work.waiting.entry(m.tenant.clone()).or_insert(0) += 1;
        work.waiting_total += 1;
    }
    if m.status == Status::Scheduled {
        *work.scheduled_waiting.entry(m.tenant.clone()).or_insert(0) += 1;
        work.scheduled_total += 1;
    }
}

/// When the message entered `sent` (whatever its status now).
fn sent_event_at(m: &Message) -> Option<i64> {
    m.events
        .iter()
        .find(|e| e.status == Status::Sent)
        .map(|e| e.at)
}

fn sent_at(m: &Message) -> Option<i64> {
    if m.status != Status::Sent {
        return None;
    }
    m.events
        .iter()
        .rev()
        .find(|e| e.status == Status::Sent)
        .map(|e| e.at)
}

/// The contract's webhook body for one status change, plus `from` and `category`
/// (which sender of a pool was used, which traffic class), and from `sent` on the
/// per-part `part_states` (the status answer's shape: which parts of a
/// `partially_delivered` or `undelivered` message failed, and their operator ids),
/// so a receiver needs no GET to learn them (audit: Twilio parity).
fn webhook_body(event_id: &str, m: &Message, status: Status, at: i64) -> String {
    let error = if status.is_final() && status != Status::Delivered {
        m.error.as_ref().map(super::views::error_json)
    } else {
        None
    };
    let mut body = serde_json::json!({
        "event_id": event_id,
        "id": m.id,
        "status": status.as_str(),
        "client_ref": m.client_ref,
        "to": m.to,
        "from": m.from,
        "category": m.category.as_str(),
        "parts": m.parts,
        "channel": m.channel,
        "error": error,
        "at": crate::clock::rfc3339(at),
    });
    if status == Status::Sent || status.is_final() {
        body["part_states"] = serde_json::Value::Array(super::views::part_states_json(m));
    }
    body.to_string()
}

impl StateStore {
    /// Every keyspace of the replicated state, in a fixed order (a snapshot's order).
    pub(super) fn all_keyspaces(&self) -> [(&'static str, &Keyspace); 12] {
        [
            ("sm_claims", &self.claims),
            ("sm_config", &self.config_ks),
            ("sm_messages", &self.messages),
            ("sm_active", &self.active),
            ("sm_tenant_msgs", &self.tenant_msgs),
            ("sm_smsc_ids", &self.smsc_ids),
            ("sm_orphans", &self.orphans),
            ("sm_idem", &self.idem),
            ("sm_webhooks", &self.webhooks),
            ("sm_freq", &self.freq),
            ("sm_meta", &self.meta),
            // Last: a snapshot stages keyspaces by their position here.
            ("sm_inbound", &self.inbound),
        ]
    }

    /// A consistent read view of every state row, for a Raft snapshot. Taking it copies
    /// nothing: the rows are read out only if a peer needs them ([`Self::export_rows`]).
    pub fn view(&self) -> fjall::Snapshot {
        self.db.snapshot()
    }

    /// One `sm_meta` value (the applied log id, the membership, written by the consensus
    /// layer) as of `view`, so that it belongs to the same moment as the view's rows.
    pub fn meta_get_at(
        &self,
        view: &fjall::Snapshot,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        use fjall::Readable;
        Ok(view.get(&self.meta, key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// The keyspace snapshot transfers are staged in.
    pub(super) fn staging(&self) -> &Keyspace {
        &self.staging
    }

    /// Held while a chunk is staged or a transfer installed.
    pub(super) fn staging_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.staging_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the consensus layer's meta rows (applied log id, membership) live.
    pub(super) fn meta_keyspace(&self) -> &Keyspace {
        &self.meta
    }

    /// Drops a row from the decoded cache (as a full cache would not have admitted it).
    #[cfg(test)]
    pub(super) fn evict_cached(&self, id: &str) {
        self.active_cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Drops the client_ref and recipient indexes and their done-markers, as a store
    /// written before the indexes existed has neither.
    #[cfg(test)]
    pub(super) fn forget_client_ref_index(&self) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for kv in self.tenant_msgs.prefix([1u8]) {
            batch.remove(&self.tenant_msgs, kv.key()?);
        }
        for kv in self.tenant_msgs.prefix([2u8]) {
            batch.remove(&self.tenant_msgs, kv.key()?);
        }
        batch.remove(&self.meta, REF_INDEX_DONE);
        batch.remove(&self.meta, TO_INDEX_DONE);
        batch.commit()?;
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn config_keyspace(&self) -> &Keyspace {
        &self.config_ks
    }

    /// Ids of final messages created before `cutoff_ms` (ids are time-ordered ULIDs), at
    /// most `limit`, oldest first: the candidates for retention purges.
    pub fn purgeable(&self, cutoff_ms: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for kv in self.messages.iter() {
            let (k, v) = kv.into_inner()?;
            let m: Message = wire::decode(&v)?;
            if m.created_at >= cutoff_ms {
                break;
            }
            if m.status.is_final() {
                out.push(String::from_utf8_lossy(&k).to_string());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Non-final messages held decoded in memory.
    pub fn active_count(&self) -> usize {
        self.cache().len()
    }
}
