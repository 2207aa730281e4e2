//! The placement controller: an actor on every node that acts only while its node is the
//! Raft leader. It judges liveness by the heartbeats it applies (its own monotonic
//! clock), and proposes `Op::Place` so that every channel has a live owner:
//!
//! - a channel without an owner, or whose owner is dead or no longer a member, goes to
//!   the least-loaded live node (at once: the dead node's lease has expired by then);
//! - when loads differ by two or more, one channel is handed over gracefully (the owner
//!   finishes its in-flight submits, then passes it on; see `messages::dispatcher`);
//! - draining nodes get nothing and give their channels back themselves.
//!
//! The decision is a pure function (`plan`) of the replicated view and the liveness
//! judgement, tested below.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::info;

use super::lease::DEAD_AFTER;
use crate::consensus::Consensus;
use crate::state::{ConfigView, Notice, Op, Placement};

/// How often the controller looks.
const TICK: Duration = Duration::from_millis(100);

/// Messages of the placement controller.
#[derive(ractor_cluster::RactorMessage)]
pub enum PlacementMsg {
    /// Look at the placement and fix it (leader only).
    Tick,
    /// A heartbeat of `node` was applied here now.
    Seen(u64),
}

/// The controller actor.
pub struct PlacementController;

/// What the controller needs.
pub struct PlacementArgs {
    pub consensus: Arc<Consensus>,
    pub notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
}

/// Liveness as this node saw it.
pub struct PlacementState {
    consensus: Arc<Consensus>,
    last_seen: HashMap<u64, Instant>,
    leader_since: Option<Instant>,
    /// The last log index when this node became leader: once applied, every heartbeat
    /// committed before the election is in `last_seen`.
    caught_up_at: u64,
    caught_up: bool,
    /// A proposal is under way: do not pile up more.
    busy: Arc<std::sync::atomic::AtomicBool>,
}

/// The placement changes that make every channel owned by a live node and loads even.
/// `members`: the Raft membership; `alive`: the liveness judgement.
pub fn plan(view: &ConfigView, members: &BTreeSet<u64>, alive: impl Fn(u64) -> bool) -> Vec<Op> {
    let is_member_alive = |n: u64| members.contains(&n) && alive(n);
    let draining = |n: u64| view.nodes.get(&n).map(|r| r.draining).unwrap_or(false);
    let candidates: Vec<u64> = members
        .iter()
        .copied()
        .filter(|n| alive(*n) && !draining(*n))
        .collect();
    let mut load: BTreeMap<u64, usize> = candidates.iter().map(|n| (*n, 0)).collect();
    for p in view.placement.values() {
        if !view.channels.contains_key(&p.channel) {
            continue;
        }
        if let Some(o) = p.owner
            && let Some(l) = load.get_mut(&o)
        {
            *l += 1;
        }
        if let Some(t) = p.handoff_to
            && let Some(l) = load.get_mut(&t)
        {
            *l += 1;
        }
    }
    let mut ops = Vec::new();
    let mut handoff_in_progress = false;
    for ch in view.channels.keys() {
        let p = view.placement.get(ch).cloned().unwrap_or(Placement {
            channel: ch.clone(),
            ..Default::default()
        });
        match p.owner {
            Some(o) if is_member_alive(o) => match p.handoff_to {
                Some(t) if !candidates.contains(&t) => ops.push(Op::Place {
                    channel: ch.clone(),
                    expected_epoch: p.epoch,
                    owner: Some(o),
                    handoff_to: None,
                }),
                Some(_) => handoff_in_progress = true,
                None => {}
            },
            _ => {
                let next = p
                    .handoff_to
                    .filter(|t| candidates.contains(t))
                    .or_else(|| least_loaded(&load));
                let Some(next) = next else { continue };
                if let Some(old) = p.owner
                    && let Some(l) = load.get_mut(&old)
                {
                    *l = l.saturating_sub(1);
                }
                if p.handoff_to != Some(next)
                    && let Some(l) = load.get_mut(&next)
                {
                    *l += 1;
                }
                ops.push(Op::Place {
                    channel: ch.clone(),
                    expected_epoch: p.epoch,
                    owner: Some(next),
                    handoff_to: None,
                });
            }
        }
    }
    if ops.is_empty() && !handoff_in_progress {
        let most = load
            .iter()
            .max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n)));
        let least = load.iter().min_by_key(|(n, l)| (**l, **n));
        if let (Some((&hi, &hl)), Some((&lo, &ll))) = (most, least)
            && hl >= ll + 2
            && let Some(p) = view
                .placement
                .values()
                .find(|p| p.owner == Some(hi) && p.handoff_to.is_none())
        {
            ops.push(Op::Place {
                channel: p.channel.clone(),
                expected_epoch: p.epoch,
                owner: Some(hi),
                handoff_to: Some(lo),
            });
        }
    }
    for id in view.nodes.keys() {
        if !members.contains(id) {
            ops.push(Op::ForgetNode { node: *id });
        }
    }
    ops
}

fn least_loaded(load: &BTreeMap<u64, usize>) -> Option<u64> {
    load.iter().min_by_key(|(n, l)| (**l, **n)).map(|(n, _)| *n)
}

impl PlacementState {
    fn alive(&self, node: u64, now: Instant) -> bool {
        if node == self.consensus.node_id() {
            return true;
        }
        let Some(since) = self.leader_since else {
            return false;
        };
        // A heartbeat reached this node's log after its sender started its lease: a safe
        // "last seen", and earlier than its apply by however long an election held back
        // the commit (consensus::arrivals). Heartbeats applied without arriving here (a
        // restart's replay, a snapshot) count from their apply. A node never seen gets
        // the full grace from the moment this node became leader.
        let seen = self
            .consensus
            .heartbeat_arrived(node)
            .or_else(|| self.last_seen.get(&node).copied())
            .unwrap_or(since);
        now.saturating_duration_since(seen) < DEAD_AFTER
    }

    fn tick(&mut self) {
        if !self.consensus.is_leader() {
            self.leader_since = None;
            self.caught_up = false;
            return;
        }
        let now = Instant::now();
        if self.leader_since.is_none() {
            info!(
                node = self.consensus.node_id(),
                "leader: placement controller active"
            );
            self.leader_since = Some(now);
            self.caught_up_at = self.consensus.log_progress().0;
        }
        if !self.caught_up {
            if self.consensus.log_progress().1 < self.caught_up_at {
                return;
            }
            self.caught_up = true;
        }
        if self.busy.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let members: BTreeSet<u64> = self
            .consensus
            .members()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        let ops = {
            let view = self.consensus.store().config();
            plan(&view, &members, |n| self.alive(n, now))
        };
        if ops.is_empty() {
            return;
        }
        for op in &ops {
            if let Op::Place {
                channel,
                owner,
                handoff_to,
                ..
            } = op
            {
                info!(%channel, ?owner, ?handoff_to, "placement change");
            }
        }
        let c = self.consensus.clone();
        let busy = self.busy.clone();
        busy.store(true, std::sync::atomic::Ordering::Release);
        tokio::spawn(async move {
            let _ = c.propose_many(ops).await;
            busy.store(false, std::sync::atomic::Ordering::Release);
        });
    }
}

impl Actor for PlacementController {
    type Msg = PlacementMsg;
    type State = PlacementState;
    type Arguments = PlacementArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PlacementMsg>,
        args: PlacementArgs,
    ) -> Result<PlacementState, ActorProcessingErr> {
        let me = myself.clone();
        let mut notices = args.notices;
        tokio::spawn(async move {
            while let Some(n) = notices.recv().await {
                if let Notice::Heartbeat { node } = n
                    && me.send_message(PlacementMsg::Seen(node)).is_err()
                {
                    break;
                }
            }
        });
        myself.send_interval(TICK, || PlacementMsg::Tick);
        Ok(PlacementState {
            consensus: args.consensus,
            last_seen: HashMap::new(),
            leader_since: None,
            caught_up: false,
            caught_up_at: 0,
            busy: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PlacementMsg>,
        msg: PlacementMsg,
        st: &mut PlacementState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PlacementMsg::Seen(node) => {
                st.last_seen.insert(node, Instant::now());
            }
            PlacementMsg::Tick => st.tick(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{BindKind, Channel, NodeRow, UdhMode};

    fn channel(id: &str) -> Channel {
        Channel {
            id: id.into(),
            protocol: "smpp".into(),
            host: "h".into(),
            port: 1,
            system_id: "s".into(),
            password: "p".into(),
            system_type: String::new(),
            bind: BindKind::Transceiver,
            binds: 1,
            tps: 10,
            window: 1,
            enquire_link_seconds: 30,
            cost: Default::default(),
            udh: UdhMode::Udh8,
            dlr_timeout_seconds: 60,
            options_json: "{}".into(),
            drained: false,
            created_at: 0,
            sla: None,
            text: Default::default(),
        }
    }

    fn view(channels: &[&str], placed: &[(&str, Option<u64>, Option<u64>)]) -> ConfigView {
        let mut v = ConfigView::default();
        for c in channels {
            v.channels.insert(c.to_string(), channel(c));
        }
        for (c, owner, handoff_to) in placed {
            v.placement.insert(
                c.to_string(),
                Placement {
                    channel: c.to_string(),
                    owner: *owner,
                    epoch: 3,
                    handoff_to: *handoff_to,
                },
            );
        }
        v
    }

    fn owners(ops: &[Op]) -> Vec<(String, Option<u64>, Option<u64>)> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Place {
                    channel,
                    owner,
                    handoff_to,
                    ..
                } => Some((channel.clone(), *owner, *handoff_to)),
                _ => None,
            })
            .collect()
    }

    fn members(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn unowned_channels_are_spread_over_live_nodes() {
        let v = view(&["a", "b", "c"], &[]);
        let ops = plan(&v, &members(&[1, 2, 3]), |_| true);
        let got = owners(&ops);
        assert_eq!(got.len(), 3);
        let nodes: BTreeSet<u64> = got.iter().filter_map(|(_, o, _)| *o).collect();
        assert_eq!(nodes, members(&[1, 2, 3]), "one channel per node: {got:?}");
    }

    #[test]
    fn a_dead_owners_channels_move_to_live_nodes() {
        let v = view(&["a", "b"], &[("a", Some(2), None), ("b", Some(1), None)]);
        let ops = plan(&v, &members(&[1, 2, 3]), |n| n != 2);
        assert_eq!(owners(&ops), vec![("a".into(), Some(3), None)]);
        // Compare-and-set on the epoch the controller saw.
        assert!(matches!(
            ops[0],
            Op::Place {
                expected_epoch: 3,
                ..
            }
        ));
    }

    #[test]
    fn a_removed_member_loses_its_channels_and_its_row() {
        let mut v = view(&["a"], &[("a", Some(4), None)]);
        v.nodes.insert(
            4,
            NodeRow {
                id: 4,
                cluster_addr: String::new(),
                http_addr: String::new(),
                last_heartbeat_at: 0,
                draining: false,
            },
        );
        let ops = plan(&v, &members(&[1, 2]), |_| true);
        assert_eq!(owners(&ops), vec![("a".into(), Some(1), None)]);
        assert!(ops.contains(&Op::ForgetNode { node: 4 }));
    }

    #[test]
    fn uneven_loads_start_one_graceful_handoff_at_a_time() {
        let v = view(
            &["a", "b", "c"],
            &[
                ("a", Some(1), None),
                ("b", Some(1), None),
                ("c", Some(1), None),
            ],
        );
        let ops = plan(&v, &members(&[1, 2]), |_| true);
        assert_eq!(owners(&ops), vec![("a".into(), Some(1), Some(2))]);
        // While it is under way nothing else moves.
        let v = view(
            &["a", "b", "c"],
            &[
                ("a", Some(1), Some(2)),
                ("b", Some(1), None),
                ("c", Some(1), None),
            ],
        );
        assert!(plan(&v, &members(&[1, 2, 3]), |_| true).is_empty());
    }

    #[test]
    fn a_handoff_to_a_dead_node_is_cancelled_and_a_dead_owner_hands_to_its_target() {
        let v = view(&["a"], &[("a", Some(1), Some(2))]);
        assert_eq!(
            owners(&plan(&v, &members(&[1, 2]), |n| n != 2)),
            vec![("a".into(), Some(1), None)]
        );
        assert_eq!(
            owners(&plan(&v, &members(&[1, 2, 3]), |n| n != 1)),
            vec![("a".into(), Some(2), None)]
        );
    }

    #[test]
    fn draining_nodes_get_nothing() {
        let mut v = view(&["a"], &[]);
        v.nodes.insert(
            1,
            NodeRow {
                id: 1,
                cluster_addr: String::new(),
                http_addr: String::new(),
                last_heartbeat_at: 0,
                draining: true,
            },
        );
        assert_eq!(
            owners(&plan(&v, &members(&[1, 2]), |_| true)),
            vec![("a".into(), Some(2), None)]
        );
    }
}
