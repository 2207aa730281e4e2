//! The channel supervisor: keeps one bind actor per bind of every channel this node owns
//! (`cluster::placement`), restarts a bind actor that crashes, follows channel changes
//! (add, change, drain, remove, move to another node), closes its binds when the node's
//! lease has lapsed, and reports each bind's state into the replicated state so that
//! every node can show it and route around channels that cannot send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{info, warn};

use super::bind_actor::{BindActor, BindArgs, BindMsg};
use super::registry::ChannelRegistry;
use crate::cluster::Lease;
use crate::consensus::Consensus;
use crate::protocols::smpp::ReceiptIdFormat;
use crate::state::{BindReport, Channel, ConfigView, Notice, Op, RECEIVER_INDEX_BASE};

/// Binds stay open this long after the lease lapsed (a short hiccup costs no rebind).
const LEASE_GRACE: Duration = Duration::from_secs(2);
/// How often binds are compared with placement, lease and reported state.
const TICK: Duration = Duration::from_millis(500);

/// Messages of the channel supervisor.
#[derive(ractor_cluster::RactorMessage)]
pub enum ChannelSupMsg {
    /// Compare running binds with the replicated channel list and fix the difference.
    Reconcile,
    /// A bind's state changed: report it now rather than at the next tick.
    Report,
    /// A bind-state report was written (`written`) or failed: allow the next one.
    Reported { written: bool },
}

/// The channel supervisor actor.
pub struct ChannelSupervisor;

/// What the supervisor needs.
pub struct ChannelSupArgs {
    pub consensus: Arc<Consensus>,
    pub registry: Arc<ChannelRegistry>,
    pub notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    pub lease: Arc<Lease>,
}

/// Running binds and the config each was started with.
pub struct ChannelSupState {
    consensus: Arc<Consensus>,
    registry: Arc<ChannelRegistry>,
    binds: HashMap<(String, usize), (ActorRef<BindMsg>, Channel)>,
    lease: Arc<Lease>,
    /// A bind-state report is being written.
    reporting: bool,
    /// A bind's state changed while a report was being written: report again after it.
    report_pending: bool,
}

/// Why the binds of a node started with `hold_channels` are down.
pub const HELD_REASON: &str =
    "held: this node was started with hold_channels; it binds nothing and sends nothing";

/// Whether this node should run the binds of `c`: it owns the channel (also while
/// handing it over, so in-flight answers and receipts still arrive) and it is in use.
fn wanted(c: &Channel, cfg: &ConfigView, me: u64) -> bool {
    (crate::protocols::session::runs_sessions(&c.protocol) || c.protocol == "http")
        && !c.drained
        && cfg.placed_on(me, &c.id)
}

impl ChannelSupervisor {
    async fn reconcile(&self, myself: &ActorRef<ChannelSupMsg>, st: &mut ChannelSupState) {
        let me = st.consensus.node_id();
        // A node started with `hold_channels` binds nothing (its channels show down).
        let lease_ok = !st.lease.held() && st.lease.held_within(LEASE_GRACE);
        let (channels, mine): (Vec<Channel>, std::collections::HashSet<String>) = {
            let cfg = st.consensus.store().config();
            let mine = cfg
                .channels
                .values()
                .filter(|c| lease_ok && wanted(c, &cfg, me))
                .map(|c| c.id.clone())
                .collect();
            (cfg.channels.values().cloned().collect(), mine)
        };
        if st.lease.held() {
            // Held binds show down with the reason, not the state a restored copy recorded.
            let cfg = st.consensus.store().config();
            for c in channels.iter().filter(|c| wanted(c, &cfg, me)) {
                st.registry.set_tps(&c.id, c.tps);
                for index in 0..c.binds.max(1) as usize {
                    st.registry
                        .bind_failed(&c.id, index, "down", Some(HELD_REASON.to_string()));
                }
            }
        }
        for c in &channels {
            st.registry.set_tps(&c.id, c.tps);
            st.registry.set_receipt_id_format(
                &c.id,
                c.tps,
                ReceiptIdFormat::of_options_json(&c.options_json),
            );
        }
        // Stop binds whose channel is gone, drained, changed, or beyond the bind count.
        let mut stop = Vec::new();
        for ((id, index), (_, cfg)) in &st.binds {
            let keep = channels.iter().any(|c| {
                &c.id == id
                    && mine.contains(&c.id)
                    && (*index as u32) < c.binds.max(1)
                    && same_session(c, cfg)
            });
            if !keep {
                stop.push((id.clone(), *index));
            }
        }
        for key in stop {
            if let Some((actor, _)) = st.binds.remove(&key) {
                info!(channel = %key.0, bind = key.1, "stopping bind");
                actor.stop(Some("channel changed".into()));
                st.registry.bind_down(&key.0, key.1, "down");
            }
        }
        for c in channels.iter().filter(|c| mine.contains(&c.id)) {
            for index in 0..c.binds.max(1) as usize {
                if st.binds.contains_key(&(c.id.clone(), index)) {
                    continue;
                }
                let args = BindArgs {
                    channel: c.clone(),
                    index,
                    consensus: st.consensus.clone(),
                    registry: st.registry.clone(),
                };
                match Actor::spawn_linked(None, BindActor, args, myself.get_cell()).await {
                    Ok((actor, _)) => {
                        st.binds.insert((c.id.clone(), index), (actor, c.clone()));
                    }
                    Err(e) => {
                        warn!(channel = %c.id, bind = index, error = %e, "could not start bind actor")
                    }
                }
            }
        }
        self.report(myself, st, &channels);
    }

    /// `report` over every configured channel.
    fn report_bind_states(&self, myself: &ActorRef<ChannelSupMsg>, st: &mut ChannelSupState) {
        let channels = st.consensus.store().channel_list();
        self.report(myself, st, &channels);
    }

    /// Writes the state of this node's binds when it changed since the last report
    /// (and marks binds it no longer runs as down).
    fn report(
        &self,
        myself: &ActorRef<ChannelSupMsg>,
        st: &mut ChannelSupState,
        channels: &[Channel],
    ) {
        if st.reporting {
            st.report_pending = true;
            return;
        }
        st.report_pending = false;
        let me = st.consensus.node_id();
        let mut now: HashMap<(String, u32), String> = HashMap::new();
        for c in channels {
            if let Some(rt) = st.registry.find(&c.id) {
                // The binds, and the receivers beside them (reported at index + base).
                for (statuses, base) in [
                    (&rt.bind_status, 0),
                    (&rt.receiver_status, RECEIVER_INDEX_BASE),
                ] {
                    let status = statuses.lock().unwrap_or_else(|e| e.into_inner());
                    for (index, b) in status.iter() {
                        let running = st.binds.contains_key(&(c.id.clone(), *index));
                        let state = if running { b.state } else { "down" };
                        now.insert((c.id.clone(), base + *index as u32), state.to_string());
                    }
                }
            }
        }
        let changes: Vec<(String, u32, String)> = {
            let cfg = st.consensus.store().config();
            now.into_iter()
                .filter(
                    |((ch, index), state)| match cfg.bind_states.get(&(ch.clone(), *index)) {
                        Some(r) if r.node == me => &r.state != state,
                        // Another node's report: ours replaces it only once we run the bind.
                        Some(_) | None => state != "down",
                    },
                )
                .map(|((ch, index), state)| (ch, index, state))
                .collect()
        };
        if changes.is_empty() {
            return;
        }
        st.reporting = true;
        let ops: Vec<Op> = changes
            .iter()
            .map(|(ch, index, state)| {
                Op::BindState(BindReport {
                    channel: ch.clone(),
                    index: *index,
                    node: me,
                    state: state.clone(),
                    since: crate::clock::now_ms(),
                })
            })
            .collect();
        let c = st.consensus.clone();
        let actor = myself.clone();
        tokio::spawn(async move {
            let written = c.propose_many(ops).await.is_ok();
            let _ = actor.send_message(ChannelSupMsg::Reported { written });
        });
    }
}

/// True when a running bind can keep its session under the new config.
fn same_session(new: &Channel, old: &Channel) -> bool {
    new.host == old.host
        && new.port == old.port
        && new.system_id == old.system_id
        && new.password == old.password
        && new.system_type == old.system_type
        && new.bind == old.bind
        && new.window == old.window
        && new.enquire_link_seconds == old.enquire_link_seconds
        && new.protocol == old.protocol
        && (new.protocol != "http" || new.options_json == old.options_json)
        && (new.protocol != "smpp"
            || crate::protocols::smpp::Addressing::of_options_json(&new.options_json)
                == crate::protocols::smpp::Addressing::of_options_json(&old.options_json))
}

impl Actor for ChannelSupervisor {
    type Msg = ChannelSupMsg;
    type State = ChannelSupState;
    type Arguments = ChannelSupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ChannelSupMsg>,
        args: ChannelSupArgs,
    ) -> Result<ChannelSupState, ActorProcessingErr> {
        let me = myself.clone();
        let registry = args.registry.clone();
        tokio::spawn(async move {
            loop {
                registry.bind_state_changed.notified().await;
                if me.send_message(ChannelSupMsg::Report).is_err() {
                    break;
                }
            }
        });
        let me = myself.clone();
        let mut notices = args.notices;
        tokio::spawn(async move {
            while let Some(n) = notices.recv().await {
                if matches!(n, Notice::ConfigChanged)
                    && me.send_message(ChannelSupMsg::Reconcile).is_err()
                {
                    break;
                }
            }
        });
        let _ = myself.send_message(ChannelSupMsg::Reconcile);
        myself.send_interval(TICK, || ChannelSupMsg::Reconcile);
        Ok(ChannelSupState {
            consensus: args.consensus,
            registry: args.registry,
            binds: HashMap::new(),
            lease: args.lease,
            reporting: false,
            report_pending: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ChannelSupMsg>,
        msg: ChannelSupMsg,
        st: &mut ChannelSupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ChannelSupMsg::Reconcile => self.reconcile(&myself, st).await,
            ChannelSupMsg::Report => self.report_bind_states(&myself, st),
            ChannelSupMsg::Reported { written } => {
                st.reporting = false;
                // After a failed write the next tick retries, rather than a busy loop.
                if written && st.report_pending {
                    self.report_bind_states(&myself, st);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ChannelSupMsg>,
        evt: SupervisionEvent,
        st: &mut ChannelSupState,
    ) -> Result<(), ActorProcessingErr> {
        let dead: Option<ActorCell> = match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                warn!(error = %err, "bind actor crashed; restarting");
                Some(cell)
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => Some(cell),
            _ => None,
        };
        if let Some(cell) = dead {
            let id = cell.get_id();
            let key = st
                .binds
                .iter()
                .find(|(_, (a, _))| a.get_id() == id)
                .map(|(k, _)| k.clone());
            if let Some(key) = key {
                st.binds.remove(&key);
                st.registry.bind_down(&key.0, key.1, "down");
                myself.send_after(Duration::from_millis(200), || ChannelSupMsg::Reconcile);
            }
        }
        Ok(())
    }
}
