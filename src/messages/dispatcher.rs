//! The dispatcher: per-channel queues with priority lanes (otp, transactional,
//! marketing). It learns of waiting messages from the state machine, picks the channel
//! (the route's strategy orders the candidates at dispatch time over live health and
//! receipt feedback; channels failed over away from go last; the first usable one
//! wins), and starts a
//! message actor when the channel has room (its binds' windows). The queues are derived
//! state: at start they are refilled from the replicated rows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::warn;

use super::message_actor::{MessageActor, MessageArgs};
use crate::channels::ChannelRegistry;
use crate::consensus::Consensus;
use crate::state::{ErrorInfo, Notice, Op, ReadyInfo};

/// Messages of the dispatcher.
pub enum DispatchMsg {
    /// A message waits for a channel (facts taken from its row as it was committed).
    Ready(ReadyInfo),
    /// A message id whose row must be read first (at start, after an actor crash).
    Load(String),
    /// Re-plan: channels went up/down, config changed, or time passed.
    Tick,
    /// Shutting down: start no new message actors; queued messages stay rows.
    Drain,
}

/// The dispatcher actor.
pub struct Dispatcher;

/// What the dispatcher needs.
pub struct DispatcherArgs {
    pub consensus: Arc<Consensus>,
    pub registry: Arc<ChannelRegistry>,
    pub notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    /// Orders each message's candidate channels by its route's strategy.
    pub routing: Arc<crate::routing::RoutingEngine>,
}

struct Queued {
    id: String,
    route: Vec<String>,
    /// Parts already went out on this channel: the rest must follow it.
    pinned: bool,
    to: String,
    route_id: Option<String>,
    ab_variant: Option<u8>,
    operator: Option<String>,
    avoid: Vec<String>,
}

#[derive(Default)]
struct ChannelQueue {
    lanes: [VecDeque<Queued>; 3],
    in_flight: usize,
}

impl ChannelQueue {
    fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.len()).sum()
    }
    fn pop(&mut self) -> Option<Queued> {
        self.lanes.iter_mut().find_map(|l| l.pop_front())
    }
}

/// Queues and the message actors at work.
pub struct DispatcherState {
    consensus: Arc<Consensus>,
    registry: Arc<ChannelRegistry>,
    routing: Arc<crate::routing::RoutingEngine>,
    queues: HashMap<String, ChannelQueue>,
    /// Ids queued or being worked, so a duplicate notice is ignored.
    known: HashSet<String>,
    /// Message actors at work: actor → (message id, channel).
    working: HashMap<ActorId, (String, String)>,
    /// Ids of the messages being worked (the values of `working`), for O(1) lookups.
    working_ids: HashSet<String>,
    /// Ready notices that came while the message was being worked.
    again: HashSet<String>,
    /// Set on shutdown: nothing new is started.
    draining: bool,
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

    /// The message's candidates in the order to try them (a pinned message has one).
    fn rank(&self, q: &Queued) -> Vec<String> {
        if q.pinned || q.route.len() <= 1 {
            return q.route.iter().take(1).cloned().collect();
        }
        let now = Instant::now();
        let now_ms = crate::clock::now_ms();
        let registry = &self.registry;
        let cfg = self.consensus.store().config();
        self.routing.order(
            &cfg,
            q.route_id.as_deref(),
            q.ab_variant,
            &q.route,
            &q.to,
            q.operator.as_deref(),
            &q.avoid,
            |ch| match registry.find(ch) {
                Some(rt) => (rt.health.score(now, now_ms), rt.health.allows(now)),
                None => (0.0, true),
            },
        )
    }

    /// The channel a message should wait on now.
    fn choose(&self, q: &Queued) -> Option<String> {
        let ranked = self.rank(q);
        choose_channel(&ranked, |ch| self.channel_ok(ch))
    }

    /// Reads a message's row and queues it if it waits to be sent.
    async fn load(&mut self, id: String) {
        match self.consensus.store().get_message(&id) {
            Ok(Some(m)) => {
                if let Some(info) = ReadyInfo::of(&m) {
                    self.enqueue(info).await;
                }
            }
            Ok(None) => {}
            Err(e) => warn!(message_id = %id, error = %e, "cannot read queued message"),
        }
    }

    async fn enqueue(&mut self, info: ReadyInfo) {
        let id = info.id;
        if self.working_ids.contains(&id) {
            self.again.insert(id);
            return;
        }
        if self.known.contains(&id) {
            return;
        }
        let lane = info.lane.min(2);
        let q = Queued {
            id: id.clone(),
            route: info.route,
            pinned: info.pinned,
            to: info.to,
            route_id: info.route_id,
            ab_variant: info.ab_variant,
            operator: info.operator,
            avoid: info.avoid,
        };
        let Some(ch) = self.choose(&q) else {
            let c = self.consensus.clone();
            tokio::spawn(async move {
                let error = ErrorInfo {
                    code: "no_route".into(),
                    message: "no route matches this destination".into(),
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
        self.known.insert(id);
        self.queues.entry(ch).or_default().lanes[lane].push_back(q);
    }

    /// Moves messages off channels that cannot send to a bound alternative.
    fn reroute(&mut self) {
        // Which channels can send, decided once per pass (not once per queued message).
        let ids: Vec<String> = self
            .consensus
            .store()
            .config()
            .channels
            .keys()
            .cloned()
            .collect();
        let ok: HashSet<String> = ids.into_iter().filter(|ch| self.channel_ok(ch)).collect();
        if ok.is_empty() {
            return; // nowhere to move anything to
        }
        let stuck: Vec<String> = self
            .queues
            .iter()
            .filter(|(ch, q)| q.len() > 0 && !ok.contains(*ch))
            .map(|(ch, _)| ch.clone())
            .collect();
        for ch in stuck {
            let Some(mut q) = self.queues.remove(&ch) else {
                continue;
            };
            let mut keep = ChannelQueue {
                in_flight: q.in_flight,
                ..Default::default()
            };
            for lane in 0..3 {
                while let Some(item) = q.lanes[lane].pop_front() {
                    let ranked = self.rank(&item);
                    match choose_channel(&ranked, |c| ok.contains(c)) {
                        Some(other) if other != ch && ok.contains(&other) => {
                            self.queues.entry(other).or_default().lanes[lane].push_back(item)
                        }
                        _ => keep.lanes[lane].push_back(item),
                    }
                }
            }
            self.queues.insert(ch, keep);
        }
    }

    async fn pump(&mut self, myself: &ActorRef<DispatchMsg>) {
        if self.draining {
            return;
        }
        let channels: Vec<String> = self.queues.keys().cloned().collect();
        for ch in channels {
            let cap = if self.channel_ok(&ch) {
                self.registry
                    .find(&ch)
                    .map(|r| r.health.capacity(r.capacity(), Instant::now()))
                    .unwrap_or(0)
            } else {
                0
            };
            while let Some(q) = self.queues.get_mut(&ch) {
                if q.in_flight >= cap {
                    break;
                }
                let Some(item) = q.pop() else { break };
                q.in_flight += 1;
                let args = MessageArgs {
                    id: item.id.clone(),
                    channel: ch.clone(),
                    consensus: self.consensus.clone(),
                    registry: self.registry.clone(),
                };
                match Actor::spawn_linked(None, MessageActor, args, myself.get_cell()).await {
                    Ok((actor, _)) => {
                        self.working_ids.insert(item.id.clone());
                        self.working.insert(actor.get_id(), (item.id, ch.clone()));
                    }
                    Err(e) => {
                        warn!(message_id = %item.id, error = %e, "cannot start message actor");
                        q.in_flight -= 1;
                        q.lanes[0].push_front(item);
                        break;
                    }
                }
            }
            if let (Some(q), Some(rt)) = (self.queues.get(&ch), self.registry.find(&ch)) {
                rt.queue_depth.store(q.len() as u64, Ordering::Relaxed);
                metrics::gauge!("smsgw_queue_depth", "channel" => ch.clone()).set(q.len() as f64);
            }
        }
    }
}

/// The channel a message should wait on: the first usable channel of its ranked
/// candidates; with none usable, the first (it waits there until one is).
fn choose_channel(ranked: &[String], usable: impl Fn(&str) -> bool) -> Option<String> {
    ranked
        .iter()
        .find(|ch| usable(ch))
        .or_else(|| ranked.first())
        .cloned()
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
            while let Some(n) = notices.recv().await {
                let msg = match n {
                    Notice::Ready(info) => DispatchMsg::Ready(info),
                    _ => DispatchMsg::Tick,
                };
                if me.send_message(msg).is_err() {
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
        // Refill the queues from the replicated rows.
        let ids = args
            .consensus
            .store()
            .active_ids()
            .map_err(|e| ActorProcessingErr::from(e.to_string()))?;
        for id in ids {
            let _ = myself.send_message(DispatchMsg::Load(id));
        }
        Ok(DispatcherState {
            consensus: args.consensus,
            registry: args.registry,
            routing: args.routing,
            queues: HashMap::new(),
            known: HashSet::new(),
            working: HashMap::new(),
            working_ids: HashSet::new(),
            again: HashSet::new(),
            draining: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DispatchMsg>,
        msg: DispatchMsg,
        st: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatchMsg::Ready(info) => st.enqueue(info).await,
            DispatchMsg::Load(id) => st.load(id).await,
            DispatchMsg::Tick => st.reroute(),
            DispatchMsg::Drain => st.draining = true,
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
            st.known.remove(&id);
            if crashed || st.again.remove(&id) {
                st.load(id).await;
            }
        }
        st.pump(&myself).await;
        Ok(())
    }
}
