//! One chaos run from start to verdict: start the SMSC simulators (each behind a fault
//! proxy), the webhook receiver, N nodes whose every inter-node link goes through its own
//! fault proxy; set up a tenant, channels and a route; drive load while the fault schedule
//! runs and a monitor samples leader and binds every 100 ms; heal; run the bounded
//! liveness phase; judge with the oracle; write the report; stop everything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Mutex as AsyncMutex;

use super::load::{self, Load, LoadPlan};
use super::oracle::{self, FaultEvent, LedgerEntry, Liveness};
use super::ports::PortRange;
use super::procs::{NodeProc, NodeSpec, NodeState};
use super::proxy::FaultProxy;
use super::report;
use super::scenario::{Direction, Fault, LinkMode, Scenario};
use super::webhook::{self, Receiver};
use crate::sim::smsc::{SmscSim, SmscSimArgs};

/// The admin token of every chaos node.
const ADMIN_TOKEN: &str = "chaos-admin-token-0123456789abcdef";

/// Errors that stop a run before it can be judged (setup failures).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Files or sockets.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The cluster did not come up or could not be configured.
    #[error("setup: {0}")]
    Setup(String),
    /// Any of the above once the run directory exists: its node logs say why.
    #[error("{source} (node logs in {})", dir.display())]
    InRun {
        /// The run directory (`<out>/<scenario>-<seed>`).
        dir: PathBuf,
        #[source]
        source: Box<RunError>,
    },
}

impl RunError {
    /// The run directory whose logs explain this error, when there is one.
    pub fn run_dir(&self) -> Option<&Path> {
        match self {
            RunError::InRun { dir, .. } => Some(dir),
            _ => None,
        }
    }
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(what.to_string(), e)
}

/// The outcome of one run: the JSON line and whether every invariant held.
pub struct Outcome {
    /// The last line to print.
    pub json: Value,
    /// All invariants held.
    pub pass: bool,
}

/// How often the monitor samples the nodes.
const MONITOR_PERIOD: Duration = Duration::from_millis(100);
/// How long a monitor sample waits for the answers to its questions: live nodes answer in
/// a few ms; one that takes longer shows its previous answer in this sample.
const MONITOR_WAIT: Duration = Duration::from_millis(60);

/// One sample of the monitor: per node, its view (None = no answer).
#[derive(Clone)]
struct Sample {
    t_ms: u64,
    views: BTreeMap<u64, Option<NodeView>>,
}

#[derive(Clone, Default)]
struct NodeView {
    leader: Option<u64>,
    /// Channel ids with a bound bind on this node.
    bound: Vec<String>,
}

/// The monitor's questions to each node, asked on their own so that a node that does not
/// answer (paused, partitioned) cannot hold back what the others say.
#[derive(Default)]
struct Polls {
    /// Per node, its newest view (None: its last question went unanswered).
    latest: BTreeMap<u64, Option<NodeView>>,
    /// Nodes with a question under way.
    asking: std::collections::HashSet<u64>,
}

/// What the fault tasks record.
#[derive(Clone)]
struct FaultRecord {
    t_ms: u64,
    end_ms: Option<u64>,
    label: String,
    abrupt: bool,
    target: Option<u64>,
    was_leader: bool,
    was_bind_owner: bool,
    /// Why the fault was not injected (its target was not up when it fired); such a fault
    /// shows in the report but counts for nothing else.
    not_injected: Option<String>,
}

/// Everything shared between the runner's tasks.
struct World {
    scenario: Scenario,
    dir: PathBuf,
    nodes: AsyncMutex<BTreeMap<u64, NodeProc>>,
    /// (from, to) → proxy in front of `to`'s Raft port for `from`'s traffic.
    links: HashMap<(u64, u64), FaultProxy>,
    smscs: Vec<SmscSim>,
    smsc_proxies: Vec<FaultProxy>,
    hooks: Arc<Receiver>,
    samples: Mutex<Vec<Sample>>,
    /// The monitor's newest answer from each node, and the nodes it is still asking.
    polls: Mutex<Polls>,
    faults: Mutex<Vec<FaultRecord>>,
    notes: Mutex<Vec<String>>,
    removed: Mutex<Vec<u64>>,
    http: reqwest::Client,
    start: Instant,
    rng: Mutex<StdRng>,
    channel_ids: Vec<String>,
    /// ms from `start` to the load start (for printing).
    load_start_ms: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl World {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn note(&self, s: String) {
        eprintln!("chaos: {s}");
        lock(&self.notes).push(s);
    }

    async fn admin(
        &self,
        node_url: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{node_url}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(Duration::from_secs(5));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.ok()?;
        let s = r.status().as_u16();
        Some((s, r.json().await.unwrap_or(Value::Null)))
    }

    async fn urls(&self) -> BTreeMap<u64, String> {
        self.nodes
            .lock()
            .await
            .iter()
            .map(|(id, n)| (*id, n.url()))
            .collect()
    }

    /// A view of one node, quickly (None when it does not answer within 400 ms).
    async fn view(&self, url: &str) -> Option<NodeView> {
        let cluster = self.ask(url, "/admin/v1/cluster").await?;
        Some(self.view_with_channels(url, &cluster).await)
    }

    /// One admin GET with the monitor's 400 ms bound; None when it does not answer in time.
    async fn ask(&self, url: &str, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{url}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(Duration::from_millis(400))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// The node's view given its cluster answer, once its channel list answered. A list
    /// that does not answer in time shows nothing bound, but the leader it names counts.
    async fn view_with_channels(&self, url: &str, cluster: &Value) -> NodeView {
        let channels = self
            .ask(url, "/admin/v1/channels")
            .await
            .unwrap_or(Value::Null);
        // Only the channels this node itself has bound: every node lists every channel
        // (from the replicated state), and a dead owner's last report may still say
        // "bound" until its heartbeats are overdue.
        let me = cluster["node"].as_u64();
        let bound = channels
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["binds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|b| b["state"] == "bound" && b["node"].as_u64() == me)
            })
            .filter_map(|c| c["id"].as_str().map(str::to_string))
            .collect();
        NodeView {
            leader: cluster["leader"].as_u64(),
            bound,
        }
    }

    async fn sample(&self) -> Sample {
        let urls = self.urls().await;
        // Stamped when the questions go out: each answer shows the node's state then.
        let t_ms = self.now_ms();
        let futs = urls
            .iter()
            .map(|(id, u)| async move { (*id, self.view(u).await) });
        let views = futures::future::join_all(futs).await.into_iter().collect();
        Sample { t_ms, views }
    }

    /// The monitor's sample: asks every node that has no question under way, waits up to
    /// `MONITOR_WAIT` for those answers, and takes each node's newest answer. A node still
    /// silent from an earlier question shows what it said last (until its question times
    /// out after 400 ms), then nothing. Before, one sample waited for every node, so a
    /// paused one stretched every sample to half a second and a live node's channel list
    /// (waiting for the paused owner's figures) hid the leader it named: chaos pause runs
    /// read 1.5 s for an election 1.04 s after the pause.
    async fn poll(self: &Arc<Self>) -> Sample {
        let urls = self.urls().await;
        let t_ms = self.now_ms();
        let mut asked = Vec::new();
        for (id, url) in &urls {
            if !lock(&self.polls).asking.insert(*id) {
                continue;
            }
            asked.push(*id);
            let (w, id, url) = (self.clone(), *id, url.clone());
            tokio::spawn(async move { w.refresh_view(id, &url).await });
        }
        let deadline = Instant::now() + MONITOR_WAIT;
        while Instant::now() < deadline {
            if !asked.iter().any(|id| lock(&self.polls).asking.contains(id)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let polls = lock(&self.polls);
        let views = urls
            .keys()
            .map(|id| (*id, polls.latest.get(id).cloned().flatten()))
            .collect();
        Sample { t_ms, views }
    }

    /// Asks one node for its view and records the answer in `polls`. The leader it names
    /// counts as soon as its cluster view answers: its channel list may wait 300 ms for a
    /// silent owner's figures, and until it answers the channels it had bound stand.
    async fn refresh_view(&self, id: u64, url: &str) {
        let view = match self.ask(url, "/admin/v1/cluster").await {
            Some(cluster) => {
                {
                    let mut polls = lock(&self.polls);
                    let bound = match polls.latest.get(&id) {
                        Some(Some(v)) => v.bound.clone(),
                        _ => Vec::new(),
                    };
                    let leader = cluster["leader"].as_u64();
                    polls.latest.insert(id, Some(NodeView { leader, bound }));
                }
                Some(self.view_with_channels(url, &cluster).await)
            }
            None => None,
        };
        let mut polls = lock(&self.polls);
        polls.latest.insert(id, view);
        polls.asking.remove(&id);
    }

    fn last_sample(&self) -> Option<Sample> {
        lock(&self.samples).last().cloned()
    }

    /// The leader most answering nodes name.
    fn leader_of(s: &Sample) -> Option<u64> {
        let mut votes: HashMap<u64, usize> = HashMap::new();
        for v in s.views.values().flatten() {
            if let Some(l) = v.leader {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(id, n)| (*n, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    fn bind_owners(s: &Sample) -> Vec<u64> {
        s.views
            .iter()
            .filter(|(_, v)| v.as_ref().is_some_and(|v| !v.bound.is_empty()))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Resolves a target name to a node id that is currently up, or says why none is.
    async fn resolve(&self, target: &str) -> Result<u64, String> {
        let up: Vec<u64> = {
            let mut nodes = self.nodes.lock().await;
            let removed = lock(&self.removed).clone();
            nodes
                .iter_mut()
                .filter(|(id, n)| !removed.contains(id) && n.state == NodeState::Up)
                .filter_map(|(id, n)| n.alive().then_some(*id))
                .collect()
        };
        let s = self.last_sample();
        let leader = s.as_ref().and_then(Self::leader_of);
        let pick = |v: Vec<u64>, none: &str| -> Result<u64, String> {
            if v.is_empty() {
                Err(none.to_string())
            } else {
                let i = lock(&self.rng).random_range(0..v.len());
                Ok(v[i])
            }
        };
        match target {
            "leader" => match leader {
                Some(l) if up.contains(&l) => Ok(l),
                Some(l) => Err(format!("the leader (node {l}) is not up")),
                None => Err("no node names a leader".into()),
            },
            "follower" => pick(
                up.iter()
                    .copied()
                    .filter(|id| Some(*id) != leader)
                    .collect(),
                "no follower is up",
            ),
            "bind_owner" => {
                let owners: Vec<u64> = s
                    .as_ref()
                    .map(Self::bind_owners)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|id| up.contains(id))
                    .collect();
                let not_leader: Vec<u64> = owners
                    .iter()
                    .copied()
                    .filter(|id| Some(*id) != leader)
                    .collect();
                let none = "no node that is up holds a bound bind";
                if not_leader.is_empty() {
                    pick(owners, none)
                } else {
                    pick(not_leader, none)
                }
            }
            "random" => pick(up, "no node is up"),
            t => match t.strip_prefix("node:").and_then(|n| n.parse::<u64>().ok()) {
                Some(id) if up.contains(&id) => Ok(id),
                Some(id) => Err(format!("node {id} is not up (down, paused or removed)")),
                // Scenario::check refuses these; kept as an answer rather than a panic.
                None => Err(format!("unknown target {t:?}")),
            },
        }
    }

    /// Records a fault that could not be injected, with why: it shows in the report's
    /// Faults table, and a run none of whose faults was injected does not pass.
    fn skip(&self, label: String, why: String) {
        let t = self
            .now_ms()
            .saturating_sub(self.load_start_ms.load(Ordering::Relaxed));
        eprintln!(
            "chaos: t={:.1}s fault NOT injected: {label}: {why}",
            t as f64 / 1000.0
        );
        lock(&self.faults).push(FaultRecord {
            t_ms: self.now_ms(),
            end_ms: None,
            label,
            abrupt: false,
            target: None,
            was_leader: false,
            was_bind_owner: false,
            not_injected: Some(why),
        });
    }

    fn record(&self, label: String, abrupt: bool, target: Option<u64>) -> usize {
        let s = self.last_sample();
        let was_leader = target.is_some() && s.as_ref().and_then(Self::leader_of) == target;
        let was_bind_owner = target.is_some_and(|t| {
            s.as_ref()
                .is_some_and(|s| Self::bind_owners(s).contains(&t))
        });
        let mut f = lock(&self.faults);
        f.push(FaultRecord {
            t_ms: self.now_ms(),
            end_ms: None,
            label,
            abrupt,
            target,
            was_leader,
            was_bind_owner,
            not_injected: None,
        });
        let t = self
            .now_ms()
            .saturating_sub(self.load_start_ms.load(Ordering::Relaxed));
        eprintln!(
            "chaos: t={:.1}s fault: {}",
            t as f64 / 1000.0,
            f.last().map(|r| r.label.as_str()).unwrap_or("")
        );
        f.len() - 1
    }

    fn end(&self, i: usize) {
        let t = self.now_ms();
        if let Some(r) = lock(&self.faults).get_mut(i) {
            r.end_ms = Some(t);
        }
    }

    async fn start_node(&self, id: u64) {
        let mut nodes = self.nodes.lock().await;
        if let Some(n) = nodes.get_mut(&id)
            && let Err(e) = n.start(ADMIN_TOKEN)
        {
            drop(nodes);
            self.note(format!("node {id} did not start: {e}"));
        }
    }

    async fn wait_ready(&self, id: u64, timeout: Duration) -> bool {
        let Some(url) = self.urls().await.get(&id).cloned() else {
            return false;
        };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) = self
                .http
                .get(format!("{url}/readyz"))
                .timeout(Duration::from_millis(500))
                .send()
                .await
                && r.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn faults_file(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.faults"))
    }

    fn set_link(&self, node: u64, dir: Direction, mode: LinkMode, on: bool) {
        for ((from, to), p) in &self.links {
            let outgoing = *from == node; // node's requests to `to`
            let incoming = *to == node; // others' requests to node
            if !outgoing && !incoming {
                continue;
            }
            match mode {
                LinkMode::Reset => {
                    p.faults.refuse.store(on, Ordering::Relaxed);
                    if on {
                        p.reset_all();
                    }
                }
                LinkMode::Hang => {
                    // Node sends: its requests (up on its outgoing links) and its answers
                    // (down on incoming links).
                    let (up, down) = match (dir, outgoing) {
                        (Direction::Both, _) => (true, true),
                        (Direction::Out, true) => (true, false),
                        (Direction::Out, false) => (false, true),
                        (Direction::In, true) => (false, true),
                        (Direction::In, false) => (true, false),
                    };
                    if up {
                        p.faults.hang_up.store(on, Ordering::Relaxed);
                    }
                    if down {
                        p.faults.hang_down.store(on, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn smsc_down(&self, mode: LinkMode, on: bool) {
        for p in &self.smsc_proxies {
            match mode {
                LinkMode::Reset => {
                    p.faults.refuse.store(on, Ordering::Relaxed);
                    if on {
                        p.reset_all();
                    }
                }
                LinkMode::Hang => {
                    p.faults.hang_up.store(on, Ordering::Relaxed);
                    p.faults.hang_down.store(on, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn sleep_s(s: f64) {
    tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await;
}

/// A `kill_every` series stops after this many kills in a row found no node up (each is
/// reported as not injected), rather than trying on while the cluster is down.
const KILL_EVERY_MISSES: u32 = 3;

/// Runs one fault at its time.
async fn run_fault(w: Arc<World>, at_s: f64, fault: Fault) {
    sleep_s(at_s).await;
    let label = fault.label();
    let abrupt = fault.is_abrupt();
    match fault {
        Fault::Kill {
            target,
            restart_after_s,
        } => {
            let id = match w.resolve(&target).await {
                Ok(id) => id,
                Err(why) => return w.skip(label, why),
            };
            let i = w.record(format!("kill -9 node {id} ({target})"), abrupt, Some(id));
            if let Some(n) = w.nodes.lock().await.get_mut(&id) {
                n.kill9();
            }
            if let Some(r) = restart_after_s {
                sleep_s(r).await;
                w.start_node(id).await;
                w.end(i);
            }
        }
        Fault::Pause { target, duration_s } => {
            let id = match w.resolve(&target).await {
                Ok(id) => id,
                Err(why) => return w.skip(label, why),
            };
            let i = w.record(format!("SIGSTOP node {id} ({target})"), abrupt, Some(id));
            if let Some(n) = w.nodes.lock().await.get_mut(&id) {
                n.pause();
            }
            sleep_s(duration_s).await;
            if let Some(n) = w.nodes.lock().await.get_mut(&id) {
                n.resume();
            }
            w.end(i);
        }
        Fault::Stop {
            target,
            restart_after_s,
        } => {
            let id = match w.resolve(&target).await {
                Ok(id) => id,
                Err(why) => return w.skip(label, why),
            };
            let i = w.record(format!("SIGTERM node {id} ({target})"), abrupt, Some(id));
            stop_node(&w, id).await;
            if let Some(r) = restart_after_s {
                sleep_s(r).await;
                w.start_node(id).await;
                w.end(i);
            }
        }
        Fault::RollingRestart { gap_s } => {
            let ids: Vec<u64> = w.nodes.lock().await.keys().copied().collect();
            for id in ids {
                let i = w.record(format!("restart node {id}"), abrupt, Some(id));
                stop_node(&w, id).await;
                w.start_node(id).await;
                if !w.wait_ready(id, Duration::from_secs(60)).await {
                    w.note(format!("rolling restart: node {id} not ready after 60 s"));
                }
                w.end(i);
                sleep_s(gap_s).await;
            }
        }
        Fault::CrashAll { restart_after_s } => {
            let i = w.record("kill -9 every node".into(), abrupt, None);
            let ids: Vec<u64> = {
                let mut nodes = w.nodes.lock().await;
                for n in nodes.values_mut() {
                    n.kill9();
                }
                nodes.keys().copied().collect()
            };
            sleep_s(restart_after_s).await;
            for id in ids {
                if !lock(&w.removed).contains(&id) {
                    w.start_node(id).await;
                }
            }
            w.end(i);
        }
        Fault::KillEvery {
            every_s,
            count,
            restart_after_s,
        } => {
            let mut restarts = Vec::new();
            // Kills in a row that found no node up; at KILL_EVERY_MISSES the series stops.
            let mut misses = 0u32;
            for k in 0..count {
                if k > 0 {
                    sleep_s(every_s).await;
                }
                let id = match w.resolve("random").await {
                    Ok(id) => {
                        misses = 0;
                        id
                    }
                    Err(why) => {
                        w.skip(format!("kill -9 (periodic, {} of {count})", k + 1), why);
                        misses += 1;
                        if misses >= KILL_EVERY_MISSES && k + 1 < count {
                            w.skip(
                                format!("kill -9 (periodic, {} more)", count - k - 1),
                                format!(
                                    "{misses} kills in a row found no node up; the series stops"
                                ),
                            );
                            break;
                        }
                        continue;
                    }
                };
                let i = w.record(format!("kill -9 node {id}"), abrupt, Some(id));
                if let Some(n) = w.nodes.lock().await.get_mut(&id) {
                    n.kill9();
                }
                let w2 = w.clone();
                restarts.push(tokio::spawn(async move {
                    sleep_s(restart_after_s).await;
                    w2.start_node(id).await;
                    w2.end(i);
                }));
            }
            for r in restarts {
                let _ = r.await;
            }
        }
        Fault::Isolate {
            target,
            duration_s,
            direction,
            mode,
        } => {
            let id = match w.resolve(&target).await {
                Ok(id) => id,
                Err(why) => return w.skip(label, why),
            };
            let i = w.record(
                format!("isolate node {id} ({target}, {direction:?}, {mode:?})"),
                abrupt,
                Some(id),
            );
            w.set_link(id, direction, mode, true);
            sleep_s(duration_s).await;
            w.set_link(id, direction, mode, false);
            w.end(i);
        }
        Fault::FlakyLinks {
            duration_s,
            latency_ms,
            bandwidth_bps,
            reset_every_s,
        } => {
            let i = w.record(label, abrupt, None);
            for p in w.links.values() {
                p.faults.latency_ms.store(latency_ms, Ordering::Relaxed);
                p.faults
                    .bandwidth_bps
                    .store(bandwidth_bps, Ordering::Relaxed);
            }
            let until = Instant::now() + Duration::from_secs_f64(duration_s);
            if reset_every_s > 0.0 {
                while Instant::now() + Duration::from_secs_f64(reset_every_s) < until {
                    sleep_s(reset_every_s).await;
                    for p in w.links.values() {
                        p.reset_all();
                    }
                }
            }
            tokio::time::sleep_until(until.into()).await;
            for p in w.links.values() {
                p.faults.clear();
            }
            w.end(i);
        }
        Fault::SmscOutage { duration_s, mode } => {
            let i = w.record(format!("SMSC outage ({mode:?})"), abrupt, None);
            w.smsc_down(mode, true);
            sleep_s(duration_s).await;
            w.smsc_down(mode, false);
            w.end(i);
        }
        Fault::SmscFlap {
            duration_s,
            period_s,
        } => {
            let i = w.record(label, abrupt, None);
            let until = Instant::now() + Duration::from_secs_f64(duration_s);
            while Instant::now() < until {
                w.smsc_down(LinkMode::Reset, true);
                sleep_s(period_s / 2.0).await;
                w.smsc_down(LinkMode::Reset, false);
                sleep_s(period_s / 2.0).await;
            }
            w.end(i);
        }
        Fault::SmscStorm {
            duration_s,
            throttle_rate,
            error_rate,
            lose_response_rate,
        } => {
            let i = w.record(
                format!("SMSC storm (0x58 {throttle_rate}, 0x45 {error_rate}, lost resp {lose_response_rate})"),
                abrupt,
                None,
            );
            for s in &w.smscs {
                s.set_rates(throttle_rate, error_rate, lose_response_rate);
            }
            sleep_s(duration_s).await;
            let base = w.scenario.smsc.throttle_rate;
            for s in &w.smscs {
                s.set_rates(base, 0.0, 0.0);
            }
            w.end(i);
        }
        Fault::Webhook {
            duration_s,
            mode,
            delay_ms,
        } => {
            let i = w.record(label, abrupt, None);
            w.hooks.delay_ms.store(delay_ms, Ordering::Relaxed);
            // Scenario::check allows only these two.
            let m = if mode == "slow" {
                webhook::MODE_SLOW
            } else {
                webhook::MODE_FAIL
            };
            w.hooks.mode.store(m, Ordering::Relaxed);
            sleep_s(duration_s).await;
            w.hooks.mode.store(webhook::MODE_OK, Ordering::Relaxed);
            w.end(i);
        }
        Fault::DiskFull { target, duration_s } => {
            let id = match w.resolve(&target).await {
                Ok(id) => id,
                Err(why) => return w.skip(label, why),
            };
            let i = w.record(format!("disk full node {id} ({target})"), abrupt, Some(id));
            let _ = std::fs::write(w.faults_file(id), "disk_full\n");
            sleep_s(duration_s).await;
            let _ = std::fs::write(w.faults_file(id), "");
            w.end(i);
        }
        Fault::ClockSkew {
            target,
            skew_ms,
            duration_s,
        } => {
            let id = match w.resolve(&target).await {
                Ok(id) => id,
                Err(why) => return w.skip(label, why),
            };
            let i = w.record(
                format!("clock skew {skew_ms} ms node {id} ({target})"),
                abrupt,
                Some(id),
            );
            let _ = std::fs::write(w.faults_file(id), format!("clock_skew_ms={skew_ms}\n"));
            sleep_s(duration_s).await;
            let _ = std::fs::write(w.faults_file(id), "");
            w.end(i);
        }
        Fault::AddNode {} => {
            let id = w.scenario.nodes as u64 + 1;
            let i = w.record(format!("add node {id}"), abrupt, Some(id));
            let addr = {
                let nodes = w.nodes.lock().await;
                nodes.get(&id).map(|n| {
                    (
                        format!("127.0.0.1:{}", n.spec.cluster),
                        format!("127.0.0.1:{}", n.spec.http),
                    )
                })
            };
            w.start_node(id).await;
            if let Some((addr, http)) = addr {
                let url = w.urls().await.get(&1).cloned().unwrap_or_default();
                let r = w
                    .admin(
                        &url,
                        reqwest::Method::POST,
                        "/admin/v1/cluster/nodes",
                        Some(json!({"id": id, "addr": addr, "http": http})),
                    )
                    .await;
                match r {
                    Some((s, _)) if (200..300).contains(&s) => {}
                    other => w.note(format!(
                        "add node {id}: POST /admin/v1/cluster/nodes answered {:?}",
                        other.map(|o| o.0)
                    )),
                }
            }
            if !w.wait_ready(id, Duration::from_secs(30)).await {
                w.note(format!("add node {id}: not ready within 30 s"));
            }
            w.end(i);
        }
        Fault::RemoveNode { target } => {
            let id = match w.resolve(&target).await {
                Ok(id) => id,
                Err(why) => return w.skip(label, why),
            };
            let i = w.record(format!("remove node {id} ({target})"), abrupt, Some(id));
            let url = w
                .urls()
                .await
                .into_iter()
                .find(|(n, _)| *n != id)
                .map(|x| x.1)
                .unwrap_or_default();
            let r = w
                .admin(
                    &url,
                    reqwest::Method::DELETE,
                    &format!("/admin/v1/cluster/nodes/{id}"),
                    None,
                )
                .await;
            match r {
                Some((s, _)) if (200..300).contains(&s) => {
                    lock(&w.removed).push(id);
                    stop_node(&w, id).await;
                }
                other => w.note(format!("remove node {id}: DELETE /admin/v1/cluster/nodes/{id} answered {:?}; node kept", other.map(|o| o.0))),
            }
            w.end(i);
        }
    }
}

async fn stop_node(w: &World, id: u64) {
    let mut nodes = w.nodes.lock().await;
    if let Some(n) = nodes.get_mut(&id) {
        let clean = n.terminate(Duration::from_secs(30)).await;
        if !clean {
            drop(nodes);
            w.note(format!("node {id} did not exit 0 within 30 s of SIGTERM"));
        }
    }
}

/// Reads every SMSC ledger.
fn read_ledgers(dir: &Path, smscs: u32, wall0_ms: i64) -> Vec<LedgerEntry> {
    let mut out = Vec::new();
    for i in 0..smscs {
        let text =
            std::fs::read_to_string(dir.join(format!("smsc-{i}.ledger.jsonl"))).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let Some(r) = v["short_message_hex"]
                .as_str()
                .and_then(load::client_ref_from_hex)
            else {
                continue;
            };
            out.push(LedgerEntry {
                client_ref: r,
                smsc_id: v["message_id"].as_str().unwrap_or("").to_string(),
                t_ms: v["at_ms"].as_i64().unwrap_or(0) - wall0_ms,
                response_lost: v["response_lost"].as_bool().unwrap_or(false),
            });
        }
    }
    out
}

/// Free 127.0.0.1 port for a child process (see [`super::ports`]).
fn free_port(range: &PortRange) -> Result<u16, RunError> {
    range.free_port().map_err(io("free port"))
}

/// Retries an admin call through the nodes until it answers `want` (bounded).
async fn setup_call(
    w: &World,
    method: reqwest::Method,
    path: &str,
    body: Value,
    want: u16,
) -> Result<Value, RunError> {
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last = String::new();
    while Instant::now() < deadline {
        for url in w.urls().await.values() {
            match w.admin(url, method.clone(), path, Some(body.clone())).await {
                Some((s, v)) if s == want => return Ok(v),
                Some((s, v)) => last = format!("{s} {v}"),
                None => last = "no answer".into(),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(RunError::Setup(format!("{method} {path}: {last}")))
}

/// Where and how one run happens, besides its scenario.
pub struct RunSetup<'a> {
    /// Seed for the run (default: the scenario's, else a random one).
    pub seed: Option<u64>,
    /// Where the run directory goes.
    pub out_root: &'a Path,
    /// The smsgw binary for the nodes.
    pub bin: &'a Path,
    /// The nodes' HTTP and Raft ports come from here.
    pub ports: &'a PortRange,
}

/// Runs a scenario read (and checked) from the file `path`.
pub async fn run(
    path: &Path,
    scenario: &Scenario,
    setup: &RunSetup<'_>,
) -> Result<Outcome, RunError> {
    let RunSetup {
        seed,
        out_root,
        bin,
        ports,
    } = *setup;
    let seed = seed
        .or((scenario.seed != 0).then_some(scenario.seed))
        .unwrap_or_else(|| u64::from(rand::random::<u32>()));
    let file = path.display().to_string();
    eprintln!(
        "chaos: scenario {} seed {seed} (reproduce: smsgw sim run {file} --seed {seed})",
        scenario.name
    );
    let dir = out_root.join(format!("{}-{seed}", scenario.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io("creating the run dir"))?;
    let dir = dir.canonicalize().map_err(io("run dir"))?;
    start_and_drive(scenario, seed, &file, &dir, bin, ports)
        .await
        .map_err(|e| RunError::InRun {
            dir: dir.clone(),
            source: Box::new(e),
        })
}

/// Starts the simulators, proxies and nodes of one run in `dir`, drives it, and stops
/// every node again whatever happened.
async fn start_and_drive(
    scenario: &Scenario,
    seed: u64,
    file: &str,
    dir: &Path,
    bin: &Path,
    port_range: &PortRange,
) -> Result<Outcome, RunError> {
    let started_utc = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();

    // SMSC simulators, each behind a proxy.
    let mut smscs = Vec::new();
    let mut smsc_proxies = Vec::new();
    for i in 0..scenario.smscs {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("SMSC listen"))?;
        let args = SmscSimArgs {
            system_id: format!("smsc{i}"),
            password: "pw".into(),
            submit_latency_ms: scenario.smsc.submit_latency_ms,
            dlr_delay_ms: scenario.smsc.dlr_delay_ms,
            dlr_mix: scenario.smsc.dlr_mix.clone(),
            throttle_rate: scenario.smsc.throttle_rate,
            receipts_before_responses: scenario.smsc.receipts_before_responses,
            mixed_id_format: scenario.smsc.mixed_id_format,
            ledger: Some(dir.join(format!("smsc-{i}.ledger.jsonl"))),
            seed: seed.wrapping_add(u64::from(i)).max(1),
            ..SmscSimArgs::default()
        };
        let sim = SmscSim::start(l, args)
            .await
            .map_err(|e| RunError::Setup(format!("SMSC simulator: {e:#}")))?;
        smsc_proxies.push(
            FaultProxy::start(sim.local_addr())
                .await
                .map_err(io("SMSC proxy"))?,
        );
        smscs.push(sim);
    }
    let start = Instant::now();
    let hooks = Receiver::start(start)
        .await
        .map_err(io("webhook receiver"))?;

    // Nodes: ports, one proxy per ordered pair, the spare for add_node.
    let spare = scenario
        .faults
        .iter()
        .any(|f| matches!(f.fault, Fault::AddNode {}));
    let count = scenario.nodes as u64 + u64::from(spare);
    let mut ports = BTreeMap::new();
    for id in 1..=count {
        ports.insert(id, (free_port(port_range)?, free_port(port_range)?));
    }
    let mut links = HashMap::new();
    for from in 1..=count {
        for to in 1..=count {
            if from != to {
                let up = std::net::SocketAddr::from(([127, 0, 0, 1], ports[&to].1));
                links.insert(
                    (from, to),
                    FaultProxy::start(up).await.map_err(io("link proxy"))?,
                );
            }
        }
    }
    let peers_of = |n: u64| -> String {
        (1..=n)
            .map(|id| format!("{id}@127.0.0.1:{}", ports[&id].1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut nodes = BTreeMap::new();
    for id in 1..=count {
        let peer_addrs = (1..=count)
            .filter(|p| *p != id)
            .map(|p| format!("{p}=127.0.0.1:{}", links[&(id, p)].listen.port()))
            .collect::<Vec<_>>()
            .join(",");
        let faults_file = dir.join(format!("node-{id}.faults"));
        std::fs::write(&faults_file, "").map_err(io("faults file"))?;
        let r = &scenario.raft;
        let spec = NodeSpec {
            id,
            http: ports[&id].0,
            cluster: ports[&id].1,
            data_dir: dir.join(format!("data-{id}")),
            peers: if scenario.nodes == 1 && !spare {
                String::new()
            } else {
                peers_of(if id > scenario.nodes as u64 {
                    count
                } else {
                    scenario.nodes as u64
                })
            },
            env: vec![
                ("SMSGW_PEER_ADDRS".into(), peer_addrs),
                (
                    "SMSGW_FAULTS_FILE".into(),
                    faults_file.display().to_string(),
                ),
            ],
            args: vec![
                "--election-timeout-min-ms".into(),
                r.election_timeout_min_ms.to_string(),
                "--election-timeout-max-ms".into(),
                r.election_timeout_max_ms.to_string(),
                "--heartbeat-ms".into(),
                r.heartbeat_ms.to_string(),
            ],
        };
        nodes.insert(id, NodeProc::new(bin, dir, spec));
    }
    let channel_ids: Vec<String> = (0..scenario.smscs).map(|i| format!("smsc-{i}")).collect();
    let w = Arc::new(World {
        scenario: scenario.clone(),
        dir: dir.to_path_buf(),
        nodes: AsyncMutex::new(nodes),
        links,
        smscs,
        smsc_proxies,
        hooks: hooks.clone(),
        samples: Mutex::new(Vec::new()),
        polls: Mutex::default(),
        faults: Mutex::new(Vec::new()),
        notes: Mutex::new(Vec::new()),
        removed: Mutex::new(Vec::new()),
        http: crate::http_client::builder()
            .pool_max_idle_per_host(8)
            .build()
            .unwrap_or_default(),
        start,
        rng: Mutex::new(StdRng::seed_from_u64(seed)),
        channel_ids: channel_ids.clone(),
        load_start_ms: Default::default(),
    });
    let result = drive(w.clone(), file, seed, &started_utc).await;
    // Stop everything we started, whatever happened.
    {
        let mut nodes = w.nodes.lock().await;
        for n in nodes.values_mut() {
            n.kill9();
        }
    }
    result
}

async fn drive(
    w: Arc<World>,
    file: &str,
    seed: u64,
    started_utc: &str,
) -> Result<Outcome, RunError> {
    let sc = w.scenario.clone();
    for id in 1..=u64::from(sc.nodes) {
        w.start_node(id).await;
    }
    for id in 1..=u64::from(sc.nodes) {
        if !w.wait_ready(id, Duration::from_secs(90)).await {
            return Err(RunError::Setup(format!(
                "node {id} not ready within 90 s (see {}/node-{id}.0.log)",
                w.dir.display()
            )));
        }
    }
    let tenant = setup_call(
        &w,
        reqwest::Method::POST,
        "/admin/v1/tenants",
        json!({"id": "chaos", "name": "chaos", "callback_url": w.hooks.url(),
               "rate_limit": {"per_second": sc.tenant.per_second, "burst": sc.tenant.burst}}),
        201,
    )
    .await?;
    let api_key = tenant["api_key"].as_str().unwrap_or("").to_string();
    *lock(&w.hooks.secret) = tenant["webhook_secret"]
        .as_str()
        .unwrap_or("")
        .as_bytes()
        .to_vec();
    for (i, p) in w.smsc_proxies.iter().enumerate() {
        let c = &sc.channel;
        setup_call(
            &w,
            reqwest::Method::POST,
            "/admin/v1/channels",
            json!({"id": w.channel_ids[i], "protocol": "smpp", "host": "127.0.0.1", "port": p.listen.port(),
                   "system_id": format!("smsc{i}"), "password": "pw", "binds": c.binds, "tps": c.tps,
                   "window": c.window, "enquire_link_seconds": c.enquire_link_seconds}),
            201,
        )
        .await?;
    }
    let route_channels: Vec<Value> = w.channel_ids.iter().map(|c| json!({"id": c})).collect();
    setup_call(
        &w,
        reqwest::Method::POST,
        "/admin/v1/routes",
        json!({"id": "default", "match": {}, "channels": route_channels}),
        201,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = w.sample().await;
        if all_bound(&w, &s, None) {
            break;
        }
        if Instant::now() > deadline {
            return Err(RunError::Setup(format!(
                "channels not bound within 60 s: {}",
                describe_views(&s)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Monitor.
    let mon = {
        let w = w.clone();
        tokio::spawn(async move {
            loop {
                let began = Instant::now();
                let s = w.poll().await;
                lock(&w.samples).push(s);
                tokio::time::sleep(MONITOR_PERIOD.saturating_sub(began.elapsed())).await;
            }
        })
    };
    // Load and faults. Times from here on are relative to the load start.
    let load_start = Instant::now();
    let shift = load_start.duration_since(w.start).as_millis() as u64;
    w.load_start_ms.store(shift, Ordering::Relaxed);
    let wall0 = chrono::Utc::now().timestamp_millis();
    let fault_tasks: Vec<_> = sc
        .faults
        .iter()
        .map(|f| tokio::spawn(run_fault(w.clone(), f.at_s, f.fault.clone())))
        .collect();
    let urls: Vec<String> = w
        .urls()
        .await
        .into_iter()
        .filter(|(id, _)| *id <= u64::from(sc.nodes))
        .map(|x| x.1)
        .collect();
    let plan = LoadPlan {
        urls: urls.clone(),
        api_key: api_key.clone(),
        rate: sc.rate,
        concurrency: sc.concurrency,
        max: sc.max_messages,
        duration: Duration::from_secs_f64(sc.duration_s),
        retry: sc.client_retry,
        timeout: Duration::from_millis(sc.request_timeout_ms),
        prefix: format!("s{seed}"),
        seed,
    };
    let load = Load::run(plan, load_start).await;
    eprintln!(
        "chaos: load done ({} requests); waiting for the fault schedule to finish",
        load.records().len()
    );
    for t in fault_tasks {
        if tokio::time::timeout(Duration::from_secs(180), t)
            .await
            .is_err()
        {
            w.note("a fault did not finish within 180 s after the load".into());
        }
    }

    // Heal everything.
    for p in w.links.values().chain(w.smsc_proxies.iter()) {
        p.faults.clear();
    }
    for s in &w.smscs {
        s.set_rates(sc.smsc.throttle_rate, 0.0, 0.0);
    }
    w.hooks.mode.store(webhook::MODE_OK, Ordering::Relaxed);
    let ids: Vec<u64> = w.nodes.lock().await.keys().copied().collect();
    let removed = lock(&w.removed).clone();
    let spare_id = u64::from(sc.nodes) + 1;
    let added = lock(&w.faults)
        .iter()
        .any(|f| f.label.starts_with("add node"));
    for id in &ids {
        let _ = std::fs::write(w.faults_file(*id), "");
        if removed.contains(id) || (*id == spare_id && !added) {
            continue;
        }
        let dead = {
            let mut nodes = w.nodes.lock().await;
            match nodes.get_mut(id) {
                Some(n) => {
                    if n.state == NodeState::Paused {
                        n.resume();
                    }
                    if let Some(st) = n.reap() {
                        Some(format!("node {id} exited by itself ({st})"))
                    } else if !n.alive() {
                        Some(String::new())
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(why) = dead {
            if !why.is_empty() {
                w.note(why);
            }
            w.start_node(*id).await;
        }
    }

    // Liveness phase (bounded).
    let settle_start = Instant::now();
    let settle_deadline = settle_start + Duration::from_secs_f64(sc.settle_s);
    let live_ids: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| !removed.contains(id) && (*id != spare_id || added))
        .collect();
    for id in &live_ids {
        let left = settle_deadline.saturating_duration_since(Instant::now());
        if !w.wait_ready(*id, left).await {
            w.note(format!("node {id} not ready in the liveness phase"));
        }
    }
    let records = load.records();
    let lines: String = records
        .iter()
        .map(|r| {
            format!(
                "{}\n",
                json!({"client_ref": r.client_ref, "t_ms": r.t_ms, "first": r.first, "first_ms": r.first_ms,
                       "retry": r.retry, "final_ms": r.final_ms, "id": r.id})
            )
        })
        .collect();
    let _ = std::fs::write(w.dir.join("requests.jsonl"), lines);
    let client = crate::http_client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let live_urls: Vec<String> = {
        let all = w.urls().await;
        live_ids
            .iter()
            .filter_map(|id| all.get(id).cloned())
            .collect()
    };
    // Unknown outcomes: did the gateway store them? (by client_ref)
    let mut resolved = HashMap::new();
    for r in records.iter().filter(|r| {
        !load::is_available(r.final_code()) || (load::is_accepted(r.final_code()) && r.id.is_none())
    }) {
        if let Some(id) = find_by_ref(&client, &live_urls, &api_key, &r.client_ref).await {
            resolved.insert(r.client_ref.clone(), id);
        }
    }
    let accepted = oracle::accepted_set(&records, &resolved);
    let mut live = Liveness::default();
    // Probe: a fresh message end to end.
    let probe_ref = format!("s{seed}-probe");
    let mut probe_id = None;
    for u in live_urls.iter().cycle().take(live_urls.len() * 10) {
        let (code, id, _) =
            load::send_one(&client, u, &api_key, &probe_ref, "+4915112345678").await;
        if load::is_accepted(code) {
            probe_id = id;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut statuses: HashMap<String, Value> = HashMap::new();
    let mut ledger;
    loop {
        ledger = read_ledgers(&w.dir, sc.smscs, wall0);
        let at_smsc: std::collections::HashSet<&str> =
            ledger.iter().map(|l| l.client_ref.as_str()).collect();
        // Fetch statuses of messages not final yet.
        let pending: Vec<String> = accepted
            .values()
            .filter(|id| statuses.get(*id).is_none_or(|b| !is_final(b)))
            .cloned()
            .collect();
        let fetched = fetch_statuses(&client, &live_urls, &api_key, &pending).await;
        statuses.extend(fetched);
        let missing = accepted
            .iter()
            .filter(|(r, id)| {
                !at_smsc.contains(r.as_str()) && statuses.get(*id).is_none_or(|b| !is_final(b))
            })
            .count();
        let not_final = accepted
            .values()
            .filter(|id| statuses.get(*id).is_none_or(|b| !is_final(b)))
            .count();
        let s = w.sample().await;
        let leaders: Vec<Option<u64>> = live_ids
            .iter()
            .map(|id| s.views.get(id).cloned().flatten().and_then(|v| v.leader))
            .collect();
        live.one_leader = leaders
            .first()
            .is_some_and(|l| l.is_some() && leaders.iter().all(|x| x == l));
        live.channels_bound = all_bound(&w, &s, None);
        if let Some(pid) = &probe_id
            && !live.probe_final
        {
            live.probe_final =
                fetch_statuses(&client, &live_urls, &api_key, std::slice::from_ref(pid))
                    .await
                    .values()
                    .any(is_final);
        }
        live.drained = missing == 0;
        let hooks_done = !webhooks_missing(&w.hooks.deliveries(), &accepted, &statuses);
        if live.one_leader
            && live.channels_bound
            && live.probe_final
            && live.drained
            && not_final == 0
            && hooks_done
        {
            break;
        }
        if Instant::now() >= settle_deadline {
            live.detail = format!(
                "after {:.0}s: {missing} accepted messages neither at an SMSC nor final, {not_final} not final, leaders {leaders:?}, probe {}, webhooks complete {hooks_done}",
                sc.settle_s,
                if probe_id.is_some() {
                    "accepted"
                } else {
                    "never accepted"
                }
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    live.settle_s = settle_start.elapsed().as_secs_f64();
    mon.abort();
    // The simulators flush their ledgers at least every 100 ms: read them once more after
    // that, so the last copies are on file before the oracle looks.
    tokio::time::sleep(Duration::from_millis(400)).await;
    ledger = read_ledgers(&w.dir, sc.smscs, wall0);

    // Failover times from the monitor's samples.
    let samples: Vec<Sample> = lock(&w.samples)
        .iter()
        .map(|s| Sample {
            t_ms: s.t_ms.saturating_sub(shift),
            views: s.views.clone(),
        })
        .collect();
    let events: Vec<FaultEvent> = lock(&w.faults)
        .iter()
        .map(|f| {
            let t = f.t_ms.saturating_sub(shift);
            let end = f.end_ms.map(|e| e.saturating_sub(shift));
            let window = 30_000u64;
            let after = samples
                .iter()
                .filter(|s| s.t_ms >= t && s.t_ms <= t + window);
            let leader_ms = (f.was_leader && f.abrupt).then(|| {
                after
                    .clone()
                    .find(|s| {
                        s.views.iter().any(|(id, v)| {
                            Some(*id) != f.target
                                && v.as_ref().is_some_and(|v| v.leader == Some(*id))
                        })
                    })
                    .map(|s| (s.t_ms - t) as f64)
                    .unwrap_or(window as f64)
            });
            let bind_ms = (f.was_bind_owner && f.abrupt).then(|| {
                after
                    .clone()
                    .find(|s| all_bound(&w, s, f.target))
                    .map(|s| (s.t_ms - t) as f64)
                    .unwrap_or(window as f64)
            });
            let first = records
                .iter()
                .filter(|_| f.not_injected.is_none())
                .filter(|r| r.t_ms >= t && load::is_accepted(r.final_code()))
                .map(|r| (r.t_ms + r.final_ms as u64 - t) as f64)
                .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.min(x))));
            FaultEvent {
                t_ms: t,
                end_ms: end,
                label: f.label.clone(),
                abrupt: f.abrupt,
                leader_failover_ms: leader_ms,
                bind_failover_ms: bind_ms,
                first_accept_ms: first,
                not_injected: f.not_injected.clone(),
            }
        })
        .collect();

    let deliveries = w.hooks.deliveries();
    let receipts_expected = !sc.smsc.dlr_mix.trim().eq_ignore_ascii_case("none");
    let (figures, verdicts) = oracle::judge(&oracle::Observations {
        requests: &records,
        resolved: &resolved,
        ledger: &ledger,
        statuses: &statuses,
        webhooks: &deliveries,
        faults: &events,
        liveness: &live,
        graceful: sc.graceful,
        receipts_expected,
        webhooks_expected: true,
        targets: &sc.targets,
    });
    let seconds = (sc.duration_s.ceil() as usize + 5).max(1);
    let s = report::series(&records, &ledger, seconds);
    let mut notes = lock(&w.notes).clone();
    let injected: Vec<FaultEvent> = events
        .iter()
        .filter(|e| e.not_injected.is_none())
        .cloned()
        .collect();
    if let Err(e) = report::charts(&w.dir, &s, &injected) {
        notes.push(format!("charts not drawn: {e}"));
    }
    let stats: Vec<String> = w.smscs.iter().map(|s| format!("{:?}", s.stats())).collect();
    notes.push(format!("SMSC counters: {}", stats.join("; ")));
    report::markdown(
        &w.dir,
        &report::RunInfo {
            name: &sc.name,
            description: &sc.description,
            file,
            seed,
            nodes: sc.nodes,
            rate: sc.rate,
            duration_s: sc.duration_s,
            started_utc: started_utc.to_string(),
            targets_unset: sc.targets.unset(),
        },
        &figures,
        &verdicts,
        &events,
        &notes,
    )
    .map_err(io("writing the report"))?;
    for v in &verdicts {
        eprintln!(
            "chaos: {} {} {}: {}",
            v.id,
            if v.pass { "pass" } else { "FAIL" },
            v.name,
            v.detail
        );
    }
    let unset = sc.targets.unset();
    if !unset.is_empty() {
        eprintln!(
            "chaos: targets not set, not checked: {}",
            unset
                .iter()
                .map(|k| format!("targets.{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let pass = verdicts.iter().all(|v| v.pass);
    let failed: Vec<&str> = verdicts.iter().filter(|v| !v.pass).map(|v| v.id).collect();
    let json = json!({
        "scenario": sc.name,
        "seed": seed,
        "accepted": figures.accepted,
        "lost": figures.lost,
        "duplicates": figures.duplicates,
        "leader_failover_ms_p99": figures.leader_failover_ms_p99,
        "bind_failover_ms_p99": figures.bind_failover_ms_p99,
        "availability": figures.availability,
        "accept_ms_p99": (figures.accept_ms_p99 * 10.0).round() / 10.0,
        "faults_not_injected": events.len() - injected.len(),
        "report": w.dir.join("report.md").display().to_string(),
        "pass": pass,
        "failed": failed,
    });
    Ok(Outcome { json, pass })
}

fn is_final(b: &Value) -> bool {
    b["status"]
        .as_str()
        .and_then(crate::state::Status::parse)
        .is_some_and(crate::state::Status::is_final)
}

/// What each node said in one sample (leader and bound channels), for a setup error.
fn describe_views(s: &Sample) -> String {
    s.views
        .iter()
        .map(|(id, v)| match v {
            Some(v) => format!(
                "node {id}: leader {:?}, bound [{}]",
                v.leader,
                v.bound.join(",")
            ),
            None => format!("node {id}: no answer"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every channel is bound on some answering node other than `except`.
fn all_bound(w: &World, s: &Sample, except: Option<u64>) -> bool {
    w.channel_ids.iter().all(|c| {
        s.views
            .iter()
            .any(|(id, v)| Some(*id) != except && v.as_ref().is_some_and(|v| v.bound.contains(c)))
    })
}

fn webhooks_missing(
    deliveries: &[webhook::Delivery],
    accepted: &BTreeMap<String, String>,
    statuses: &HashMap<String, Value>,
) -> bool {
    let acked: std::collections::HashSet<(&str, &str)> = deliveries
        .iter()
        .filter(|d| d.acked)
        .map(|d| (d.id.as_str(), d.status.as_str()))
        .collect();
    accepted.values().any(|id| {
        statuses.get(id).is_some_and(|b| {
            b["events"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| !acked.contains(&(id.as_str(), e["status"].as_str().unwrap_or(""))))
        })
    })
}

async fn find_by_ref(
    client: &reqwest::Client,
    urls: &[String],
    key: &str,
    client_ref: &str,
) -> Option<String> {
    for u in urls {
        let Ok(r) = client
            // client_refs are [a-z0-9-]: no escaping needed.
            .get(format!("{u}/v1/messages?client_ref={client_ref}&limit=5"))
            .bearer_auth(key)
            .send()
            .await
        else {
            continue;
        };
        if !r.status().is_success() {
            continue;
        }
        let v: Value = r.json().await.ok()?;
        let items = v["messages"]
            .as_array()
            .or(v["items"].as_array())
            .or(v["data"].as_array());
        return items
            .into_iter()
            .flatten()
            .find(|m| m["client_ref"].as_str() == Some(client_ref))
            .and_then(|m| m["id"].as_str().map(str::to_string));
    }
    None
}

async fn fetch_statuses(
    client: &reqwest::Client,
    urls: &[String],
    key: &str,
    ids: &[String],
) -> HashMap<String, Value> {
    use futures::StreamExt;
    if urls.is_empty() {
        return HashMap::new();
    }
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| async move {
            for k in 0..urls.len() {
                let u = &urls[(i + k) % urls.len()];
                if let Ok(r) = client
                    .get(format!("{u}/v1/messages/{id}"))
                    .bearer_auth(key)
                    .send()
                    .await
                    && r.status().is_success()
                    && let Ok(v) = r.json::<Value>().await
                {
                    return Some((id.clone(), v));
                }
            }
            None
        })
        .buffer_unordered(32)
        .filter_map(|x| async move { x })
        .collect()
        .await
}
