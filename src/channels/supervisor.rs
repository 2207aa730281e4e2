//! The channel supervisor: keeps one bind actor per configured bind, restarts a bind
//! actor that crashes, and follows channel changes (add, change, drain, remove).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{info, warn};

use super::bind_actor::{BindActor, BindArgs, BindMsg};
use super::registry::ChannelRegistry;
use crate::consensus::Consensus;
use crate::state::{Channel, Notice};

/// Messages of the channel supervisor.
pub enum ChannelSupMsg {
    /// Compare running binds with the replicated channel list and fix the difference.
    Reconcile,
}

/// The channel supervisor actor.
pub struct ChannelSupervisor;

/// What the supervisor needs.
pub struct ChannelSupArgs {
    pub consensus: Arc<Consensus>,
    pub registry: Arc<ChannelRegistry>,
    pub notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
}

/// Running binds and the config each was started with.
pub struct ChannelSupState {
    consensus: Arc<Consensus>,
    registry: Arc<ChannelRegistry>,
    binds: HashMap<(String, usize), (ActorRef<BindMsg>, Channel)>,
}

fn wanted(c: &Channel) -> bool {
    crate::protocols::session::runs_sessions(&c.protocol) && !c.drained
}

impl ChannelSupervisor {
    async fn reconcile(&self, myself: &ActorRef<ChannelSupMsg>, st: &mut ChannelSupState) {
        let channels: Vec<Channel> = st
            .consensus
            .store()
            .config()
            .channels
            .values()
            .cloned()
            .collect();
        for c in &channels {
            st.registry.set_tps(&c.id, c.tps);
        }
        // Stop binds whose channel is gone, drained, changed, or beyond the bind count.
        let mut stop = Vec::new();
        for ((id, index), (_, cfg)) in &st.binds {
            let keep = channels.iter().any(|c| {
                &c.id == id && wanted(c) && (*index as u32) < c.binds.max(1) && same_session(c, cfg)
            });
            if !keep {
                stop.push((id.clone(), *index));
            }
        }
        for key in stop {
            if let Some((actor, _)) = st.binds.remove(&key) {
                info!(channel = %key.0, bind = key.1, "stopping bind");
                actor.stop(Some("channel changed".into()));
            }
        }
        for c in channels.iter().filter(|c| wanted(c)) {
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
        Ok(ChannelSupState {
            consensus: args.consensus,
            registry: args.registry,
            binds: HashMap::new(),
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
