//! The actor mesh: ractor_cluster sessions between the members, so an actor on one node
//! can call an actor on another. It rides on the cluster port (an HTTP upgrade of
//! `GET /cluster/actors`), the one inter-node address of a member (`--cluster-addr`).
//!
//! Raft stays the source of truth for who is a member and who is alive: the mesh dials
//! the members Raft lists and re-dials a session that broke (ractor_cluster has no
//! reconnect of its own). It never decides anything from a session's state. ractor_cluster
//! notices a killed peer at once but never a frozen one (SIGSTOP), and a remote actor's
//! id changes when its session is re-made, so callers look an actor up by process group
//! on each use and always call with a timeout.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use ractor::{Actor, ActorRef};
use ractor_cluster::{ClusterBidiStream, NodeServer, NodeServerMessage};
use tracing::{debug, info, warn};

use crate::consensus::Consensus;

/// The `Upgrade` protocol a session asks the cluster port for.
pub const UPGRADE_PROTOCOL: &str = "smsgw-actors/1";
/// ractor_cluster's handshake cookie. It checks that both ends speak this mesh, it is not
/// a secret: the cluster port carries Raft without authentication too and belongs on a
/// private network (cluster/README.md).
const COOKIE: &str = "smsgw-actor-mesh-1";
/// How often the dialer compares the sessions with the membership.
const DIAL_EVERY: Duration = Duration::from_millis(250);
/// Longest a dial (TCP connect and upgrade) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// A dialled member is not dialled again for this long (its handshake is under way).
const REDIAL_AFTER: Duration = Duration::from_secs(1);
/// Longest the session table may take to answer.
const SESSIONS_TIMEOUT: Duration = Duration::from_millis(500);

/// Why the mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("actor mesh: node server did not start: {0}")]
    Start(String),
}

/// Why a dial failed (logged, then retried on the next tick).
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("upgrade: {0}")]
    Http(String),
    #[error("timed out")]
    Timeout,
    #[error("node server: {0}")]
    Server(String),
}

/// This node's end of the mesh.
pub struct Mesh {
    node_id: u64,
    server: ActorRef<NodeServerMessage>,
    /// Sent with the upgrade request when the cluster port has a secret.
    secret: Option<Arc<str>>,
}

/// The ractor_cluster node name of member `id`.
fn node_name(id: u64) -> String {
    format!("smsgw-{id}")
}

/// The member id in a ractor_cluster peer name (`smsgw-3@host`).
fn member_of(peer_name: &str) -> Option<u64> {
    peer_name
        .split('@')
        .next()?
        .strip_prefix("smsgw-")?
        .parse()
        .ok()
}

/// The process group under which the `service` actor of member `node` is found over the
/// mesh (`smsgw.<service>.<node>`).
pub fn group(service: &str, node: u64) -> String {
    format!("smsgw.{service}.{node}")
}

/// Makes `actor`, this node's `service`, findable by the other members.
pub fn publish(service: &str, node: u64, actor: ractor::ActorCell) {
    ractor::pg::join(group(service, node), vec![actor]);
}

/// The `service` actor of another member `node`, reached over the mesh session to it, as
/// that session stands now (look it up on every use: its id changes when the session is
/// re-made). None while the mesh has no session to `node`.
pub fn find<M: ractor::Message>(service: &str, node: u64) -> Option<ActorRef<M>> {
    ractor::pg::get_members(&group(service, node))
        .into_iter()
        .find(|c| !c.get_id().is_local())
        .map(ActorRef::from)
}

/// An upgraded HTTP connection as ractor_cluster's byte stream.
struct UpgradedStream {
    io: TokioIo<hyper::upgrade::Upgraded>,
    peer: String,
}

impl ClusterBidiStream for UpgradedStream {
    fn split(self: Box<Self>) -> (ractor_cluster::BoxRead, ractor_cluster::BoxWrite) {
        let (r, w) = tokio::io::split(self.io);
        (Box::new(r), Box::new(w))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.peer.clone())
    }
}

impl Mesh {
    /// Starts the node server and the dialer. Sessions arrive through `router`'s upgrade.
    pub async fn start(consensus: Arc<Consensus>) -> Result<Arc<Mesh>, MeshError> {
        let node_id = consensus.node_id();
        // ractor_cluster's server always opens a listener of its own; it gets an unused
        // loopback port, sessions come in over the cluster port instead.
        let server = NodeServer::new(
            0,
            COOKIE.into(),
            node_name(node_id),
            "127.0.0.1".into(),
            None,
            None,
        )
        .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into());
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| MeshError::Start(e.to_string()))?;
        let mesh = Arc::new(Mesh {
            node_id,
            server,
            secret: consensus.cluster_secret(),
        });
        tokio::spawn(dial_members(mesh.clone(), consensus));
        Ok(mesh)
    }

    /// The cluster-port route that turns an HTTP request into a mesh session.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        let mesh = self.clone();
        axum::Router::new().route(
            "/cluster/actors",
            axum::routing::get(move |req: Request| accept(mesh.clone(), req)),
        )
    }

    /// Members with a ready session, read from the node server.
    async fn sessions(&self) -> Option<HashSet<u64>> {
        let sessions = ractor::call_t!(
            self.server,
            NodeServerMessage::GetSessions,
            SESSIONS_TIMEOUT.as_millis() as u64
        )
        .ok()?;
        Some(
            sessions
                .values()
                .filter_map(|s| member_of(&s.peer_name.as_ref()?.name))
                .collect(),
        )
    }

    /// Opens a session to member `id` at `addr`: a TCP connection, an HTTP upgrade, then
    /// ractor_cluster's handshake over it.
    async fn dial(&self, id: u64, addr: &str) -> Result<(), DialError> {
        let io = tokio::time::timeout(DIAL_TIMEOUT, upgrade_to(addr, self.secret.as_deref()))
            .await
            .map_err(|_| DialError::Timeout)??;
        let stream = UpgradedStream {
            io,
            peer: format!("{}@{addr}", node_name(id)),
        };
        ractor_cluster::client_connect_external(&self.server, Box::new(stream))
            .await
            .map_err(|e| DialError::Server(e.to_string()))
    }
}

/// `GET /cluster/actors` with `Upgrade: smsgw-actors/1`: answers 101 and hands the
/// connection to the node server as an incoming session.
async fn accept(mesh: Arc<Mesh>, mut req: Request) -> Response {
    let wanted = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE_PROTOCOL));
    if !wanted {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, UPGRADE_PROTOCOL)],
            "this endpoint carries the actor mesh: send Upgrade: smsgw-actors/1\n",
        )
            .into_response();
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let stream = UpgradedStream {
                    io: TokioIo::new(upgraded),
                    peer: "incoming".into(),
                };
                let opened = mesh
                    .server
                    .cast(NodeServerMessage::ConnectionOpenedExternal {
                        stream: Box::new(stream),
                        is_server: true,
                    });
                if let Err(e) = opened {
                    warn!(error = %e, "actor mesh: node server refused a session");
                }
            }
            Err(e) => debug!(error = %e, "actor mesh: upgrade failed"),
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    res.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static(UPGRADE_PROTOCOL));
    res
}

/// The client side of the upgrade: an HTTP/1.1 connection to `addr` turned into a raw
/// byte stream.
async fn upgrade_to(
    addr: &str,
    secret: Option<&str>,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, DialError> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(DialError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| DialError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = axum::http::Request::get("/cluster/actors");
    if let Some(secret) = secret {
        req = req.header(crate::cluster::secret::HEADER, secret);
    }
    let req = req
        .header(header::HOST, addr)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, UPGRADE_PROTOCOL)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| DialError::Http(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| DialError::Http(e.to_string()))?;
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(DialError::Http(format!("answered {}", res.status())));
    }
    let upgraded = hyper::upgrade::on(res)
        .await
        .map_err(|e| DialError::Http(e.to_string()))?;
    Ok(TokioIo::new(upgraded))
}

/// Keeps a session to every member: of each pair, the member with the lower id dials,
/// so two sessions are never opened at once for one pair.
async fn dial_members(mesh: Arc<Mesh>, consensus: Arc<Consensus>) {
    let mut tick = tokio::time::interval(DIAL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up: HashSet<u64> = HashSet::new();
    let mut dialled: HashMap<u64, Instant> = HashMap::new();
    loop {
        tick.tick().await;
        let Some(up) = mesh.sessions().await else {
            continue;
        };
        for id in up.difference(&was_up) {
            info!(peer = id, "actor mesh: session up");
        }
        for id in was_up.difference(&up) {
            info!(peer = id, "actor mesh: session down");
        }
        metrics::gauge!("smsgw_actor_mesh_peers").set(up.len() as f64);
        was_up = up.clone();
        let due: Vec<(u64, String)> = consensus
            .members()
            .into_iter()
            .filter(|(id, _, _)| *id > mesh.node_id && !up.contains(id))
            .filter(|(id, _, _)| dialled.get(id).is_none_or(|t| t.elapsed() >= REDIAL_AFTER))
            .map(|(id, info, _)| {
                let addr = crate::failpoints::peer_addr(id).unwrap_or(info.cluster_addr);
                (id, addr)
            })
            .collect();
        let dials = due.into_iter().map(|(id, addr)| {
            dialled.insert(id, Instant::now());
            let mesh = mesh.clone();
            async move {
                if let Err(e) = mesh.dial(id, &addr).await {
                    debug!(peer = id, %addr, error = %e, "actor mesh: dial failed");
                }
            }
        });
        let dials: Vec<_> = dials.collect();
        futures::future::join_all(dials).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_map_to_member_ids() {
        assert_eq!(member_of("smsgw-3@127.0.0.1"), Some(3));
        assert_eq!(member_of(&format!("{}@h", node_name(42))), Some(42));
        assert_eq!(member_of("other-3@h"), None);
        assert_eq!(member_of("smsgw-x@h"), None);
    }
}
