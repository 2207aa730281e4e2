//! The `smsgw` command line (contract §1): the argument types of every subcommand, and
//! [`run_admin`], which runs the ones that talk to a node's HTTP API (`cluster`, `channel`,
//! `route`, `tenant`, `send`).
//!
//! - `mod.rs` (this file): clap types only, no I/O.
//! - [`admin`]: each admin command as one [`admin::ApiCall`] (pure, tested), then one HTTP
//!   request, the answer pretty-printed or the contract's error body shown on one line.
//!
//! `start`, `demo` and `sim` are run by `main.rs`; [`run_admin`] returns `-1` for them.

pub mod admin;
pub mod compliance;
pub mod tables;

use std::path::PathBuf;

use crate::config::StartArgs;
use crate::sim::smsc::SmscSimArgs;

pub use admin::run_admin;

/// Base URL the admin commands and `send` use when neither `--url` nor `SMSGW_URL` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// How long the admin commands and `send` wait for an answer unless `--timeout` says.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

/// `smsgw`: a clustered, durable enterprise SMS gateway.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "smsgw", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `smsgw`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run one gateway node (HTTP API + cluster member).
    Start(StartArgs),
    /// One node, two simulated SMSCs, a ready tenant, route and channels: try smsgw in a minute.
    Demo(DemoArgs),
    /// Simulated operator endpoints.
    Sim(SimArgs),
    /// Cluster membership and leadership, against any node.
    Cluster(ClusterArgs),
    /// Operator connections (SMPP and others).
    Channel(ChannelArgs),
    /// Routing rules from destinations to channels.
    Route(RouteArgs),
    /// Tenants (API clients) and their keys.
    Tenant(TenantArgs),
    /// Send one message through a node (smoke test).
    Send(SendArgs),
    /// Content rules, country rules, sender ids, DLT templates, 10DLC campaigns, opt-outs.
    Compliance(compliance::ComplianceArgs),
}

/// Options of `smsgw demo`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DemoArgs {
    /// Data directory of the demo node.
    #[arg(long, value_name = "DIR", default_value = "./data/demo")]
    pub data_dir: PathBuf,
    /// HTTP API listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: String,
    /// Inter-node transport listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9080")]
    pub cluster_addr: String,
    /// Ports of the simulated SMSCs, comma-separated (one channel each).
    #[arg(long, value_name = "PORTS", default_value = "2775,2776")]
    pub smsc_ports: String,
}

impl DemoArgs {
    /// `--smsc-ports` as numbers; the error names the bad item.
    pub fn smsc_port_list(&self) -> Result<Vec<u16>, String> {
        self.smsc_ports
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(format!("--smsc-ports: {s:?} is not a port (1..=65535)")),
            })
            .collect()
    }
}

/// Options of `smsgw sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Which simulator.
    #[command(subcommand)]
    pub command: SimCommand,
}

/// The simulators.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCommand {
    /// A simulated operator SMSC (SMPP server; `--protocol cmpp|smgp|sgip` for the Chinese operators).
    Smsc(SmscSimArgs),
    /// A simulated REST SMS provider for `protocol: "http"` channels.
    HttpProvider(crate::sim::http_provider::HttpProviderArgs),
    /// A chaos/failover simulation run from a scenario file (simulations/*.toml).
    Run(crate::chaos::SimRunArgs),
}

/// How the admin commands reach a node. `--url` and `--token` may be given before or after
/// the sub-subcommand.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AdminConn {
    /// Base URL of any node's HTTP API.
    #[arg(long, env = "SMSGW_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// Admin token (printed at the node's first start, kept in <data-dir>/admin.token).
    #[arg(
        long,
        env = "SMSGW_ADMIN_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables and summaries.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the node.
    #[command(flatten)]
    pub wait: Wait,
}

/// `--timeout`, shared by the admin commands and `send`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Wait {
    /// Seconds to wait for the node's answer (writes wait for a Raft commit).
    #[arg(
        long,
        env = "SMSGW_TIMEOUT",
        global = true,
        value_name = "SECONDS",
        default_value_t = DEFAULT_TIMEOUT_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub timeout: u64,
}

/// `smsgw cluster ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ClusterArgs {
    /// Node to talk to.
    #[command(flatten)]
    pub conn: AdminConn,
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// Cluster admin actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ClusterCommand {
    /// Leader, term and members (GET /admin/v1/cluster).
    Status,
    /// Just the members.
    Nodes,
    /// Add a member (joins as learner, then voter).
    AddNode {
        /// The new node's id.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        id: u64,
        /// Its inter-node transport address (its cluster_addr), HOST:PORT.
        #[arg(long, value_name = "ADDR")]
        addr: String,
        /// Its HTTP API address, if the node cannot tell by itself.
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
    },
    /// Remove a member.
    RemoveNode {
        /// The node's id.
        #[arg(allow_negative_numbers = true)]
        id: u64,
    },
    /// Ask the leader to hand leadership to another voter.
    TransferLeader {
        /// The node that should lead.
        #[arg(allow_negative_numbers = true)]
        id: u64,
    },
}

/// `smsgw channel ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ChannelArgs {
    /// Node to talk to.
    #[command(flatten)]
    pub conn: AdminConn,
    /// What to do.
    #[command(subcommand)]
    pub command: ChannelCommand,
}

/// Channel admin actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ChannelCommand {
    /// Every channel with its state and stats.
    List,
    /// Add an operator connection.
    Add(ChannelAddArgs),
    /// Change a channel in place (PATCH): only the given fields change; session settings
    /// (host, port, credentials, window, bind) rebind it, tps and cost do not.
    Update(ChannelUpdateArgs),
    /// Remove a channel (its binds are closed).
    Remove {
        /// Channel id.
        id: String,
    },
    /// Stop sending on a channel; in-flight submits finish, binds close cleanly.
    Drain {
        /// Channel id.
        id: String,
    },
    /// Resume a drained channel.
    Undrain {
        /// Channel id.
        id: String,
    },
}

/// Operator protocol of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// SMPP 3.4.
    Smpp,
    /// CMPP 2.0/3.0 (China Mobile).
    Cmpp,
    /// SGIP 1.2 (China Unicom).
    Sgip,
    /// SMGP 3.0 (China Telecom).
    Smgp,
    /// HTTP operator API.
    Http,
}

/// SMPP bind type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// One bind sends and receives.
    Transceiver,
    /// Send only.
    Transmitter,
}

/// Options of `smsgw channel add`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ChannelAddArgs {
    /// Channel id, e.g. smsc-a.
    #[arg(long)]
    pub id: String,
    /// Operator protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Smpp)]
    pub protocol: Protocol,
    /// Operator host.
    #[arg(long)]
    pub host: String,
    /// Operator port.
    #[arg(long, allow_negative_numbers = true)]
    pub port: u16,
    /// Bind system_id (CMPP: the SP id).
    #[arg(long)]
    pub system_id: String,
    /// Bind password (CMPP: the shared secret).
    #[arg(long)]
    pub password: String,
    /// SMPP system_type.
    #[arg(long)]
    pub system_type: Option<String>,
    /// Submits per second, at most (server default 100).
    #[arg(long, allow_negative_numbers = true)]
    pub tps: Option<u32>,
    /// Submits outstanding per bind, at most (server default 10).
    #[arg(long, allow_negative_numbers = true)]
    pub window: Option<u32>,
    /// Binds to open (server default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub binds: Option<u32>,
    /// Bind type (server default transceiver).
    #[arg(long, value_enum)]
    pub bind: Option<BindMode>,
    /// Seconds between enquire_link keepalives (server default 30).
    #[arg(long, allow_negative_numbers = true)]
    pub enquire_link_seconds: Option<u32>,
    /// Price per part, `default=PRICE` and/or `+PREFIX=PRICE` comma-separated, e.g.
    /// `default=0.004,+49=0.006` (used by least_cost unless the price list names the channel).
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "KEY=PRICE", value_parser = cost_entry)]
    pub cost: Vec<CostArg>,
    /// Protocol options as a JSON object, e.g. '{"udh": "sar", "dlr_id_format": "hex"}';
    /// an `http` channel's request template goes here (README, "HTTP upstream channels").
    #[arg(long, value_parser = json_object)]
    pub options: Option<serde_json::Value>,
}

/// Options of `smsgw channel update` (PATCH): only the given fields change; at least one
/// is needed.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct ChannelUpdateArgs {
    /// Channel id.
    pub id: String,
    /// Operator host.
    #[arg(long, group = "change")]
    pub host: Option<String>,
    /// Operator port.
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub port: Option<u16>,
    /// Bind system_id (CMPP: the SP id).
    #[arg(long, group = "change")]
    pub system_id: Option<String>,
    /// Bind password (CMPP: the shared secret).
    #[arg(long, group = "change")]
    pub password: Option<String>,
    /// SMPP system_type.
    #[arg(long, group = "change")]
    pub system_type: Option<String>,
    /// Submits per second, at most.
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub tps: Option<u32>,
    /// Submits outstanding per bind, at most.
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub window: Option<u32>,
    /// Binds to open.
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub binds: Option<u32>,
    /// Bind type.
    #[arg(long, group = "change", value_enum)]
    pub bind: Option<BindMode>,
    /// Seconds between enquire_link keepalives.
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub enquire_link_seconds: Option<u32>,
    /// Prices to set, `default=PRICE` and/or `+PREFIX=PRICE` comma-separated (others stay).
    #[arg(long, group = "change", num_args = 1.., value_delimiter = ',', value_name = "KEY=PRICE", value_parser = cost_entry)]
    pub cost: Vec<CostArg>,
    /// Protocol options to set, a JSON object merged into the channel's (`null` removes
    /// one), e.g. '{"dlr_timeout_seconds": 3600, "udh": null}'.
    #[arg(long, group = "change", value_parser = json_object)]
    pub options: Option<serde_json::Value>,
}

/// A flag's value that must be a JSON object.
fn json_object(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err("expected a JSON object like '{\"udh\": \"sar\"}'".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// `smsgw route ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RouteArgs {
    /// Node to talk to.
    #[command(flatten)]
    pub conn: AdminConn,
    /// What to do.
    #[command(subcommand)]
    pub command: RouteCommand,
}

/// Route admin actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum RouteCommand {
    /// Every route.
    List,
    /// Add a route; the most specific matching route wins, one with no match is the default.
    Add(RouteAddArgs),
    /// Change a route's channels, strategy, min success rate or A/B test in place.
    Update(RouteUpdateArgs),
    /// Remove a route.
    Remove {
        /// Route id.
        id: String,
    },
}

/// How a route picks among its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// First channel that is up, in the order given.
    Priority,
    /// Spread by weight.
    Weighted,
    /// Cheapest channel.
    #[value(name = "least_cost")]
    LeastCost,
    /// Best recent delivery rate.
    #[value(name = "success_rate")]
    SuccessRate,
}

/// Message category, for route matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// One-time passwords.
    Otp,
    /// Transactional notifications.
    Transactional,
    /// Marketing.
    Marketing,
}

/// Options of `smsgw route add`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RouteAddArgs {
    /// Route id.
    #[arg(long)]
    pub id: String,
    /// Destination prefixes to match, e.g. `--prefix +49 +43` or `--prefix +49,+43`.
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "PREFIX")]
    pub prefix: Vec<String>,
    /// Destination country to match (ISO alpha-2, e.g. DE).
    #[arg(long)]
    pub country: Option<String>,
    /// Only this tenant's messages.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only messages of this category.
    #[arg(long, value_enum)]
    pub category: Option<Category>,
    /// Channels in priority order, `id[:weight]` comma-separated, e.g. `ch-a:3,ch-b:1`
    /// (weight 0: failover only).
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',', value_name = "ID[:WEIGHT]", value_parser = route_channel)]
    pub channels: Vec<RouteChannelArg>,
    /// How to pick among the channels.
    #[arg(long, value_enum, default_value_t = Strategy::Priority)]
    pub strategy: Strategy,
    /// With least_cost: the cheapest channel whose success rate is at least this (0..1).
    #[arg(long, allow_negative_numbers = true, value_parser = share)]
    pub min_success_rate: Option<Share>,
    /// A/B test.
    #[command(flatten)]
    pub ab: AbArgs,
}

/// The A/B flags of `route add` and `route update`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AbArgs {
    /// Percent of messages (0..100) sent to variant B (needs --ab-channels).
    #[arg(long, requires = "ab_channels", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub ab_split: Option<u32>,
    /// Variant B's channels, `id[:weight]` comma-separated (needs --ab-split).
    #[arg(long, requires = "ab_split", num_args = 1.., value_delimiter = ',', value_name = "ID[:WEIGHT]", value_parser = route_channel)]
    pub ab_channels: Option<Vec<RouteChannelArg>>,
    /// Variant B's strategy (default priority).
    #[arg(long, requires = "ab_split", value_enum)]
    pub ab_strategy: Option<Strategy>,
}

/// Options of `smsgw route update` (PATCH): only the given fields change.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RouteUpdateArgs {
    /// Route id (as `route remove ID` takes it).
    pub id: String,
    /// New channels in priority order, `id[:weight]` comma-separated.
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "ID[:WEIGHT]", value_parser = route_channel)]
    pub channels: Option<Vec<RouteChannelArg>>,
    /// New strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// New minimum success rate for least_cost (0..1).
    #[arg(long, allow_negative_numbers = true, value_parser = share, conflicts_with = "no_min_success_rate")]
    pub min_success_rate: Option<Share>,
    /// Remove the minimum success rate.
    #[arg(long)]
    pub no_min_success_rate: bool,
    /// New A/B test (replaces the current one).
    #[command(flatten)]
    pub ab: AbArgs,
    /// End the A/B test.
    #[arg(long, conflicts_with = "ab_split")]
    pub no_ab: bool,
}

/// One `id[:weight]` of `--channels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChannelArg {
    /// Channel id.
    pub id: String,
    /// Weight for `weighted` (server default 1).
    pub weight: Option<u32>,
}

/// Parses `id[:weight]`.
fn route_channel(text: &str) -> Result<RouteChannelArg, String> {
    let (id, weight) = match text.rsplit_once(':') {
        Some((id, w)) => (
            id,
            Some(w.parse::<u32>().map_err(|_| {
                format!("{text:?}: the weight after ':' must be a whole number ≥ 0")
            })?),
        ),
        None => (text, None),
    };
    if id.is_empty() {
        return Err(format!(
            "{text:?}: expected a channel id, e.g. ch-a or ch-a:3"
        ));
    }
    Ok(RouteChannelArg {
        id: id.to_string(),
        weight,
    })
}

/// A share 0..1 or a price ≥ 0, as given on the command line (finite, never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(pub f64);

// Parsed values are finite, so equality is an equivalence.
impl Eq for Share {}

/// Parses a share 0..1.
fn share(text: &str) -> Result<Share, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(Share(v)),
        _ => Err(format!("{text:?}: a share 0..1, e.g. 0.95")),
    }
}

/// One `key=price` of `channel add --cost` (key `default` or a prefix like `+49`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostArg {
    /// `default` or an E.164 prefix.
    pub key: String,
    /// Price per part.
    pub price: Share,
}

/// Parses `key=price`.
fn cost_entry(text: &str) -> Result<CostArg, String> {
    let bad = || format!("{text:?}: expected default=PRICE or +PREFIX=PRICE, e.g. default=0.004");
    let (key, price) = text.split_once('=').ok_or_else(bad)?;
    let price: f64 = price.parse().map_err(|_| bad())?;
    if key.is_empty() || !price.is_finite() || price < 0.0 {
        return Err(bad());
    }
    Ok(CostArg {
        key: key.to_string(),
        price: Share(price),
    })
}

/// `smsgw tenant ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TenantArgs {
    /// Node to talk to.
    #[command(flatten)]
    pub conn: AdminConn,
    /// What to do.
    #[command(subcommand)]
    pub command: TenantCommand,
}

/// Tenant admin actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TenantCommand {
    /// Every tenant.
    List,
    /// Add a tenant; prints its API key and webhook secret (shown once).
    Add(TenantAddArgs),
    /// One tenant.
    Show {
        /// Tenant id.
        id: String,
    },
    /// Change a tenant's settings (PATCH): only the flags given change; prints the tenant.
    Update(TenantUpdateArgs),
    /// Remove a tenant.
    Remove {
        /// Tenant id.
        id: String,
    },
    /// Issue a new API key (prints it once).
    RotateKey {
        /// Tenant id.
        id: String,
    },
    /// Issue a new webhook secret (prints it once); the old one also signs webhooks
    /// (a second `v1=`) for the overlap, so receivers can switch without losing events.
    RotateWebhookSecret {
        /// Tenant id.
        id: String,
        /// How long the old secret keeps signing, 0..=604800 [default: 86400]; 0 for a
        /// leaked secret.
        #[arg(long)]
        overlap_seconds: Option<u64>,
    },
}

/// Options of `smsgw tenant add`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TenantAddArgs {
    /// Tenant id, e.g. acme.
    #[arg(long)]
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Messages per second allowed.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub per_second: u32,
    /// Burst above the rate [default: --per-second].
    #[arg(long, allow_negative_numbers = true)]
    pub burst: Option<u32>,
    /// Default status webhook URL.
    #[arg(long)]
    pub callback_url: Option<String>,
}

/// Options of `smsgw tenant update`: each flag is one field of
/// `PATCH /admin/v1/tenants/{id}`; at least one is needed. A list flag replaces the whole
/// list; an empty value (`--sender-pool ''`) empties it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct TenantUpdateArgs {
    /// Tenant id.
    pub id: String,
    /// Display name.
    #[arg(long, group = "change")]
    pub name: Option<String>,
    /// Messages per second allowed (the burst is kept unless --burst is given).
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub per_second: Option<u32>,
    /// Burst above the rate (the rate is kept unless --per-second is given).
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub burst: Option<u32>,
    /// Default status webhook URL.
    #[arg(long, group = "change", conflicts_with = "no_callback_url")]
    pub callback_url: Option<String>,
    /// Remove the default status webhook URL.
    #[arg(long, group = "change")]
    pub no_callback_url: bool,
    /// Sender ids for every country, the first being the default `from` (comma-separated).
    #[arg(long, group = "change", value_delimiter = ',', num_args = 1)]
    pub senders: Option<Vec<String>>,
    /// Longest message in parts (1 to 255).
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub max_parts: Option<u32>,
    /// Messages waiting to be sent at most.
    #[arg(long, group = "change", allow_negative_numbers = true)]
    pub queue_limit: Option<u64>,
    /// Replace look-alike characters with GSM ones when that avoids UCS-2 (true/false).
    #[arg(long, group = "change")]
    pub smart_encoding: Option<bool>,
    /// Frequency caps per recipient, CATEGORY:MAX/SECONDS (comma-separated), e.g.
    /// otp:5/600,marketing:1/86400.
    #[arg(long, group = "change", value_delimiter = ',', num_args = 1)]
    pub frequency_caps: Option<Vec<String>>,
    /// Pool numbers used where alphanumeric senders are forbidden (comma-separated).
    #[arg(long, group = "change", value_delimiter = ',', num_args = 1)]
    pub sender_pool: Option<Vec<String>>,
    /// Categories the opt-out list applies to (comma-separated: otp, transactional,
    /// marketing).
    #[arg(long, group = "change", value_delimiter = ',', num_args = 1)]
    pub opt_out_categories: Option<Vec<String>>,
}

/// Options of `smsgw send`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SendArgs {
    /// Recipient, E.164 (e.g. +4915112345678).
    #[arg(long)]
    pub to: String,
    /// Message text, UTF-8.
    #[arg(long)]
    pub text: String,
    /// Sender id (default: the tenant's or route's).
    #[arg(long)]
    pub from: Option<String>,
    /// Echoed back in status and webhooks.
    #[arg(long)]
    pub client_ref: Option<String>,
    /// Tenant API key.
    #[arg(
        long,
        env = "SMSGW_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Base URL of any node's HTTP API.
    #[arg(long, env = "SMSGW_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// How long to wait for the node.
    #[command(flatten)]
    pub wait: Wait,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn parse(line: &[&str]) -> Cli {
        let mut argv = vec!["smsgw"];
        argv.extend_from_slice(line);
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn cli_debug_assert() {
        Cli::command().debug_assert();
    }

    #[test]
    fn start_with_flags() {
        let Command::Start(a) = parse(&["start", "--config", "n.toml", "--node-id", "3"]).command
        else {
            panic!("not start");
        };
        assert_eq!(a.config, Some(PathBuf::from("n.toml")));
        assert_eq!(a.node_id, Some(3));
    }

    #[test]
    fn demo_defaults() {
        let Command::Demo(a) = parse(&["demo"]).command else {
            panic!("not demo");
        };
        assert_eq!(a.data_dir, PathBuf::from("./data/demo"));
        assert_eq!(a.http, "127.0.0.1:8080");
        assert_eq!(a.cluster_addr, "127.0.0.1:9080");
        assert_eq!(a.smsc_port_list(), Ok(vec![2775, 2776]));
        let bad = DemoArgs {
            smsc_ports: "2775,x".into(),
            ..a
        };
        assert!(bad.smsc_port_list().is_err());
    }

    #[test]
    fn sim_smsc() {
        let Command::Sim(SimArgs {
            command: SimCommand::Smsc(a),
        }) = parse(&["sim", "smsc", "--listen", "127.0.0.1:2999"]).command
        else {
            panic!("not sim smsc");
        };
        assert_eq!(a.listen, "127.0.0.1:2999");
    }

    #[test]
    fn sim_http_provider() {
        let Command::Sim(SimArgs {
            command: SimCommand::HttpProvider(a),
        }) = parse(&[
            "sim",
            "http-provider",
            "--listen",
            "127.0.0.1:2998",
            "--throttle-first",
            "3",
            "--reject-prefix",
            "+4930",
        ])
        .command
        else {
            panic!("not sim http-provider");
        };
        assert_eq!(
            (
                a.listen.as_str(),
                a.throttle_first,
                a.reject_prefix.as_deref()
            ),
            ("127.0.0.1:2998", 3, Some("+4930"))
        );
    }

    #[test]
    fn url_and_token_before_or_after_the_action() {
        for line in [
            &[
                "cluster",
                "--url",
                "http://n2:8080",
                "--token",
                "t",
                "status",
            ][..],
            &[
                "cluster",
                "status",
                "--url",
                "http://n2:8080",
                "--token",
                "t",
            ][..],
        ] {
            let Command::Cluster(a) = parse(line).command else {
                panic!("not cluster");
            };
            assert_eq!(a.command, ClusterCommand::Status);
            assert_eq!(a.conn.url, "http://n2:8080");
            assert_eq!(a.conn.token.as_deref(), Some("t"));
        }
    }

    #[test]
    fn cluster_add_node() {
        let Command::Cluster(a) = parse(&[
            "cluster",
            "add-node",
            "--id",
            "4",
            "--addr",
            "10.0.0.4:9080",
        ])
        .command
        else {
            panic!("not cluster");
        };
        assert_eq!(
            a.command,
            ClusterCommand::AddNode {
                id: 4,
                addr: "10.0.0.4:9080".into(),
                http: None
            }
        );
        assert!(Cli::try_parse_from(["smsgw", "cluster", "remove-node", "x"]).is_err());
    }

    #[test]
    fn channel_add() {
        let Command::Channel(a) = parse(&[
            "channel",
            "add",
            "--id",
            "smsc-a",
            "--host",
            "127.0.0.1",
            "--port",
            "2775",
            "--system-id",
            "smppclient",
            "--password",
            "pw",
            "--tps",
            "50",
            "--bind",
            "transmitter",
        ])
        .command
        else {
            panic!("not channel");
        };
        let ChannelCommand::Add(add) = a.command else {
            panic!("not add");
        };
        assert_eq!(add.protocol, Protocol::Smpp);
        assert_eq!(add.port, 2775);
        assert_eq!(add.tps, Some(50));
        assert_eq!(add.bind, Some(BindMode::Transmitter));
        assert_eq!(add.window, None);
        let missing = Cli::try_parse_from(["smsgw", "channel", "add", "--id", "x"]);
        assert!(missing.is_err());
    }

    #[test]
    fn route_add_prefixes_and_channels() {
        for line in [
            &[
                "route",
                "add",
                "--id",
                "de",
                "--prefix",
                "+49",
                "+43",
                "--channels",
                "a,b",
                "--strategy",
                "least_cost",
            ][..],
            &[
                "route",
                "add",
                "--id",
                "de",
                "--prefix",
                "+49,+43",
                "--channels",
                "a",
                "b",
                "--strategy",
                "least_cost",
            ][..],
        ] {
            let Command::Route(a) = parse(line).command else {
                panic!("not route");
            };
            let RouteCommand::Add(add) = a.command else {
                panic!("not add");
            };
            assert_eq!(add.prefix, ["+49", "+43"]);
            let ids: Vec<&str> = add.channels.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(ids, ["a", "b"]);
            assert_eq!(add.strategy, Strategy::LeastCost);
        }
        let Command::Route(a) = parse(&["route", "add", "--id", "d", "--channels", "a"]).command
        else {
            panic!("not route");
        };
        let RouteCommand::Add(add) = a.command else {
            panic!("not add");
        };
        assert!(add.prefix.is_empty());
        assert_eq!(add.strategy, Strategy::Priority);
        assert!(Cli::try_parse_from(["smsgw", "route", "add", "--id", "d"]).is_err());
    }

    #[test]
    fn tenant_actions() {
        let Command::Tenant(a) =
            parse(&["tenant", "add", "--id", "acme", "--name", "ACME"]).command
        else {
            panic!("not tenant");
        };
        let TenantCommand::Add(add) = a.command else {
            panic!("not add");
        };
        assert_eq!(add.per_second, 100);
        assert_eq!(add.burst, None);
        let Command::Tenant(a) = parse(&["tenant", "rotate-key", "acme"]).command else {
            panic!("not tenant");
        };
        assert_eq!(a.command, TenantCommand::RotateKey { id: "acme".into() });
        let Command::Tenant(a) = parse(&[
            "tenant",
            "rotate-webhook-secret",
            "acme",
            "--overlap-seconds",
            "0",
        ])
        .command
        else {
            panic!("not tenant");
        };
        assert_eq!(
            a.command,
            TenantCommand::RotateWebhookSecret {
                id: "acme".into(),
                overlap_seconds: Some(0)
            }
        );
    }

    #[test]
    fn send_flags() {
        let Command::Send(a) = parse(&[
            "send",
            "--to",
            "+4915112345678",
            "--text",
            "hi",
            "--api-key",
            "k",
            "--url",
            "http://n1:8080",
        ])
        .command
        else {
            panic!("not send");
        };
        assert_eq!(a.to, "+4915112345678");
        assert_eq!(a.api_key.as_deref(), Some("k"));
        assert_eq!(a.url, "http://n1:8080");
        assert!(Cli::try_parse_from(["smsgw", "send", "--to", "+1"]).is_err());
    }
}
