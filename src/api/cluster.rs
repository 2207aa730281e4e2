//! `/admin/v1/cluster*`: the cluster view (members, leader, who runs which binds) and
//! membership and leadership changes; plus `ChannelFigures`, the actor through which any
//! node gets a channel's live figures from the node that owns it (over the actor mesh).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, parse_json};
use super::{AppState, require_admin};
use crate::channels::ChannelRegistry;
use crate::cluster::lease::DEAD_AFTER;
use crate::cluster::member_state::{self, Evidence, Local, Row};
use crate::consensus::{AdminError, AdminOp, NodeInfo};
use crate::state::Channel;

/// How long a channel list waits for an owner's live figures: short, because the list
/// is what an operator (and the chaos monitor) looks at while a node hangs.
const STATS_TIMEOUT: Duration = Duration::from_millis(300);
/// Owners not heard from (committed heartbeat) for this long are not asked at all.
const STATS_SILENT_OWNER: Duration = Duration::from_millis(1500);

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", m)
            }
            AdminError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", m)
            }
            AdminError::Conflict(m) => ApiError::conflict(m),
            // Under way but not committed: 503 with where the membership stands.
            AdminError::TimedOut(m) => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", m)
            },
        }
    }
}

/// How long the view waits for a member's cluster port when it probes it (only without
/// quorum, for members neither the rows nor Raft vouch for): short, the view is what an
/// operator looks at while nodes are down.
const PROBE_WAIT: Duration = Duration::from_millis(300);

/// One member as the view gathers it before judging its state.
struct Member {
    id: u64,
    info: NodeInfo,
    voter: bool,
    http: String,
    row: Row,
    last_heartbeat: Option<String>,
    /// The cluster address its heartbeats announce, when it differs from the membership's.
    announced_addr: Option<String>,
}

/// `GET /admin/v1/cluster`: leader, term, the members with their state (and where that
/// state came from), their replication on the leader, and this node's log positions.
pub async fn view(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let now = crate::clock::now_ms();
    let me = st.consensus.node_id();
    let leader = st.consensus.leader();
    let mut binds_of: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let (members, rows_current) = {
        let cfg = st.consensus.store().config();
        for p in cfg.placement.values() {
            let (Some(owner), Some(c)) = (p.owner, cfg.channels.get(&p.channel)) else {
                continue;
            };
            for i in 0..c.binds.max(1) {
                binds_of
                    .entry(owner)
                    .or_default()
                    .push(format!("{}#{i}", c.id));
            }
        }
        // The rows are the cluster's current view only while this node's own heartbeats
        // commit; without quorum every row (its own too) goes stale.
        let rows_current = cfg
            .nodes
            .get(&me)
            .is_some_and(|r| r.heard_within(now, DEAD_AFTER));
        let members: Vec<Member> = st
            .consensus
            .members()
            .into_iter()
            .map(|(id, info, voter)| {
                let r = cfg.nodes.get(&id);
                Member {
                    id,
                    http: r
                        .map(|r| r.http_addr.clone())
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| info.http_addr.clone()),
                    row: match r {
                        None => Row::Never,
                        Some(r) if r.heard_within(now, DEAD_AFTER) => Row::Fresh {
                            draining: r.draining,
                        },
                        Some(_) => Row::Stale,
                    },
                    last_heartbeat: r.map(|r| crate::clock::rfc3339(r.last_heartbeat_at)),
                    announced_addr: r
                        .filter(|r| {
                            !r.cluster_addr.is_empty()
                                && crate::config::own_entry_mismatch(
                                    &info.cluster_addr,
                                    &r.cluster_addr,
                                )
                                .is_some()
                        })
                        .map(|r| r.cluster_addr.clone()),
                    info,
                    voter,
                }
            })
            .collect();
        (members, rows_current)
    };
    let locals = local_evidence(&st, &members, leader, rows_current).await;
    let is_leader = st.consensus.is_leader();
    let progress = if is_leader {
        st.replication.progress(std::time::Instant::now())
    } else {
        BTreeMap::new()
    };
    let acks = st.consensus.peer_ack_ages();
    let nodes: Vec<Value> = members
        .into_iter()
        .map(|m| {
            let replication = progress.get(&m.id).filter(|_| m.id != me);
            let evidence = Evidence {
                id: m.id,
                is_self: m.id == me,
                row: m.row,
                rows_current,
                local: locals.get(&m.id).copied().unwrap_or(Local::NotAsked),
                replicating: replication.map(|p| p.state),
            };
            let (state, from) = member_state::verdict(&evidence);
            let replicated = member_state::replicated_state(m.row);
            let mut node = json!({
                "id": m.id, "addr": m.info.cluster_addr, "http": m.http, "state": state,
                "voter": m.voter, "leader": Some(m.id) == leader,
                "last_heartbeat": m.last_heartbeat,
                "channels": binds_of.remove(&m.id).unwrap_or_default(),
                "state_from": from,
                // No heartbeat of it ever committed (a `peers` entry that never started).
                "seen": m.row != Row::Never,
            });
            if state != replicated {
                node["replicated_state"] = json!(replicated);
            }
            if let Some(addr) = m.announced_addr {
                node["announced_addr"] = json!(addr);
            }
            if let Some(p) = replication {
                let mut r = json!(p);
                r["last_answer_ms"] = json!(
                    acks.get(&m.id)
                        .copied()
                        .flatten()
                        .map(|a| a.as_millis() as u64)
                );
                node["replication"] = r;
            }
            node
        })
        .collect();
    Ok(Json(json!({
        "leader": leader,
        "term": st.consensus.term(),
        "node": me,
        // Why the answering node cannot serve (removed, cut off), else null: its view of
        // the leader and the members may be stale.
        "not_serving": st.consensus.not_serving_reason(),
        "nodes": nodes,
        "log": st.consensus.log_state(),
    }))
    .into_response())
}

/// What this node knows of each other member without quorum, when the rows are not
/// current: the leader's acknowledgements on the leader; on a follower, its contact from
/// the leader for the leader and a direct probe (in parallel, [`PROBE_WAIT`]) for others.
async fn local_evidence(
    st: &AppState,
    members: &[Member],
    leader: Option<u64>,
    rows_current: bool,
) -> BTreeMap<u64, Local> {
    let me = st.consensus.node_id();
    let mut out = BTreeMap::new();
    if rows_current {
        return out;
    }
    if st.consensus.is_leader() {
        let acks = st.consensus.peer_ack_ages();
        for m in members.iter().filter(|m| m.id != me) {
            out.insert(m.id, Local::LeaderAck(acks.get(&m.id).copied().flatten()));
        }
        return out;
    }
    let mut probes = Vec::new();
    for m in members.iter().filter(|m| m.id != me) {
        if Some(m.id) == leader {
            out.insert(
                m.id,
                Local::LeaderContact(st.consensus.leader_contact_age()),
            );
        } else {
            let c = st.consensus.clone();
            let (id, addr) = (m.id, m.info.cluster_addr.clone());
            probes.push(tokio::spawn(async move {
                (id, c.whoami(&addr, PROBE_WAIT).await)
            }));
        }
    }
    for probe in probes {
        if let Ok((id, answer)) = probe.await {
            out.insert(id, Local::Probe(answer));
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNodeBody {
    id: u64,
    addr: String,
    #[serde(default)]
    http: Option<String>,
}

/// `POST /admin/v1/cluster/nodes`: joins as a learner (catching up from the log or a
/// snapshot), then becomes a voter. Answers once it is a voter. Refused with 409 naming
/// `addr` when another member has that address or another node answers there; the add
/// runs to its end (promotion, or removal of a learner that never answered) even when
/// the client goes away.
pub async fn add_node(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: AddNodeBody = parse_json(&body)?;
    if b.id == 0 {
        return Err(ApiError::invalid("id", "node ids start at 1"));
    }
    if b.addr.parse::<std::net::SocketAddr>().is_err() && !b.addr.contains(':') {
        return Err(ApiError::invalid("addr", "expected HOST:PORT"));
    }
    if st
        .consensus
        .members()
        .iter()
        .any(|(id, _, voter)| *id == b.id && *voter)
    {
        return Err(ApiError::conflict(format!(
            "node {} is already a voter",
            b.id
        )));
    }
    let info = NodeInfo {
        cluster_addr: b.addr.clone(),
        http_addr: b.http.clone().unwrap_or_default(),
    };
    st.consensus
        .admin(AdminOp::AddNode { id: b.id, info })
        .await
        .map_err(|e| match e {
            // The node did not answer at `addr`, another member has that address or
            // another node answers there: the field to look at.
            AdminError::Invalid(_) => ApiError::from(e).field("addr"),
            AdminError::Conflict(ref m) if m.starts_with(&b.addr) => {
                ApiError::from(e).field("addr")
            }
            other => ApiError::from(other),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": b.id, "addr": b.addr, "voter": true})),
    )
        .into_response())
}

/// `DELETE /admin/v1/cluster/nodes/{id}`: the leader moves its channels to the others.
/// Refused with 409 when the voters left would have no quorum (one of them is down), and
/// answered with 503 naming the membership's state when the change does not commit in
/// time, rather than hanging while every write waits behind it.
pub async fn remove_node(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::invalid("id", "a node id is a positive integer"))?;
    if !st.consensus.members().iter().any(|(n, _, _)| *n == id) {
        return Err(ApiError::not_found("node"));
    }
    st.consensus.admin(AdminOp::RemoveNode { id }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: u64,
}

/// `POST /admin/v1/cluster/transfer-leader`: answers once `to` leads.
pub async fn transfer_leader(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: TransferBody = parse_json(&body)?;
    st.consensus
        .admin(AdminOp::TransferLeader { to: b.to })
        .await?;
    Ok(Json(json!({"leader": b.to, "term": st.consensus.term()})).into_response())
}

/// Live figures of `channels`, taken from each channel's owner (this node's own for the
/// channels it owns; an owner that does not answer in time leaves its channels out).
pub async fn owners_stats(st: &AppState, channels: &[Channel]) -> HashMap<String, Value> {
    let me = st.consensus.node_id();
    let mut by_owner: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let now = crate::clock::now_ms();
    {
        let cfg = st.consensus.store().config();
        for c in channels {
            if let Some(owner) = cfg.placement.get(&c.id).and_then(|p| p.owner)
                && owner != me
                && cfg
                    .nodes
                    .get(&owner)
                    .is_some_and(|n| n.heard_within(now, STATS_SILENT_OWNER))
            {
                by_owner.entry(owner).or_default().push(c.id.clone());
            }
        }
    }
    let asks: Vec<_> = by_owner
        .into_iter()
        .map(|(owner, ids)| tokio::spawn(ask_owner(owner, ids)))
        .collect();
    let mut out = HashMap::new();
    for ask in asks {
        if let Ok(Some(answer)) = ask.await {
            out.extend(answer);
        }
    }
    out
}

/// The figures of `ids` from the `ChannelFigures` actor on node `owner`. None when the
/// mesh has no session to it or it does not answer within `STATS_TIMEOUT`.
async fn ask_owner(owner: u64, ids: Vec<String>) -> Option<HashMap<String, Value>> {
    let actor = crate::cluster::mesh::find::<FiguresMsg>(FIGURES_SERVICE, owner)?;
    let ids = crate::wire::encode(&ids).ok()?;
    match actor
        .call(|port| FiguresMsg::Of(ids, port), Some(STATS_TIMEOUT))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(json)) => serde_json::from_slice(&json).ok(),
        _ => None,
    }
}

/// The mesh service name of `ChannelFigures` (`cluster::mesh::group`).
const FIGURES_SERVICE: &str = "channel-figures";

/// Messages of `ChannelFigures`: a bincode list of channel ids in, a JSON object of their
/// figures out (bytes on the wire, so a peer's malformed request gets `{}`, not a panic).
#[derive(ractor_cluster::RactorClusterMessage)]
pub enum FiguresMsg {
    #[rpc]
    Of(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// Answers peers for the live figures (window, rates, health, SLA) of the channels this
/// node runs: they live in this node's channel registry only, not in the replicated
/// state. One per node, in process group `smsgw.channel-figures.<node id>`.
pub struct ChannelFigures;

/// What `ChannelFigures` starts with: its node's id and channel registry.
pub struct FiguresArgs {
    pub node_id: u64,
    pub registry: Arc<ChannelRegistry>,
}

impl Actor for ChannelFigures {
    type Msg = FiguresMsg;
    type State = Arc<ChannelRegistry>;
    type Arguments = FiguresArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<FiguresMsg>,
        args: FiguresArgs,
    ) -> Result<Arc<ChannelRegistry>, ActorProcessingErr> {
        crate::cluster::mesh::publish(FIGURES_SERVICE, args.node_id, myself.get_cell());
        Ok(args.registry)
    }

    async fn handle(
        &self,
        _myself: ActorRef<FiguresMsg>,
        msg: FiguresMsg,
        registry: &mut Arc<ChannelRegistry>,
    ) -> Result<(), ActorProcessingErr> {
        let FiguresMsg::Of(ids, reply) = msg;
        let ids: Vec<String> = crate::wire::decode(&ids).unwrap_or_default();
        let figures: HashMap<String, Value> = ids
            .into_iter()
            .take(10_000)
            .map(|id| {
                let v = super::admin::local_channel_stats(registry, &id);
                (id, v)
            })
            .collect();
        let _ = reply.send(serde_json::to_vec(&figures).unwrap_or_else(|_| b"{}".to_vec()));
        Ok(())
    }
}
