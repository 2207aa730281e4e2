//! Consensus: every durable change goes through Raft (openraft 0.10.0-alpha.37, pinned,
//! wrapped here so that no other module names an openraft type).
//!
//! - `log_store`: the Raft log on fjall, group-committed (one fsync for many entries).
//! - `state_machine`: applies committed entries to `crate::state::StateStore`.
//! - `network`: Raft RPC over HTTP (axum server, reqwest client, bincode bodies).
//! - `Consensus::propose`: the single write path. It batches operations from many callers
//!   into one entry and forwards to the leader when this node is not it.

pub mod append_budget;
pub mod arrivals;
pub mod identity;
pub mod journal_check;
pub mod journal_sync;
pub mod log_store;
pub mod network;
pub mod state_machine;
mod storage_failure;
pub mod store_open;
mod vote_guard;
pub mod watermark;

#[cfg(test)]
mod shutdown_tests;
#[cfg(test)]
pub(crate) mod test_node;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::state::snapshot::SnapshotChunk;
use crate::state::{Op, OpResult, Proposal, StateStore};
use crate::wire;

/// What a cluster member advertises: where its Raft port and its HTTP API are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    pub cluster_addr: String,
    pub http_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cluster_addr)
    }
}

openraft::declare_raft_types!(
    /// openraft's type configuration for smsgw.
    pub TypeConfig:
        D = Proposal,
        R = crate::state::Outcome,
        Node = NodeInfo,
);

type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;

/// Operations packed into one Raft entry at most.
const MAX_OPS_PER_ENTRY: usize = 2048;
/// Entries a single node's proposer writes concurrently (openraft merges them further).
const MAX_ENTRIES_IN_FLIGHT: usize = 8;
/// Entries a proposer writes concurrently in a cluster of more than one voter. Every entry
/// is replicated, appended and applied on every member, so there fewer, larger entries
/// cost less: at 3 nodes a third of the entries and 12 % less CPU per message than with
/// `MAX_ENTRIES_IN_FLIGHT` (docs/benchmarks.md). A single node, which pays per entry once,
/// keeps the shorter wait.
const CLUSTER_ENTRIES_IN_FLIGHT: usize = 2;
/// How long a write waits for a leader before the caller is told 503.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// Why a write did not (certainly) happen.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    /// No leader could take the write in time (below quorum, election under way).
    #[error("no leader available: {0}")]
    Unavailable(String),
    /// The write may or may not have been committed (leader changed mid-write).
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// The Raft node has stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The writing node is not a member of the cluster (removed, and the change never
    /// reached it): the leader takes no heartbeat from it, so it holds no lease and
    /// lets its binds go instead of sending beside the channels' new owners.
    #[error("{0}")]
    NotMember(String),
}

/// One node's Raft log positions (indexes; `None` before the first entry). The leader
/// also knows how far each member's log matches its own.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogState {
    pub last_log_index: Option<u64>,
    /// Granted by a quorum.
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The last snapshot's index: the log up to it may be purged.
    pub snapshot_index: Option<u64>,
    /// Entries up to here are gone from the log: a member behind it catches up by snapshot.
    pub purged_index: Option<u64>,
    /// On the leader: each member's last entry known to match the leader's log.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub matched_index: std::collections::BTreeMap<u64, Option<u64>>,
}

/// A membership or leadership change, run on the leader (forwarded there by any node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminOp {
    /// Add a node: as a learner first (catching up from the log or a snapshot), then as
    /// a voter.
    AddNode { id: u64, info: NodeInfo },
    /// Remove a member (voter or learner).
    RemoveNode { id: u64 },
    /// Hand leadership to `to`.
    TransferLeader { to: u64 },
}

/// Why a membership or leadership change was refused.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum AdminError {
    /// No leader could take the change now (an election, leadership moving): retried.
    #[error("{0}")]
    Unavailable(String),
    /// The request itself is wrong (an unknown node, an address nothing answers at).
    #[error("{0}")]
    Invalid(String),
    /// The change would clash with the cluster as it is (an address another member
    /// uses, a membership whose voters would have no quorum): refused before it starts.
    #[error("{0}")]
    Conflict(String),
    /// The change started but did not finish in time; the message says in what state
    /// the membership is. Not retried: repeating it would wait on the same thing.
    #[error("{0}")]
    TimedOut(String),
}

/// How long the leader waits to hear from a node being added before it gives the add
/// up (the address is wrong, or nothing listens there).
const LEARNER_CONTACT: Duration = Duration::from_secs(10);
/// How long a membership change (one joint step and the final one) may take to commit
/// before the caller is told where it stands: below the forwarding limit of the admin
/// call, so the answer always comes back through the node that was asked.
const MEMBERSHIP_CHANGE_MAX: Duration = Duration::from_secs(20);
/// How long the leader waits for the process at a new node's address to say its id.
const WHOAMI_WAIT: Duration = Duration::from_secs(2);
/// How long a node being added may take to catch up (log or snapshot) before the add
/// answers that it is still behind; it stays a learner meanwhile.
const LEARNER_CATCH_UP_MAX: Duration = Duration::from_secs(600);

/// Why a node being added did not become a voter.
#[derive(Debug)]
enum LearnerWait {
    /// The leader never heard from it, or stopped hearing from it, for this long.
    Silent(Duration),
    /// It answers but is still catching up.
    StillBehind,
    /// This node stopped leading while waiting.
    LeaderChanged,
}

impl LearnerWait {
    fn into_admin_error(self, id: u64, addr: &str) -> AdminError {
        match self {
            LearnerWait::Silent(d) => AdminError::Invalid(format!(
                "node {id} at {addr} did not answer the leader for {}s; it was not added \
                 (is it running with --node-id {id} and reachable at that address?)",
                d.as_secs()
            )),
            LearnerWait::StillBehind => AdminError::Unavailable(format!(
                "node {id} is still catching up after {}s; it stays a learner, repeat the add to promote it",
                LEARNER_CATCH_UP_MAX.as_secs()
            )),
            LearnerWait::LeaderChanged => AdminError::Unavailable(format!(
                "leadership changed while node {id} was catching up; repeat the add"
            )),
        }
    }
}

/// What a write is told when no node knows a leader (openraft says "has to forward
/// request to: None, None").
const NO_LEADER_KNOWN: &str =
    "no leader known (an election is under way, or no quorum is reachable)";

/// An openraft error as a caller can read it: "has to forward request to: None, None"
/// means no leader is known, and a text carrying a metrics dump is cut short.
fn plain_raft_error(text: &str) -> String {
    if text.contains("has to forward request to: None") {
        return NO_LEADER_KNOWN.into();
    }
    let short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// What a write that Raft stopped under learns. A stop for shutdown refused it before
/// anything was stored; a storage failure (a full disk) or a crash of Raft's core may have
/// come after the entry was appended, even committed and applied on a quorum: the caller
/// must not be told nothing was stored (a client would send the message again).
fn fatal_mid_write(f: &openraft::errors::Fatal<TypeConfig>) -> WriteError {
    let why = match f {
        openraft::errors::Fatal::Stopped => {
            return WriteError::Unavailable("this node is stopping".into());
        }
        openraft::errors::Fatal::StorageError(e) => {
            storage_failure::storage_failure(&e.to_string())
        }
        other => format!("Raft stopped: {other}"),
    };
    WriteError::Ambiguous(format!(
        "{why}; the write was under way and may have been stored: look it up (client_ref, \
         or resend with the same Idempotency-Key) before sending it again"
    ))
}

/// Why the consensus layer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(String),
    /// Another process holds the data dir's store (fjall's lock file).
    #[error("storage: the data dir is in use by another process")]
    Locked,
    #[error("raft: {0}")]
    Raft(String),
    /// The data dir cannot be used as it is (a damaged or unreadable store, a log shorter
    /// than what this node acknowledged): one line naming the data dir, the path and what
    /// to do. A start-time refusal: the binary exits 2, as for a bad configuration.
    #[error("{0}")]
    Refused(String),
}

/// How this node joins the cluster.
#[derive(Debug, Clone)]
pub struct ConsensusOptions {
    pub node_id: u64,
    pub cluster_addr: String,
    pub http_addr: String,
    /// Initial members (id → cluster address), this node included. Empty: single node.
    pub peers: BTreeMap<u64, String>,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_ms: u64,
    /// Build a snapshot (and compact the log) after this many entries.
    pub snapshot_every: u64,
    /// Bytes of rows per chunk of a snapshot sent to a lagging peer.
    pub snapshot_chunk_bytes: usize,
    /// fjall's cap on its journals (`store_max_journal_mb`): above it, fjall flushes the
    /// memtables that pin the oldest journal so it can be deleted; bounds the disk that
    /// journals of purged rows hold while the node runs.
    pub max_journal_bytes: u64,
    /// The cluster port's shared secret (`cluster_secret`): sent on every request to a
    /// peer and required of every request served there.
    pub cluster_secret: Option<String>,
    /// Start on a store whose `log_watermark` file is missing, writing a fresh one at the
    /// log's end (`accept_missing_watermark`; `store_open::check_watermark`).
    pub accept_missing_watermark: bool,
}

struct WriteRequest {
    ops: Vec<Op>,
    reply: Reply,
}

/// Where a write's outcome goes back to its caller.
type Reply = oneshot::Sender<Result<Vec<OpResult>, WriteError>>;

/// The running Raft node and its write path.
pub struct Consensus {
    raft: Raft,
    node_id: u64,
    store: Arc<StateStore>,
    network: network::HttpNetwork,
    /// See [`ConsensusOptions::cluster_secret`].
    cluster_secret: Option<Arc<str>>,
    writes: mpsc::Sender<WriteRequest>,
    /// A follower's accepts, packed so that concurrent sends share one forward to the
    /// leader (one HTTP call, one entry there). Only retry-safe operations go this way, so
    /// a batch whose forward broke mid-call may be sent again as a whole.
    forwards: mpsc::Sender<WriteRequest>,
    arrivals: Arc<arrivals::HeartbeatArrivals>,
    /// The log (a handle; openraft owns the store): `shutdown` records where it ends.
    log: log_store::LogStore,
    /// Set by `shutdown`: writes not yet begun are refused as `Unavailable` (never
    /// proposed, so the caller may send them elsewhere).
    closing: std::sync::atomic::AtomicBool,
    /// Writes begun and not yet answered: `shutdown` lets them finish before Raft stops,
    /// so none is cut off with an outcome nobody knows.
    writes_under_way: std::sync::atomic::AtomicUsize,
    /// When a leader last sent this node entries or a heartbeat (ms after `started`): a
    /// follower that hears nothing for long (removed from the cluster without receiving
    /// the change, or cut off) is not ready, though its last leader is still on record.
    leader_contact_ms: std::sync::atomic::AtomicU64,
    /// When (ms since start) a refused vote was last logged (`vote_refusal`).
    vote_refusal_logged_ms: std::sync::atomic::AtomicU64,
    /// When a write of this node last committed (ms after `started`, 0: never). Every
    /// member writes a heartbeat every 200 ms, so a follower whose writes stop committing
    /// is in a cluster without quorum (or cut off from the leader, or still catching up
    /// after its data dir was wiped) although it may know a leader: `/readyz` says so.
    last_commit_ms: std::sync::atomic::AtomicU64,
    /// The leader refused this node's last forwarded write as a non-member's (removed, and
    /// the change never reached this node): it serves nothing until a write commits again.
    leader_says_not_member: std::sync::atomic::AtomicBool,
    started: std::time::Instant,
}

/// How long `shutdown` waits for the writes under way to be answered.
const SHUTDOWN_WRITE_WAIT: Duration = Duration::from_secs(3);

/// Counts one write as under way for as long as it lives.
struct UnderWay<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> UnderWay<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        UnderWay(count)
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Consensus {
    /// Opens the data dir (one fjall database for log and state), starts Raft, and
    /// initialises the cluster when this node is the lowest-id member of a fresh one.
    pub async fn start(data_dir: &Path, opts: ConsensusOptions) -> Result<Arc<Self>, StartError> {
        // The watermark is read before the store opens, and the store's log is held to it
        // (`store_open::check_watermark`, inside `open`): a node never comes up having
        // forgotten entries it acknowledged.
        let acknowledged = watermark::read(data_dir).map_err(|e| {
            StartError::Refused(format!(
                "data_dir {}: {e}; if the store is known to be whole, delete the file",
                data_dir.display()
            ))
        })?;
        let watermark = watermark::Watermark::start(data_dir, acknowledged)
            .map_err(|e| StartError::Storage(e.to_string()))?;
        let arrivals = Arc::new(arrivals::HeartbeatArrivals::default());
        let (store, log) = store_open::open(
            data_dir,
            opts.max_journal_bytes,
            arrivals.clone(),
            watermark,
            opts.accept_missing_watermark,
        )?;
        let store = Arc::new(store);
        let log_handle = log.clone();
        let sm = state_machine::StateMachine {
            store: store.clone(),
        };
        let config = Config {
            cluster_name: "smsgw".into(),
            heartbeat_interval: opts.heartbeat_ms,
            election_timeout_min: opts.election_timeout_ms.0,
            election_timeout_max: opts.election_timeout_ms.1,
            snapshot_policy: if opts.snapshot_every == 0 {
                SnapshotPolicy::Never
            } else {
                SnapshotPolicy::LogsSinceLast(opts.snapshot_every)
            },
            // A small snapshot interval (tests) keeps as few entries past it.
            max_in_snapshot_log_to_keep: opts.snapshot_every.clamp(1, 1000),
            purge_batch_size: 256,
            max_payload_entries: 256,
            // A follower whose timer fires first asks before it campaigns. Without it, a
            // follower with a shorter log bumped the term, lost (its log is behind), and
            // its own vote for itself refused the follower that could win, which then
            // had to campaign twice: a dead leader was replaced in 2 s instead of 1 s.
            // It also keeps a member that was cut off from raising the term on return.
            enable_pre_vote: Some(true),
            // A member that lost its data dir restarts with an empty log; without this the
            // leader stops replicating to it for good (openraft sees a log that went
            // backwards) and the cluster runs short of a copy until a leader change. It
            // cannot cost data: such a node does not vote until refilled (`vote_guard`).
            allow_log_reversion: Some(true),
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| StartError::Raft(e.to_string()))?,
        );
        let network =
            network::HttpNetwork::new(opts.snapshot_chunk_bytes, opts.cluster_secret.as_deref());
        let raft = Raft::new(opts.node_id, config, network.clone(), log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let lowest = opts.peers.keys().next().copied().unwrap_or(opts.node_id);
        if !initialized && lowest == opts.node_id {
            let mut members = BTreeMap::new();
            if opts.peers.is_empty() {
                members.insert(
                    opts.node_id,
                    NodeInfo {
                        cluster_addr: opts.cluster_addr.clone(),
                        http_addr: opts.http_addr.clone(),
                    },
                );
            } else {
                for (id, addr) in &opts.peers {
                    let http = if *id == opts.node_id {
                        opts.http_addr.clone()
                    } else {
                        String::new()
                    };
                    members.insert(
                        *id,
                        NodeInfo {
                            cluster_addr: addr.clone(),
                            http_addr: http,
                        },
                    );
                }
            }
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "cluster already initialised");
            }
        }

        let (tx, rx) = mpsc::channel(65536);
        let (forwards, forwards_rx) = mpsc::channel(65536);
        let this = Arc::new(Consensus {
            raft,
            node_id: opts.node_id,
            store,
            network,
            cluster_secret: opts.cluster_secret.as_deref().map(Arc::from),
            writes: tx,
            forwards,
            arrivals,
            log: log_handle,
            closing: Default::default(),
            writes_under_way: Default::default(),
            leader_contact_ms: Default::default(),
            vote_refusal_logged_ms: Default::default(),
            last_commit_ms: Default::default(),
            leader_says_not_member: Default::default(),
            started: std::time::Instant::now(),
        });
        tokio::spawn(proposer_loop(this.clone(), rx));
        tokio::spawn(proposer_loop(this.clone(), forwards_rx));
        Ok(this)
    }

    /// Resolves with the reason when Raft stopped by itself (a storage error such as a
    /// full disk, or a panic in its core): the node can neither commit nor follow any
    /// more, so it must exit and be restarted rather than keep its binds.
    pub async fn raft_failed(&self) -> String {
        // Polled rather than woken by every metrics change: the metrics change on every
        // applied entry, thousands of times a second, and a stop is noticed soon enough.
        let metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_watched().running_state
                && !matches!(fatal, openraft::errors::Fatal::Stopped)
            {
                return fatal.to_string();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The replicated state (read side).
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Proposes one operation and waits until it is committed (fsync'd on a quorum) and applied.
    /// A retry-safe operation (an accept) waits to share an entry with others: on the leader
    /// in the batching proposer, on a follower in the forward batcher, where each forward
    /// costs the leader an HTTP request and an entry. Fewer entries cost less on every
    /// member (every entry is encoded, appended and applied, in a cluster on each node);
    /// on one node the hand-off cut entries per message from 1.37 to 0.5 and lowered the
    /// accept p99 in 11 of 14 paired runs (docs/benchmarks.md). Other operations are
    /// written directly to `Raft::client_write`.
    pub async fn propose(&self, op: Op) -> Result<OpResult, WriteError> {
        let mut r = if let Some(proposer) = self.sharing_proposer(&op) {
            // The proposer times the write (or forward) it makes for the whole batch.
            self.enqueue(proposer, vec![op]).await?
        } else {
            let started = std::time::Instant::now();
            let r = self.write(vec![op].into()).await?;
            metrics::histogram!("smsgw_raft_write_seconds").record(started.elapsed().as_secs_f64());
            r
        };
        r.pop()
            .ok_or_else(|| WriteError::Fatal("empty outcome".into()))
    }

    /// Proposes one operation through the batching proposer: it shares a Raft entry with
    /// whatever else is waiting. For high-rate background writes (submit responses,
    /// receipts) where fewer, larger entries matter more than a fraction of a millisecond.
    pub async fn propose_batched(&self, op: Op) -> Result<OpResult, WriteError> {
        let mut r = self.propose_many(vec![op]).await?;
        r.pop()
            .ok_or_else(|| WriteError::Fatal("empty outcome".into()))
    }

    /// Proposes several operations; they land in the same entry, in order.
    pub async fn propose_many(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, WriteError> {
        self.enqueue(&self.writes, ops).await
    }

    /// Hands `ops` to one of the batching proposers and waits for their results.
    async fn enqueue(
        &self,
        proposer: &mpsc::Sender<WriteRequest>,
        ops: Vec<Op>,
    ) -> Result<Vec<OpResult>, WriteError> {
        let (reply, rx) = oneshot::channel();
        proposer
            .send(WriteRequest { ops, reply })
            .await
            .map_err(|_| WriteError::Fatal("proposer stopped".into()))?;
        rx.await.map_err(|_| {
            WriteError::Ambiguous(
                "the write was under way when this node's proposer stopped; it may have been \
                 stored"
                    .into(),
            )
        })?
    }

    /// Is this node the leader right now?
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Where `op` waits to share an entry with others (see [`Consensus::propose`]): the
    /// batching proposer on the leader, the forward batcher on a follower; `None` when it is
    /// written directly (an operation that is not retry-safe).
    fn sharing_proposer(&self, op: &Op) -> Option<&mpsc::Sender<WriteRequest>> {
        if !op.is_retry_safe() {
            return None;
        }
        if self.is_leader() {
            Some(&self.writes)
        } else {
            Some(&self.forwards)
        }
    }

    /// On a leader of more than one voter that has not been acknowledged by a quorum for
    /// longer than two election timeouts: for how long. Such a leader still believes it
    /// leads, but it cannot commit anything (its peers are down or unreachable).
    pub fn leader_without_quorum(&self) -> Option<Duration> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        if m.state != ServerState::Leader
            || m.membership_config.membership().voter_ids().count() < 2
        {
            return None;
        }
        let limit = self.election_timeouts(2, Duration::from_secs(1));
        let silent = m
            .last_quorum_acked
            .as_ref()
            .map(|t| openraft::Instant::elapsed(&**t))?;
        (silent > limit).then_some(silent)
    }

    /// `k` times the longest election timeout, and at least `at_least`: how long a silence
    /// (no quorum, no leader, no commit) must last before it counts.
    fn election_timeouts(&self, k: u64, at_least: Duration) -> Duration {
        Duration::from_millis(k * self.raft.config().election_timeout_max).max(at_least)
    }

    /// (whether this node knows a membership at all, whether it is in it).
    fn membership_place(&self) -> (bool, bool) {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        let known = membership.nodes().next().is_some();
        (known, membership.nodes().any(|(id, _)| *id == self.node_id))
    }

    /// The node of a forwarded heartbeat in `ops` that is not in this node's membership,
    /// if any: a removed member that never heard of its removal still forwards its
    /// heartbeats, and committing them would renew its lease (and keep its binds open).
    fn heartbeat_of_non_member(&self, ops: &[Op]) -> Option<u64> {
        let members: Vec<u64> = self.members().into_iter().map(|(id, _, _)| id).collect();
        if members.is_empty() {
            return None;
        }
        ops.iter().find_map(|op| match op {
            Op::Heartbeat { node, .. } if !members.contains(node) => Some(*node),
            _ => None,
        })
    }

    /// True when this node knows a membership that does not include it (it was removed,
    /// and the change reached it): it must not send anything, and it lets its binds go.
    pub fn removed_from_cluster(&self) -> bool {
        let (known, member) = self.membership_place();
        known && !member
    }

    /// Why this node cannot serve requests although it may know a leader, if so: it is
    /// not in the cluster's membership as it knows it (removed, or not added yet), or it is
    /// a follower that no leader has contacted for four election timeouts (removed without
    /// hearing of it, or cut off). `/readyz` answers 503 with the reason.
    pub fn not_serving_reason(&self) -> Option<String> {
        if let Some(why) = self.stopped_reason() {
            return Some(why);
        }
        if self.is_leader() {
            self.heard_from_leader();
            return None;
        }
        let (initialized, member) = self.membership_place();
        if self
            .leader_says_not_member
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Some(format!(
                "node {} is not a member of the cluster: the leader refuses its writes (removed)",
                self.node_id
            ));
        }
        if initialized && !member {
            return Some(format!(
                "node {} is not a member of the cluster (removed, or not added yet)",
                self.node_id
            ));
        }
        if !initialized {
            return None;
        }
        let limit = self.election_timeouts(4, Duration::from_secs(2));
        let now_ms = self.started.elapsed().as_millis() as u64;
        let contact = self
            .leader_contact_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let silent = Duration::from_millis(now_ms.saturating_sub(contact));
        (silent > limit).then(|| {
            format!(
                "no leader has contacted node {} for {} ms (removed from the cluster, or cut off)",
                self.node_id,
                silent.as_millis()
            )
        })
    }

    /// Why Raft stopped by itself (a storage error such as a full disk, or a panic in its
    /// core), if it did: the node cannot commit or follow any more and is about to exit,
    /// and `/readyz` says so instead of blaming the leader.
    pub fn stopped_reason(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        match &m.running_state {
            Err(openraft::errors::Fatal::Stopped) | Ok(()) => None,
            Err(openraft::errors::Fatal::StorageError(e)) => {
                Some(storage_failure::storage_failure(&e.to_string()))
            }
            Err(fatal) => Some(format!("Raft stopped: {fatal}; the node stops")),
        }
    }

    /// A write of this node committed.
    /// (The leader's refusal is lifted only by a committed heartbeat, the write it judges.)
    fn committed_now(&self, ops: &[Op]) {
        if ops.iter().any(|op| matches!(op, Op::Heartbeat { .. })) {
            self.leader_says_not_member
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let now_ms = (self.started.elapsed().as_millis() as u64).max(1);
        self.last_commit_ms
            .fetch_max(now_ms, std::sync::atomic::Ordering::Relaxed);
        if self.is_leader() {
            // A leader is in contact with the leader: once it steps down (a transfer),
            // its silence is counted from here, not from before it led.
            self.heard_from_leader();
        }
    }

    /// Why this node is not ready although it knows a leader, if so: it has applied no
    /// state yet (a wiped data dir still catching up), or none of its writes (its
    /// heartbeats, every 200 ms) has committed for four election timeouts (3 s at least),
    /// so the cluster has no quorum or this node cannot reach the leader. `/readyz` answers
    /// 503 with it; a load balancer then stops sending writes that would get 503.
    pub fn not_committing_reason(&self) -> Option<String> {
        let applied = self.raft.metrics().borrow_watched().last_applied.is_some()
            && self.membership_place().0;
        if !applied {
            return Some(format!(
                "node {} has applied no state yet (new or wiped data dir, catching up with the leader)",
                self.node_id
            ));
        }
        let limit = self.election_timeouts(4, Duration::from_secs(3));
        let now_ms = self.started.elapsed().as_millis() as u64;
        let last = self
            .last_commit_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if last == 0 {
            return (now_ms > limit.as_millis() as u64).then(|| {
                format!(
                    "no write of node {} has committed since it started {} ms ago \
                     (no quorum of voters is up, or the leader cannot be reached)",
                    self.node_id, now_ms
                )
            });
        }
        let silent = Duration::from_millis(now_ms.saturating_sub(last));
        (silent > limit).then(|| {
            format!(
                "no write of node {} has committed for {} ms (no quorum of voters is up, \
                 or the leader cannot be reached)",
                self.node_id,
                silent.as_millis()
            )
        })
    }

    /// A leader sent this node entries or a heartbeat.
    /// Why this node will not vote on `req` (`vote_guard`), logged once a minute at most.
    fn vote_refusal(&self, req: &openraft::raft::VoteRequest<TypeConfig>) -> Option<String> {
        let why = vote_guard::refusal(
            &self.raft.metrics().borrow_watched(),
            req.last_log_id.as_ref().map(|l| l.index()),
        )?;
        let now_ms = self.started.elapsed().as_millis() as u64;
        let last = self
            .vote_refusal_logged_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if last == 0 || now_ms.saturating_sub(last) >= 60_000 {
            self.vote_refusal_logged_ms
                .store(now_ms.max(1), std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(candidate = req.vote.leader_id().node_id, "{why}");
        }
        Some(why)
    }

    fn heard_from_leader(&self) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.leader_contact_ms
            .fetch_max(now_ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The current leader's id, if known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Index of the last entry in this node's log, and of the last one it applied.
    pub fn log_progress(&self) -> (u64, u64) {
        let m = self.raft.metrics().borrow_watched().clone();
        (
            m.last_log_index.unwrap_or(0),
            m.last_applied.map(|l| l.index()).unwrap_or(0),
        )
    }

    /// This node's log as Raft sees it (what `GET /admin/v1/cluster` shows under `log`):
    /// operators read it to see a lagging member catch up and the log being compacted.
    pub fn log_state(&self) -> LogState {
        let m = self.raft.metrics().borrow_watched().clone();
        let index = |l: Option<&openraft::alias::LogIdOf<TypeConfig>>| l.map(|l| l.index());
        LogState {
            last_log_index: m.last_log_index,
            committed_index: index(m.cluster_committed.as_ref()),
            applied_index: index(m.last_applied.as_ref()),
            snapshot_index: index(m.snapshot.as_ref()),
            purged_index: index(m.purged.as_ref()),
            matched_index: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, index(l.as_ref()))).collect())
                .unwrap_or_default(),
        }
    }

    /// When a heartbeat of `node` last reached this node's log (placement's "last seen").
    pub fn heartbeat_arrived(&self, node: u64) -> Option<std::time::Instant> {
        self.arrivals.latest(node)
    }

    /// Where the current leader listens, if one is known.
    pub fn leader_info(&self) -> Option<NodeInfo> {
        let id = self.leader()?;
        self.members()
            .into_iter()
            .find(|(n, _, _)| *n == id)
            .map(|(_, info, _)| info)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// Members and their addresses, and whether each is a voter.
    pub fn members(&self) -> Vec<(u64, NodeInfo, bool)> {
        let m = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let voters: Vec<u64> = m.membership().voter_ids().collect();
        m.membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone(), voters.contains(id)))
            .collect()
    }

    /// Makes the next local read see every write committed before this call, wherever it
    /// was made (read-your-writes on any node): asks the leader for its read index and
    /// waits until this node has applied that far.
    pub async fn read_barrier(&self) -> Result<(), WriteError> {
        if !self.wait_for_leader(LEADER_WAIT).await {
            return Err(WriteError::Unavailable("no leader known".into()));
        }
        let index = if self.is_leader() {
            self.read_index().await?
        } else {
            let (Some(leader_id), Some(leader)) = (self.leader(), self.leader_info()) else {
                return Err(WriteError::Unavailable("no leader known".into()));
            };
            let url = format!("http://{}/raft/read-index", leader.cluster_addr);
            let asked = network::post_bincode::<_, Result<u64, WriteError>>(
                self.network.client(),
                &url,
                &(),
                LEADER_WAIT,
            );
            let answer = tokio::select! {
                answer = asked => answer,
                // A paused or deposed leader: say so now, not when the call times out.
                () = self.leader_left(leader_id) => {
                    return Err(WriteError::Unavailable(format!(
                        "node {leader_id} stopped leading while it was asked; retry"
                    )));
                }
            };
            match answer {
                Ok(r) => r?,
                Err(network::PostError::Unreachable(m)) | Err(network::PostError::Other(m)) => {
                    return Err(WriteError::Unavailable(m));
                }
            }
        };
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|_| {
                // openraft's error carries its whole metrics dump; say what it means.
                let applied = self.log_progress().1;
                WriteError::Unavailable(format!(
                    "node {} has applied the log up to {applied} but the leader is at {index} \
                     and it did not catch up within {} s (removed from the cluster, or cut off?)",
                    self.node_id,
                    LEADER_WAIT.as_secs()
                ))
            })
    }

    /// On the leader: the index every read must wait for (ReadIndex: leadership
    /// confirmed by a quorum).
    async fn read_index(&self) -> Result<u64, WriteError> {
        self.raft
            .ensure_linearizable(openraft::raft::ReadPolicy::ReadIndex)
            .await
            .map(|r| r.index())
            .map_err(|e| WriteError::Unavailable(plain_raft_error(&e.to_string())))
    }

    /// Runs a membership or leadership change on the leader (forwarded when this node is
    /// not it), retrying while leadership is changing. The change runs in a task of its
    /// own: a caller that goes away (a client that disconnects or times out) does not cut
    /// it off half-way, so an add that fails still removes the learner it made.
    pub async fn admin(self: &Arc<Self>, op: AdminOp) -> Result<(), AdminError> {
        let me = self.clone();
        detached(async move { me.admin_retrying(op).await }).await
    }

    async fn admin_retrying(&self, op: AdminOp) -> Result<(), AdminError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT * 2;
        loop {
            match self.admin_once(op.clone()).await {
                Err(AdminError::Unavailable(m)) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(reason = %m, "cluster change not taken yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    async fn admin_once(&self, op: AdminOp) -> Result<(), AdminError> {
        if !self.is_leader() {
            let leader = self
                .leader_info()
                .ok_or_else(|| AdminError::Unavailable("no leader known".into()))?;
            let url = format!("http://{}/raft/admin", leader.cluster_addr);
            // An add waits for the new node to catch up on the leader.
            let limit = match op {
                AdminOp::AddNode { .. } => LEARNER_CATCH_UP_MAX + Duration::from_secs(30),
                _ => MEMBERSHIP_CHANGE_MAX * 2 + Duration::from_secs(10),
            };
            return match network::post_bincode::<_, Result<(), AdminError>>(
                self.network.client(),
                &url,
                &op,
                limit,
            )
            .await
            {
                Ok(r) => r,
                Err(network::PostError::Unreachable(m)) => Err(AdminError::Unavailable(m)),
                // The leader took the request and its answer was lost: the change may be
                // under way, so it is not sent again.
                Err(network::PostError::Other(m)) => Err(AdminError::TimedOut(format!(
                    "the leader (node {}) did not answer the change: {m}; {}",
                    self.leader().unwrap_or(0),
                    self.membership_text()
                ))),
            };
        }
        let unavailable = |e: String| AdminError::Unavailable(plain_raft_error(&e));
        match op {
            AdminOp::AddNode { id, info } => {
                let addr = info.cluster_addr.clone();
                self.check_new_address(id, &addr).await?;
                tracing::info!(node = id, addr = %addr, "adding node as learner");
                // Not openraft's blocking add: it waits 500 ms at most and then reports
                // success, and it takes a learner that never answered as caught up when the
                // log is short. Promoting such a node makes it a voter the cluster cannot
                // reach: no quorum, no writes, and no way to remove it again.
                let added = self
                    .raft
                    .add_learner(id, info, false)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                let ids = std::collections::BTreeSet::from([id]);
                if let Err(e) = self.wait_learner(id, added.log_id.index()).await {
                    if let LearnerWait::Silent(silent) = e {
                        tracing::warn!(node = id, addr = %addr, ?silent, "new node never answered; removing the learner");
                        self.change_bounded(
                            openraft::ChangeMembers::RemoveNodes(ids),
                            &format!("removing learner {id}"),
                        )
                        .await?;
                    }
                    return Err(e.into_admin_error(id, &addr));
                }
                // The same trap as a removal: promoting needs the new voter set's quorum.
                self.refuse_without_quorum(&format!("adding node {id}"), |v| {
                    v.insert(id);
                })?;
                tracing::info!(node = id, "learner caught up; promoting to voter");
                self.change_bounded(
                    openraft::ChangeMembers::AddVoterIds(ids),
                    &format!("promoting node {id} to voter"),
                )
                .await
            }
            AdminOp::RemoveNode { id } => {
                let members = self.members();
                let Some((_, _, voter)) = members.iter().find(|(n, _, _)| *n == id) else {
                    return Err(AdminError::Invalid(format!("node {id} is not a member")));
                };
                let voters = members.iter().filter(|(_, _, v)| *v).count();
                if *voter && voters <= 1 {
                    return Err(AdminError::Invalid(
                        "cannot remove the last voter".to_string(),
                    ));
                }
                let ids: std::collections::BTreeSet<u64> = [id].into_iter().collect();
                let change = if *voter {
                    self.refuse_without_quorum(&format!("removing node {id}"), |v| {
                        v.remove(&id);
                    })?;
                    openraft::ChangeMembers::RemoveVoters(ids)
                } else {
                    openraft::ChangeMembers::RemoveNodes(ids)
                };
                self.change_bounded(change, &format!("removing node {id}"))
                    .await
            }
            AdminOp::TransferLeader { to } => {
                if !self.members().iter().any(|(n, _, v)| *n == to && *v) {
                    return Err(AdminError::Invalid(format!("node {to} is not a voter")));
                }
                if to == self.node_id {
                    return Ok(());
                }
                self.raft
                    .trigger()
                    .transfer_leader(to)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                let deadline = tokio::time::Instant::now() + LEADER_WAIT;
                while self.leader() != Some(to) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if self.leader() == Some(to) {
                    Ok(())
                } else {
                    Err(AdminError::Unavailable(format!(
                        "node {to} did not take over within {LEADER_WAIT:?}"
                    )))
                }
            }
        }
    }

    /// On the leader, before a node is added at `addr`: refuses an address another member
    /// already has (the process there would answer for both ids, and a voter that does
    /// not exist would count toward quorum), and asks the process listening there who it
    /// is (`identity`). One that answers with another id, or as a member of another
    /// cluster, is refused; one that does not answer (not started yet) is left to the
    /// learner's wait.
    async fn check_new_address(&self, id: u64, addr: &str) -> Result<(), AdminError> {
        let same = |a: &str| a.trim().eq_ignore_ascii_case(addr.trim());
        if let Some((other, _, _)) = self
            .members()
            .into_iter()
            .find(|(n, info, _)| *n != id && same(&info.cluster_addr))
        {
            return Err(AdminError::Conflict(format!(
                "{addr} is the address of node {other}; give node {id} its own cluster address"
            )));
        }
        let url = format!("http://{addr}/raft/identity");
        let them = match network::post_bincode::<_, identity::Identity>(
            self.network.client(),
            &url,
            &(),
            WHOAMI_WAIT,
        )
        .await
        {
            Ok(them) => them,
            // Not started yet: left to the learner's wait.
            Err(_) => return Ok(()),
        };
        if them.node_id != id {
            return Err(AdminError::Conflict(format!(
                "{addr} answers as node {}, not node {id}; start node {id} with \
                 --node-id {id} --cluster-addr {addr}, or give its own address",
                them.node_id
            )));
        }
        let ours: Vec<(u64, String)> = self
            .members()
            .into_iter()
            .map(|(n, info, _)| (n, info.cluster_addr))
            .collect();
        if let Some(theirs) = identity::foreign_members(&them, &ours) {
            let named = if theirs.is_empty() {
                "a cluster of its own".to_string()
            } else {
                let list: Vec<String> = theirs.iter().map(|(n, a)| format!("{n}@{a}")).collect();
                format!("another cluster (members {})", list.join(", "))
            };
            return Err(AdminError::Conflict(format!(
                "{addr} (node {id}) belongs to {named}: adding it here would replace its log \
                 with this cluster's; remove it there, or stop it and wipe its data dir, then \
                 start it with this cluster's peers and add it again"
            )));
        }
        Ok(())
    }

    /// A membership change bounded by [`MEMBERSHIP_CHANGE_MAX`]: past it the caller is
    /// told what the membership is now (possibly joint, half-way through the change),
    /// instead of waiting on a commit that needs voters that are down.
    async fn change_bounded(
        &self,
        change: openraft::ChangeMembers<u64, NodeInfo>,
        what: &str,
    ) -> Result<(), AdminError> {
        match tokio::time::timeout(
            MEMBERSHIP_CHANGE_MAX,
            self.raft.change_membership(change, false),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(AdminError::Unavailable(plain_raft_error(&e.to_string()))),
            Err(_) => {
                let now = self.membership_text();
                tracing::warn!(change = what, membership = %now, "membership change did not commit in time");
                Err(AdminError::TimedOut(format!(
                    "{what} did not commit within {} s; {now}; it completes once a quorum of \
                     the voters answers (see `smsgw cluster status`)",
                    MEMBERSHIP_CHANGE_MAX.as_secs()
                )))
            }
        }
    }

    /// Refuses (409) a membership change, named `what`, that turns the voters into a set
    /// (`change` applied to the current voters) whose reachable members are no majority.
    fn refuse_without_quorum(
        &self,
        what: &str,
        change: impl FnOnce(&mut std::collections::BTreeSet<u64>),
    ) -> Result<(), AdminError> {
        let mut new_voters = self.voter_ids();
        change(&mut new_voters);
        match no_quorum_after(what, &new_voters, &self.voters_up()) {
            Some(why) => Err(AdminError::Conflict(why)),
            None => Ok(()),
        }
    }

    /// The voters of the current membership (of its last step when it is joint).
    fn voter_ids(&self) -> std::collections::BTreeSet<u64> {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_joint_config()
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// On the leader: the voters it has heard from lately (itself, and every voter whose
    /// last heartbeat or append answer is younger than two election timeouts, 1.6 s at
    /// least): the same "up" as `smsgw cluster status` shows, from Raft's own answers.
    fn voters_up(&self) -> std::collections::BTreeSet<u64> {
        let window = self.election_timeouts(2, Duration::from_millis(1600));
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let mut up: std::collections::BTreeSet<u64> = m
            .heartbeat
            .as_ref()
            .map(|h| {
                h.iter()
                    .filter(|(_, t)| {
                        t.as_ref()
                            .is_some_and(|t| openraft::Instant::elapsed(&**t) < window)
                    })
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        up.insert(self.node_id);
        up
    }

    /// The membership as an operator reads it: "membership now: voters {1,2,3}" or, half
    /// way through a change, "membership now: joint {1,2,3} -> {2,3}".
    fn membership_text(&self) -> String {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let joint = m.membership_config.membership().get_joint_config();
        let sets: Vec<String> = joint.iter().map(id_set).collect();
        match sets.as_slice() {
            [one] => format!("membership now: voters {one}"),
            _ => format!(
                "membership now: joint {} (half-way through a change)",
                sets.join(" -> ")
            ),
        }
    }

    /// On the leader: waits until learner `id` has the log up to the entry that added it
    /// and is within openraft's replication lag of the end. A learner the leader has not
    /// heard from for [`LEARNER_CONTACT`] is given up; one that answers but is still
    /// behind after [`LEARNER_CATCH_UP_MAX`] (a huge snapshot over a slow link) stays a
    /// learner, and the add can be repeated.
    async fn wait_learner(&self, id: u64, added_at: u64) -> Result<(), LearnerWait> {
        let started = tokio::time::Instant::now();
        let lag_allowed = self.raft.config().replication_lag_threshold;
        loop {
            let (caught_up, silent) = {
                let m = self.raft.metrics();
                let m = m.borrow_watched();
                if m.state != ServerState::Leader {
                    return Err(LearnerWait::LeaderChanged);
                }
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|l| l.index());
                let last = m.last_log_index.unwrap_or(0);
                let caught_up =
                    matched.is_some_and(|i| i >= added_at && last.saturating_sub(i) <= lag_allowed);
                // The last acknowledged heartbeat or append; never one: since the add.
                let silent = m
                    .heartbeat
                    .as_ref()
                    .and_then(|h| h.get(&id).cloned().flatten())
                    .map_or(started.elapsed(), |t| openraft::Instant::elapsed(&*t));
                (caught_up, silent)
            };
            if caught_up {
                return Ok(());
            }
            if silent >= LEARNER_CONTACT {
                return Err(LearnerWait::Silent(silent));
            }
            if started.elapsed() >= LEARNER_CATCH_UP_MAX {
                return Err(LearnerWait::StillBehind);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until a leader is known; true when one is.
    pub async fn wait_for_leader(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.leader().is_some() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Raft RPC endpoints served on the cluster port.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/raft/append", post(rpc_append))
            .route("/raft/vote", post(rpc_vote))
            .route("/raft/pre-vote", post(rpc_pre_vote))
            .route("/raft/snapshot/chunk", post(rpc_snapshot_chunk))
            .route("/raft/snapshot/install", post(rpc_snapshot_install))
            .route("/raft/transfer-leader", post(rpc_transfer_leader))
            .route("/raft/propose", post(rpc_propose))
            .route("/raft/read-index", post(rpc_read_index))
            .route("/raft/admin", post(rpc_admin))
            .route("/raft/whoami", post(rpc_whoami))
            .route("/raft/identity", post(rpc_identity))
            .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(self.clone())
    }

    /// The cluster port's shared secret, if one is set (the actor mesh sends and checks
    /// it too).
    pub fn cluster_secret(&self) -> Option<Arc<str>> {
        self.cluster_secret.clone()
    }

    /// Stops Raft after the writes under way have been answered (bounded by
    /// `SHUTDOWN_WRITE_WAIT`); writes asked for from now on are refused as `Unavailable`.
    pub async fn shutdown(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.closing.store(true, SeqCst);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WRITE_WAIT;
        while self.writes_under_way.load(SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cut_off = self.writes_under_way.load(SeqCst);
        if cut_off > 0 {
            tracing::warn!(
                writes = cut_off,
                "stopping Raft with writes still under way"
            );
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if let Err(e) = self.store.db().persist(fjall::PersistMode::SyncAll) {
            tracing::warn!(error = %e, "final persist");
            return;
        }
        // The whole log is on disk: the watermark says where it ends.
        match self.log.last_index() {
            Ok(last) => {
                if let Err(e) = self.log.watermark().write_final(last) {
                    tracing::warn!(error = %e, "cannot write the log watermark");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the log's end"),
        }
    }

    /// Writes one batch: locally when leader, else forwarded to the leader.
    async fn write(&self, ops: Arc<[Op]>) -> Result<Vec<OpResult>, WriteError> {
        // Counted before `closing` is read, so that `shutdown` (which sets it, then waits
        // for the count) cannot miss a write that got past the check.
        let _under_way = UnderWay::enter(&self.writes_under_way);
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(WriteError::Unavailable("this node is stopping".into()));
            }
            let written = self.raft.client_write(Proposal { ops: ops.clone() });
            let outcome =
                if self.is_leader() && several_voters(&self.raft.metrics().borrow_watched()) {
                    tokio::select! {
                        outcome = written => Some(outcome),
                        // Leadership lost mid-write (a transfer, a pause): the entry may still
                        // commit under the next leader, or be dropped.
                        () = self.leader_left(self.node_id) => None,
                    }
                } else {
                    Some(written.await)
                };
            let Some(outcome) = outcome else {
                let err = WriteError::Ambiguous(
                    "this node stopped leading while the write was under way".into(),
                );
                if !ops.iter().all(Op::is_retry_safe) || tokio::time::Instant::now() >= deadline {
                    return Err(err);
                }
                continue;
            };
            let err = match outcome {
                Ok(resp) => {
                    self.committed_now(&ops);
                    return Ok(resp.data.results);
                }
                Err(RaftError::Fatal(f)) => return Err(fatal_mid_write(&f)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(id), Some(node)) = (f.leader_id, f.leader_node.clone())
                        && id != self.node_id
                    {
                        let mut node = node;
                        if let Some(addr) = crate::failpoints::peer_addr(id) {
                            node.cluster_addr = addr; // a chaos run's fault proxy
                        }
                        // Not sent (leader unreachable or no longer leader): wait for the
                        // next leader instead of failing the caller during an election.
                        match self.forward(id, &node, &ops).await {
                            Ok(r) => {
                                self.committed_now(&ops);
                                return Ok(r);
                            }
                            Err(WriteError::NotMember(m)) => {
                                self.leader_says_not_member
                                    .store(true, std::sync::atomic::Ordering::Relaxed);
                                return Err(WriteError::NotMember(m));
                            }
                            Err(WriteError::Unavailable(m)) => WriteError::Unavailable(m),
                            // The connection broke after the request went out (a leader
                            // killed mid-call, a stale pooled connection): accepts may be
                            // proposed again, the state machine recognises their ids.
                            Err(WriteError::Ambiguous(m)) if ops.iter().all(Op::is_retry_safe) => {
                                WriteError::Ambiguous(m)
                            }
                            other => return other,
                        }
                    } else {
                        WriteError::Unavailable(NO_LEADER_KNOWN.into())
                    }
                }
                Err(RaftError::APIError(e @ ClientWriteError::LogEntryDiscarded(_))) => {
                    return Err(WriteError::Ambiguous(e.to_string()));
                }
                Err(RaftError::APIError(e)) => {
                    return Err(WriteError::Unavailable(plain_raft_error(&e.to_string())));
                }
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one forwarding function: sends a batch to the leader's cluster port.
    async fn forward(
        &self,
        leader_id: u64,
        leader: &NodeInfo,
        ops: &Arc<[Op]>,
    ) -> Result<Vec<OpResult>, WriteError> {
        let url = format!("http://{}/raft/propose", leader.cluster_addr);
        let sent = network::post_bincode::<_, Result<Vec<OpResult>, WriteError>>(
            self.network.client(),
            &url,
            ops,
            LEADER_WAIT * 2,
        );
        let answer = tokio::select! {
            answer = sent => answer,
            // The leader was paused or deposed while the write was with it: waiting out
            // the call's timeout held this node's proposer (and so every write here,
            // heartbeats included) for seconds after a new leader was up.
            () = self.leader_left(leader_id) => {
                return Err(WriteError::Ambiguous(format!(
                    "node {leader_id} stopped leading while it had the write"
                )));
            }
        };
        match answer {
            Ok(r) => r,
            Err(network::PostError::Unreachable(m)) => Err(WriteError::Unavailable(m)),
            Err(network::PostError::Other(m)) => Err(WriteError::Ambiguous(m)),
        }
    }

    /// Resolves once this node no longer takes `leader` for the cluster's leader (another
    /// node leads, or an election is under way): a write or read sent there is abandoned
    /// then instead of waited on for its whole timeout.
    async fn leader_left(&self, leader: u64) {
        while self.leader() == Some(leader) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// On the leader: how long ago each member last acknowledged an append or heartbeat
    /// (`None`: never since this node leads); empty on a follower. The cluster view uses
    /// it to tell which members answer when the replicated heartbeat rows cannot commit.
    pub fn peer_ack_ages(&self) -> BTreeMap<u64, Option<Duration>> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        if m.state != ServerState::Leader {
            return BTreeMap::new();
        }
        m.heartbeat
            .as_ref()
            .map(|h| {
                h.iter()
                    .map(|(id, t)| (*id, t.as_ref().map(|t| openraft::Instant::elapsed(&**t))))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How long ago a leader last sent this node entries or a heartbeat (`None`: never
    /// since it started): a follower's own evidence that the leader is up.
    pub fn leader_contact_age(&self) -> Option<Duration> {
        let contact = self
            .leader_contact_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let now_ms = self.started.elapsed().as_millis() as u64;
        (contact > 0).then(|| Duration::from_millis(now_ms.saturating_sub(contact)))
    }

    /// The id of the node answering `/raft/whoami` at cluster address `addr` (`None`: no
    /// answer within `timeout`): a direct probe of a member that needs no quorum.
    pub async fn whoami(&self, addr: &str, timeout: Duration) -> Option<u64> {
        let url = format!("http://{addr}/raft/whoami");
        network::post_bincode::<_, u64>(self.network.client(), &url, &(), timeout)
            .await
            .ok()
    }
}

/// Packs waiting writes into entries of up to `MAX_OPS_PER_ENTRY` operations, with up to
/// `MAX_ENTRIES_IN_FLIGHT` entries being written at once, `CLUSTER_ENTRIES_IN_FLIGHT` while
/// the cluster has more than one voter (an entry then takes several permits).
async fn proposer_loop(c: Arc<Consensus>, mut rx: mpsc::Receiver<WriteRequest>) {
    let in_flight = Arc::new(Semaphore::new(MAX_ENTRIES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let permits = if several_voters(&c.raft.metrics().borrow_watched()) {
            MAX_ENTRIES_IN_FLIGHT / CLUSTER_ENTRIES_IN_FLIGHT
        } else {
            1
        };
        let Ok(permit) = in_flight.clone().acquire_many_owned(permits as u32).await else {
            return;
        };
        let mut batch = vec![first];
        let mut n = batch[0].ops.len();
        while n < MAX_OPS_PER_ENTRY {
            match rx.try_recv() {
                Ok(more) => {
                    n += more.ops.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let c = c.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut ops = Vec::with_capacity(n);
            let mut sizes = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for w in batch {
                sizes.push(w.ops.len());
                ops.extend(w.ops);
                replies.push(w.reply);
            }
            metrics::histogram!("smsgw_raft_ops_per_entry").record(n as f64);
            let ops: Arc<[Op]> = ops.into();
            let started = std::time::Instant::now();
            let written = c.write(ops.clone()).await;
            metrics::histogram!("smsgw_raft_write_seconds").record(started.elapsed().as_secs_f64());
            let (sizes, replies, written) = match written {
                Err(e @ WriteError::Ambiguous(_)) if mixes_accepts(&ops, &sizes) => {
                    rewrite_accepts(&c, &ops, sizes, replies, e).await
                }
                other => (sizes, replies, other),
            };
            match written {
                Ok(results) => {
                    let mut it = results.into_iter();
                    for (size, reply) in sizes.into_iter().zip(replies) {
                        let part: Vec<OpResult> = it.by_ref().take(size).collect();
                        let _ = reply.send(Ok(part));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// The requests of one entry (`sizes` ops each, in order) as slices of `ops`.
fn requests<'a>(ops: &'a [Op], sizes: &'a [usize]) -> impl Iterator<Item = &'a [Op]> + 'a {
    sizes.iter().scan(0, move |at, size| {
        let mine = ops.get(*at..*at + size);
        *at += size;
        mine
    })
}

/// Whether an entry holds both requests made only of accepts and other requests: `write`
/// proposes an entry of accepts again by itself, not one that mixes them with others.
fn mixes_accepts(ops: &[Op], sizes: &[usize]) -> bool {
    let (mut safe, mut other) = (false, false);
    for mine in requests(ops, sizes) {
        if mine.iter().all(Op::is_retry_safe) {
            safe = true;
        } else {
            other = true;
        }
    }
    safe && other
}

/// After an entry that mixed accepts with other writes ended with its outcome unknown
/// (the leader changed under it): the requests of accepts are written again (the state
/// machine knows their ids), the others learn that nothing is known (`unknown`). Returns
/// the requests still to be answered and the outcome of their write.
async fn rewrite_accepts(
    c: &Consensus,
    ops: &[Op],
    sizes: Vec<usize>,
    replies: Vec<Reply>,
    unknown: WriteError,
) -> (Vec<usize>, Vec<Reply>, Result<Vec<OpResult>, WriteError>) {
    let mut safe_ops = Vec::new();
    let (mut safe_sizes, mut safe_replies) = (Vec::new(), Vec::new());
    for (mine, reply) in requests(ops, &sizes).zip(replies) {
        if mine.iter().all(Op::is_retry_safe) {
            safe_ops.extend(mine.iter().cloned());
            safe_sizes.push(mine.len());
            safe_replies.push(reply);
        } else {
            let _ = reply.send(Err(unknown.clone()));
        }
    }
    let written = c.write(safe_ops.into()).await;
    (safe_sizes, safe_replies, written)
}

/// Runs a membership change in a task of its own, so that a caller that goes away (a
/// client that disconnects or times out) does not cut it off half-way.
async fn detached(
    change: impl std::future::Future<Output = Result<(), AdminError>> + Send + 'static,
) -> Result<(), AdminError> {
    tokio::spawn(change).await.unwrap_or_else(|e| {
        Err(AdminError::Unavailable(format!(
            "cluster change failed: {e}"
        )))
    })
}

/// `{2,3}`: a set of node ids as the membership messages write them.
fn id_set(ids: &std::collections::BTreeSet<u64>) -> String {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    format!("{{{}}}", ids.join(","))
}

/// Why `change` would leave a membership without quorum, if it would: the voters of the
/// new membership that are up (`up`) must be a majority of them, or the change (whose
/// joint step needs the new set's quorum too) cannot commit and every write waits behind
/// it. The text names the voters that are down and what to do.
fn no_quorum_after(
    change: &str,
    new_voters: &std::collections::BTreeSet<u64>,
    up: &std::collections::BTreeSet<u64>,
) -> Option<String> {
    let reachable = new_voters.iter().filter(|v| up.contains(v)).count();
    if reachable * 2 > new_voters.len() {
        return None;
    }
    let down: Vec<String> = new_voters
        .iter()
        .filter(|v| !up.contains(v))
        .map(u64::to_string)
        .collect();
    let (who, them) = match down.as_slice() {
        [one] => (format!("node {one} is down"), format!("node {one}")),
        _ => (
            format!("nodes {} are down", down.join(", ")),
            "them".to_string(),
        ),
    };
    let fix = if down.len() == 1 {
        format!("bring {them} back or remove it first")
    } else {
        format!("bring {them} back or remove them first")
    };
    Some(format!(
        "{change} leaves voters {}; {who}, so the new membership would have no quorum; {fix}",
        id_set(new_voters)
    ))
}

/// True when the membership has more than one voter: entries are replicated.
fn several_voters(m: &openraft::RaftMetrics<TypeConfig>) -> bool {
    m.membership_config
        .membership()
        .voter_ids()
        .nth(1)
        .is_some()
}

type Rpc = State<Arc<Consensus>>;

fn reply<T: Serialize>(v: &T) -> Vec<u8> {
    wire::encode(v).unwrap_or_default()
}

/// The answer to a Raft RPC (append, vote, snapshot install, leader transfer): openraft's
/// own result inside `Ok`, or `Err` with why the request was refused before openraft saw
/// it (an undecodable body, a snapshot not completely staged). The caller decodes one
/// shape either way (`network::PeerClient`).
fn raft_reply<T: Serialize>(res: &Result<T, RaftError<TypeConfig>>) -> Vec<u8> {
    reply(&Ok::<_, String>(res))
}

/// A Raft RPC refused before openraft saw it (see [`raft_reply`]).
fn raft_refusal(why: String) -> Vec<u8> {
    reply(&Err::<(), String>(why))
}

async fn rpc_append(State(c): Rpc, body: Bytes) -> Vec<u8> {
    match wire::decode(&body) {
        Ok(req) => {
            let reply = c.raft.append_entries(req).await;
            // Any answer but "your term is over" means a current leader reached us.
            if matches!(&reply, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)))
            {
                c.heard_from_leader();
            }
            raft_reply(&reply)
        }
        Err(e) => raft_refusal(format!("bad append body: {e}")),
    }
}

async fn rpc_vote(State(c): Rpc, body: Bytes) -> Vec<u8> {
    match wire::decode::<openraft::raft::VoteRequest<TypeConfig>>(&body) {
        Ok(req) => match c.vote_refusal(&req) {
            Some(why) => raft_refusal(why),
            None => raft_reply(&c.raft.vote(req).await),
        },
        Err(e) => raft_refusal(format!("bad vote body: {e}")),
    }
}

/// Would this node vote for the sender in the next term? Changes nothing here.
async fn rpc_pre_vote(State(c): Rpc, body: Bytes) -> Vec<u8> {
    match wire::decode::<openraft::raft::VoteRequest<TypeConfig>>(&body) {
        Ok(req) => match c.vote_refusal(&req) {
            Some(why) => raft_refusal(why),
            None => raft_reply(&c.raft.pre_vote(req).await),
        },
        Err(e) => raft_refusal(format!("bad pre-vote body: {e}")),
    }
}

/// Stages one chunk of a snapshot the leader is sending (`state::snapshot`).
async fn rpc_snapshot_chunk(State(c): Rpc, body: Bytes) -> Vec<u8> {
    let res: Result<(), String> = match wire::decode::<SnapshotChunk>(&body) {
        Ok(chunk) => {
            let store = c.store.clone();
            match tokio::task::spawn_blocking(move || store.stage_chunk(chunk)).await {
                Ok(staged) => staged.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(format!("bad snapshot chunk: {e}")),
    };
    if let Err(e) = &res {
        tracing::warn!(error = %e, "snapshot chunk refused");
    }
    reply(&res)
}

/// Installs a completely staged snapshot through openraft (which checks the vote).
async fn rpc_snapshot_install(State(c): Rpc, body: Bytes) -> Vec<u8> {
    type Req = (
        openraft::alias::VoteOf<TypeConfig>,
        openraft::alias::SnapshotMetaOf<TypeConfig>,
        u64,
        u32,
    );
    match wire::decode::<Req>(&body) {
        Ok((vote, meta, transfer, chunks)) => {
            // Checked here as well as at the install, where a failure would stop Raft.
            if let Err(e) = c.store.staged_whole(transfer, chunks) {
                tracing::warn!(error = %e, "snapshot install refused");
                return raft_refusal(e.to_string());
            }
            let snapshot = openraft::Snapshot {
                meta,
                snapshot: state_machine::SnapshotData::Staged { transfer, chunks },
            };
            let res = c
                .raft
                .install_full_snapshot(vote, snapshot)
                .await
                .map_err(RaftError::<TypeConfig>::Fatal);
            // Openraft skips a snapshot older than what is applied (and a stale leader's):
            // its staged rows are not needed either way.
            let store = c.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.drop_staged(transfer)).await;
            raft_reply(&res)
        }
        Err(e) => raft_refusal(format!("bad snapshot install body: {e}")),
    }
}

async fn rpc_transfer_leader(State(c): Rpc, body: Bytes) -> Vec<u8> {
    match wire::decode(&body) {
        Ok(req) => {
            let res = c
                .raft
                .handle_transfer_leader(req)
                .await
                .map_err(RaftError::<TypeConfig>::Fatal);
            raft_reply(&res)
        }
        Err(e) => raft_refusal(format!("bad transfer-leader body: {e}")),
    }
}

async fn rpc_propose(State(c): Rpc, body: Bytes) -> Vec<u8> {
    let res: Result<Vec<OpResult>, WriteError> = match wire::decode::<Vec<Op>>(&body) {
        Ok(ops) => match c.heartbeat_of_non_member(&ops) {
            Some(node) => Err(WriteError::NotMember(format!(
                "node {node} is not a member of the cluster (removed): it must not send"
            ))),
            None => c.propose_many(ops).await,
        },
        Err(e) => Err(WriteError::Fatal(format!("bad propose body: {e}"))),
    };
    reply(&res)
}

async fn rpc_read_index(State(c): Rpc) -> Vec<u8> {
    let res: Result<u64, WriteError> = if c.is_leader() {
        c.read_index().await
    } else {
        Err(WriteError::Unavailable("not the leader".into()))
    };
    reply(&res)
}

/// This node's id: the leader asks a new node's address before adding it, so that an
/// address where another node answers is refused (behind the cluster secret like the rest).
async fn rpc_whoami(State(c): Rpc) -> Vec<u8> {
    reply(&c.node_id)
}

/// This node's id and the members it has stored (`identity`): the leader asks before
/// adding a node, so that a member of another cluster is refused.
async fn rpc_identity(State(c): Rpc) -> Vec<u8> {
    let members = c
        .members()
        .into_iter()
        .map(|(n, info, _)| (n, info.cluster_addr))
        .collect();
    reply(&identity::Identity {
        node_id: c.node_id,
        members,
    })
}

async fn rpc_admin(State(c): Rpc, body: Bytes) -> Vec<u8> {
    // In its own task, like `Consensus::admin`: the caller may go away mid-change.
    let res: Result<(), AdminError> = match wire::decode::<AdminOp>(&body) {
        Ok(op) if c.is_leader() => {
            let leader = c.clone();
            detached(async move { leader.admin_once(op).await }).await
        }
        Ok(_) => Err(AdminError::Unavailable("not the leader".into())),
        Err(e) => Err(AdminError::Invalid(format!("bad admin body: {e}"))),
    };
    reply(&res)
}

#[cfg(test)]
mod membership_tests {
    use std::collections::BTreeSet;

    use super::no_quorum_after;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_change_needs_a_majority_of_the_new_voters_up() {
        let cases: [(&[u64], &[u64], bool); 6] = [
            // Removing 1 of {1,2,3} with 3 down: {2,3} has one of two up.
            (&[2, 3], &[1, 2], false),
            (&[2, 3], &[1, 2, 3], true),
            (&[1, 2], &[1, 2], true),
            // Adding 4 to {1,2,3} with 3 down: three of four up.
            (&[1, 2, 3, 4], &[1, 2, 4], true),
            (&[1, 2, 3, 4], &[1, 4], false),
            (&[2], &[1, 2], true),
        ];
        for (new, up, ok) in cases {
            let why = no_quorum_after("removing node 1", &set(new), &set(up));
            assert_eq!(why.is_none(), ok, "{new:?} with {up:?} up: {why:?}");
        }
    }

    #[test]
    fn the_refusal_names_the_down_voters_and_the_way_out() {
        let why = no_quorum_after("removing node 1", &set(&[2, 3]), &set(&[1, 2]));
        assert_eq!(
            why.as_deref(),
            Some(
                "removing node 1 leaves voters {2,3}; node 3 is down, so the new membership \
                 would have no quorum; bring node 3 back or remove it first"
            )
        );
        let why = no_quorum_after("removing node 1", &set(&[2, 3, 4, 5]), &set(&[1, 2]))
            .unwrap_or_default();
        assert!(why.contains("nodes 3, 4, 5 are down"), "{why}");
    }
}
