//! The dispatcher: per-channel queues with priority lanes (otp, transactional,
//! marketing) for the channels this node owns (see `cluster::placement`). Lanes go in
//! strict priority; within a lane tenants take turns (`fair_lane`), so one tenant's
//! backlog does not hold up another's messages on a shared channel. It learns of
//! waiting messages from the state machine; the channel a message waits on is decided
//! by its row alone (`state::store::waiting_channel`), so exactly one node queues it.
//! Before message actors start, the batch is claimed in Raft under the owner's epoch: a
//! stale owner is refused, and a message claimed earlier but never answered is counted
//! as a resubmit (`smsgw_resubmits_total`). A channel that cannot send hands its
//! messages to the next candidate of their routes through `Op::Requeue`. The queues are
//! derived state: at start, and when this node gains a channel, they are refilled from
//! the replicated rows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::warn;

use super::fair_lane::{FairLane, OfTenant, TenantId};
use super::message_actor::{MessageActor, MessageArgs};
use crate::channels::ChannelRegistry;
use crate::cluster::Lease;
use crate::consensus::Consensus;
use crate::state::{ErrorInfo, MessageKey, Notice, Op, OpResult, ReadyInfo};

/// How long an owned channel may be unable to send before its waiting messages move on
/// to the next candidate of their routes.
const REROUTE_AFTER: Duration = Duration::from_secs(1);
/// With a backlog, a channel's free slots are claimed this many at a time rather than
/// one by one as each message actor ends: every claim is a Raft operation, a task, an
/// answer and a pass over the queues, and in batch runs the one-by-one claims were a
/// tenth of the node's CPU. Never more than a quarter of the channel's capacity.
const CLAIM_AT_LEAST: usize = 16;

/// The most store notices handled as one batch: a batch run's commits carry a few hundred
/// at a time; a larger bound would only delay the first claim behind a long backlog.
const NOTICE_BATCH_MAX: usize = 1024;

/// Messages of the dispatcher.
#[derive(ractor_cluster::RactorMessage)]
pub enum DispatchMsg {
    /// What the store's commits told this node since the last batch, in commit order:
    /// messages that wait for a channel, messages that ended while they waited, changed
    /// configuration. Answered when handled, so the next batch is taken only then (the
    /// notices wait, compactly, in the store's channel meanwhile, not one mailbox message
    /// each) and one pass over the queues serves the whole batch.
    Notices(Vec<Notice>, RpcReplyPort<()>),
    /// A message id whose row must be read first (at start, after an actor crash).
    Load(String),
    /// Re-plan: channels went up/down or time passed (a config change arrives among the
    /// `Notices`, in commit order).
    Tick,
    /// Shutting down: start no new message actors; queued messages stay rows.
    Drain,
    /// A claim was answered: start actors for the granted ids, forget the others.
    Claimed {
        channel: String,
        items: Vec<(usize, Queued)>,
        answer: Result<(Vec<String>, u32), String>,
    },
    /// A batch of requeues (channel unusable) was answered.
    Moved(Vec<String>),
    /// Waiting messages found on channels that were deleted (leader only), with the
    /// deleted channel each waits on.
    Stranded(Vec<(ReadyInfo, String)>),
}

/// The dispatcher actor.
pub struct Dispatcher;

/// What the dispatcher needs.
pub struct DispatcherArgs {
    pub consensus: Arc<Consensus>,
    pub registry: Arc<ChannelRegistry>,
    pub notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    pub lease: Arc<Lease>,
}

/// The dispatcher's maps and sets are keyed by message ids this cluster generated and
/// by channel and tenant names its admins gave: nothing an API caller chooses, so the
/// fast hash (SipHash was 1 % of a loaded node's CPU here).
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
type HashSet<K> = rustc_hash::FxHashSet<K>;

/// A hand-over this node must finish: (channel, epoch, to node).
type Handover = (String, u64, u64);

/// A message in a channel queue.
pub struct Queued {
    id: MessageKey,
    route: std::sync::Arc<[String]>,
    /// Parts already went out on this channel: the rest must follow it.
    pinned: bool,
    /// Whose message: its lane takes tenants in turn (in the entry's padding: an entry
    /// stays 48 bytes).
    tenant: TenantId,
}

impl OfTenant for Queued {
    fn tenant(&self) -> TenantId {
        self.tenant
    }
}

struct ChannelQueue {
    /// otp, transactional, marketing: strict priority between them, tenants in turn
    /// within each.
    lanes: [FairLane<Queued>; 3],
    in_flight: usize,
    /// `smsgw_queue_depth{channel}`, registered once: looked up by name and label on
    /// every pump it cost more than the pump's own work.
    depth_gauge: metrics::Gauge,
    /// (depth, in flight) last published to the registry and the gauge.
    reported: (usize, usize),
}

impl ChannelQueue {
    fn new(channel: &str) -> ChannelQueue {
        ChannelQueue {
            lanes: Default::default(),
            in_flight: 0,
            reported: (0, 0),
            depth_gauge: metrics::gauge!("smsgw_queue_depth", "channel" => channel.to_string()),
        }
    }

    fn is_empty(&self) -> bool {
        self.lanes.iter().all(FairLane::is_empty)
    }

    fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.len()).sum()
    }
}

/// Whether a channel's queue should claim its free slots now, or wait until more of
/// them are free so that one claim takes several messages. Now when everything waiting
/// fits in the free slots (no backlog), when OTP messages wait (they go first, at once),
/// when nothing is in flight, or once `CLAIM_AT_LEAST` slots (at most a quarter of the
/// capacity) are free.
fn claim_now(q: &ChannelQueue, cap: usize) -> bool {
    let room = cap.saturating_sub(q.in_flight);
    if room == 0 {
        return false;
    }
    let least = CLAIM_AT_LEAST.min((cap / 4).max(1));
    q.in_flight == 0 || room >= least || q.len() <= room || !q.lanes[0].is_empty()
}

/// Route lists shared by the queued messages that carry the same one. Every row read or
/// accepted brings its own copy of its list, and beyond the row cache the queue entry is
/// the only holder: about 100 bytes a waiting message for a three-channel route, where
/// a backlog's messages mostly carry one of a few lists. Bounded; a list no queued
/// message holds any more is dropped on the next tick.
#[derive(Default)]
struct SharedRoutes(HashSet<Arc<[String]>>);

impl SharedRoutes {
    /// Distinct lists kept at most (weighted routes order their channels per message).
    const MAX: usize = 4_096;

    /// The shared copy of `route` (kept as the shared copy if there is room).
    fn share(&mut self, route: Arc<[String]>) -> Arc<[String]> {
        if let Some(shared) = self.0.get(&route) {
            return shared.clone();
        }
        if self.0.len() < Self::MAX {
            self.0.insert(route.clone());
        }
        route
    }

    /// Drops the lists only this set still holds.
    fn prune(&mut self) {
        self.0.retain(|r| Arc::strong_count(r) > 1);
    }
}

/// The numbers queue entries carry for their tenants: one per tenant name met, kept for
/// the dispatcher's life (tenants are few and named by the operator's admins, so the map
/// stays small; a name seen again, even after its tenant was deleted and made anew, gets
/// its old number).
#[derive(Default)]
struct TenantIds(HashMap<Arc<str>, TenantId>);

impl TenantIds {
    /// The number of `tenant`, given now if it has none. Shares the row's name (no copy).
    fn of(&mut self, tenant: &Arc<str>) -> TenantId {
        if let Some(&id) = self.0.get(&**tenant) {
            return id;
        }
        // Past u32::MAX names (never in practice) the newcomers share one turn.
        let id = TenantId(u32::try_from(self.0.len()).unwrap_or(u32::MAX));
        self.0.insert(tenant.clone(), id);
        id
    }
}

/// Queues and the message actors at work.
pub struct DispatcherState {
    consensus: Arc<Consensus>,
    registry: Arc<ChannelRegistry>,
    queues: HashMap<String, ChannelQueue>,
    /// Ids queued or being worked, so a duplicate notice is ignored.
    known: HashSet<MessageKey>,
    /// Message actors at work: actor → (message id, channel).
    working: HashMap<ActorId, (String, String)>,
    /// Ids of the messages being worked (the values of `working`), for O(1) lookups.
    working_ids: HashSet<String>,
    /// Ready notices that came while the message was being worked.
    again: HashSet<String>,
    /// Set on shutdown: nothing new is started.
    draining: bool,
    lease: Arc<Lease>,
    /// Channels this node owns (and may start submits on), with the epoch it owns them at.
    owned: HashMap<String, u64>,
    /// Owned channels that cannot send, since when.
    unusable_since: HashMap<String, std::time::Instant>,
    /// Ids whose requeue (move to another channel) is being written.
    moving: HashSet<String>,
    /// Hand-overs this node has proposed: (channel, epoch).
    handing_over: HashSet<(String, u64)>,
    /// Queued ids whose rows became final while they waited: skipped when their turn
    /// comes, and swept out of the queues on the next tick (one pass per tick, however
    /// many left at once).
    left: HashSet<MessageKey>,
    /// Route lists the queued messages share.
    routes: SharedRoutes,
    /// The numbers of the tenants whose messages were queued.
    tenants: TenantIds,
    /// The configured channels when this node, as leader, last looked for messages
    /// waiting on deleted ones (None: not leader, or not looked yet).
    channels_seen: Option<std::collections::BTreeSet<String>>,
}

impl DispatcherState {
    fn channel_ok(&self, ch: &str) -> bool {
        let drained = self
            .consensus
            .store()
            .config()
            .channels
            .get(ch)
            .map(|c| c.drained)
            .unwrap_or(true);
        !drained
            && self
                .registry
                .find(ch)
                .map(|r| r.is_up() && r.health.allows(Instant::now()))
                .unwrap_or(false)
    }

    fn node_id(&self) -> u64 {
        self.consensus.node_id()
    }

    /// Re-reads which channels this node owns; queues the waiting messages of channels
    /// it gained, drops the queues of channels it lost, and finishes hand-overs whose
    /// in-flight work is done.
    async fn refresh_ownership(&mut self, myself: &ActorRef<DispatchMsg>) {
        let me = self.node_id();
        let lease_ok = self.lease.valid();
        let (now_owned, handovers): (HashMap<String, u64>, Vec<Handover>) = {
            let cfg = self.consensus.store().config();
            let owned = cfg
                .placement
                .values()
                .filter(|p| lease_ok && p.active_owner(me) && cfg.channels.contains_key(&p.channel))
                .map(|p| (p.channel.clone(), p.epoch))
                .collect();
            let handovers = cfg
                .placement
                .values()
                .filter_map(|p| match (p.owner, p.handoff_to) {
                    (Some(o), Some(t)) if o == me => Some((p.channel.clone(), p.epoch, t)),
                    _ => None,
                })
                .collect();
            (owned, handovers)
        };
        let lost: Vec<String> = self
            .owned
            .keys()
            .filter(|ch| now_owned.get(*ch) != self.owned.get(*ch))
            .cloned()
            .collect();
        for ch in &lost {
            if let Some(q) = self.queues.get_mut(ch) {
                for lane in q.lanes.iter_mut() {
                    for item in lane.drain() {
                        self.known.remove(&item.id);
                    }
                }
            }
        }
        let gained: HashSet<String> = now_owned
            .keys()
            .filter(|ch| self.owned.get(*ch) != now_owned.get(*ch))
            .cloned()
            .collect();
        self.owned = now_owned;
        if !gained.is_empty() {
            tracing::info!(node = me, channels = ?gained, "now dispatching these channels");
            // A queue (and its `smsgw_queue_depth` series, 0) for every channel dispatched
            // here, also before its first message.
            for ch in &gained {
                self.queues
                    .entry(ch.clone())
                    .or_insert_with_key(|ch| ChannelQueue::new(ch))
                    .depth_gauge
                    .set(0.0);
            }
            match self.consensus.store().active_ids() {
                Ok(ids) => {
                    for id in ids {
                        if !self.known.contains(&MessageKey::of(&id))
                            && !self.working_ids.contains(&id)
                        {
                            self.load_if(myself, &id, &gained).await;
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot list waiting messages"),
            }
        }
        for (ch, epoch, to) in handovers {
            let idle = self
                .queues
                .get(&ch)
                .map(|q| q.in_flight == 0)
                .unwrap_or(true);
            if idle && self.handing_over.insert((ch.clone(), epoch)) {
                tracing::info!(channel = %ch, to, "in-flight work done; handing the channel over");
                let c = self.consensus.clone();
                tokio::spawn(async move {
                    let _ = c
                        .propose(Op::Place {
                            channel: ch,
                            expected_epoch: epoch,
                            owner: Some(to),
                            handoff_to: None,
                        })
                        .await;
                });
            }
        }
    }

    /// Reads a message's row and queues it if it waits on one of `channels`.
    async fn load_if(
        &mut self,
        myself: &ActorRef<DispatchMsg>,
        id: &str,
        channels: &HashSet<String>,
    ) {
        match self.consensus.store().get_message(id) {
            Ok(Some(m)) => {
                if let Some(info) = ReadyInfo::of(&m)
                    && info
                        .channel
                        .as_ref()
                        .map(|c| channels.contains(c))
                        .unwrap_or(false)
                {
                    self.enqueue(myself, info).await;
                }
            }
            Ok(None) => {}
            Err(e) => warn!(message_id = %id, error = %e, "cannot read queued message"),
        }
    }

    /// Reads a message's row and queues it if it waits to be sent.
    async fn load(&mut self, myself: &ActorRef<DispatchMsg>, id: String) {
        match self.consensus.store().get_message(&id) {
            Ok(Some(m)) => {
                if let Some(info) = ReadyInfo::of(&m) {
                    self.enqueue(myself, info).await;
                }
            }
            Ok(None) => {}
            Err(e) => warn!(message_id = %id, error = %e, "cannot read queued message"),
        }
    }

    /// A waiting message whose channel no longer exists (deleted after the message was
    /// accepted): it moves to the next channel of its route that exists (`Op::Requeue`),
    /// or, with none left or parts already sent on the deleted one, fails with
    /// `no_route`. Proposed by the leader only, like the failure of a message without
    /// any channel; the answer comes back as `Moved`, which reads the row again.
    fn channel_gone(
        &mut self,
        myself: &ActorRef<DispatchMsg>,
        id: String,
        route: &[String],
        pinned: bool,
        gone: &str,
    ) {
        if !self.moving.insert(id.clone()) {
            return;
        }
        let at = crate::clock::now_ms();
        let elsewhere = !pinned && {
            let cfg = self.consensus.store().config();
            route.iter().any(|c| cfg.channels.contains_key(c))
        };
        let op = if elsewhere {
            Op::Requeue {
                id: id.clone(),
                note: format!(
                    "channel {gone} was deleted; moving to the next channel of the route"
                ),
                at,
            }
        } else {
            Op::Fail {
                id: id.clone(),
                error: ErrorInfo {
                    code: "no_route".into(),
                    message: format!(
                        "channel {gone} was deleted and the message has no other channel to take"
                    ),
                    smsc_code: None,
                },
                at,
            }
        };
        warn!(message_id = %id, channel = %gone, requeue = elsewhere, "message waits on a deleted channel");
        let c = self.consensus.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            if let Err(e) = c.propose(op).await {
                warn!(message_id = %id, error = %e, "cannot move a message off a deleted channel; will retry");
            }
            let _ = me.send_message(DispatchMsg::Moved(vec![id]));
        });
    }

    /// On the leader, when channels were deleted (or leadership was just gained): finds
    /// the waiting messages whose channel no longer exists. Their owner dropped them
    /// from its queue when the channel went, and no node will ever own it again.
    fn sweep_deleted_channels(&mut self, myself: &ActorRef<DispatchMsg>) {
        if !self.consensus.is_leader() {
            self.channels_seen = None;
            return;
        }
        let now = self.consensus.store().config().channel_ids();
        let lost = match &self.channels_seen {
            None => true,
            Some(seen) => seen.iter().any(|c| !now.contains(c)),
        };
        self.channels_seen = Some(now.clone());
        if !lost {
            return;
        }
        // Off the actor: the waiting rows (those with an expiry entry: accepted and
        // scheduled, not the sent ones awaiting receipts) are read and decoded, which on a
        // long backlog must not hold up dispatching on a new leader.
        let store = self.consensus.store().clone();
        let me = myself.clone();
        tokio::task::spawn_blocking(move || {
            let ids: Vec<String> = store
                .work()
                .expiry
                .iter()
                .map(|(_, id)| id.to_string())
                .collect();
            let stranded: Vec<(ReadyInfo, String)> = ids
                .iter()
                .filter_map(|id| store.get_message(id).ok().flatten())
                .filter_map(|m| ReadyInfo::of(&m))
                .filter_map(|info| {
                    let ch = info.channel.clone()?;
                    (!now.contains(&ch)).then_some((info, ch))
                })
                .collect();
            if !stranded.is_empty() {
                let _ = me.send_message(DispatchMsg::Stranded(stranded));
            }
        });
    }

    async fn enqueue(&mut self, myself: &ActorRef<DispatchMsg>, info: ReadyInfo) {
        let id = info.id;
        if self.working_ids.contains(&id) {
            self.again.insert(id);
            return;
        }
        let key = MessageKey::of(&id);
        if self.known.contains(&key) {
            return;
        }
        if self.moving.contains(&id) {
            return;
        }
        let lane = info.lane.min(2);
        let route = self.routes.share(info.route);
        let Some(ch) = info.channel else {
            if !self.consensus.is_leader() {
                return; // the leader fails messages that have no channel at all
            }
            let c = self.consensus.clone();
            tokio::spawn(async move {
                let error = ErrorInfo {
                    code: "no_route".into(),
                    message: "no route with an existing channel matches this destination".into(),
                    smsc_code: None,
                };
                let _ = c
                    .propose(Op::Fail {
                        id,
                        error,
                        at: crate::clock::now_ms(),
                    })
                    .await;
            });
            return;
        };
        if !self.owned.contains_key(&ch) {
            if self.consensus.is_leader()
                && !self.consensus.store().config().channels.contains_key(&ch)
            {
                // Nobody owns a deleted channel: without this it would wait for ever.
                self.channel_gone(myself, id, &route, info.pinned, &ch);
            }
            return; // another node dispatches it
        }
        let q = Queued {
            id: key,
            route,
            pinned: info.pinned,
            tenant: self.tenants.of(&info.tenant),
        };
        self.known.insert(q.id.clone());
        self.queues
            .entry(ch)
            .or_insert_with_key(|ch| ChannelQueue::new(ch))
            .lanes[lane]
            .push_back(q);
    }

    /// Re-plans: ownership, messages that left, shared routes, deleted channels, lines
    /// that cannot send. On the interval, when channels change and when the config does.
    async fn tick(&mut self, myself: &ActorRef<DispatchMsg>) {
        self.refresh_ownership(myself).await;
        self.sweep_left();
        self.routes.prune();
        self.sweep_deleted_channels(myself);
        self.reroute(myself);
    }

    /// A waiting message ended without being sent (its row is final): it is dropped from
    /// its queue at the next sweep. One being worked is left to its message actor.
    fn forget_waiting(&mut self, id: &str) {
        let key = MessageKey::of(id);
        if !self.working_ids.contains(id) && self.known.remove(&key) {
            self.left.insert(key);
        }
    }

    /// Drops from the queues the messages that ended while they waited.
    fn sweep_left(&mut self) {
        if self.left.is_empty() {
            return;
        }
        let left = std::mem::take(&mut self.left);
        for q in self.queues.values_mut() {
            for lane in q.lanes.iter_mut() {
                lane.retain(|item| !left.contains(&item.id));
            }
        }
    }

    /// Moves the waiting messages of an owned channel that has not been able to send
    /// for `REROUTE_AFTER` to the next candidate of their routes, when one of those can
    /// send somewhere in the cluster (`Op::Requeue`, one Raft entry for the batch).
    fn reroute(&mut self, myself: &ActorRef<DispatchMsg>) {
        let now = std::time::Instant::now();
        let owned: Vec<String> = self.owned.keys().cloned().collect();
        let mut stuck = Vec::new();
        for ch in owned {
            if self.channel_ok(&ch) {
                self.unusable_since.remove(&ch);
                continue;
            }
            let since = *self.unusable_since.entry(ch.clone()).or_insert(now);
            if now.duration_since(since) >= REROUTE_AFTER
                && self.queues.get(&ch).is_some_and(|q| !q.is_empty())
            {
                stuck.push(ch);
            }
        }
        if stuck.is_empty() {
            return;
        }
        let mut ops = Vec::new();
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        {
            let cfg = self.consensus.store().config();
            for ch in &stuck {
                let Some(q) = self.queues.get_mut(ch) else {
                    continue;
                };
                for lane in q.lanes.iter_mut() {
                    lane.retain(|item| {
                        let elsewhere = !item.pinned
                            && item.route.iter().any(|c| c != ch && cfg.channel_usable(c));
                        if elsewhere {
                            let id = item.id.to_string();
                            keys.push(item.id.clone());
                            ids.push(id.clone());
                            ops.push(Op::Requeue {
                                id,
                                note: format!("channel {ch} cannot send; moving to the next channel of the route"),
                                at: crate::clock::now_ms(),
                            });
                        }
                        !elsewhere
                    });
                }
            }
        }
        if ops.is_empty() {
            return;
        }
        for key in &keys {
            self.known.remove(key);
        }
        self.moving.extend(ids.iter().cloned());
        let c = self.consensus.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let _ = c.propose_many(ops).await;
            let _ = me.send_message(DispatchMsg::Moved(ids));
        });
    }

    /// Takes as many queued messages as each owned channel has room for and claims
    /// them in Raft; the actors start when the claim is answered (`Claimed`).
    async fn pump(&mut self, myself: &ActorRef<DispatchMsg>) {
        // A node started with `hold_channels` sends nothing.
        if self.draining || self.lease.held() || !self.lease.valid() {
            return;
        }
        let me = self.node_id();
        // Runs after every event: only channels with something to start or to report.
        let channels: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty() || q.reported != (q.len(), q.in_flight))
            .map(|(ch, _)| ch.clone())
            .collect();
        for ch in channels {
            let Some(&epoch) = self.owned.get(&ch) else {
                continue;
            };
            let waiting = self.queues.get(&ch).is_some_and(|q| !q.is_empty());
            let cap = if waiting && self.channel_ok(&ch) {
                self.registry
                    .find(&ch)
                    .map(|r| match r.health.capacity(r.capacity(), Instant::now()) {
                        0 => 0,
                        // Actors pausing after a temporary error lent their slots.
                        cap => cap + r.paused.load(Ordering::Relaxed) as usize,
                    })
                    .unwrap_or(0)
            } else {
                0
            };
            let mut items = Vec::new();
            if let Some(q) = self.queues.get_mut(&ch) {
                let cap = if claim_now(q, cap) { cap } else { 0 };
                while q.in_flight < cap {
                    let lane = q.lanes.iter().position(|l| !l.is_empty());
                    let Some(lane) = lane else { break };
                    let Some(item) = q.lanes[lane].pop_front() else {
                        break;
                    };
                    if self.left.remove(&item.id) {
                        continue;
                    }
                    q.in_flight += 1;
                    items.push((lane, item));
                }
            }
            if !items.is_empty() {
                let ids: Vec<String> = items.iter().map(|(_, q)| q.id.to_string()).collect();
                let c = self.consensus.clone();
                let actor = myself.clone();
                let channel = ch.clone();
                tokio::spawn(async move {
                    let op = Op::Claim {
                        channel: channel.clone(),
                        node: me,
                        epoch,
                        ids,
                        at: crate::clock::now_ms(),
                    };
                    let answer = match c.propose_batched(op).await {
                        Ok(OpResult::Claimed { granted, reclaimed }) => Ok((granted, reclaimed)),
                        Ok(_) => Ok((Vec::new(), 0)),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = actor.send_message(DispatchMsg::Claimed {
                        channel,
                        items,
                        answer,
                    });
                });
            }
            if let Some(q) = self.queues.get_mut(&ch) {
                let now = (q.len(), q.in_flight);
                if q.reported != now
                    && let Some(rt) = self.registry.find(&ch)
                {
                    rt.queue_depth.store(now.0 as u64, Ordering::Relaxed);
                    rt.in_flight.store(now.1 as u64, Ordering::Relaxed);
                    q.depth_gauge.set(now.0 as f64);
                    q.reported = now;
                }
            }
        }
    }

    /// Starts message actors for the claimed messages; a refused claim means the message
    /// is no longer ours to send (another owner, already sent, or moved).
    async fn claimed(
        &mut self,
        myself: &ActorRef<DispatchMsg>,
        ch: String,
        items: Vec<(usize, Queued)>,
        answer: Result<(Vec<String>, u32), String>,
    ) {
        let (granted, reclaimed) = match answer {
            Ok(a) => a,
            Err(e) => {
                warn!(channel = %ch, error = %e, "claim not written; the messages wait");
                if let Some(q) = self.queues.get_mut(&ch) {
                    for (lane, item) in items.into_iter().rev() {
                        q.in_flight = q.in_flight.saturating_sub(1);
                        q.lanes[lane].push_front(item);
                    }
                }
                return;
            }
        };
        if reclaimed > 0 {
            // Claimed before without an answer recorded: possibly written to the operator.
            metrics::counter!("smsgw_resubmits_total", "channel" => ch.clone())
                .increment(u64::from(reclaimed));
        }
        let granted: HashSet<String> = granted.into_iter().collect();
        for (lane, item) in items {
            let id = item.id.to_string();
            if !granted.contains(&id) {
                if let Some(q) = self.queues.get_mut(&ch) {
                    q.in_flight = q.in_flight.saturating_sub(1);
                }
                self.known.remove(&item.id);
                continue;
            }
            let args = MessageArgs {
                id: id.clone(),
                channel: ch.clone(),
                consensus: self.consensus.clone(),
                registry: self.registry.clone(),
                lease: self.lease.clone(),
            };
            match Actor::spawn_linked(None, MessageActor, args, myself.get_cell()).await {
                Ok((actor, _)) => {
                    self.working_ids.insert(id.clone());
                    self.working.insert(actor.get_id(), (id, ch.clone()));
                }
                Err(e) => {
                    warn!(message_id = %item.id, error = %e, "cannot start message actor");
                    if let Some(q) = self.queues.get_mut(&ch) {
                        q.in_flight = q.in_flight.saturating_sub(1);
                        q.lanes[lane].push_front(item);
                    }
                }
            }
        }
    }
}

impl Actor for Dispatcher {
    type Msg = DispatchMsg;
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DispatchMsg>,
        args: DispatcherArgs,
    ) -> Result<DispatcherState, ActorProcessingErr> {
        let me = myself.clone();
        let mut notices = args.notices;
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while notices.recv_many(&mut batch, NOTICE_BATCH_MAX).await > 0 {
                let taken = std::mem::take(&mut batch);
                if me
                    .call(|done| DispatchMsg::Notices(taken, done), None)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let me = myself.clone();
        let registry = args.registry.clone();
        tokio::spawn(async move {
            loop {
                registry.changed.notified().await;
                if me.send_message(DispatchMsg::Tick).is_err() {
                    break;
                }
            }
        });
        myself.send_interval(Duration::from_millis(250), || DispatchMsg::Tick);
        // The first tick learns which channels are ours and refills their queues from
        // the replicated rows.
        let _ = myself.send_message(DispatchMsg::Tick);
        Ok(DispatcherState {
            consensus: args.consensus,
            registry: args.registry,
            queues: HashMap::default(),
            known: HashSet::default(),
            working: HashMap::default(),
            working_ids: HashSet::default(),
            again: HashSet::default(),
            draining: false,
            lease: args.lease,
            owned: HashMap::default(),
            unusable_since: HashMap::default(),
            moving: HashSet::default(),
            handing_over: HashSet::default(),
            left: HashSet::default(),
            routes: SharedRoutes::default(),
            tenants: TenantIds::default(),
            channels_seen: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DispatchMsg>,
        msg: DispatchMsg,
        st: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatchMsg::Notices(notices, done) => {
                for notice in notices {
                    match notice {
                        Notice::Ready(info) => st.enqueue(&myself, info).await,
                        Notice::Left { id } => st.forget_waiting(&id),
                        // The config changed: re-plan before the notices committed after
                        // it (a message may wait on a channel placed here just now).
                        _ => st.tick(&myself).await,
                    }
                }
                let _ = done.send(());
            }
            DispatchMsg::Load(id) => st.load(&myself, id).await,
            DispatchMsg::Tick => st.tick(&myself).await,
            DispatchMsg::Stranded(found) => {
                for (info, ch) in found {
                    st.channel_gone(&myself, info.id, &info.route, info.pinned, &ch);
                }
            }
            DispatchMsg::Drain => st.draining = true,
            DispatchMsg::Claimed {
                channel,
                items,
                answer,
            } => st.claimed(&myself, channel, items, answer).await,
            DispatchMsg::Moved(ids) => {
                for id in ids {
                    st.moving.remove(&id);
                    // Its Ready notice may have come (and been skipped) meanwhile.
                    st.load(&myself, id).await;
                }
            }
        }
        st.pump(&myself).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<DispatchMsg>,
        evt: SupervisionEvent,
        st: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, crashed) = match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, false),
            SupervisionEvent::ActorFailed(cell, e) => {
                warn!(error = %e, "message actor crashed; its message is requeued from the state");
                (cell, true)
            }
            _ => return Ok(()),
        };
        if let Some((id, ch)) = st.working.remove(&cell.get_id()) {
            st.working_ids.remove(&id);
            if let Some(q) = st.queues.get_mut(&ch) {
                q.in_flight = q.in_flight.saturating_sub(1);
            }
            st.known.remove(&MessageKey::of(&id));
            if crashed || st.again.remove(&id) {
                st.load(&myself, id).await;
            }
        }
        st.pump(&myself).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(waiting: [usize; 3], in_flight: usize) -> ChannelQueue {
        let mut q = ChannelQueue::new("claim-test");
        for (lane, n) in waiting.into_iter().enumerate() {
            for i in 0..n {
                q.lanes[lane].push_back(Queued {
                    id: MessageKey::of(&format!("m{lane}-{i}")),
                    route: std::sync::Arc::from(Vec::<String>::new()),
                    pinned: false,
                    tenant: TenantId(0),
                });
            }
        }
        q.in_flight = in_flight;
        q
    }

    #[test]
    fn a_queue_entry_stays_small() {
        // docs/benchmarks.md counts 48 bytes per waiting message for the entry; the
        // tenant's number fits in its padding.
        assert!(std::mem::size_of::<Queued>() <= 48);
    }

    #[test]
    fn tenants_get_one_number_each_and_keep_it() {
        let mut ids = TenantIds::default();
        let acme: Arc<str> = Arc::from("acme");
        let a = ids.of(&acme);
        let b = ids.of(&Arc::from("beta"));
        assert_ne!(a, b);
        // Another row's copy of the name finds the same number; the first copy is kept.
        assert_eq!(ids.of(&Arc::from("acme")), a);
        assert_eq!(ids.0.len(), 2);
        assert_eq!(Arc::strong_count(&acme), 2);
    }

    #[test]
    fn queued_messages_share_equal_route_lists() {
        let list = |names: &[&str]| -> Arc<[String]> {
            names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .into()
        };
        let mut routes = SharedRoutes::default();
        let first = routes.share(list(&["a", "b"]));
        let second = routes.share(list(&["a", "b"]));
        assert!(Arc::ptr_eq(&first, &second));
        let other = routes.share(list(&["b", "a"]));
        assert!(!Arc::ptr_eq(&first, &other));
        // Lists no queued message holds are dropped; held ones stay shared.
        drop(other);
        routes.prune();
        assert_eq!(routes.0.len(), 1);
        assert!(Arc::ptr_eq(&routes.share(list(&["a", "b"])), &first));
        drop((first, second));
        routes.prune();
        assert!(routes.0.is_empty());
        // Full: a new list is used as it is, not kept.
        for i in 0..SharedRoutes::MAX {
            let _ = routes.share(list(&[&i.to_string()]));
        }
        let extra = routes.share(list(&["extra"]));
        assert_eq!(routes.0.len(), SharedRoutes::MAX);
        assert_eq!(Arc::strong_count(&extra), 1);
    }

    #[test]
    fn a_backlog_is_claimed_several_at_a_time() {
        // 1,000 waiting, 256 slots: one slot free waits, sixteen go as one claim.
        assert!(!claim_now(&queue([0, 1000, 0], 255), 256));
        assert!(!claim_now(&queue([0, 1000, 0], 241), 256));
        assert!(claim_now(&queue([0, 1000, 0], 240), 256));
        assert!(!claim_now(&queue([0, 1000, 0], 256), 256));
    }

    #[test]
    fn without_a_backlog_or_with_otp_waiting_nothing_waits() {
        // Everything waiting fits in the free slots: claimed now; a few more than fit wait.
        assert!(claim_now(&queue([0, 3, 0], 253), 256));
        assert!(!claim_now(&queue([0, 3, 0], 255), 256));
        // An OTP message takes the first free slot.
        assert!(claim_now(&queue([1, 1000, 0], 255), 256));
        // Nothing in flight, or a small channel (a quarter of its capacity is enough).
        assert!(claim_now(&queue([0, 1000, 0], 0), 256));
        assert!(claim_now(&queue([0, 1000, 0], 3), 4));
        assert!(!claim_now(&queue([0, 1000, 0], 4), 4));
    }
}
