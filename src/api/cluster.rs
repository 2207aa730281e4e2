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

/// `GET /admin/v1/cluster`
pub async fn view(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let now = crate::clock::now_ms();
    let leader = st.consensus.leader();
    let members = st.consensus.members();
    let cfg = st.consensus.store().config();
    let mut binds_of: BTreeMap<u64, Vec<String>> = BTreeMap::new();
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
    let nodes: Vec<Value> = members
        .into_iter()
        .map(|(id, info, voter)| {
            let row = cfg.nodes.get(&id);
            let http = row
                .map(|r| r.http_addr.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or(info.http_addr);
            let state = match row {
                Some(r) if r.heard_within(now, DEAD_AFTER) => {
                    if r.draining {
                        "draining"
                    } else {
                        "up"
                    }
                }
                _ => "down",
            };
            json!({
                "id": id, "addr": info.cluster_addr, "http": http, "state": state, "voter": voter,
                "leader": Some(id) == leader,
                "last_heartbeat": row.map(|r| crate::clock::rfc3339(r.last_heartbeat_at)),
                "channels": binds_of.remove(&id).unwrap_or_default(),
            })
        })
        .collect();
    drop(cfg);
    Ok(Json(json!({
        "leader": leader,
        "term": st.consensus.term(),
        "node": st.consensus.node_id(),
        // Why the answering node cannot serve (removed, cut off), else null: its view of
        // the leader and the members may be stale.
        "not_serving": st.consensus.not_serving_reason(),
        "nodes": nodes,
        "log": st.consensus.log_state(),
    }))
    .into_response())
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
