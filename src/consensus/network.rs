//! Raft RPC between nodes: HTTP on the cluster port with bincode bodies. reqwest
//! re-dials on its own; every call carries openraft's timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Serialize, de::DeserializeOwned};

use super::append_budget::{AppendBudget, AppendBudgets, entries_within};
use super::state_machine::SnapshotData;
use super::{NodeInfo, TypeConfig};
use crate::state::snapshot::SnapshotChunk;
use crate::wire;

type C = TypeConfig;

/// Makes one client per peer; all share one connection pool.
#[derive(Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
    snapshot_chunk_bytes: usize,
    budgets: Arc<AppendBudgets>,
}

impl HttpNetwork {
    /// A pool with short connect timeouts so a dead peer is noticed quickly; snapshots go
    /// out in chunks of about `snapshot_chunk_bytes`.
    /// With `cluster_secret`, every request carries it (`x-smsgw-cluster-secret`).
    pub fn new(snapshot_chunk_bytes: usize, cluster_secret: Option<&str>) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(secret) = cluster_secret
            && let Ok(mut value) = reqwest::header::HeaderValue::from_str(secret)
        {
            value.set_sensitive(true);
            headers.insert(crate::cluster::secret::HEADER, value);
        }
        let client = crate::http_client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        HttpNetwork {
            client,
            snapshot_chunk_bytes,
            budgets: Arc::default(),
        }
    }

    /// The shared HTTP client (also used to forward writes to the leader).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// The connection to one peer.
pub struct PeerClient {
    addr: String,
    client: reqwest::Client,
    snapshot_chunk_bytes: usize,
    /// How many bytes one append to this peer may carry.
    budget: Arc<AppendBudget>,
}

impl RaftNetworkFactory<C> for HttpNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerClient {
            // A chaos run may route this link through a fault proxy.
            addr: crate::failpoints::peer_addr(target).unwrap_or_else(|| node.cluster_addr.clone()),
            client: self.client.clone(),
            snapshot_chunk_bytes: self.snapshot_chunk_bytes,
            budget: self.budgets.of(target),
        }
    }
}

/// POSTs a bincode body and decodes a bincode answer.
pub async fn post_bincode<Req: Serialize, Resp: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, PostError> {
    let body = wire::encode(req).map_err(|e| PostError::Other(e.to_string()))?;
    post_encoded(client, url, body, timeout).await
}

/// POSTs an already encoded body (when its size decides the timeout) and decodes a
/// bincode answer.
async fn post_encoded<Resp: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Resp, PostError> {
    let resp = client
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                PostError::Unreachable(e.to_string())
            } else {
                PostError::Other(e.to_string())
            }
        })?;
    if !resp.status().is_success() {
        return Err(PostError::Other(format!(
            "HTTP {} from {url}",
            resp.status()
        )));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| PostError::Other(e.to_string()))?;
    wire::decode(&bytes).map_err(|e| PostError::Other(e.to_string()))
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Other(String),
}

/// How long one snapshot chunk may take at least to reach a peer and be staged there
/// (openraft's own per-call limit is meant for small RPCs); on a slow link the peer's
/// learned rate gives it more (`append_budget`).
const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(10);
/// Snapshot chunks are never cut below this for a slow link.
const MIN_SNAPSHOT_CHUNK: usize = 64 * 1024;
/// How long a peer may take to install a staged snapshot: it copies every row once.
const SNAPSHOT_INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<C>> {
        self.call_with_timeout(path, req, option.hard_ttl()).await
    }

    async fn call_with_timeout<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<C>> {
        let body = wire::encode(req)
            .map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))?;
        self.call_encoded(path, body, timeout).await
    }

    /// Sends an encoded Raft RPC; the peer answers openraft's result, or why it refused
    /// the request before openraft saw it (`consensus::raft_reply`).
    async fn call_encoded<Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, RPCError<C>> {
        let url = format!("http://{}/raft/{path}", self.addr);
        let answer: Result<Result<Resp, RaftError<C>>, String> =
            post_encoded(&self.client, &url, body, timeout)
                .await
                .map_err(rpc_error)?;
        let network = |m: String| RPCError::Network(NetworkError::from_string(m));
        answer
            .map_err(|refused| network(format!("{} refused {path}: {refused}", self.addr)))?
            .map_err(|e| network(e.to_string()))
    }
}

fn rpc_error(e: PostError) -> RPCError<C> {
    match e {
        PostError::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
        PostError::Other(m) => RPCError::Network(NetworkError::from_string(m)),
    }
}

/// The row bytes a chunk carries (for the log line of a finished transfer).
fn row_bytes(chunk: &SnapshotChunk) -> usize {
    chunk
        .groups
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(k, v)| k.len() + v.len()))
        .sum()
}

impl RaftNetworkV2<C> for PeerClient {
    type SnapshotData = super::state_machine::SnapshotData;

    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let encode = |req: &AppendEntriesRequest<C>| {
            wire::encode(req)
                .map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))
        };
        let mut req = req;
        let mut body = encode(&req)?;
        // Only a prefix goes out: its last log id is what the member will have matched.
        let mut prefix_last = None;
        let budget = self.budget.bytes();
        if body.len() > budget && req.entries.len() > 1 {
            let keep = entries_within(&req.entries, budget);
            if keep < req.entries.len() {
                req.entries.truncate(keep);
                prefix_last = req.entries.last().map(|e| e.log_id());
                body = encode(&req)?;
            }
        }
        let answered: AppendEntriesResponse<C> = self
            .budget
            .measure(option.hard_ttl(), body.len(), |timeout| {
                self.call_encoded("append", body, timeout)
            })
            .await?;
        Ok(match (answered, prefix_last) {
            (AppendEntriesResponse::Success, Some(last)) => {
                AppendEntriesResponse::PartialSuccess(Some(last))
            }
            (resp, _) => resp,
        })
    }

    /// Streams the snapshot's rows in chunks (`state::snapshot`), each its own call, then
    /// asks the peer to install what it staged. The rows are read from the view while the
    /// chunks go out, so neither side holds more than a few chunks in memory.
    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let network = |m: String| StreamingError::Network(NetworkError::from_string(m));
        let SnapshotData::Live { store, view } = snapshot.snapshot else {
            return Err(network("only a local snapshot can be sent".into()));
        };
        let started = std::time::Instant::now();
        let transfer = rand::random::<u64>();
        let least_per_chunk = option.hard_ttl().max(SNAPSHOT_CHUNK_TIMEOUT);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(2);
        // At most what the link moves in about a second, so that the heartbeats sharing
        // it are not held behind one chunk for longer than an election timeout.
        let chunk_bytes = self
            .snapshot_chunk_bytes
            .min(self.budget.bytes().max(MIN_SNAPSHOT_CHUNK));
        let reader = tokio::task::spawn_blocking(move || {
            store.export_chunks(&view, transfer, chunk_bytes, |chunk| {
                tx.blocking_send(chunk).is_ok()
            })
        });
        let send = async {
            let mut bytes = 0usize;
            while let Some(chunk) = rx.recv().await {
                bytes += row_bytes(&chunk);
                let url = format!("http://{}/raft/snapshot/chunk", self.addr);
                let body = wire::encode(&chunk).map_err(|e| network(e.to_string()))?;
                let staged: Result<(), String> = self
                    .budget
                    .measure(least_per_chunk, body.len(), |timeout| {
                        post_encoded(&self.client, &url, body, timeout)
                    })
                    .await
                    .map_err(|e| StreamingError::from(rpc_error(e)))?;
                staged.map_err(network)?;
            }
            let chunks = reader
                .await
                .map_err(|e| network(e.to_string()))?
                .map_err(|e| network(e.to_string()))?;
            let req = (vote, snapshot.meta, transfer, chunks);
            let resp: SnapshotResponse<C> = self
                .call_with_timeout("snapshot/install", &req, SNAPSHOT_INSTALL_TIMEOUT)
                .await?;
            tracing::info!(
                peer = %self.addr,
                chunks,
                bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "snapshot sent"
            );
            Ok(resp)
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = send => res,
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.call("transfer-leader", &req, &option).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call("vote", &req, &option).await
    }

    /// Asks whether the peer would vote for this node in the next term, without either
    /// side changing its term (`Config::enable_pre_vote`). A peer that cannot be asked
    /// counts as refusing, so a node cut off from the others never inflates its term.
    async fn pre_vote(
        &mut self,
        req: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call("pre-vote", &req, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = Result<Result<VoteResponse<C>, RaftError<C>>, String>;

    #[test]
    fn a_refused_request_decodes_as_a_refusal_for_any_answer_type() {
        let bytes = super::super::raft_refusal("bad vote body: eof".into());
        let answer: Answer = wire::decode(&bytes).expect("one shape for every answer");
        assert_eq!(answer.err().as_deref(), Some("bad vote body: eof"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pre_vote_travels_over_http_and_changes_no_term() {
        let (_dir, consensus) = super::super::test_node::leading_single_node().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let router = consensus.router();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let term = consensus.term();
        let node = NodeInfo {
            cluster_addr: addr,
            http_addr: String::new(),
        };
        let mut peer = HttpNetwork::new(crate::state::snapshot::CHUNK_BYTES, None)
            .new_client(1, &node)
            .await;
        // Node 2 asks whether it could campaign in the next term.
        let vote = VoteOf::<C>::new(term + 1, 2);
        let option = RPCOption::new(Duration::from_secs(5));
        let answer = peer
            .pre_vote(VoteRequest::new(vote, None), option.clone())
            .await
            .expect("the peer answered");
        // A live leader with a longer log would not vote for it, and asking moved nothing.
        assert!(!answer.is_granted_to(&vote), "granted: {answer:?}");
        assert_eq!(
            consensus.term(),
            term,
            "a pre-vote must not change the term"
        );
        // The real vote for the same term is refused as well (the leader lease holds).
        let answer = peer
            .vote(VoteRequest::new(vote, None), option)
            .await
            .expect("the peer answered");
        assert!(!answer.is_granted_to(&vote), "granted: {answer:?}");
        assert!(consensus.is_leader(), "still leading");
        server.abort();
    }

    #[test]
    fn openraft_results_arrive_inside_the_envelope() {
        let vote = VoteOf::<C>::new(3, 2);
        let inner: Result<VoteResponse<C>, RaftError<C>> = Ok(VoteResponse::new(vote, None, true));
        let answer: Answer = wire::decode(&super::super::raft_reply(&inner)).expect("decodes");
        let resp = answer.expect("not refused").expect("openraft's Ok");
        assert_eq!(resp.vote, vote);
    }
}
