//! One gateway node: opens the data dir, starts Raft, the actor tree and both HTTP
//! listeners (public API and cluster port), and drains on SIGTERM.
//!
//! Actor tree (each child linked to its parent):
//! ```text
//! node supervisor
//! ├── placement controller (acts on the leader: every channel gets a live owner)
//! ├── channel supervisor ── bind actor (one per bind of an owned channel, restarted on crash)
//! ├── dispatcher ────────── message actor (one per message being worked; crash → requeued)
//! ├── sweeper (scheduled release, expiry, receipt timeout)
//! ├── webhook dispatcher (outbox → signed POSTs)
//! ├── channel figures (answers peers, over the actor mesh, for channels run here)
//! └── rate home ─────────── tenant bucket (one per tenant, while this node leads)
//! tenant limiters (one per tenant, started on first request; lease from the rate home)
//! ```
//!
//! The cluster port serves Raft RPCs and the actor mesh (`cluster::mesh`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc::unbounded_channel;
use tracing::{error, info};

use crate::api::{self, AppState};
use crate::channels::ChannelRegistry;
use crate::channels::supervisor::{ChannelSupArgs, ChannelSupervisor};
use crate::cluster::Lease;
use crate::cluster::lease::{Announce, keep_lease};
use crate::cluster::placement::{PlacementArgs, PlacementController};
use crate::config::{Config, ConfigError, Origin};
use crate::consensus::{Consensus, ConsensusOptions};
use crate::messages::dispatcher::{Dispatcher, DispatcherArgs};
use crate::messages::sweeper::Sweeper;
use crate::metric_handles::ByLabel;
use crate::state::{Notice, Notifier};
use crate::tenants::Limiters;
use crate::webhooks::dispatcher::{WebhookArgs, WebhookDispatcher};

/// Why a node could not start, or stopped by itself.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data dir {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    /// A configured value cannot be used as it is (a port in use, a data dir that is a
    /// file or belongs to another node, a short admin.token): the binary exits 2 with
    /// this one line, naming the field and where its value came from.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Consensus(#[from] crate::consensus::StartError),
    #[error("no leader within {0:?}")]
    NoLeader(Duration),
    #[error("actors: {0}")]
    Actors(String),
    #[error(transparent)]
    Mesh(#[from] crate::cluster::mesh::MeshError),
    #[error("Raft stopped: {0}")]
    RaftStopped(String),
}

impl NodeError {
    /// The configuration error behind this one, if the fix is a configuration change
    /// (exit status 2 rather than 1).
    pub fn as_config(&self) -> Option<&ConfigError> {
        match self {
            NodeError::Config(e) => Some(e),
            _ => None,
        }
    }

    /// The reason the data dir cannot be used as it is (a damaged or unreadable store, a
    /// log shorter than what this node acknowledged), if that is why the node did not
    /// start: like a configuration error, the fix is the operator's (exit status 2).
    pub fn as_refusal(&self) -> Option<&str> {
        match self {
            NodeError::Consensus(crate::consensus::StartError::Refused(why)) => Some(why),
            _ => None,
        }
    }
}

/// How `smsgw start` ended after a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The drain ran to its end (exit status 0).
    Clean,
    /// A second signal cut the drain (exit status 130); the submits still unanswered are
    /// sent again after the restart.
    Forced,
}

/// A running node.
pub struct Node {
    pub consensus: Arc<Consensus>,
    pub http_addr: SocketAddr,
    pub admin_token: String,
    pub lease: Arc<Lease>,
    supervisor: ActorRef<()>,
    lease_task: tokio::task::JoinHandle<()>,
    /// Resolves when the actor tree has stopped (on shutdown, or by itself after a crash).
    supervisor_done: tokio::task::JoinHandle<()>,
    http_shutdown: tokio::sync::watch::Sender<bool>,
    http_task: tokio::task::JoinHandle<()>,
}

/// The admin token: configured, or read from / generated into `<data-dir>/admin.token`.
/// The bool says whether it was generated now (print it once). A configured token
/// replaces a generated file (removed, so that no stale token lies around looking valid);
/// a file edited by hand is held to the rules `admin_token` is (16 characters or more).
pub fn admin_token(cfg: &Config, data_dir: &std::path::Path) -> Result<(String, bool), NodeError> {
    let path = data_dir.join("admin.token");
    if let Some(t) = &cfg.admin_token {
        if path.exists() {
            match std::fs::remove_file(&path) {
                Ok(()) => info!(
                    file = %path.display(),
                    "admin_token is configured: removed the generated token file, which no longer opens /admin"
                ),
                Err(e) => tracing::warn!(
                    file = %path.display(), error = %e,
                    "admin_token is configured: the token in this file is not in use (remove it)"
                ),
            }
        }
        return Ok((t.clone(), false));
    }
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            crate::config::check_admin_token(&t).map_err(|why| ConfigError::Field {
                field: "admin_token",
                origin: Origin::File {
                    path: path.display().to_string(),
                    line: 1,
                },
                reason: format!("{why}; delete the file to have a new one generated"),
            })?;
            return Ok((t, false));
        }
    }
    let mut b = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    let token = format!("adm_{}", hex::encode(b));
    // Readable by the node's own user only: the token opens every admin call.
    write_private_file(&path, &token).map_err(|e| NodeError::DataDir(path.clone(), e))?;
    Ok((token, true))
}

/// Writes a secret to `path`, readable by this user only (0600), and fsyncs it.
pub fn write_private_file(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path)?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "smsgw_submit_latency_seconds".into(),
                    ),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            crate::dashboard::history::RECEIPT_LATENCY.into(),
                        ),
                        &[
                            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
                            20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
                        ],
                    )
                })
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| {
                    metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
                });
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                crate::metric_handles::describe_metrics();
                // The submit latency histogram has its (empty) series from the start,
                // like the status counters (`count_statuses`).
                let _ = metrics::histogram!("smsgw_submit_latency_seconds");
                crate::metric_handles::register_at_zero();
            }
            handle
        })
        .clone()
}

/// The root of the actor tree: starts the long-lived actors linked to itself. A crash of
/// one of them is logged and stops the node (it restarts from the replicated state).
struct NodeSupervisor;

struct NodeSupArgs {
    consensus: Arc<Consensus>,
    registry: Arc<ChannelRegistry>,
    webhook_concurrency: usize,
    /// Deliveries in flight for one tenant at most (fairness between tenants).
    webhook_tenant_concurrency: usize,
    /// Whether webhooks may go to internal addresses (`webhook_allow_private`).
    webhook_allow_private: bool,
    lease: Arc<Lease>,
    ready: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    config: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    webhooks: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    cluster: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    retention: Duration,
    /// Where the tenant limiters lease from; gets the rate home started here.
    tokens: Arc<crate::tenants::authority::TokenSource>,
}

impl Actor for NodeSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = NodeSupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        a: NodeSupArgs,
    ) -> Result<(), ActorProcessingErr> {
        let cell = myself.get_cell();
        let (home, _) = Actor::spawn_linked(
            None,
            crate::tenants::authority::RateHome,
            a.consensus.clone(),
            cell.clone(),
        )
        .await?;
        a.tokens.set_home(home);
        Actor::spawn_linked(
            None,
            api::cluster::ChannelFigures,
            api::cluster::FiguresArgs {
                node_id: a.consensus.node_id(),
                registry: a.registry.clone(),
            },
            cell.clone(),
        )
        .await?;
        Actor::spawn_linked(
            Some("placement".into()),
            PlacementController,
            PlacementArgs {
                consensus: a.consensus.clone(),
                notices: a.cluster,
            },
            cell.clone(),
        )
        .await?;
        Actor::spawn_linked(
            Some("channel-supervisor".into()),
            ChannelSupervisor,
            ChannelSupArgs {
                consensus: a.consensus.clone(),
                registry: a.registry.clone(),
                notices: a.config,
                lease: a.lease.clone(),
            },
            cell.clone(),
        )
        .await?;
        Actor::spawn_linked(
            Some("dispatcher".into()),
            Dispatcher,
            DispatcherArgs {
                consensus: a.consensus.clone(),
                registry: a.registry.clone(),
                notices: a.ready,
                lease: a.lease.clone(),
            },
            cell.clone(),
        )
        .await?;
        Actor::spawn_linked(
            Some("sweeper".into()),
            Sweeper,
            (a.consensus.clone(), a.retention),
            cell.clone(),
        )
        .await?;
        Actor::spawn_linked(
            Some("webhook-dispatcher".into()),
            WebhookDispatcher,
            WebhookArgs {
                consensus: a.consensus.clone(),
                notices: a.webhooks,
                concurrency: a.webhook_concurrency,
                tenant_concurrency: a.webhook_tenant_concurrency,
                allow_private: a.webhook_allow_private,
                timeout: Duration::from_secs(5),
                max_age: Duration::from_secs(24 * 3600),
            },
            cell,
        )
        .await?;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        evt: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, e) = evt {
            error!(actor = ?cell.get_name(), error = %e, "a node actor crashed; stopping the node so it restarts from the replicated state");
            myself.stop(Some("child crashed".into()));
        }
        Ok(())
    }
}

/// Counts status changes for `smsgw_messages_total{status}`, and feeds applied outcomes
/// to the routing engine (success windows, A/B) and to channel health (receipts).
async fn count_statuses(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    consensus: Arc<Consensus>,
    registry: Arc<ChannelRegistry>,
    routing: Arc<crate::routing::RoutingEngine>,
) {
    let by_status = ByLabel::new(|s| metrics::counter!("smsgw_messages_total", "status" => s));
    // Every status has its series from the start (0), so a rate over it has a base.
    for status in crate::state::Status::ALL {
        by_status.get(status.as_str()).increment(0);
    }
    while let Some(n) = rx.recv().await {
        match n {
            Notice::Status { status } => by_status.get(status.as_str()).increment(1),
            Notice::Feedback(fb) => {
                routing.learn(&consensus.store().config(), &fb);
                if let (
                    crate::state::FeedbackKind::PartFinal {
                        delivered,
                        latency_ms,
                    },
                    Some(ch),
                ) = (fb.kind, &fb.channel)
                    && let Some(rt) = registry.find(ch)
                {
                    rt.health
                        .receipt(delivered, latency_ms, crate::clock::now_ms());
                }
            }
            _ => {}
        }
    }
}

impl Node {
    /// Starts a node and returns once it serves HTTP with a known leader.
    pub async fn start(cfg: &Config) -> Result<Node, NodeError> {
        let data_dir = crate::data_dir::prepare(cfg)?;
        // Both ports first: a start that cannot listen stops before it generates (and
        // prints once) an admin token the user would then not see again.
        let listen_err = |field: &'static str, addr: &str| {
            let addr = addr.to_string();
            move |e: std::io::Error| {
                ConfigError::at(
                    field,
                    &cfg.origins,
                    format!(
                        "cannot listen on {addr}: {}",
                        crate::data_dir::io_reason(&e)
                    ),
                )
            }
        };
        let http_listener = tokio::net::TcpListener::bind(&cfg.http)
            .await
            .map_err(listen_err("http", &cfg.http))?;
        let http_addr = http_listener
            .local_addr()
            .map_err(listen_err("http", &cfg.http))?;
        let cluster_listener = tokio::net::TcpListener::bind(&cfg.cluster_addr)
            .await
            .map_err(listen_err("cluster_addr", &cfg.cluster_addr))?;
        let cluster_addr = cluster_listener
            .local_addr()
            .map_err(listen_err("cluster_addr", &cfg.cluster_addr))?;
        crate::data_dir::claim(cfg, &data_dir)?;
        crate::data_dir::check_free_space(cfg, &data_dir)?;
        let (admin_token, generated) = admin_token(cfg, &data_dir)?;
        if generated {
            println!(
                "admin token (stored in {}): {admin_token}",
                data_dir.join("admin.token").display()
            );
        }
        let metrics = metrics_handle();

        let consensus = match Consensus::start(
            &data_dir,
            ConsensusOptions {
                node_id: cfg.node_id,
                cluster_addr: cluster_addr.to_string(),
                http_addr: http_addr.to_string(),
                peers: cfg.peer_map(),
                election_timeout_ms: (cfg.election_timeout_min_ms, cfg.election_timeout_max_ms),
                heartbeat_ms: cfg.heartbeat_ms,
                snapshot_every: cfg.snapshot_every_entries,
                snapshot_chunk_bytes: cfg.snapshot_chunk_bytes,
                max_journal_bytes: cfg.store_max_journal_mb << 20,
                cluster_secret: cfg.cluster_secret.clone(),
                accept_missing_watermark: cfg.accept_missing_watermark,
            },
        )
        .await
        {
            Ok(c) => c,
            Err(crate::consensus::StartError::Locked) => {
                return Err(ConfigError::at(
                    "data_dir",
                    &cfg.origins,
                    format!(
                        "{} is in use by another process (another smsgw runs on it); stop \
                         that one or use another data_dir",
                        data_dir.display()
                    ),
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        // After the checks that exit 2 with one line: these log.
        crate::data_dir::make_private(&data_dir);
        // `peers` entries that never answer are named (a bounded number of times).
        tokio::spawn(crate::cluster::peer_watch::run(
            consensus.clone(),
            cfg.peer_map(),
        ));
        let open_files = crate::serve::raise_open_file_limit();
        let http_limits = crate::serve::ServeLimits {
            header_timeout: Duration::from_secs(cfg.http_header_timeout_seconds),
            idle_timeout: Duration::from_secs(cfg.http_idle_timeout_seconds),
            max_connections: cfg
                .http_max_connections
                .unwrap_or_else(|| crate::serve::default_max_connections(open_files)),
        };
        info!(
            max_connections = http_limits.max_connections,
            header_timeout_seconds = cfg.http_header_timeout_seconds,
            idle_timeout_seconds = cfg.http_idle_timeout_seconds,
            "HTTP connection limits"
        );
        // Peers keep idle pooled connections up to 30 s (`consensus::network`): the
        // cluster port's header timeout (how long an idle kept-alive connection stays
        // open) stays above that whatever the API's is, so a peer never sends on a
        // connection the node is closing.
        let cluster_limits = crate::serve::ServeLimits {
            max_connections: crate::serve::CLUSTER_MAX_CONNECTIONS,
            header_timeout: crate::serve::CLUSTER_HEADER_TIMEOUT,
            ..http_limits
        };
        // The one registry of this node's channels: the channel supervisor fills it, the API
        // and `ChannelFigures` (a peer asking for the figures of a channel held here) read it.
        let registry = Arc::new(ChannelRegistry::default());
        let mesh = crate::cluster::mesh::Mesh::start(consensus.clone()).await?;
        let tokens = Arc::new(crate::tenants::authority::TokenSource::new(
            consensus.clone(),
        ));
        let raft_router = crate::cluster::secret::guard(
            consensus.router().merge(mesh.router()),
            consensus.cluster_secret(),
        );
        tokio::spawn(crate::serve::serve(
            cluster_listener,
            raft_router,
            cluster_limits,
            "cluster",
            std::future::pending(),
        ));

        let (ready_tx, ready_rx) = unbounded_channel();
        let (web_tx, web_rx) = unbounded_channel();
        let (cfg_tx, cfg_rx) = unbounded_channel();
        let (status_tx, status_rx) = unbounded_channel();
        let (cluster_tx, cluster_rx) = unbounded_channel();
        consensus.store().set_notifier(Notifier {
            ready: ready_tx,
            webhooks: web_tx,
            config: cfg_tx,
            status: status_tx,
            cluster: cluster_tx,
        });
        let routing = Arc::new(crate::routing::RoutingEngine::default());
        tokio::spawn(count_statuses(
            status_rx,
            consensus.clone(),
            registry.clone(),
            routing.clone(),
        ));
        tokio::spawn(crate::channels::sla::run(
            consensus.clone(),
            registry.clone(),
            Some(data_dir.clone()),
        ));
        tokio::spawn(crate::runtime_metrics::run());

        let replication = Arc::new(crate::cluster::replication_watch::ReplicationWatch::default());
        tokio::spawn(crate::cluster::replication_watch::run(
            consensus.clone(),
            replication.clone(),
        ));
        let state = AppState {
            consensus: consensus.clone(),
            registry: registry.clone(),
            limiters: Arc::new(Limiters::new(tokens.clone())),
            admin_token: Arc::new(admin_token.clone()),
            node_queue: api::node_queue::NodeQueue::new(cfg.node_queue_limit),
            webhook_allow_private: cfg.webhook_allow_private,
            tenant_queue_limit: cfg.tenant_queue_limit,
            metrics,
            history: Arc::default(),
            routing,
            replication: replication.clone(),
        };
        let sampler = crate::dashboard::history::spawn_sampler(state.clone());
        let app = api::router(state, cfg.max_body_bytes);
        let (http_shutdown, mut rx) = tokio::sync::watch::channel(false);
        let http_task = tokio::spawn(async move {
            // The dashboard's sampler lives as long as this listener.
            let _sampler = sampler;
            let shutdown = async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            crate::serve::serve(http_listener, app, http_limits, "http", shutdown).await;
        });
        // HTTP answers from here on (/readyz says 503 until a leader is known). A node that
        // is to join an existing cluster waits here until `cluster add-node` adds it.
        let wait = Duration::from_secs(30);
        if cfg.peer_map().is_empty() {
            if !consensus.wait_for_leader(wait).await {
                return Err(NodeError::NoLeader(wait));
            }
        } else {
            while !consensus.wait_for_leader(wait).await {
                info!(
                    node = cfg.node_id,
                    "no leader yet: waiting for the cluster to form or for `smsgw cluster add-node`"
                );
            }
        }

        warn_if_moved(&consensus, &cluster_addr.to_string());
        let lease = Arc::new(Lease::default());
        if cfg.hold_channels {
            lease.hold();
            tracing::warn!(
                node = cfg.node_id,
                "hold_channels is set: this node binds no channel and sends nothing (the API \
                 and reads work; accepted messages wait); restart it without hold_channels \
                 to send"
            );
        }
        let announce = Announce {
            cluster_addr: cluster_addr.to_string(),
            http_addr: http_addr.to_string(),
        };
        // The first heartbeat before the actors start, so a single node dispatches at once.
        crate::cluster::lease::renew_once(&consensus, &lease, &announce, &mut false).await;
        let lease_task = tokio::spawn(keep_lease(consensus.clone(), lease.clone(), announce));

        let (supervisor, supervisor_done) = Actor::spawn(
            Some(format!("node-{}", cfg.node_id)),
            NodeSupervisor,
            NodeSupArgs {
                consensus: consensus.clone(),
                registry: registry.clone(),
                webhook_concurrency: cfg.webhook_concurrency,
                webhook_tenant_concurrency: cfg.webhook_tenant_limit(),
                webhook_allow_private: cfg.webhook_allow_private,
                lease: lease.clone(),
                ready: ready_rx,
                config: cfg_rx,
                webhooks: web_rx,
                cluster: cluster_rx,
                retention: Duration::from_secs(cfg.retention_hours * 3600),
                tokens: tokens.clone(),
            },
        )
        .await
        .map_err(|e| NodeError::Actors(e.to_string()))?;

        match api::not_ready_reason(&consensus) {
            None => {
                info!(node = cfg.node_id, http = %http_addr, cluster = %cluster_addr, data_dir = %data_dir.display(), "node ready")
            }
            Some(why) => {
                info!(node = cfg.node_id, http = %http_addr, cluster = %cluster_addr, data_dir = %data_dir.display(), waiting_for = %why, "serving HTTP; not ready yet (/readyz answers 503)");
                tokio::spawn(say_when_ready(consensus.clone()));
            }
        }
        Ok(Node {
            consensus,
            http_addr,
            admin_token,
            lease,
            lease_task,
            supervisor,
            supervisor_done,
            http_shutdown,
            http_task,
        })
    }

    /// Resolves when the actor tree has stopped; before `shutdown` that means a crash.
    pub async fn actors_stopped(&mut self) {
        let _ = (&mut self.supervisor_done).await;
    }

    /// How long a drain of this node waits: `drain_seconds`, or when that is unset the
    /// slowest channel's response timeout plus a margin ([`Config::drain_for`]).
    pub fn drain_time(&self, cfg: &Config) -> Duration {
        cfg.drain_for(
            self.consensus
                .store()
                .channel_list()
                .iter()
                .map(crate::protocols::session::response_timeout),
        )
    }

    /// Drains: stop taking requests, let in-flight message actors finish (bounded),
    /// unbind every session, stop Raft after the last write. A drain cut by its deadline
    /// says how many submits were still unanswered: they are sent again after a restart.
    pub async fn shutdown(mut self, drain: Duration) {
        let _ = self.http_shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.http_task).await;
        // Say so in the heartbeats: the leader gives this node no channels any more.
        self.lease.set_draining();
        if let Some(d) = ractor::registry::where_is("dispatcher") {
            let _ = d.send_message(crate::messages::dispatcher::DispatchMsg::Drain);
            let deadline = tokio::time::Instant::now() + drain;
            while !d.get_children().is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let unanswered = d.get_children().len();
            if unanswered > 0 {
                tracing::warn!(
                    unanswered,
                    drain_seconds = drain.as_secs(),
                    "drain deadline reached with submits still unanswered: they are sent \
                     again after the restart (the operator may deliver them twice); raise \
                     drain_seconds above the channels' response timeouts"
                );
            }
            d.stop(Some("shutdown".into()));
        }
        self.release_channels().await;
        self.hand_over_leadership().await;
        self.lease_task.abort();
        self.lease.revoke();
        // Stopping the supervisor stops the bind actors, which unbind.
        let _ = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
            .await;
        self.consensus.shutdown().await;
        info!("node stopped");
    }
}

impl Node {
    /// Gives up every channel this node owns (in-flight work is finished by now), so the
    /// leader places them on peers at once instead of waiting for the lease to run out.
    async fn release_channels(&self) {
        let me = self.consensus.node_id();
        let ops: Vec<crate::state::Op> = self
            .consensus
            .store()
            .config()
            .placement
            .values()
            .filter(|p| p.owner == Some(me))
            .map(|p| crate::state::Op::Place {
                channel: p.channel.clone(),
                expected_epoch: p.epoch,
                owner: None,
                handoff_to: None,
            })
            .collect();
        if ops.is_empty() {
            return;
        }
        let n = ops.len();
        match tokio::time::timeout(Duration::from_secs(5), self.consensus.propose_many(ops)).await {
            Ok(Ok(_)) => info!(channels = n, "channels released to the cluster"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release channels; peers take them when the lease runs out")
            }
            Err(_) => tracing::warn!(
                "releasing channels timed out; peers take them when the lease runs out"
            ),
        }
    }

    /// A leader that stops hands leadership to a live voter first, so writes pause for a
    /// transfer instead of an election timeout.
    async fn hand_over_leadership(&self) {
        if !self.consensus.is_leader() {
            return;
        }
        let me = self.consensus.node_id();
        let target = {
            let cfg = self.consensus.store().config();
            self.consensus
                .members()
                .into_iter()
                .filter(|(id, _, voter)| *id != me && *voter)
                .map(|(id, _, _)| id)
                .find(|id| cfg.nodes.get(id).map(|n| !n.draining).unwrap_or(false))
        };
        if let Some(to) = target {
            let op = crate::consensus::AdminOp::TransferLeader { to };
            match tokio::time::timeout(Duration::from_secs(3), self.consensus.admin(op)).await {
                Ok(Ok(())) => info!(to, "leadership handed over"),
                _ => tracing::warn!(
                    to,
                    "leadership hand-over did not finish; peers elect a leader"
                ),
            }
        }
    }
}

/// Logs `node ready` once `/readyz` would answer 200 (a node that started without state,
/// or whose writes did not commit yet, says so when it gets there). Gives up after
/// [`READY_LOG_WAIT`]: `/readyz` keeps answering with the reason.
async fn say_when_ready(consensus: Arc<Consensus>) {
    let deadline = tokio::time::Instant::now() + READY_LOG_WAIT;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if api::not_ready_reason(&consensus).is_none() {
            info!(node = consensus.node_id(), "node ready");
            return;
        }
    }
    if let Some(why) = api::not_ready_reason(&consensus) {
        tracing::warn!(node = consensus.node_id(), why = %why, "node still not ready");
    }
}

/// How long [`say_when_ready`] waits for readiness before it says the node is not.
const READY_LOG_WAIT: Duration = Duration::from_secs(600);

/// Says so when the replicated membership records this node at another cluster address
/// than the one it listens on now (restarted with a changed `cluster_addr`; a host name or
/// a wildcard bind is compared by port, as `peers` is checked): peers keep
/// dialling the recorded address. Not changed here: the membership entry is the Raft
/// address every member uses, and rewriting it is a membership change to make on purpose.
fn warn_if_moved(consensus: &Consensus, listening: &str) {
    let me = consensus.node_id();
    if let Some((_, info, _)) = consensus.members().into_iter().find(|(id, _, _)| *id == me)
        && let Some(why) = crate::config::own_entry_mismatch(&info.cluster_addr, listening)
    {
        tracing::warn!(
            node = me,
            why = %why,
            recorded = %info.cluster_addr,
            cluster_addr = %listening,
            "the cluster membership records this node at another cluster_addr than it \
             listens on: peers still dial the recorded one. Start it with cluster_addr \
             set to the recorded address, or (in a cluster) remove the node with `smsgw \
             cluster remove-node`, wipe its data dir and add it again with the new address"
        );
    }
}

/// Message actors still working (each waits for a submit's answer or for window room).
fn unanswered_submits() -> usize {
    ractor::registry::where_is("dispatcher").map_or(0, |d| d.get_children().len())
}

/// Drains `node` after a first signal; a second signal during the drain stops at once,
/// saying how many submits were cut (they are sent again after the restart).
pub async fn drain_or_stop_at_second_signal(
    node: Node,
    drain: Duration,
    signals: &mut Signals,
) -> Stopped {
    info!(
        drain_seconds = drain.as_secs(),
        "signal received; draining (a second signal stops at once)"
    );
    tokio::select! {
        _ = node.shutdown(drain) => Stopped::Clean,
        _ = signals.next() => {
            tracing::warn!(
                unanswered = unanswered_submits(),
                "second signal: drain cut, stopping at once; unanswered submits are sent \
                 again after the restart"
            );
            Stopped::Forced
        }
    }
}

/// `smsgw start`: run until SIGTERM/SIGINT, then drain and return.
pub async fn run(cfg: Config) -> Result<Stopped, NodeError> {
    let mut signals = Signals::listen();
    // A signal while starting (a joining node may wait long for `cluster add-node`) stops
    // here: nothing was taken on yet, so there is nothing to drain.
    let mut node = tokio::select! {
        node = Node::start(&cfg) => node?,
        _ = signals.next() => {
            info!("signal received while starting; stopping");
            return Ok(Stopped::Clean);
        }
    };
    let consensus = node.consensus.clone();
    tokio::select! {
        _ = signals.next() => {}
        _ = node.actors_stopped() => {
            // A top-level actor crashed: fail fast, so the process supervisor restarts the
            // node and every queue is rebuilt from the replicated state.
            node.consensus.shutdown().await;
            return Err(NodeError::Actors("the actor tree stopped after a crash".into()));
        }
        reason = consensus.raft_failed() => {
            // Raft stopped (e.g. the log could not be written: disk full). Everything
            // committed is on disk; exit so the supervisor restarts the node on it.
            tracing::error!(%reason, "Raft stopped; exiting");
            return Err(NodeError::RaftStopped(reason));
        }
    }
    let drain = node.drain_time(&cfg);
    Ok(drain_or_stop_at_second_signal(node, drain, &mut signals).await)
}

/// SIGTERM and SIGINT, listened for from the moment this is made: a signal that comes
/// while the node is still starting is kept and handled (a drain) once it runs, instead
/// of the default action killing the process before its handlers exist. SIGHUP (sent by
/// logrotate, `systemctl reload` or a closing terminal) would otherwise kill the node on
/// the spot, without a drain: it is logged and ignored, as the node writes its logs to
/// stdout/stderr and has no files to reopen.
pub struct Signals {
    #[cfg(unix)]
    streams: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl Signals {
    /// Installs the handlers (must run inside the runtime).
    pub fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(int), Ok(hup)) => Some((term, int, hup)),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Waits for the next SIGTERM or SIGINT (Ctrl-C where signals cannot be had); a SIGHUP
    /// meanwhile is logged and waited past.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((term, int, hup)) = &mut self.streams {
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => tracing::info!(
                        "SIGHUP ignored: the node logs to stdout/stderr and has no files to \
                         reopen; SIGTERM drains and stops it"
                    ),
                }
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn a_generated_token_is_kept_and_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config::default();
        let (token, generated) = admin_token(&cfg, dir.path()).expect("token");
        assert!(generated && token.starts_with("adm_"), "{token}");
        let again = admin_token(&cfg, dir.path()).expect("token again");
        assert_eq!(again, (token, false));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("admin.token"))
                .expect("token file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
    }

    #[test]
    fn a_short_hand_edited_token_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("admin.token"), "short\n").expect("write");
        let err = admin_token(&Config::default(), dir.path()).expect_err("short token");
        let shown = err.to_string();
        assert!(
            shown.starts_with("invalid config: field 'admin_token' (file '")
                && shown.contains("admin.token' line 1): must be at least 16 characters"),
            "{shown}"
        );
        assert!(
            !shown.contains("short"),
            "the token is never shown: {shown}"
        );
    }

    #[test]
    fn a_configured_token_removes_the_generated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, generated) = admin_token(&Config::default(), dir.path()).expect("token");
        assert!(generated);
        let cfg = Config {
            admin_token: Some("configured-token-0123456789".into()),
            ..Config::default()
        };
        let (token, generated) = admin_token(&cfg, dir.path()).expect("configured");
        assert_eq!(
            (token.as_str(), generated),
            ("configured-token-0123456789", false)
        );
        assert!(!dir.path().join("admin.token").exists());
    }
}
