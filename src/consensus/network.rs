//! Raft RPC between nodes: HTTP on the cluster port with bincode bodies. reqwest
//! re-dials on its own; every call carries openraft's timeout.

use std::future::Future;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Serialize, de::DeserializeOwned};

use super::{NodeInfo, TypeConfig};
use crate::wire;

type C = TypeConfig;

/// Makes one client per peer; all share one connection pool.
#[derive(Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
}

impl HttpNetwork {
    /// A pool with short connect timeouts so a dead peer is noticed quickly.
    pub fn new() -> Self {
        let client = crate::http_client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        HttpNetwork { client }
    }

    /// The shared HTTP client (also used to forward writes to the leader).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Default for HttpNetwork {
    fn default() -> Self {
        Self::new()
    }
}

/// The connection to one peer.
pub struct PeerClient {
    addr: String,
    client: reqwest::Client,
}

impl RaftNetworkFactory<C> for HttpNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerClient {
            // A chaos run may route this link through a fault proxy.
            addr: crate::failpoints::peer_addr(target).unwrap_or_else(|| node.cluster_addr.clone()),
            client: self.client.clone(),
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

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<C>> {
        let url = format!("http://{}/raft/{path}", self.addr);
        let res: Result<Resp, RaftError<C>> =
            post_bincode(&self.client, &url, req, option.hard_ttl())
                .await
                .map_err(|e| match e {
                    PostError::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
                    PostError::Other(m) => RPCError::Network(NetworkError::from_string(m)),
                })?;
        res.map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))
    }
}

impl RaftNetworkV2<C> for PeerClient {
    type SnapshotData = super::state_machine::SnapshotData;

    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        self.call("append", &req, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let data = snapshot.snapshot;
        let bytes = tokio::task::spawn_blocking(move || data.into_bytes())
            .await
            .map_err(std::io::Error::other)
            .and_then(|encoded| encoded)
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))?;
        let req = (vote, snapshot.meta, bytes);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.call("snapshot", &req, &option) => Ok(res?),
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
}
