//! The scenario file (`simulations/<name>.toml`): the cluster to start, the load to drive,
//! the faults to inject and when, and the targets the run is judged against.
//!
//! Everything has a bound: `duration_s` of load (and `max_messages`), `settle_s` for the
//! liveness phase. Unknown keys are errors so a typo does not silently run another test.

use serde::Deserialize;

/// One chaos scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in the report path and the JSON line.
    pub name: String,
    /// What the scenario shows, one or two sentences (goes into the report).
    #[serde(default)]
    pub description: String,
    /// RNG seed; 0 = pick one (printed either way). `--seed` overrides it.
    #[serde(default)]
    pub seed: u64,
    /// Gateway nodes to start (1..=7).
    #[serde(default = "d_nodes")]
    pub nodes: u32,
    /// Seconds of load (faults are scheduled inside this window).
    pub duration_s: f64,
    /// Send requests per second offered by the load generator.
    #[serde(default = "d_rate")]
    pub rate: u32,
    /// Requests in flight at most.
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    /// Stop offering load after this many requests (a second bound besides time).
    #[serde(default = "d_max_messages")]
    pub max_messages: u64,
    /// Upper bound of the liveness phase after the load and every fault stopped.
    #[serde(default = "d_settle")]
    pub settle_s: f64,
    /// A graceful scenario (drain, rolling restart): duplicates must be exactly 0.
    #[serde(default)]
    pub graceful: bool,
    /// The client retries a failed request once on another node.
    #[serde(default = "d_true")]
    pub client_retry: bool,
    /// Per-request client timeout, ms (a timeout is an *unknown* outcome).
    #[serde(default = "d_timeout")]
    pub request_timeout_ms: u64,
    /// Simulated SMSCs (one channel each, all in the default route in priority order).
    #[serde(default = "d_one")]
    pub smscs: u32,
    /// Channel settings.
    #[serde(default)]
    pub channel: ChannelSpec,
    /// SMSC simulator settings at start.
    #[serde(default)]
    pub smsc: SmscSpec,
    /// The tenant's rate limit.
    #[serde(default)]
    pub tenant: TenantSpec,
    /// Raft timing of the nodes.
    #[serde(default)]
    pub raft: RaftSpec,
    /// Pass/fail targets beyond the invariants.
    #[serde(default)]
    pub targets: Targets,
    /// The fault schedule.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
}

fn d_nodes() -> u32 {
    3
}
fn d_rate() -> u32 {
    50
}
fn d_concurrency() -> usize {
    32
}
fn d_max_messages() -> u64 {
    100_000
}
fn d_settle() -> f64 {
    60.0
}
fn d_true() -> bool {
    true
}
fn d_timeout() -> u64 {
    5000
}
fn d_one() -> u32 {
    1
}

/// Channel settings used for every simulated SMSC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelSpec {
    /// Binds per channel.
    pub binds: u32,
    /// Submits per second per channel.
    pub tps: u32,
    /// Window per bind.
    pub window: u32,
    /// enquire_link interval, s.
    pub enquire_link_seconds: u32,
}

impl Default for ChannelSpec {
    fn default() -> Self {
        ChannelSpec {
            binds: 1,
            tps: 1000,
            window: 32,
            enquire_link_seconds: 5,
        }
    }
}

/// SMSC simulator settings at start (receipt chaos lives here).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmscSpec {
    /// Delay before each submit_sm_resp, ms.
    pub submit_latency_ms: u64,
    /// Delay before the receipt, ms.
    pub dlr_delay_ms: u64,
    /// Receipt outcome mix (`smsgw sim smsc --dlr-mix`).
    pub dlr_mix: String,
    /// Share answered 0x58 from the start.
    pub throttle_rate: f64,
    /// Receipts before submit responses (receipt chaos).
    pub receipts_before_responses: bool,
    /// The receipt writes the id in the other format (receipt chaos).
    pub mixed_id_format: bool,
}

impl Default for SmscSpec {
    fn default() -> Self {
        SmscSpec {
            submit_latency_ms: 2,
            dlr_delay_ms: 300,
            dlr_mix: "delivered=100".into(),
            throttle_rate: 0.0,
            receipts_before_responses: false,
            mixed_id_format: false,
        }
    }
}

/// The tenant every request is sent as.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSpec {
    /// Messages per second allowed.
    pub per_second: u32,
    /// Burst.
    pub burst: u32,
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec {
            per_second: 100_000,
            burst: 100_000,
        }
    }
}

/// Raft timing handed to every node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSpec {
    /// Election timeout lower bound, ms.
    pub election_timeout_min_ms: u64,
    /// Election timeout upper bound, ms.
    pub election_timeout_max_ms: u64,
    /// Heartbeat, ms.
    pub heartbeat_ms: u64,
}

impl Default for RaftSpec {
    fn default() -> Self {
        // The node's own defaults: LAN timings, under which a dead leader is replaced about
        // 1 s after its last heartbeat (`config::Config::default`).
        let node = crate::config::Config::default();
        RaftSpec {
            election_timeout_min_ms: node.election_timeout_min_ms,
            election_timeout_max_ms: node.election_timeout_max_ms,
            heartbeat_ms: node.heartbeat_ms,
        }
    }
}

/// Targets (issue 8 part 7); a miss fails the run like a broken invariant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Targets {
    /// Leader failover p99, ms.
    pub leader_failover_ms_p99: f64,
    /// Bind failover p99, ms.
    pub bind_failover_ms_p99: f64,
    /// Availability with client retry, 0..=1.
    pub availability: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            leader_failover_ms_p99: 2000.0,
            bind_failover_ms_p99: 5000.0,
            availability: 0.0,
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultSpec {
    /// Seconds after the load started.
    pub at_s: f64,
    /// What to do.
    #[serde(flatten)]
    pub fault: Fault,
}

/// Which node a fault hits, resolved when it fires: `leader`, `follower`, `bind_owner`
/// (a node holding a bound bind, not the leader when another one does), `random`, or `node:N`.
pub type Target = String;

/// Direction of a link fault: `both`, `out` (what the node sends), `in` (what it receives).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Both directions.
    #[default]
    Both,
    /// Only what the target node sends.
    Out,
    /// Only what the target node receives.
    In,
}

/// How a proxy breaks a link.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    /// Bytes stop flowing; connections stay open (a silent partition).
    #[default]
    Hang,
    /// Every connection is reset and new ones are refused.
    Reset,
}

/// The fault kinds (issue 8 part 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// kill -9, restarted after `restart_after_s` (never when absent).
    Kill {
        /// Which node.
        target: Target,
        /// Restart delay.
        restart_after_s: Option<f64>,
    },
    /// SIGSTOP, SIGCONT after `duration_s`.
    Pause {
        /// Which node.
        target: Target,
        /// How long.
        duration_s: f64,
    },
    /// SIGTERM (graceful drain), restarted after `restart_after_s`.
    Stop {
        /// Which node.
        target: Target,
        /// Restart delay.
        restart_after_s: Option<f64>,
    },
    /// SIGTERM and restart of every node in turn, `gap_s` apart (waits for each to be ready).
    RollingRestart {
        /// Pause between nodes.
        gap_s: f64,
    },
    /// kill -9 of every node at once, all restarted after `restart_after_s`.
    CrashAll {
        /// Restart delay.
        restart_after_s: f64,
    },
    /// kill -9 of a random node every `every_s` seconds, `count` times, each restarted
    /// after `restart_after_s`.
    KillEvery {
        /// Period.
        every_s: f64,
        /// How many kills.
        count: u32,
        /// Restart delay.
        restart_after_s: f64,
    },
    /// Cuts the target from every peer through the link proxies.
    Isolate {
        /// Which node.
        target: Target,
        /// How long.
        duration_s: f64,
        /// Which way.
        #[serde(default)]
        direction: Direction,
        /// Hang or reset.
        #[serde(default)]
        mode: LinkMode,
    },
    /// Every inter-node link gets latency, a bandwidth cap and/or periodic resets.
    FlakyLinks {
        /// How long.
        duration_s: f64,
        /// Added per chunk, ms.
        #[serde(default)]
        latency_ms: u64,
        /// Bytes per second per connection, 0 = unlimited.
        #[serde(default)]
        bandwidth_bps: u64,
        /// Reset every link this often (0 = never).
        #[serde(default)]
        reset_every_s: f64,
    },
    /// The SMSC link(s) go down (`reset`) or silent (`hang`).
    SmscOutage {
        /// How long.
        duration_s: f64,
        /// Hang or reset.
        #[serde(default)]
        mode: LinkMode,
    },
    /// The SMSC link(s) go down and up every `period_s` (half down, half up).
    SmscFlap {
        /// How long.
        duration_s: f64,
        /// One down+up cycle.
        period_s: f64,
    },
    /// The simulators answer a share of submits 0x58 / 0x45 / not at all.
    SmscStorm {
        /// How long.
        duration_s: f64,
        /// Share answered ESME_RTHROTTLED.
        #[serde(default)]
        throttle_rate: f64,
        /// Share answered ESME_RSUBMITFAIL.
        #[serde(default)]
        error_rate: f64,
        /// Share accepted but never answered.
        #[serde(default)]
        lose_response_rate: f64,
    },
    /// The webhook receiver answers 500 (`fail`) or slowly (`slow`).
    Webhook {
        /// How long.
        duration_s: f64,
        /// `fail` or `slow`.
        mode: String,
        /// Delay for `slow`, ms.
        #[serde(default)]
        delay_ms: u64,
    },
    /// Raft log appends fail with ENOSPC on the target; the node is restarted at the end
    /// if it died.
    DiskFull {
        /// Which node.
        target: Target,
        /// How long.
        duration_s: f64,
    },
    /// The target's clock is off by `skew_ms`.
    ClockSkew {
        /// Which node.
        target: Target,
        /// Offset, ms (may be negative).
        skew_ms: i64,
        /// How long.
        duration_s: f64,
    },
    /// Starts one more node and adds it to the cluster (learner, then voter).
    AddNode {},
    /// Removes the target from the cluster and stops it.
    RemoveNode {
        /// Which node.
        target: Target,
    },
}

impl Fault {
    /// Short label for the report and charts.
    pub fn label(&self) -> String {
        match self {
            Fault::Kill { target, .. } => format!("kill -9 {target}"),
            Fault::Pause { target, .. } => format!("SIGSTOP {target}"),
            Fault::Stop { target, .. } => format!("SIGTERM {target}"),
            Fault::RollingRestart { .. } => "rolling restart".into(),
            Fault::CrashAll { .. } => "crash all".into(),
            Fault::KillEvery { .. } => "kill -9 (periodic)".into(),
            Fault::Isolate { target, .. } => format!("isolate {target}"),
            Fault::FlakyLinks { .. } => "flaky links".into(),
            Fault::SmscOutage { .. } => "SMSC outage".into(),
            Fault::SmscFlap { .. } => "SMSC flapping".into(),
            Fault::SmscStorm { .. } => "SMSC storm".into(),
            Fault::Webhook { mode, .. } => format!("webhook {mode}"),
            Fault::DiskFull { target, .. } => format!("disk full {target}"),
            Fault::ClockSkew { target, .. } => format!("clock skew {target}"),
            Fault::AddNode {} => "add node".into(),
            Fault::RemoveNode { target } => format!("remove {target}"),
        }
    }

    /// A crash or partition (may leave a duplicate in the ambiguity window), as opposed
    /// to a graceful action.
    pub fn is_abrupt(&self) -> bool {
        !matches!(
            self,
            Fault::Stop { .. }
                | Fault::RollingRestart { .. }
                | Fault::Webhook { .. }
                | Fault::AddNode {}
                | Fault::RemoveNode { .. }
                | Fault::ClockSkew { .. }
        )
    }
}

/// Errors reading a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// The TOML is not a valid scenario.
    #[error("{0}: {1}")]
    Parse(String, toml::de::Error),
    /// A value is out of range.
    #[error("{0}: {1}")]
    Invalid(String, String),
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read(p.clone(), e))?;
        let s: Scenario = toml::from_str(&text).map_err(|e| ScenarioError::Parse(p.clone(), e))?;
        s.check().map_err(|m| ScenarioError::Invalid(p, m))?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=7).contains(&self.nodes) {
            return Err(format!("nodes must be 1..=7, got {}", self.nodes));
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 3600.0) {
            return Err("duration_s must be within (0, 3600]".into());
        }
        if !(self.settle_s > 0.0 && self.settle_s <= 600.0) {
            return Err("settle_s must be within (0, 600]".into());
        }
        if self.rate == 0 || self.concurrency == 0 || self.max_messages == 0 {
            return Err("rate, concurrency and max_messages must be positive".into());
        }
        if !(1..=4).contains(&self.smscs) {
            return Err("smscs must be 1..=4".into());
        }
        for f in &self.faults {
            if !(f.at_s >= 0.0 && f.at_s < self.duration_s) {
                return Err(format!(
                    "fault {:?} at_s {} is outside the load window",
                    f.fault.label(),
                    f.at_s
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("simulations dir").flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 17, "14 scenarios + 3 CI ones, found {n}");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let bad = |t: &str| {
            let s: Result<Scenario, _> = toml::from_str(t);
            match s {
                Err(e) => e.to_string(),
                Ok(s) => s.check().err().unwrap_or_default(),
            }
        };
        assert!(bad("name='x'\nduration_s=10\nnodez=3").contains("nodez"));
        assert!(bad("name='x'\nduration_s=10\nnodes=9").contains("nodes"));
        let f = "name='x'\nduration_s=10\n[[fault]]\nat_s=20\nkind='kill'\ntarget='leader'";
        assert!(bad(f).contains("outside"));
        let f = "name='x'\nduration_s=10\n[[fault]]\nat_s=2\nkind='explode'";
        assert!(!bad(f).is_empty());
    }
}
