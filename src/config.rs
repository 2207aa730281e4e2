//! Node configuration: one struct, filled from flags > env (`SMSGW_<NAME>`) > TOML file > defaults,
//! then validated with errors that name the bad field.
//!
//! - [`StartArgs`]: the flags of `smsgw start` (every field optional, no clap `env`, so that
//!   the precedence below is applied in one place).
//! - [`Config::load`]: defaults, then the TOML file (`--config` or `SMSGW_CONFIG`), then env
//!   `SMSGW_<FIELD>`, then flags; the result is validated.
//! - [`Config::validate`]: range and shape checks; each failure is a [`ConfigError`] whose
//!   one-line `Display` names the field (the binary prints it and exits 2).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `smsgw start` needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id in the cluster (u64, unique).
    pub node_id: u64,
    /// HTTP API listen address.
    pub http: String,
    /// Inter-node transport (Raft RPC) listen address.
    pub cluster_addr: String,
    /// All durable state of this node; default `./data/node-<id>`.
    pub data_dir: Option<PathBuf>,
    /// Initial members `ID@ADDR,...` (this node included). Empty: single node.
    pub peers: String,
    /// Token for /admin/*; generated and stored in `<data-dir>/admin.token` when absent.
    pub admin_token: Option<String>,
    /// Shared secret every cluster-port request must carry (`x-smsgw-cluster-secret`);
    /// unset: the cluster port takes anyone who reaches it (keep it on a private network).
    pub cluster_secret: Option<String>,
    /// Log filter (tracing EnvFilter syntax).
    pub log: String,
    /// Largest accepted HTTP request body, bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Messages waiting on this node (all tenants) above which sends get 429 `queue_full`.
    pub node_queue_limit: u64,
    /// Default per-tenant waiting-message limit when a tenant sets none.
    pub tenant_queue_limit: u64,
    /// Webhook deliveries in flight at once.
    pub webhook_concurrency: usize,
    /// Raft election timeout range, ms.
    pub election_timeout_min_ms: u64,
    /// Upper end of the Raft election timeout range, ms (must exceed the lower end).
    pub election_timeout_max_ms: u64,
    /// Raft heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Seconds SIGTERM waits for in-flight submits before exiting. Unset: long enough to
    /// outlast the slowest channel's response timeout (see [`Config::drain_for`]), so a
    /// graceful stop never cuts a submit the operator may still acknowledge.
    pub drain_seconds: Option<u64>,
    /// Raft log entries between snapshots (the log before a snapshot is compacted); 0: never.
    pub snapshot_every_entries: u64,
    /// Hours a final (delivered, failed, ...) message is kept before it is dropped.
    pub retention_hours: u64,
    /// About how many bytes of rows one piece of a snapshot sent to a lagging peer carries.
    pub snapshot_chunk_bytes: usize,
    /// Threads of the node's async runtime (HTTP, actors, Raft); 0: one per CPU core.
    pub worker_threads: usize,
    /// Open client connections of the HTTP API at most; more wait in the listen backlog,
    /// so idle sockets can never take the file descriptors the store and Raft need.
    /// Unset: min(10000, half the open-file limit).
    pub http_max_connections: Option<usize>,
    /// Seconds a connection has to send a complete request head (from connecting, or from
    /// the end of the previous answer on a kept-alive connection) before it is closed.
    pub http_header_timeout_seconds: u64,
    /// Seconds without a byte read or written after which a connection is closed (a body
    /// trickled in, an answer never read).
    pub http_idle_timeout_seconds: u64,
    /// Webhook deliveries in flight for one tenant at most, so one slow receiver cannot hold
    /// every delivery slot. Unset: a quarter of `webhook_concurrency`, at least 1.
    pub webhook_tenant_concurrency: Option<usize>,
    /// Whether callback URLs may point at loopback, private, link-local or other internal
    /// addresses (SSRF guard). Off for `start`; the demo turns it on (its receivers are local).
    pub webhook_allow_private: bool,
    /// MiB fjall's journals may take before it flushes memtables to delete the oldest
    /// (`max_journaling_size`): bounds the disk that rows already purged keep in journals
    /// while the node runs (fjall's own default, 512 MiB, let 4 × 10k purged messages
    /// grow them to 165 MB).
    pub store_max_journal_mb: u64,
    /// Start without binding any channel or sending anything (the API and reads work):
    /// for inspecting a restored copy before it sends what was pending in it again.
    pub hold_channels: bool,
    /// Start on a store whose `log_watermark` file is missing (writing a fresh one at the
    /// log's end) instead of refusing it: the operator's word that the journal is whole.
    pub accept_missing_watermark: bool,
    /// Where each value came from (flag, env, file line), so that errors found after
    /// loading (a busy port, a data dir of another node) name the source to fix.
    #[serde(skip)]
    pub origins: Origins,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            http: "127.0.0.1:8080".into(),
            cluster_addr: "127.0.0.1:9080".into(),
            data_dir: None,
            peers: String::new(),
            admin_token: None,
            cluster_secret: None,
            log: "info".into(),
            max_body_bytes: 1024 * 1024,
            node_queue_limit: 1_000_000,
            tenant_queue_limit: 200_000,
            webhook_concurrency: 64,
            // LAN timings: a follower votes only after the leader's lease (openraft sets it
            // to the upper bound) has run out, then waits a random timeout, so a dead leader
            // is replaced 0.9-1.2 s after its last heartbeat (1.8-2.4 s with 600/1200).
            // Members behind slow or lossy links want larger values (cluster/README.md).
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            heartbeat_ms: 100,
            drain_seconds: None,
            snapshot_every_entries: 50_000,
            retention_hours: 168,
            snapshot_chunk_bytes: crate::state::snapshot::CHUNK_BYTES,
            worker_threads: 0,
            http_max_connections: None,
            http_header_timeout_seconds: 60,
            http_idle_timeout_seconds: 75,
            webhook_tenant_concurrency: None,
            webhook_allow_private: false,
            store_max_journal_mb: 256,
            hold_channels: false,
            accept_missing_watermark: false,
            origins: Origins::default(),
        }
    }
}

/// The shortest drain when `drain_seconds` is unset.
pub const MIN_AUTO_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);
/// What an unset `drain_seconds` waits beyond the longest channel response timeout.
pub const AUTO_DRAIN_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Where each [`Config`] field's value came from; a field absent here has its default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(HashMap<&'static str, Origin>);

impl Origins {
    /// Where `field` came from ([`Origin::Default`] when it was not set).
    pub fn of(&self, field: &str) -> Origin {
        self.0.get(field).cloned().unwrap_or_default()
    }

    /// Whether `field` was set by a flag, env or the file.
    pub fn is_set(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// Marks `fields` as set by their command-line flags (for `demo`, whose few settings
    /// are flags only).
    pub fn flags(fields: &[&'static str]) -> Origins {
        Origins(
            fields
                .iter()
                .map(|f| (*f, Origin::Flag(flag_name(f))))
                .collect(),
        )
    }
}

/// Every key of [`Config`], as spelled in the TOML file; env names are `SMSGW_` + upper case.
pub const FIELDS: [&str; 28] = [
    "node_id",
    "http",
    "cluster_addr",
    "data_dir",
    "peers",
    "admin_token",
    "cluster_secret",
    "log",
    "max_body_bytes",
    "node_queue_limit",
    "tenant_queue_limit",
    "webhook_concurrency",
    "election_timeout_min_ms",
    "election_timeout_max_ms",
    "heartbeat_ms",
    "drain_seconds",
    "snapshot_every_entries",
    "retention_hours",
    "snapshot_chunk_bytes",
    "worker_threads",
    "http_max_connections",
    "http_header_timeout_seconds",
    "http_idle_timeout_seconds",
    "webhook_tenant_concurrency",
    "webhook_allow_private",
    "store_max_journal_mb",
    "hold_channels",
    "accept_missing_watermark",
];

/// Env var naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "SMSGW_CONFIG";

/// Smallest accepted `max_body_bytes` (1 KiB).
const MIN_BODY_BYTES: usize = 1024;
/// Largest accepted `max_body_bytes` (64 MiB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Smallest accepted `snapshot_chunk_bytes` (64 KiB).
const MIN_SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024;
/// Largest accepted `snapshot_chunk_bytes` (64 MiB; a chunk is one RPC body).
const MAX_SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024 * 1024;
/// Largest accepted `webhook_concurrency`.
const MAX_WEBHOOK_CONCURRENCY: usize = 4096;
/// Largest accepted `http_max_connections`.
const MAX_HTTP_CONNECTIONS: usize = 1_000_000;
/// Largest accepted `drain_seconds` (one hour).
const MAX_DRAIN_SECONDS: u64 = 3600;
/// Largest accepted `worker_threads`.
const MAX_WORKER_THREADS: usize = 1024;
/// Smallest accepted `store_max_journal_mb`: fjall refuses less than 64 MiB, and rotates a
/// journal at 64 MiB, so a cap of one journal would flush at every rotation.
const MIN_STORE_JOURNAL_MB: u64 = 128;
/// Largest accepted `store_max_journal_mb` (64 GiB).
const MAX_STORE_JOURNAL_MB: u64 = 65_536;
/// Shortest accepted admin token.
const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Flags of `smsgw start`. Every value is optional: an absent flag leaves the value from env,
/// file or defaults (see [`Config::load`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct StartArgs {
    /// TOML config file (env SMSGW_CONFIG); see config/smsgw.example.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id in the cluster (u64, unique) [default: 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub node_id: Option<u64>,
    /// HTTP API listen address, IP:PORT [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Inter-node transport listen address, IP:PORT [default: 127.0.0.1:9080].
    #[arg(long, value_name = "ADDR")]
    pub cluster_addr: Option<String>,
    /// All durable state of this node [default: ./data/node-N].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Initial members `ID@HOST:PORT,...`, this node included; empty: a single-node cluster.
    #[arg(long, value_name = "LIST")]
    pub peers: Option<String>,
    /// Token for /admin/* (at least 16 characters); generated at first start when absent.
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Shared secret of the cluster port (at least 16 characters), the same on every member.
    #[arg(long, value_name = "SECRET")]
    pub cluster_secret: Option<String>,
    /// Log filter, tracing EnvFilter syntax (beats RUST_LOG) [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Largest accepted HTTP request body in bytes, 1 KiB..=64 MiB [default: 1048576].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub max_body_bytes: Option<usize>,
    /// Messages waiting on this node above which sends get 429 queue_full [default: 1000000].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub node_queue_limit: Option<u64>,
    /// Per-tenant waiting-message limit for tenants that set none [default: 200000].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tenant_queue_limit: Option<u64>,
    /// Webhook deliveries in flight at once, 1..=4096 [default: 64].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub webhook_concurrency: Option<usize>,
    /// Raft election timeout, lower end in ms, at least 3 × heartbeat [default: 300].
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub election_timeout_min_ms: Option<u64>,
    /// Raft election timeout, upper end in ms [default: 600].
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub election_timeout_max_ms: Option<u64>,
    /// Raft heartbeat interval in ms [default: 100].
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub heartbeat_ms: Option<u64>,
    /// Seconds SIGTERM waits for in-flight submits before exiting, at most 3600 [default:
    /// the longest channel response timeout + 5 s, at least 10].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub drain_seconds: Option<u64>,
    /// Raft log entries between snapshots (older entries are then compacted); 0: never [default: 50000].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub snapshot_every_entries: Option<u64>,
    /// Hours a final message is kept before it is dropped, 1..=87600 [default: 168].
    #[arg(long, value_name = "HOURS", allow_negative_numbers = true)]
    pub retention_hours: Option<u64>,
    /// Bytes of rows per piece of a snapshot sent to a lagging peer, 64 KiB..=64 MiB [default: 4194304].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub snapshot_chunk_bytes: Option<usize>,
    /// Threads of the node's async runtime, 0..=1024; 0: one per CPU core [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub worker_threads: Option<usize>,
    /// Open HTTP client connections at most (more wait in the backlog) [default: min(10000, open-file limit / 2)].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub http_max_connections: Option<usize>,
    /// Seconds a connection has to send a request head before it is closed, 1..=3600 [default: 60].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub http_header_timeout_seconds: Option<u64>,
    /// Seconds without traffic after which a connection is closed, 1..=86400 [default: 75].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub http_idle_timeout_seconds: Option<u64>,
    /// Webhook deliveries in flight for one tenant at most [default: webhook_concurrency / 4, at least 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub webhook_tenant_concurrency: Option<usize>,
    /// Allow callback URLs on loopback/private/link-local addresses (`--webhook-allow-private`
    /// or `=false`) [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_private: Option<bool>,
    /// MiB the store's journals may take before fjall flushes to delete the oldest, 128..=65536 [default: 256].
    #[arg(long, value_name = "MIB", allow_negative_numbers = true)]
    pub store_max_journal_mb: Option<u64>,
    /// Bind no channel and send nothing (API and reads work): inspect a restored copy first.
    #[arg(long)]
    pub hold_channels: bool,
    /// Start although `<data_dir>/log_watermark` is missing, writing a fresh one (once, for a
    /// store known to be whole).
    #[arg(long)]
    pub accept_missing_watermark: bool,
}

/// Where a config value came from; shown in errors so the user knows what to fix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// Built-in default, or not known (as in [`Config::validate`] on its own).
    #[default]
    Default,
    /// A command-line flag, e.g. `--node-id`.
    Flag(&'static str),
    /// An environment variable, e.g. `SMSGW_NODE_ID`.
    Env(String),
    /// A line of the TOML config file.
    File {
        /// The file as given.
        path: String,
        /// 1-based line of the key.
        line: usize,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => Ok(()),
            Origin::Flag(flag) => write!(f, " (flag {flag})"),
            Origin::Env(var) => write!(f, " (env {var})"),
            Origin::File { path, line } => write!(f, " (file '{path}' line {line})"),
        }
    }
}

/// A bad configuration. `Display` is one line naming the field (or the file) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value is malformed or out of range.
    #[error("invalid config: field '{field}'{origin}: {reason}")]
    Field {
        /// The `Config` field, e.g. `node_id`.
        field: &'static str,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong, quoting the value (never an admin token).
        reason: String,
    },
    /// The config file cannot be read, is not TOML, or has a key `Config` does not know.
    #[error("invalid config: file '{path}': {reason}")]
    File {
        /// The file as given.
        path: String,
        /// What is wrong, with the line where known.
        reason: String,
    },
}

impl ConfigError {
    /// The field this error is about, if it is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ConfigError::Field { field, .. } => Some(field),
            ConfigError::File { .. } => None,
        }
    }

    /// The same error, saying the value came from its command-line flag (for a command
    /// that takes these fields as flags only, such as `demo`).
    pub fn with_flag_origin(mut self) -> Self {
        if let ConfigError::Field { field, origin, .. } = &mut self {
            *origin = Origin::Flag(flag_name(field));
        }
        self
    }

    /// A bad value of `field` found after loading (a port in use, a data dir that cannot
    /// be used), naming where the value came from.
    pub fn at(field: &'static str, origins: &Origins, reason: impl Into<String>) -> Self {
        ConfigError::Field {
            field,
            origin: origins.of(field),
            reason: one_line(reason.into()),
        }
    }

    fn field_err(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Field {
            field,
            origin: Origin::Default,
            reason: one_line(reason.into()),
        }
    }

    fn file_err(path: &str, reason: impl Into<String>) -> Self {
        ConfigError::File {
            path: path.to_string(),
            reason: one_line(reason.into()),
        }
    }
}

/// The process environment as a map for [`Config::load`] (values that are not UTF-8 are
/// converted lossily rather than dropped, so a set variable is never silently ignored).
pub fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

impl Config {
    /// Builds the node's config: defaults, then the TOML file (`--config`, else env
    /// `SMSGW_CONFIG`), then env `SMSGW_<FIELD>` (empty values count as unset), then flags;
    /// then [`validate`](Self::validate)s it. Errors name the field and where its value came from.
    pub fn load(args: &StartArgs, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let mut origins: HashMap<&'static str, Origin> = HashMap::new();

        let file = match &args.config {
            Some(p) => Some(p.clone()),
            None => env
                .get(CONFIG_ENV)
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from),
        };
        if let Some(path) = file {
            let label = path.display().to_string();
            let text = read_file(&path)?;
            apply_toml(&mut cfg, &mut origins, &text, &label)?;
        }

        for field in FIELDS {
            let var = env_name(field);
            let Some(value) = env.get(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let origin = Origin::Env(var);
            set_field(&mut cfg, field, Raw::Text(value)).map_err(|reason| ConfigError::Field {
                field,
                origin: origin.clone(),
                reason: one_line(reason),
            })?;
            origins.insert(field, origin);
        }

        apply_flags(&mut cfg, &mut origins, args);

        cfg.origins = Origins(origins);
        cfg.validate().map_err(|e| match e {
            ConfigError::Field {
                field,
                origin: Origin::Default,
                reason,
            } => ConfigError::Field {
                field,
                origin: cfg.origins.of(field),
                reason,
            },
            other => other,
        })?;
        Ok(cfg)
    }

    /// Parses a TOML document (as in the config file) over the defaults, without env, flags
    /// or validation. `label` names the source in errors.
    pub fn from_toml_str(text: &str, label: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        apply_toml(&mut cfg, &mut HashMap::new(), text, label)?;
        Ok(cfg)
    }

    /// Checks every value's shape and range; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use ConfigError as E;
        if self.node_id < 1 {
            return Err(E::field_err("node_id", "must be at least 1, got 0"));
        }
        check_socket_addr("http", &self.http)?;
        check_socket_addr("cluster_addr", &self.cluster_addr)?;
        if let (Ok(h), Ok(c)) = (
            self.http.parse::<SocketAddr>(),
            self.cluster_addr.parse::<SocketAddr>(),
        ) && h.port() != 0
            && h.port() == c.port()
            && (h.ip() == c.ip() || h.ip().is_unspecified() || c.ip().is_unspecified())
        {
            return Err(E::field_err(
                "cluster_addr",
                format!(
                    "{:?} is the HTTP address too (http {:?}); the two need different ports",
                    self.cluster_addr, self.http
                ),
            ));
        }
        if let Some(dir) = &self.data_dir
            && dir.as_os_str().is_empty()
        {
            return Err(E::field_err(
                "data_dir",
                "must not be empty (leave it unset for ./data/node-<id>)",
            ));
        }
        self.check_peers()?;
        if let Some(token) = &self.admin_token
            && let Err(why) = check_admin_token(token)
        {
            return Err(E::field_err(
                "admin_token",
                format!("{why} (leave it unset to have one generated)"),
            ));
        }
        if let Some(secret) = &self.cluster_secret
            && let Err(why) = check_admin_token(secret)
        {
            return Err(E::field_err("cluster_secret", why));
        }
        if let Err(why) = check_log_filter(&self.log) {
            return Err(E::field_err("log", why));
        }
        if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return Err(E::field_err(
                "max_body_bytes",
                format!(
                    "must be between {MIN_BODY_BYTES} (1 KiB) and {MAX_BODY_BYTES} (64 MiB), got {}",
                    self.max_body_bytes
                ),
            ));
        }
        if self.node_queue_limit < 1 {
            return Err(E::field_err(
                "node_queue_limit",
                "must be at least 1, got 0",
            ));
        }
        if self.tenant_queue_limit < 1 {
            return Err(E::field_err(
                "tenant_queue_limit",
                "must be at least 1, got 0",
            ));
        }
        if !(1..=MAX_WEBHOOK_CONCURRENCY).contains(&self.webhook_concurrency) {
            return Err(E::field_err(
                "webhook_concurrency",
                format!(
                    "must be between 1 and {MAX_WEBHOOK_CONCURRENCY}, got {}",
                    self.webhook_concurrency
                ),
            ));
        }
        if !(MIN_STORE_JOURNAL_MB..=MAX_STORE_JOURNAL_MB).contains(&self.store_max_journal_mb) {
            return Err(E::field_err(
                "store_max_journal_mb",
                format!(
                    "must be {MIN_STORE_JOURNAL_MB}..={MAX_STORE_JOURNAL_MB}, got {}",
                    self.store_max_journal_mb
                ),
            ));
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(E::field_err(
                "worker_threads",
                format!(
                    "must be between 0 (one per CPU core) and {MAX_WORKER_THREADS}, got {}",
                    self.worker_threads
                ),
            ));
        }
        if !(1..=MAX_TIMING_MS).contains(&self.heartbeat_ms) {
            return Err(E::field_err(
                "heartbeat_ms",
                format!("must be 1..={MAX_TIMING_MS}, got {}", self.heartbeat_ms),
            ));
        }
        if self.election_timeout_max_ms > MAX_TIMING_MS {
            return Err(E::field_err(
                "election_timeout_max_ms",
                format!(
                    "must be at most {MAX_TIMING_MS}, got {}",
                    self.election_timeout_max_ms
                ),
            ));
        }
        let min_election = self.heartbeat_ms.saturating_mul(3);
        if self.election_timeout_min_ms < min_election {
            return Err(E::field_err(
                "election_timeout_min_ms",
                format!(
                    "must be at least 3 × heartbeat_ms ({}) = {min_election}, got {}",
                    self.heartbeat_ms, self.election_timeout_min_ms
                ),
            ));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(E::field_err(
                "election_timeout_max_ms",
                format!(
                    "must be greater than election_timeout_min_ms ({}), got {}",
                    self.election_timeout_min_ms, self.election_timeout_max_ms
                ),
            ));
        }
        if !(1..=87_600).contains(&self.retention_hours) {
            return Err(E::field_err(
                "retention_hours",
                format!("must be 1..=87600, got {}", self.retention_hours),
            ));
        }
        if !(MIN_SNAPSHOT_CHUNK_BYTES..=MAX_SNAPSHOT_CHUNK_BYTES)
            .contains(&self.snapshot_chunk_bytes)
        {
            return Err(E::field_err(
                "snapshot_chunk_bytes",
                format!(
                    "must be {MIN_SNAPSHOT_CHUNK_BYTES}..={MAX_SNAPSHOT_CHUNK_BYTES} (64 KiB..=64 MiB), got {}",
                    self.snapshot_chunk_bytes
                ),
            ));
        }
        if let Some(n) = self.http_max_connections
            && !(1..=MAX_HTTP_CONNECTIONS).contains(&n)
        {
            return Err(E::field_err(
                "http_max_connections",
                format!("must be between 1 and {MAX_HTTP_CONNECTIONS}, got {n}"),
            ));
        }
        if !(1..=3600).contains(&self.http_header_timeout_seconds) {
            return Err(E::field_err(
                "http_header_timeout_seconds",
                format!("must be 1..=3600, got {}", self.http_header_timeout_seconds),
            ));
        }
        if !(1..=86_400).contains(&self.http_idle_timeout_seconds) {
            return Err(E::field_err(
                "http_idle_timeout_seconds",
                format!("must be 1..=86400, got {}", self.http_idle_timeout_seconds),
            ));
        }
        if let Some(n) = self.webhook_tenant_concurrency
            && !(1..=self.webhook_concurrency).contains(&n)
        {
            return Err(E::field_err(
                "webhook_tenant_concurrency",
                format!(
                    "must be between 1 and webhook_concurrency ({}), got {n}",
                    self.webhook_concurrency
                ),
            ));
        }
        if let Some(drain) = self.drain_seconds
            && drain > MAX_DRAIN_SECONDS
        {
            return Err(E::field_err(
                "drain_seconds",
                format!("must be at most {MAX_DRAIN_SECONDS}, got {drain}"),
            ));
        }
        Ok(())
    }

    /// `peers`: `ID@HOST:PORT` items, ids ≥ 1 and unique, this node included when non-empty.
    fn check_peers(&self) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError::field_err("peers", reason);
        let mut ids = HashSet::new();
        for item in self.peers.split(',').map(str::trim) {
            if item.is_empty() {
                if self.peers.trim().is_empty() {
                    continue;
                }
                return Err(bad(format!(
                    "{:?} has an empty entry (want ID@HOST:PORT,...)",
                    self.peers
                )));
            }
            let Some((id, addr)) = item.split_once('@') else {
                return Err(bad(format!("{item:?} is not ID@HOST:PORT")));
            };
            let id: u64 = match id.trim().parse() {
                Ok(id) if id >= 1 => id,
                _ => {
                    return Err(bad(format!(
                        "{item:?}: {:?} is not a node id (an integer ≥ 1)",
                        id.trim()
                    )));
                }
            };
            if !is_host_port(addr.trim()) {
                return Err(bad(format!(
                    "{item:?}: {:?} is not an address (want HOST:PORT)",
                    addr.trim()
                )));
            }
            if !ids.insert(id) {
                return Err(bad(format!("node id {id} appears more than once")));
            }
        }
        if !ids.is_empty() && !ids.contains(&self.node_id) {
            return Err(bad(format!(
                "does not include this node (node_id {}); list every member, this one too",
                self.node_id
            )));
        }
        if let Some(own) = self.peer_map().get(&self.node_id)
            && let Some(why) = own_entry_mismatch(own, &self.cluster_addr)
        {
            return Err(bad(format!(
                "this node's entry {}@{own} {why} (cluster_addr {:?}); peers would \
                 dial an address where this node does not listen",
                self.node_id, self.cluster_addr
            )));
        }
        Ok(())
    }

    /// How long a SIGTERM drain waits: `drain_seconds` when it is set; otherwise the
    /// longest of `response_timeouts` (each channel's) plus [`AUTO_DRAIN_MARGIN`], at
    /// least [`MIN_AUTO_DRAIN`], so that a submit written just before the signal gets its
    /// answer (or its timeout) before the node exits: a cut drain resends it on restart.
    pub fn drain_for(
        &self,
        response_timeouts: impl IntoIterator<Item = std::time::Duration>,
    ) -> std::time::Duration {
        match self.drain_seconds {
            Some(s) => std::time::Duration::from_secs(s),
            None => response_timeouts
                .into_iter()
                .max()
                .map(|t| t + AUTO_DRAIN_MARGIN)
                .unwrap_or_default()
                .max(MIN_AUTO_DRAIN),
        }
    }

    /// Webhook deliveries in flight for one tenant: `webhook_tenant_concurrency`, or a
    /// quarter of `webhook_concurrency` (at least 1).
    pub fn webhook_tenant_limit(&self) -> usize {
        self.webhook_tenant_concurrency
            .unwrap_or(self.webhook_concurrency / 4)
            .clamp(1, self.webhook_concurrency.max(1))
    }

    /// The data dir, defaulted from the node id.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("./data/node-{}", self.node_id)))
    }

    /// `peers` parsed into id → address (validated by `validate`).
    pub fn peer_map(&self) -> BTreeMap<u64, String> {
        let mut m = BTreeMap::new();
        for item in self
            .peers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if let Some((id, addr)) = item.split_once('@')
                && let Ok(id) = id.trim().parse()
            {
                m.insert(id, addr.trim().to_string());
            }
        }
        m
    }
}

/// An admin token's shape: at least 16 characters, no spaces or control characters (it
/// is sent in an HTTP header). The reason never quotes the token. Also applied to a
/// hand-edited `<data-dir>/admin.token`.
pub fn check_admin_token(token: &str) -> Result<(), String> {
    let chars = token.chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        return Err(format!(
            "must be at least {MIN_ADMIN_TOKEN_CHARS} characters, got {chars}"
        ));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "must not contain spaces or control characters (it is sent in an HTTP header)".into(),
        );
    }
    Ok(())
}

/// `SMSGW_<FIELD>` for a field name.
fn env_name(field: &str) -> String {
    format!("SMSGW_{}", field.to_ascii_uppercase())
}

/// `--field-name` for a field name.
fn flag_name(field: &'static str) -> &'static str {
    match field {
        "node_id" => "--node-id",
        "http" => "--http",
        "cluster_addr" => "--cluster-addr",
        "data_dir" => "--data-dir",
        "peers" => "--peers",
        "admin_token" => "--admin-token",
        "cluster_secret" => "--cluster-secret",
        "log" => "--log",
        "max_body_bytes" => "--max-body-bytes",
        "node_queue_limit" => "--node-queue-limit",
        "tenant_queue_limit" => "--tenant-queue-limit",
        "webhook_concurrency" => "--webhook-concurrency",
        "election_timeout_min_ms" => "--election-timeout-min-ms",
        "election_timeout_max_ms" => "--election-timeout-max-ms",
        "heartbeat_ms" => "--heartbeat-ms",
        "drain_seconds" => "--drain-seconds",
        "snapshot_every_entries" => "--snapshot-every-entries",
        "retention_hours" => "--retention-hours",
        "snapshot_chunk_bytes" => "--snapshot-chunk-bytes",
        "worker_threads" => "--worker-threads",
        "http_max_connections" => "--http-max-connections",
        "http_header_timeout_seconds" => "--http-header-timeout-seconds",
        "http_idle_timeout_seconds" => "--http-idle-timeout-seconds",
        "webhook_tenant_concurrency" => "--webhook-tenant-concurrency",
        "webhook_allow_private" => "--webhook-allow-private",
        "store_max_journal_mb" => "--store-max-journal-mb",
        "hold_channels" => "--hold-channels",
        "accept_missing_watermark" => "--accept-missing-watermark",
        _ => "--config",
    }
}

/// Error text on a single line (the binary prints exactly one).
fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        s
    }
}

/// `value` must parse as an IP socket address. Listen addresses are IPs, not host names:
/// the node advertises the address it bound to its peers, so a name that resolves to
/// several addresses (localhost: 127.0.0.1 and ::1) would make that ambiguous.
fn check_socket_addr(field: &'static str, value: &str) -> Result<(), ConfigError> {
    match value.parse::<SocketAddr>() {
        Ok(_) => Ok(()),
        Err(_) => Err(ConfigError::field_err(
            field,
            format!(
                "{value:?} is not an address (want IP:PORT, e.g. 127.0.0.1:8080; a host name is not accepted)"
            ),
        )),
    }
}

/// Why this node's own `peers` entry cannot be where it listens (`cluster_addr`), or None
/// when it can. Only a clear mismatch counts: different ports, or two specific IPs that
/// differ. A host name, or a bind on 0.0.0.0/[::], is compared by port only (the name may
/// resolve to this host; a wildcard bind listens on every address).
pub(crate) fn own_entry_mismatch(entry: &str, cluster_addr: &str) -> Option<String> {
    let listen: SocketAddr = cluster_addr.parse().ok()?;
    let port = entry.rsplit_once(':')?.1.parse::<u16>().ok()?;
    // Port 0 binds wherever the kernel says: nothing to compare.
    if listen.port() == 0 {
        return None;
    }
    if port != listen.port() {
        return Some(format!(
            "has port {port}, but this node listens on port {}",
            listen.port()
        ));
    }
    match entry.parse::<SocketAddr>() {
        Ok(e)
            if !listen.ip().is_unspecified()
                && !e.ip().is_unspecified()
                && e.ip() != listen.ip() =>
        {
            Some(format!(
                "has IP {}, but this node listens on {}",
                e.ip(),
                listen.ip()
            ))
        }
        _ => None,
    }
}

/// "a" or "an" before a word, for messages such as "got an array".
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// `HOST:PORT` with a non-empty host (name, IPv4 or `[IPv6]`) and a port 1..=65535.
fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = matches!(port.parse::<u16>(), Ok(p) if p > 0);
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    port_ok && host_ok
}

/// Reads the config file; the error names it and says why, without the `(os error N)` tail.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string()),
        Err(e) => {
            let mut reason = e.to_string();
            if let Some(i) = reason.find(" (os error ") {
                reason.truncate(i);
            }
            Err(ConfigError::file_err(
                &label,
                format!("cannot read: {reason}"),
            ))
        }
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A value for one field, from the file or the environment.
enum Raw<'a> {
    /// A string (every env value; TOML strings).
    Text(&'a str),
    /// A TOML integer (may be negative).
    Int(i128),
    /// A TOML boolean.
    Bool(bool),
    /// Any other TOML value, by type name (`float`, `array`, ...).
    Other(&'static str),
}

impl Raw<'_> {
    fn u64(&self) -> Result<u64, String> {
        match self {
            Raw::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not an unsigned integer")),
            Raw::Int(n) => u64::try_from(*n).map_err(|_| format!("{n} is not an unsigned integer")),
            Raw::Bool(_) => Err("expected an unsigned integer, got a boolean".into()),
            Raw::Other(kind) => Err(format!(
                "expected an unsigned integer, got {} {kind}",
                article(kind)
            )),
        }
    }

    fn usize(&self) -> Result<usize, String> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| format!("{n} is too large"))
    }

    fn bool(&self) -> Result<bool, String> {
        match self {
            Raw::Bool(b) => Ok(*b),
            Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(format!("{s:?} is not a boolean (want true or false)")),
            },
            Raw::Int(n) => Err(format!("expected a boolean, got the integer {n}")),
            Raw::Other(kind) => Err(format!("expected a boolean, got {} {kind}", article(kind))),
        }
    }

    fn text(&self) -> Result<String, String> {
        match self {
            Raw::Text(s) => Ok((*s).to_string()),
            Raw::Bool(_) => Err("expected a string, got a boolean".into()),
            Raw::Int(n) => Err(format!("expected a string, got the integer {n} (quote it)")),
            Raw::Other(kind) => Err(format!("expected a string, got {} {kind}", article(kind))),
        }
    }
}

/// Sets one field from a raw value; the error is the reason only (the caller adds field and origin).
fn set_field(cfg: &mut Config, field: &str, raw: Raw<'_>) -> Result<(), String> {
    match field {
        "node_id" => cfg.node_id = raw.u64()?,
        "http" => cfg.http = raw.text()?,
        "cluster_addr" => cfg.cluster_addr = raw.text()?,
        "data_dir" => cfg.data_dir = Some(PathBuf::from(raw.text()?)),
        "peers" => cfg.peers = raw.text()?,
        "admin_token" => cfg.admin_token = Some(raw.text()?),
        "cluster_secret" => cfg.cluster_secret = Some(raw.text()?),
        "log" => cfg.log = raw.text()?,
        "max_body_bytes" => cfg.max_body_bytes = raw.usize()?,
        "node_queue_limit" => cfg.node_queue_limit = raw.u64()?,
        "tenant_queue_limit" => cfg.tenant_queue_limit = raw.u64()?,
        "webhook_concurrency" => cfg.webhook_concurrency = raw.usize()?,
        "election_timeout_min_ms" => cfg.election_timeout_min_ms = raw.u64()?,
        "election_timeout_max_ms" => cfg.election_timeout_max_ms = raw.u64()?,
        "heartbeat_ms" => cfg.heartbeat_ms = raw.u64()?,
        "drain_seconds" => cfg.drain_seconds = Some(raw.u64()?),
        "snapshot_every_entries" => cfg.snapshot_every_entries = raw.u64()?,
        "retention_hours" => cfg.retention_hours = raw.u64()?,
        "snapshot_chunk_bytes" => cfg.snapshot_chunk_bytes = raw.usize()?,
        "worker_threads" => cfg.worker_threads = raw.usize()?,
        "http_max_connections" => cfg.http_max_connections = Some(raw.usize()?),
        "http_header_timeout_seconds" => cfg.http_header_timeout_seconds = raw.u64()?,
        "http_idle_timeout_seconds" => cfg.http_idle_timeout_seconds = raw.u64()?,
        "webhook_tenant_concurrency" => cfg.webhook_tenant_concurrency = Some(raw.usize()?),
        "webhook_allow_private" => cfg.webhook_allow_private = raw.bool()?,
        "store_max_journal_mb" => cfg.store_max_journal_mb = raw.u64()?,
        "hold_channels" => cfg.hold_channels = raw.bool()?,
        "accept_missing_watermark" => cfg.accept_missing_watermark = raw.bool()?,
        other => return Err(format!("unknown field '{other}'")),
    }
    Ok(())
}

/// Applies a TOML document over `cfg`: syntax errors and unknown keys name the file and line,
/// type errors name the field, file and line.
fn apply_toml(
    cfg: &mut Config,
    origins: &mut HashMap<&'static str, Origin>,
    text: &str,
    label: &str,
) -> Result<(), ConfigError> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" at line {}", line_of(text, s.start)))
            .unwrap_or_default();
        ConfigError::file_err(label, format!("not valid TOML: {}{at}", e.message()))
    })?;
    let mut entries: Vec<_> = doc.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let line = line_of(text, key.span().start);
        let name: &str = key.get_ref();
        let Some(&field) = FIELDS.iter().find(|f| **f == name) else {
            return Err(ConfigError::file_err(
                label,
                format!("unknown field '{name}' at line {line}"),
            ));
        };
        let raw = match value.get_ref() {
            DeValue::String(s) => Raw::Text(s),
            DeValue::Boolean(b) => Raw::Bool(*b),
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Raw::Int(n),
                Err(_) => Raw::Other("integer out of range"),
            },
            other => Raw::Other(other.type_str()),
        };
        let origin = Origin::File {
            path: label.to_string(),
            line,
        };
        set_field(cfg, field, raw).map_err(|reason| ConfigError::Field {
            field,
            origin: origin.clone(),
            reason: one_line(reason),
        })?;
        origins.insert(field, origin);
    }
    Ok(())
}

/// Applies the flags that were given.
fn apply_flags(cfg: &mut Config, origins: &mut HashMap<&'static str, Origin>, a: &StartArgs) {
    let mut mark = |field: &'static str| {
        origins.insert(field, Origin::Flag(flag_name(field)));
    };
    if let Some(v) = a.node_id {
        cfg.node_id = v;
        mark("node_id");
    }
    if let Some(v) = &a.http {
        cfg.http = v.clone();
        mark("http");
    }
    if let Some(v) = &a.cluster_addr {
        cfg.cluster_addr = v.clone();
        mark("cluster_addr");
    }
    if let Some(v) = &a.data_dir {
        cfg.data_dir = Some(v.clone());
        mark("data_dir");
    }
    if let Some(v) = &a.peers {
        cfg.peers = v.clone();
        mark("peers");
    }
    if let Some(v) = &a.admin_token {
        cfg.admin_token = Some(v.clone());
        mark("admin_token");
    }
    if let Some(v) = &a.cluster_secret {
        cfg.cluster_secret = Some(v.clone());
        mark("cluster_secret");
    }
    if let Some(v) = &a.log {
        cfg.log = v.clone();
        mark("log");
    }
    if let Some(v) = a.max_body_bytes {
        cfg.max_body_bytes = v;
        mark("max_body_bytes");
    }
    if let Some(v) = a.node_queue_limit {
        cfg.node_queue_limit = v;
        mark("node_queue_limit");
    }
    if let Some(v) = a.tenant_queue_limit {
        cfg.tenant_queue_limit = v;
        mark("tenant_queue_limit");
    }
    if let Some(v) = a.webhook_concurrency {
        cfg.webhook_concurrency = v;
        mark("webhook_concurrency");
    }
    if let Some(v) = a.election_timeout_min_ms {
        cfg.election_timeout_min_ms = v;
        mark("election_timeout_min_ms");
    }
    if let Some(v) = a.election_timeout_max_ms {
        cfg.election_timeout_max_ms = v;
        mark("election_timeout_max_ms");
    }
    if let Some(v) = a.heartbeat_ms {
        cfg.heartbeat_ms = v;
        mark("heartbeat_ms");
    }
    if let Some(v) = a.snapshot_every_entries {
        cfg.snapshot_every_entries = v;
        mark("snapshot_every_entries");
    }
    if let Some(v) = a.retention_hours {
        cfg.retention_hours = v;
        mark("retention_hours");
    }
    if let Some(v) = a.snapshot_chunk_bytes {
        cfg.snapshot_chunk_bytes = v;
        mark("snapshot_chunk_bytes");
    }
    if let Some(v) = a.drain_seconds {
        cfg.drain_seconds = Some(v);
        mark("drain_seconds");
    }
    if let Some(v) = a.worker_threads {
        cfg.worker_threads = v;
        mark("worker_threads");
    }
    if let Some(v) = a.http_max_connections {
        cfg.http_max_connections = Some(v);
        mark("http_max_connections");
    }
    if let Some(v) = a.http_header_timeout_seconds {
        cfg.http_header_timeout_seconds = v;
        mark("http_header_timeout_seconds");
    }
    if let Some(v) = a.http_idle_timeout_seconds {
        cfg.http_idle_timeout_seconds = v;
        mark("http_idle_timeout_seconds");
    }
    if let Some(v) = a.webhook_tenant_concurrency {
        cfg.webhook_tenant_concurrency = Some(v);
        mark("webhook_tenant_concurrency");
    }
    if let Some(v) = a.webhook_allow_private {
        cfg.webhook_allow_private = v;
        mark("webhook_allow_private");
    }
    if let Some(v) = a.store_max_journal_mb {
        cfg.store_max_journal_mb = v;
        mark("store_max_journal_mb");
    }
    if a.hold_channels {
        cfg.hold_channels = true;
        mark("hold_channels");
    }
    if a.accept_missing_watermark {
        cfg.accept_missing_watermark = true;
        mark("accept_missing_watermark");
    }
}

/// Longest heartbeat or election timeout, in ms: a minute without a leader is already an
/// outage; larger values are typos (and 3 × heartbeat must not overflow).
const MAX_TIMING_MS: u64 = 60_000;

/// A log filter as `tracing` reads it (`info`, `smsgw=debug,warn`): anything it refuses, and
/// a bare word that is not a level (`verbose` would be read as a target name and silence
/// almost everything), is an error naming what is wrong.
fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    const EXAMPLE: &str = "a tracing filter such as \"info\" or \"smsgw=debug,info\"";
    if filter.trim().is_empty() {
        return Err(format!("must not be empty ({EXAMPLE})"));
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let plain_word = !directive.contains(['=', ':', '[']);
        if plain_word && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a level ({}); to set a module's level write \
                 {directive}=debug",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(drop)
        .map_err(|e| format!("{filter:?} is not a log filter: {e} ({EXAMPLE})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        f.write_all(text.as_bytes()).expect("write temp file");
        f
    }

    fn args_with_file(f: &tempfile::NamedTempFile) -> StartArgs {
        StartArgs {
            config: Some(f.path().to_path_buf()),
            ..StartArgs::default()
        }
    }

    /// One precedence layer's values for node_id, http and drain_seconds.
    type Layer = Option<(u64, &'static str, u64)>;
    /// Which layers are present (file, env, flag), and the values that must win.
    type PrecedenceRow = (Layer, Layer, Layer, (u64, &'static str, u64));

    #[test]
    fn precedence_flag_beats_env_beats_file_beats_default() {
        let file_v = (4, "127.0.0.4:8080", 40);
        let env_v = (3, "127.0.0.3:8080", 30);
        let flag_v = (2, "127.0.0.2:8080", 20);
        // drain_seconds unset (None) shows as 0 below.
        let default_v = (1, "127.0.0.1:8080", 0);
        // (file, env, flag) present? -> expected winner
        let table: [PrecedenceRow; 8] = [
            (None, None, None, default_v),
            (Some(file_v), None, None, file_v),
            (None, Some(env_v), None, env_v),
            (None, None, Some(flag_v), flag_v),
            (Some(file_v), Some(env_v), None, env_v),
            (Some(file_v), None, Some(flag_v), flag_v),
            (None, Some(env_v), Some(flag_v), flag_v),
            (Some(file_v), Some(env_v), Some(flag_v), flag_v),
        ];
        for (i, (file, envl, flag, want)) in table.into_iter().enumerate() {
            let f = file.map(|(id, http, drain)| {
                toml_file(&format!(
                    "node_id = {id}\nhttp = \"{http}\"\ndrain_seconds = {drain}\n"
                ))
            });
            let mut args = f.as_ref().map(args_with_file).unwrap_or_default();
            if let Some((id, http, drain)) = flag {
                args.node_id = Some(id);
                args.http = Some(http.to_string());
                args.drain_seconds = Some(drain);
            }
            let e = match envl {
                Some((id, http, drain)) => env(&[
                    ("SMSGW_NODE_ID", &id.to_string()),
                    ("SMSGW_HTTP", http),
                    ("SMSGW_DRAIN_SECONDS", &drain.to_string()),
                ]),
                None => HashMap::new(),
            };
            let cfg = Config::load(&args, &e).unwrap_or_else(|e| panic!("row {i}: {e}"));
            assert_eq!(
                (
                    cfg.node_id,
                    cfg.http.as_str(),
                    cfg.drain_seconds.unwrap_or(0)
                ),
                want,
                "row {i}"
            );
            // Fields set nowhere keep their defaults.
            assert_eq!(cfg.log, "info", "row {i}");
        }
    }

    #[test]
    fn config_path_from_env_and_flag_wins() {
        let from_env = toml_file("node_id = 7\n");
        let from_flag = toml_file("node_id = 8\n");
        let e = env(&[(CONFIG_ENV, &from_env.path().display().to_string())]);
        let cfg = Config::load(&StartArgs::default(), &e).expect("load via SMSGW_CONFIG");
        assert_eq!(cfg.node_id, 7);
        let cfg = Config::load(&args_with_file(&from_flag), &e).expect("load via --config");
        assert_eq!(cfg.node_id, 8);
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
        let cfg = Config::load(&StartArgs::default(), &HashMap::new()).expect("load defaults");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../config/smsgw.example.toml");
        let cfg = Config::from_toml_str(text, "config/smsgw.example.toml").expect("example parses");
        assert_eq!(cfg, Config::default());
        let via_serde: Config = toml::from_str(text).expect("example parses with serde");
        assert_eq!(via_serde, Config::default());
        // Every key is documented in the example (data_dir and admin_token commented out).
        for field in FIELDS {
            assert!(
                text.lines().any(|l| {
                    let l = l.trim_start_matches(['#', ' ']);
                    l.starts_with(&format!("{field} ="))
                }),
                "example lacks key {field}"
            );
        }
    }

    #[test]
    fn log_filters_people_write_are_accepted() {
        for ok in [
            "info",
            "WARN",
            "smsgw=debug,info",
            "warn,smsgw::api=trace",
            "off",
        ] {
            assert_eq!(check_log_filter(ok), Ok(()), "{ok}");
        }
        let why = check_log_filter("verbose").expect_err("a bare word");
        assert!(why.contains("not a level"), "{why}");
    }

    #[test]
    fn each_validation_error_names_its_field() {
        type Mutate = fn(&mut Config);
        let cases: &[(&str, Mutate)] = &[
            ("node_id", |c| c.node_id = 0),
            ("log", |c| c.log = "verbose".into()),
            ("log", |c| c.log = "smsgw=loud".into()),
            ("log", |c| c.log = "===bad[".into()),
            ("heartbeat_ms", |c| c.heartbeat_ms = u64::MAX),
            ("election_timeout_max_ms", |c| {
                c.election_timeout_max_ms = 600_000
            }),
            ("http", |c| c.http = "abc".into()),
            ("http", |c| c.http = "127.0.0.1".into()),
            ("cluster_addr", |c| c.cluster_addr = "localhost".into()),
            ("data_dir", |c| c.data_dir = Some(PathBuf::new())),
            ("peers", |c| {
                c.peers = "1@127.0.0.1:9080,1@127.0.0.1:9081".into()
            }),
            ("peers", |c| {
                c.peers = "2@127.0.0.1:9080,3@127.0.0.1:9081".into()
            }),
            ("peers", |c| c.peers = "1-127.0.0.1:9080".into()),
            ("peers", |c| c.peers = "x@127.0.0.1:9080".into()),
            ("peers", |c| c.peers = "1@127.0.0.1".into()),
            ("peers", |c| c.peers = "1@127.0.0.1:9080,,2@h:1".into()),
            ("admin_token", |c| c.admin_token = Some("short".into())),
            ("admin_token", |c| {
                c.admin_token = Some("has a space in the token".into())
            }),
            ("log", |c| c.log = "  ".into()),
            ("max_body_bytes", |c| c.max_body_bytes = 1023),
            ("max_body_bytes", |c| {
                c.max_body_bytes = 64 * 1024 * 1024 + 1
            }),
            ("node_queue_limit", |c| c.node_queue_limit = 0),
            ("tenant_queue_limit", |c| c.tenant_queue_limit = 0),
            ("webhook_concurrency", |c| c.webhook_concurrency = 0),
            ("webhook_concurrency", |c| c.webhook_concurrency = 4097),
            ("worker_threads", |c| c.worker_threads = 1025),
            ("store_max_journal_mb", |c| c.store_max_journal_mb = 64),
            ("store_max_journal_mb", |c| c.store_max_journal_mb = 65_537),
            ("heartbeat_ms", |c| c.heartbeat_ms = 0),
            ("election_timeout_min_ms", |c| {
                c.election_timeout_min_ms = 299
            }),
            ("election_timeout_max_ms", |c| {
                c.election_timeout_max_ms = 300
            }),
            ("drain_seconds", |c| c.drain_seconds = Some(3601)),
            ("cluster_addr", |c| c.cluster_addr = c.http.clone()),
            ("cluster_addr", |c| {
                c.http = "0.0.0.0:9080".into();
            }),
            ("peers", |c| {
                c.cluster_addr = "127.0.0.1:22294".into();
                c.peers = "1@127.0.0.1:22296".into();
            }),
            ("peers", |c| {
                c.cluster_addr = "10.0.0.1:9080".into();
                c.peers = "1@10.0.0.2:9080,2@10.0.0.3:9080".into();
            }),
            ("peers", |c| c.peers = "1@node-1.internal:9081".into()),
        ];
        for (field, mutate) in cases {
            let mut cfg = Config::default();
            mutate(&mut cfg);
            let err = cfg.validate().expect_err(field);
            assert_eq!(err.field(), Some(*field), "{err}");
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("invalid config: field '{field}': ")),
                "{shown}"
            );
            assert!(!shown.contains('\n'), "{shown}");
        }
    }

    #[test]
    fn validation_accepts_edges() {
        let mut cfg = Config {
            peers: "2@node-2.internal:9080, 1@127.0.0.1:9080,3@[::1]:9080".into(),
            max_body_bytes: 1024,
            webhook_concurrency: 4096,
            election_timeout_min_ms: 450,
            election_timeout_max_ms: 451,
            drain_seconds: Some(3600),
            admin_token: Some("0123456789abcdef".into()),
            http: "[::1]:8080".into(),
            ..Config::default()
        };
        cfg.validate().expect("edges are valid");
        cfg.max_body_bytes = 64 * 1024 * 1024;
        cfg.validate().expect("64 MiB is valid");
        assert_eq!(cfg.peer_map().len(), 3);
    }

    #[test]
    fn own_peers_entry_may_name_this_node_differently_but_not_elsewhere() {
        for (cluster_addr, entry) in [
            ("127.0.0.1:9080", "1@127.0.0.1:9080"),
            ("0.0.0.0:9080", "1@10.0.0.1:9080"),
            ("[::]:9080", "1@10.0.0.1:9080"),
            ("10.0.0.1:9080", "1@node-1.internal:9080"),
            ("127.0.0.1:0", "1@127.0.0.1:9080"),
        ] {
            let cfg = Config {
                cluster_addr: cluster_addr.into(),
                peers: format!("{entry},2@10.0.0.2:9080"),
                ..Config::default()
            };
            assert_eq!(cfg.validate(), Ok(()), "{cluster_addr} / {entry}");
        }
        let cfg = Config {
            cluster_addr: "127.0.0.1:22294".into(),
            peers: "1@127.0.0.1:22296".into(),
            ..Config::default()
        };
        let shown = cfg.validate().expect_err("port mismatch").to_string();
        assert!(
            shown.contains("1@127.0.0.1:22296 has port 22296, but this node listens on port 22294"),
            "{shown}"
        );
    }

    #[test]
    fn unset_drain_outlasts_the_slowest_response_timeout() {
        use std::time::Duration as D;
        let auto = Config::default();
        assert_eq!(auto.drain_for([]), MIN_AUTO_DRAIN);
        assert_eq!(auto.drain_for([D::from_secs(10)]), D::from_secs(15));
        assert_eq!(
            auto.drain_for([D::from_secs(2), D::from_secs(60), D::from_secs(10)]),
            D::from_secs(65)
        );
        assert_eq!(auto.drain_for([D::from_secs(1)]), MIN_AUTO_DRAIN);
        let set = Config {
            drain_seconds: Some(3),
            ..Config::default()
        };
        assert_eq!(set.drain_for([D::from_secs(60)]), D::from_secs(3));
    }

    #[test]
    fn origins_are_kept_for_errors_found_after_loading() {
        let cfg = Config::load(
            &StartArgs {
                data_dir: Some(PathBuf::from("d")),
                ..StartArgs::default()
            },
            &env(&[("SMSGW_HTTP", "127.0.0.1:22280")]),
        )
        .expect("load");
        assert_eq!(cfg.origins.of("http"), Origin::Env("SMSGW_HTTP".into()));
        assert_eq!(cfg.origins.of("data_dir"), Origin::Flag("--data-dir"));
        assert!(!cfg.origins.is_set("log"));
        let e = ConfigError::at(
            "http",
            &cfg.origins,
            "cannot listen: Address already in use",
        );
        assert_eq!(
            e.to_string(),
            "invalid config: field 'http' (env SMSGW_HTTP): cannot listen: Address already in use"
        );
    }

    #[test]
    fn wrong_type_messages_use_the_right_article() {
        let err = Config::from_toml_str("peers = [1]\n", "x.toml").expect_err("array");
        assert!(
            err.to_string().ends_with("expected a string, got an array"),
            "{err}"
        );
        let err = Config::from_toml_str("node_id = true\n", "x.toml").expect_err("bool");
        assert!(
            err.to_string()
                .ends_with("expected an unsigned integer, got a boolean"),
            "{err}"
        );
    }

    #[test]
    fn http_error_text_matches_contract_example() {
        let cfg = Config {
            http: "abc".into(),
            ..Config::default()
        };
        let err = cfg.validate().expect_err("bad http");
        assert_eq!(
            err.to_string(),
            r#"invalid config: field 'http': "abc" is not an address (want IP:PORT, e.g. 127.0.0.1:8080; a host name is not accepted)"#
        );
    }

    #[test]
    fn admin_token_is_never_shown() {
        let args = StartArgs {
            admin_token: Some("sekrit".into()),
            ..StartArgs::default()
        };
        let err = Config::load(&args, &HashMap::new()).expect_err("short token");
        let shown = err.to_string();
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(
            shown.starts_with("invalid config: field 'admin_token' (flag --admin-token): "),
            "{shown}"
        );
    }

    #[test]
    fn bad_env_value_names_field_and_var() {
        let err = Config::load(&StartArgs::default(), &env(&[("SMSGW_NODE_ID", "x")]))
            .expect_err("bad env");
        assert_eq!(
            err.to_string(),
            r#"invalid config: field 'node_id' (env SMSGW_NODE_ID): "x" is not an unsigned integer"#
        );
        let err = Config::load(
            &StartArgs::default(),
            &env(&[("SMSGW_MAX_BODY_BYTES", "-5")]),
        )
        .expect_err("negative env");
        assert!(
            err.to_string()
                .starts_with("invalid config: field 'max_body_bytes' (env SMSGW_MAX_BODY_BYTES): "),
            "{err}"
        );
    }

    #[test]
    fn env_value_failing_validation_names_the_var() {
        let err = Config::load(&StartArgs::default(), &env(&[("SMSGW_HTTP", "abc")]))
            .expect_err("bad addr");
        assert_eq!(
            err.to_string(),
            r#"invalid config: field 'http' (env SMSGW_HTTP): "abc" is not an address (want IP:PORT, e.g. 127.0.0.1:8080; a host name is not accepted)"#
        );
    }

    #[test]
    fn empty_env_value_counts_as_unset() {
        let cfg = Config::load(
            &StartArgs::default(),
            &env(&[("SMSGW_ADMIN_TOKEN", ""), ("SMSGW_NODE_ID", "")]),
        )
        .expect("empty env ignored");
        assert_eq!(cfg.admin_token, None);
        assert_eq!(cfg.node_id, 1);
    }

    #[test]
    fn unrelated_env_is_ignored() {
        let cfg = Config::load(
            &StartArgs::default(),
            &env(&[
                ("SMSGW_URL", "http://x"),
                ("SMSGW_API_KEY", "k"),
                ("HOME", "/"),
            ]),
        )
        .expect("unrelated env");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn unknown_toml_key_names_key_and_line() {
        let f = toml_file("node_id = 1\n\nfoo = 3\n");
        let label = f.path().display().to_string();
        let err = Config::load(&args_with_file(&f), &HashMap::new()).expect_err("unknown key");
        assert_eq!(
            err.to_string(),
            format!("invalid config: file '{label}': unknown field 'foo' at line 3")
        );
        let err = Config::from_toml_str("[server]\nhttp = \"x\"\n", "x.toml").expect_err("table");
        assert_eq!(
            err.to_string(),
            "invalid config: file 'x.toml': unknown field 'server' at line 1"
        );
    }

    #[test]
    fn wrong_toml_type_names_field_and_line() {
        let err = Config::from_toml_str("log = \"info\"\nnode_id = \"x\"\n", "x.toml")
            .expect_err("string for int");
        assert_eq!(err.field(), Some("node_id"));
        assert!(
            err.to_string()
                .starts_with("invalid config: field 'node_id' (file 'x.toml' line 2): "),
            "{err}"
        );
        let err = Config::from_toml_str("http = 8080\n", "x.toml").expect_err("int for string");
        assert_eq!(err.field(), Some("http"));
        let err = Config::from_toml_str("drain_seconds = -1\n", "x.toml").expect_err("negative");
        assert_eq!(
            err.to_string(),
            "invalid config: field 'drain_seconds' (file 'x.toml' line 1): -1 is not an unsigned integer"
        );
    }

    #[test]
    fn file_value_failing_validation_names_file_and_line() {
        let f = toml_file("\nwebhook_concurrency = 0\n");
        let label = f.path().display().to_string();
        let err = Config::load(&args_with_file(&f), &HashMap::new()).expect_err("zero");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid config: field 'webhook_concurrency' (file '{label}' line 2): \
                 must be between 1 and 4096, got 0"
            )
        );
    }

    #[test]
    fn toml_syntax_error_is_one_line_with_line_number() {
        let err = Config::from_toml_str("node_id = 1\nhttp = \n", "x.toml").expect_err("syntax");
        let shown = err.to_string();
        assert!(
            shown.starts_with("invalid config: file 'x.toml': not valid TOML: "),
            "{shown}"
        );
        assert!(shown.ends_with("at line 2"), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
    }

    #[test]
    fn missing_file_is_named() {
        let args = StartArgs {
            config: Some(PathBuf::from("/nonexistent/missing.toml")),
            ..StartArgs::default()
        };
        let err = Config::load(&args, &HashMap::new()).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "invalid config: file '/nonexistent/missing.toml': cannot read: No such file or directory"
        );
    }

    #[test]
    fn start_flags_parse() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            start: StartArgs,
        }
        let t = T::try_parse_from([
            "t",
            "--config",
            "a.toml",
            "--node-id",
            "2",
            "--peers",
            "1@127.0.0.1:9080,2@127.0.0.1:9081",
            "--election-timeout-min-ms",
            "900",
            "--max-body-bytes",
            "2048",
        ])
        .expect("flags parse");
        assert_eq!(t.start.config, Some(PathBuf::from("a.toml")));
        assert_eq!(t.start.node_id, Some(2));
        assert_eq!(t.start.election_timeout_min_ms, Some(900));
        assert_eq!(t.start.max_body_bytes, Some(2048));
        assert_eq!(t.start.http, None);
        assert!(T::try_parse_from(["t", "--node-id", "x"]).is_err());
    }
}
