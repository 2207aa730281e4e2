//! `smsgw-load`: the benchmark load tool. It starts real SMSC simulators and one or more
//! real gateway nodes (fsync on; with `--nodes N` a Raft cluster of N processes) as child
//! processes on free ports, creates a tenant, channels and a route, drives HTTP sends
//! (single messages at a concurrency, or batches) round-robin over the nodes, and reports
//! end-to-end msg/s counted at the SMSC, accept latency p50/p99 and the nodes' RSS.
//!
//! With `--failover leader|bind-owner` it kills (-9) the leader or a channel's owner
//! `--kills` times while the load runs, restarting each victim on its data dir, and
//! reports the failover times as p50/p99.
//!
//! Example: `cargo build --release && target/release/smsgw-load --mode single --messages 100000`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};
use smsgw::chaos::procs::{NodeProc, NodeSpec};
use smsgw::dashboard::prom;

#[path = "load_client.rs"]
mod load_client;

/// The load tool shares the cores with the node it measures: the same allocator as the
/// node keeps its own cost per request down (glibc malloc was a tenth of it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "smsgw-load",
    about = "Drive HTTP load through smsgw nodes into the SMSC simulator"
)]
struct Args {
    /// single: one message per request; batch: `--batch-size` per request; http-floor:
    /// `GET /healthz` instead of sends, what HTTP alone costs the node and this tool
    /// (`--messages` is then the number of requests).
    #[arg(long, default_value = "single", value_parser = ["single", "batch", "http-floor"])]
    mode: String,
    /// Messages to send in total.
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Target messages per second (0 = as fast as possible); used for latency at a fixed rate.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Drain the channel first so that everything stays queued (memory with N messages waiting).
    #[arg(long)]
    queue_only: bool,
    /// SMSC binds (one channel each) to spread the load over.
    #[arg(long, default_value_t = 2)]
    channels: usize,
    /// The default route's strategy: weighted (equal weights: every channel, and in a
    /// cluster every bind owner, carries its share) or priority (all on the first
    /// channel, the others only as failover).
    #[arg(long, default_value = "weighted", value_parser = ["weighted", "priority"])]
    strategy: String,
    /// Channel protocol: smpp, cmpp, smgp or sgip (`sim smsc --protocol`), or http
    /// (`sim http-provider`, receipts POSTed back to `/v1/receipts/{channel}`).
    #[arg(long, default_value = "smpp")]
    protocol: String,
    /// Gateway nodes: 1 runs a single node; more start a Raft cluster (`--peers`) and
    /// spread the requests over all of them.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// none, leader (kill -9 the Raft leader) or bind-owner (kill -9 the owner of a
    /// channel that is not the leader's), `--kills` times while the load runs.
    #[arg(long, default_value = "none")]
    failover: String,
    /// Kills in a failover run.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Steady seconds (cluster healthy, load flowing) before each kill.
    #[arg(long, default_value_t = 2.0)]
    settle_secs: f64,
    /// An extra flag for every node, e.g. `--node-arg=--heartbeat-ms=100` (repeatable).
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    node_args: Vec<String>,
    /// Where node data goes (removed first).
    #[arg(long, default_value = "/tmp/smsgw-load")]
    dir: PathBuf,
    /// The smsgw binary (default: next to this one).
    #[arg(long)]
    smsgw: Option<PathBuf>,
}

const ADMIN_TOKEN: &str = "load-admin-token-0123456789";
const RECEIPT_TOKEN: &str = "load-receipt-token-0123456789";
/// How long one failover may take before it is recorded as this (and the run goes on).
const FAILOVER_CAP: Duration = Duration::from_secs(30);

fn free_port() -> Result<u16> {
    Ok(smsgw::chaos::ports::free_port()?)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory now (`VmRSS:`) or the process's highest so far (`VmHWM:`).
fn rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map(|t| t / ticks)
        .unwrap_or(0.0)
}

/// CPU seconds of several processes together (a process that is gone counts 0).
fn cpu_secs_of(pids: &[u32]) -> f64 {
    pids.iter().copied().map(cpu_secs).sum()
}

/// The host's CPU time so far as (busy, total) jiffies over all cores, from `/proc/stat`.
fn host_jiffies() -> (u64, u64) {
    let line = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = line
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = f.iter().sum();
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Percentile of microsecond samples, in milliseconds.
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
}

async fn wait_ok(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} not ready after {timeout:?}")
}

async fn smsc_counter(client: &reqwest::Client, controls: &[u16], field: &str) -> u64 {
    let mut total = 0;
    for c in controls {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{c}/stats"))
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
        {
            total += v[field].as_u64().unwrap_or(0);
        }
    }
    total
}

/// GET an admin path on one node, JSON, with a short timeout.
async fn admin_get(client: &reqwest::Client, base: &str, path: &str) -> Option<Value> {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The gateway nodes of a run and their HTTP bases.
struct Nodes {
    procs: Mutex<Vec<NodeProc>>,
    bases: Vec<String>,
}

impl Nodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<NodeProc>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// CPU seconds used so far by all nodes together.
    fn cpu_secs(&self) -> f64 {
        let pids: Vec<u32> = self.lock().iter().filter_map(NodeProc::pid).collect();
        cpu_secs_of(&pids)
    }

    fn rss_mb(&self, field: &str) -> Vec<f64> {
        self.lock()
            .iter()
            .map(|n| n.pid().map(|p| rss_mb(p, field)).unwrap_or(0.0).round())
            .collect()
    }

    fn base(&self, id: u64) -> &str {
        &self.bases[(id - 1) as usize]
    }
}

/// One request's outcome, for the failover timings: started and finished (ms since the
/// load started) and whether it was accepted.
#[derive(Clone, Copy)]
struct Outcome {
    start_ms: u64,
    end_ms: u64,
    accepted: bool,
}

/// The times one kill took to heal.
#[derive(Default)]
struct Heal {
    target: u64,
    /// kill → a survivor reports itself leader (leader kills).
    leader_ms: Option<f64>,
    /// kill → the victim's channel bound on a survivor (bind-owner kills, and leader kills
    /// of a node that owned channels).
    bind_ms: Option<f64>,
    /// kill → the first request started after the kill that was accepted.
    writes_ms: Option<f64>,
    at_ms: u64,
}

/// One thread: the load tool shares the two cores with the node it measures, and a
/// pool's cross-thread wake-ups cost CPU the node would otherwise have (the simulators
/// run the same way, `src/main.rs`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let smsgw = match &args.smsgw {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("smsgw"),
    };
    if !matches!(
        args.protocol.as_str(),
        "smpp" | "http" | "cmpp" | "smgp" | "sgip"
    ) {
        bail!("--protocol: smpp, http, cmpp, smgp or sgip");
    }
    if !matches!(args.failover.as_str(), "none" | "leader" | "bind-owner") {
        bail!("--failover: none, leader or bind-owner");
    }
    if args.nodes == 0 {
        bail!("--nodes: at least 1");
    }
    if args.failover != "none" && args.nodes < 3 {
        bail!("--failover needs --nodes 3 or more (a quorum must survive the kill)");
    }
    if args.nodes > 1 && args.protocol == "sgip" {
        bail!("--protocol sgip: single node only (the report listener has one fixed address)");
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let client = smsgw::http_client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let node_ports: Vec<(u16, u16)> = (0..args.nodes)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_>>()?;
    let first_http = node_ports[0].0;
    let (mut sims, smscs, listen_ports) = start_simulators(&args, &smsgw, first_http)?;
    let nodes = Arc::new(start_nodes(&args, &smsgw, &node_ports)?);
    for b in &nodes.bases {
        wait_ok(&client, &format!("{b}/readyz"), Duration::from_secs(60)).await?;
    }
    for (_, control) in &smscs {
        wait_ok(
            &client,
            &format!("http://127.0.0.1:{control}/stats"),
            Duration::from_secs(20),
        )
        .await?;
    }
    let key = configure(&args, &client, &nodes.bases[0], &smscs, &listen_ports).await?;
    wait_bound(&client, &nodes.bases[0], Duration::from_secs(30)).await?;
    if args.queue_only {
        // Spread over the route's channels but let nothing out: drain every channel.
        for i in 0..smscs.len() {
            admin_post(
                &client,
                &nodes.bases[0],
                &format!("/admin/v1/channels/c{i}/drain"),
                json!({}),
            )
            .await?;
        }
    }
    let rss_idle = nodes.rss_mb("VmRSS:");
    let cpu_before = nodes.cpu_secs();
    // What else shares the cores: the simulators and this tool, and the host as a whole.
    let sim_pids: Vec<u32> = sims.iter().map(|k| k.0.id()).collect();
    let own_pid = std::process::id();
    let sim_cpu_before = cpu_secs_of(&sim_pids);
    let own_cpu_before = cpu_secs(own_pid);
    let host_before = host_jiffies();

    let per_request = if args.mode == "batch" {
        args.batch_size as u64
    } else {
        1
    };
    let requests = args.messages.div_ceil(per_request);
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    // Why the requests that failed (after the retry) failed: the last answer's status, or
    // "timeout" / "connection".
    let failure_reasons = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let retried = Arc::new(AtomicU64::new(0));
    let accepted_msgs = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let started = Instant::now();
    // In a failover run the load goes on past `--messages` until the last kill healed.
    let kills_done = Arc::new(AtomicBool::new(args.failover == "none"));
    let killer = (args.failover != "none").then(|| {
        let (args, client, nodes, done) = (
            args.clone(),
            client.clone(),
            nodes.clone(),
            kills_done.clone(),
        );
        tokio::spawn(async move {
            let heals = kill_loop(args, client, nodes, started).await;
            done.store(true, Ordering::Relaxed);
            heals
        })
    });
    // Each node's own view of its runtime threads (`smsgw_runtime_busy_ratio`, the last
    // second's busy share), sampled while the requests go out: near 100 % the node is the
    // limit, lower the limit is elsewhere (the host's other processes, latency).
    let busy_samples = Arc::new(Mutex::new(vec![Vec::new(); nodes.bases.len()]));
    let sending = Arc::new(AtomicBool::new(true));
    tokio::spawn(sample_runtime_busy(
        client.clone(),
        nodes.bases.clone(),
        sending.clone(),
        busy_samples.clone(),
    ));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let kills_done = kills_done.clone();
        let failure_reasons = failure_reasons.clone();
        let (next, failures, retried, accepted_msgs, outcomes, key, bases, mode) = (
            next.clone(),
            failures.clone(),
            retried.clone(),
            accepted_msgs.clone(),
            outcomes.clone(),
            key.clone(),
            nodes.bases.clone(),
            args.mode.clone(),
        );
        let (rate, batch_size, total) = (args.rate, args.batch_size, args.messages);
        let floor = mode == "http-floor";
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut client = load_client::LoadClient::new(&bases, &key);
            let batch = mode == "batch";
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests && kills_done.load(Ordering::Relaxed) {
                    break;
                }
                if rate > 0 {
                    let due =
                        started + Duration::from_secs_f64((n * per_request) as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let k = if mode == "batch" {
                    total
                        .checked_sub(n * batch_size as u64)
                        .filter(|left| *left > 0)
                        .map_or(batch_size as u64, |left| left.min(batch_size as u64))
                } else {
                    1
                };
                let t0 = Instant::now();
                let start_ms = started.elapsed().as_millis() as u64;
                // One try on the request's node, one retry on the next node (what a client
                // behind a load balancer does when a node goes away).
                let mut answer = Err(String::new());
                for attempt in 0..2.min(bases.len()) {
                    let node = (n as usize + attempt) % bases.len();
                    if attempt > 0 {
                        retried.fetch_add(1, Ordering::Relaxed);
                    }
                    answer = if floor {
                        client.probe(node).await
                    } else {
                        client.send(node, batch, n, k).await
                    };
                    if answer.is_ok() {
                        break;
                    }
                }
                let ok = answer.is_ok();
                match answer {
                    Ok(()) => {
                        accepted_msgs.fetch_add(k, Ordering::Relaxed);
                    }
                    Err(why) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        *failure_reasons
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(why)
                            .or_default() += 1;
                    }
                }
                let end_ms = started.elapsed().as_millis() as u64;
                outcomes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Outcome {
                        start_ms,
                        end_ms,
                        accepted: ok,
                    });
                lat.push(t0.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await?);
    }
    let accept_secs = started.elapsed().as_secs_f64();
    // Not waited for: the sampler ends at its next tick, the samples are read now.
    sending.store(false, Ordering::Relaxed);
    let runtime_busy: Vec<Value> =
        std::mem::take(&mut *busy_samples.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .map(|mut v| {
                v.sort_by(f64::total_cmp);
                match v.get(v.len() / 2) {
                    Some(median) => json!((median * 1000.0).round() / 10.0),
                    None => Value::Null,
                }
            })
            .collect();
    let mut heals = match killer {
        Some(k) => k.await??,
        None => Vec::new(),
    };
    let rss_accepted = nodes.rss_mb("VmRSS:");
    lat.sort_unstable();
    let accepted = accepted_msgs.load(Ordering::Relaxed);
    let controls: Vec<u16> = smscs.iter().map(|s| s.1).collect();
    let floor = args.mode == "http-floor";
    let (e2e_secs, at_smsc) = if floor {
        (0.0, 0)
    } else if args.queue_only {
        (0.0, smsc_counter(&client, &controls, "accepted").await)
    } else {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut got;
        loop {
            got = smsc_counter(&client, &controls, "accepted").await;
            if got >= accepted || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (started.elapsed().as_secs_f64(), got)
    };
    let node_cpu_secs = nodes.cpu_secs() - cpu_before;
    let sim_cpu_secs = cpu_secs_of(&sim_pids) - sim_cpu_before;
    let own_cpu_secs = cpu_secs(own_pid) - own_cpu_before;
    let host_after = host_jiffies();
    let host_busy = host_after.0.saturating_sub(host_before.0) as f64
        / host_after.1.saturating_sub(host_before.1).max(1) as f64;
    // Per message carried (per request answered in an http-floor run).
    let carried = if floor { accepted } else { at_smsc };
    let per_carried = |secs: f64| {
        if carried > 0 {
            (secs * 1e6 / carried as f64).round()
        } else {
            0.0
        }
    };
    // The high-water mark (a backlog being sent can peak between two samples), or the RSS
    // after the accepts if higher: a node a failover run restarted has a fresh mark.
    let rss_peak: Vec<f64> = nodes
        .rss_mb("VmHWM:")
        .iter()
        .zip(&rss_accepted)
        .map(|(a, b)| a.max(*b))
        .collect();
    let mut resubmits = 0.0;
    for (i, b) in nodes.bases.iter().enumerate() {
        if let Ok(r) = client.get(format!("{b}/metrics")).send().await
            && let Ok(text) = r.text().await
        {
            resubmits += prom::sum(&prom::parse(&text), "smsgw_resubmits_total", &[]);
            let name = if args.nodes == 1 {
                "metrics.txt".to_string()
            } else {
                format!("metrics-n{}.txt", i + 1)
            };
            let _ = std::fs::write(args.dir.join(name), text);
        }
    }
    let receipts_committed = if args.protocol == "http" {
        // Wait (bounded) for the providers' receipts to be committed by the gateway.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let sent = smsc_counter(&client, &controls, "receipts_sent").await;
            if sent >= at_smsc || Instant::now() > deadline {
                break json!(sent);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        Value::Null
    };
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|e| e.into_inner()));
    for h in &mut heals {
        h.writes_ms = outcomes
            .iter()
            .filter(|o| o.accepted && o.start_ms >= h.at_ms)
            .map(|o| (o.end_ms - h.at_ms) as f64)
            .reduce(f64::min);
    }
    let total_requests = outcomes.len() as u64;
    let failed = failures.load(Ordering::Relaxed);
    let mut report = json!({
        "protocol": args.protocol, "receipts_committed": receipts_committed,
        "nodes": args.nodes, "channels": args.channels, "strategy": args.strategy,
        "mode": args.mode, "messages": args.messages, "concurrency": args.concurrency,
        "batch_size": if args.mode == "batch" { json!(args.batch_size) } else { Value::Null },
        "rate_target": args.rate, "failed_requests": failed,
        "failed_by_reason": *failure_reasons.lock().unwrap_or_else(|e| e.into_inner()),
        "retried_requests": retried.load(Ordering::Relaxed),
        "availability": if total_requests > 0 { 1.0 - failed as f64 / total_requests as f64 } else { 1.0 },
        "accepted": accepted,
        "accept_msgs_per_s": (accepted as f64 / accept_secs).round(),
        "end_to_end_msgs_per_s": if e2e_secs > 0.0 { (at_smsc.min(accepted) as f64 / e2e_secs).round() } else { 0.0 },
        "at_smsc": at_smsc,
        "resubmits": resubmits,
        "accept_latency_ms_p50": percentile(&lat, 0.5), "accept_latency_ms_p99": percentile(&lat, 0.99),
        // CPU all nodes used from the first request until the SMSC had every message
        // (receipts still trailing): steadier than msg/s on a shared, noisy host.
        "node_cpu_us_per_msg": per_carried(node_cpu_secs),
        // The rest of the machine's work per message: the SMSC simulators and this load
        // tool, and how busy all cores were (100 = every core busy the whole time).
        "sim_cpu_us_per_msg": per_carried(sim_cpu_secs),
        "load_cpu_us_per_msg": per_carried(own_cpu_secs),
        "host_busy_pct": (host_busy * 1000.0).round() / 10.0,
        // Median over the run of each node's runtime busy share (null: run too short).
        "runtime_busy_pct": runtime_busy,
        "rss_mb_idle": rss_idle, "rss_mb_after_accept": rss_accepted, "rss_mb_peak": rss_peak,
        "queued_only": args.queue_only,
    });
    if args.nodes == 1 {
        // One node: plain numbers, as before clusters were supported.
        for k in [
            "rss_mb_idle",
            "rss_mb_after_accept",
            "rss_mb_peak",
            "runtime_busy_pct",
        ] {
            report[k] = report[k][0].clone();
        }
    }
    if args.failover != "none" {
        report["failover"] = json!(args.failover);
        report["kills"] = json!(heals.len());
        for (name, pick) in [
            (
                "leader_failover_ms",
                (|h: &Heal| h.leader_ms) as fn(&Heal) -> Option<f64>,
            ),
            ("bind_failover_ms", |h: &Heal| h.bind_ms),
            ("writes_resume_ms", |h: &Heal| h.writes_ms),
        ] {
            let mut v: Vec<u64> = heals
                .iter()
                .filter_map(pick)
                .map(|ms| (ms * 1000.0) as u64)
                .collect();
            v.sort_unstable();
            report[format!("{name}_p50")] = json!(percentile(&v, 0.5));
            report[format!("{name}_p99")] = json!(percentile(&v, 0.99));
            report[format!("{name}_max")] = json!(percentile(&v, 1.0));
            report[format!("{name}_n")] = json!(v.len());
        }
        report["kills_detail"] = heals
            .iter()
            .map(|h| {
                json!({"node": h.target, "at_ms": h.at_ms, "leader_ms": h.leader_ms,
                       "bind_ms": h.bind_ms, "writes_ms": h.writes_ms})
            })
            .collect();
    }
    drop(nodes);
    sims.clear();
    println!("{report}");
    Ok(())
}

/// The simulator children, (port, control port) per channel, and the SGIP report
/// listener ports.
type Simulators = (Vec<Kill>, Vec<(u16, u16)>, Vec<u16>);

/// Starts one simulator per channel.
fn start_simulators(args: &Args, smsgw: &Path, receipts_http: u16) -> Result<Simulators> {
    let mut procs = Vec::new();
    let mut smscs = Vec::new();
    // SGIP: the simulator delivers reports to the channel's listener on this port.
    let listen_ports: Vec<u16> = (0..args.channels)
        .map(|_| free_port())
        .collect::<Result<_>>()?;
    for (i, listen_port) in listen_ports.iter().enumerate() {
        if args.protocol == "http" {
            // The provider's API and /stats share one port.
            let port = free_port()?;
            let log = std::fs::File::create(args.dir.join(format!("provider{i}.log")))?;
            let child = Command::new(smsgw)
                .args([
                    "sim",
                    "http-provider",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                ])
                .args([
                    "--receipts-url",
                    &format!("http://127.0.0.1:{receipts_http}/v1/receipts/c{i}"),
                    "--receipt-token",
                    RECEIPT_TOKEN,
                    "--dlr-delay-ms",
                    "200",
                    "--receipt-batch",
                    "100",
                ])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("start provider simulator")?;
            procs.push(Kill(child));
            smscs.push((port, port));
            continue;
        }
        let (port, control) = (free_port()?, free_port()?);
        let mut proto_args = vec!["--protocol".to_string(), args.protocol.clone()];
        if args.protocol == "sgip" {
            proto_args.extend([
                "--report-to".to_string(),
                format!("127.0.0.1:{listen_port}"),
            ]);
        }
        let log = std::fs::File::create(args.dir.join(format!("smsc{i}.log")))?;
        let child = Command::new(smsgw)
            .args([
                "sim",
                "smsc",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--control",
                &format!("127.0.0.1:{control}"),
            ])
            .args([
                "--system-id",
                &format!("load{i}"),
                "--password",
                "pw",
                "--dlr-delay-ms",
                "200",
            ])
            .args(&proto_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start simulator")?;
        procs.push(Kill(child));
        smscs.push((port, control));
    }
    Ok((procs, smscs, listen_ports))
}

/// Starts the gateway nodes: one plain node, or a cluster with `--peers`.
fn start_nodes(args: &Args, smsgw: &Path, ports: &[(u16, u16)]) -> Result<Nodes> {
    let peers = if args.nodes > 1 {
        ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let mut procs = Vec::new();
    for (i, (http, cluster)) in ports.iter().enumerate() {
        let id = i as u64 + 1;
        let mut flags: Vec<String> = [
            "--log",
            "warn",
            "--tenant-queue-limit",
            "2000000",
            "--node-queue-limit",
            "2000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        flags.extend(args.node_args.iter().cloned());
        let spec = NodeSpec {
            id,
            http: *http,
            cluster: *cluster,
            data_dir: args.dir.join(format!("n{id}")).join("data"),
            peers: peers.clone(),
            env: vec![("RUST_LOG".into(), "warn".into())],
            args: flags,
        };
        let mut node = NodeProc::new(smsgw, &args.dir, spec);
        node.start(ADMIN_TOKEN).context("start node")?;
        procs.push(node);
    }
    Ok(Nodes {
        bases: ports
            .iter()
            .map(|(h, _)| format!("http://127.0.0.1:{h}"))
            .collect(),
        procs: Mutex::new(procs),
    })
}

async fn admin_post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> Result<Value> {
    let r = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await?;
    let s = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if !s.is_success() {
        bail!("POST {path}: {s}: {v}");
    }
    Ok(v)
}

/// Creates the channels, the default route and the tenant; returns the tenant's API key.
async fn configure(
    args: &Args,
    client: &reqwest::Client,
    base: &str,
    smscs: &[(u16, u16)],
    listen_ports: &[u16],
) -> Result<String> {
    let mut route = Vec::new();
    for (i, (port, _)) in smscs.iter().enumerate() {
        let channel = if args.protocol == "http" {
            json!({"id": format!("c{i}"), "protocol": "http", "tps": 1_000_000, "window": 256,
            "options": {
                "request": {"url": format!("http://127.0.0.1:{port}/sms"),
                            "body": {"to": "{to}", "from": "{from}", "text": "{text}", "reference": "{reference}"}},
                "response": {"id_path": "/message/id", "error_code_path": "error.code"},
                "receipts": {"auth": {"type": "token", "token": RECEIPT_TOKEN},
                             "id_path": "data.id", "status_path": "data.status", "error_code_path": "data.error_code"}}})
        } else {
            json!({"id": format!("c{i}"), "protocol": args.protocol, "host": "127.0.0.1", "port": port,
            "system_id": format!("load{i}"), "password": "pw", "tps": 1_000_000, "window": 256,
            "options": if args.protocol == "sgip" {
                json!({"listen": format!("127.0.0.1:{}", listen_ports[i]),
                       "listen_login_name": "smg", "listen_password": "smgpw"})
            } else { json!({}) }})
        };
        admin_post(client, base, "/admin/v1/channels", channel).await?;
        route.push(json!({"id": format!("c{i}"), "weight": 1}));
    }
    admin_post(
        client,
        base,
        "/admin/v1/routes",
        json!({"id": "default", "match": {}, "strategy": args.strategy, "channels": route}),
    )
    .await?;
    let t = admin_post(client, base, "/admin/v1/tenants", json!({"id": "load", "name": "load", "rate_limit": {"per_second": 1_000_000, "burst": 1_000_000},
        "queue_limit": 2_000_000})).await?;
    Ok(t["api_key"].as_str().context("api key")?.to_string())
}

/// Waits until every channel reports a bound bind.
async fn wait_bound(client: &reqwest::Client, base: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = admin_get(client, base, "/admin/v1/channels").await;
        if v.as_ref()
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty() && a.iter().all(|c| c["state"] == "bound"))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("channels did not bind: {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every second while `sending`, each node's `smsgw_runtime_busy_ratio` into `samples`
/// (one list per node; a node that did not answer misses that sample).
async fn sample_runtime_busy(
    client: reqwest::Client,
    bases: Vec<String>,
    sending: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Vec<f64>>>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await; // at once: the first window is not whole yet
    loop {
        tick.tick().await;
        for (i, b) in bases.iter().enumerate() {
            let page = match client.get(format!("{b}/metrics")).send().await {
                Ok(r) => r.text().await.ok(),
                Err(_) => None,
            };
            if !sending.load(Ordering::Relaxed) {
                return;
            }
            let busy = page.as_deref().and_then(|text| {
                prom::parse(text)
                    .iter()
                    .find(|l| l.name == "smsgw_runtime_busy_ratio")
                    .map(|l| l.value)
            });
            if let Some(busy) = busy
                && let Some(node) = samples.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i)
            {
                node.push(busy);
            }
        }
    }
}

/// A node's own view of the cluster: (its id, the leader it follows, ids it sees up).
async fn cluster_view(
    client: &reqwest::Client,
    base: &str,
) -> Option<(u64, Option<u64>, Vec<u64>)> {
    let v = admin_get(client, base, "/admin/v1/cluster").await?;
    let up = v["nodes"]
        .as_array()?
        .iter()
        .filter(|n| n["state"] == "up")
        .filter_map(|n| n["id"].as_u64())
        .collect();
    Some((v["node"].as_u64()?, v["leader"].as_u64(), up))
}

/// Every node up, one leader all agree on, every channel bound.
async fn healthy(client: &reqwest::Client, nodes: &Nodes) -> Option<u64> {
    let mut leader = None;
    for b in &nodes.bases {
        let (_, l, up) = cluster_view(client, b).await?;
        if l.is_none() || (leader.is_some() && leader != l) || up.len() < nodes.bases.len() {
            return None;
        }
        leader = l;
    }
    let chans = admin_get(client, &nodes.bases[0], "/admin/v1/channels").await?;
    chans
        .as_array()?
        .iter()
        .all(|c| c["state"] == "bound")
        .then_some(leader?)
}

/// Channel ids and their owners, as one node sees them.
async fn owners(client: &reqwest::Client, base: &str) -> Vec<(String, u64)> {
    admin_get(client, base, "/admin/v1/channels")
        .await
        .and_then(|v| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|c| Some((c["id"].as_str()?.to_string(), c["owner"].as_u64()?)))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Is `channel` bound on a node other than `dead`, as a survivor sees it?
async fn rebound(client: &reqwest::Client, base: &str, channel: &str, dead: u64) -> bool {
    let Some(v) = admin_get(client, base, &format!("/admin/v1/channels/{channel}")).await else {
        return false;
    };
    let Some(owner) = v["owner"].as_u64().filter(|o| *o != dead) else {
        return false;
    };
    v["binds"].as_array().is_some_and(|b| {
        b.iter()
            .any(|b| b["state"] == "bound" && b["node"].as_u64() == Some(owner))
    })
}

/// Kills the leader or a bind owner `args.kills` times, each after the cluster is healthy
/// and has run steady for `settle_secs`, and restarts the victim on its data dir.
async fn kill_loop(
    args: Args,
    client: reqwest::Client,
    nodes: Arc<Nodes>,
    started: Instant,
) -> Result<Vec<Heal>> {
    let mut heals = Vec::new();
    for round in 0..args.kills {
        let deadline = Instant::now() + Duration::from_secs(120);
        let leader = loop {
            if let Some(l) = healthy(&client, &nodes).await {
                break l;
            }
            if Instant::now() > deadline {
                bail!("kill {round}: the cluster did not become healthy within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
        let owned = owners(&client, nodes.base(leader)).await;
        let (target, channels): (u64, Vec<String>) = if args.failover == "leader" {
            (
                leader,
                owned
                    .iter()
                    .filter(|(_, o)| *o == leader)
                    .map(|(c, _)| c.clone())
                    .collect(),
            )
        } else {
            // A channel whose owner is not the leader, so the bind move is measured alone.
            let Some((c, o)) = owned
                .iter()
                .find(|(_, o)| *o != leader)
                .or_else(|| owned.first())
                .cloned()
            else {
                bail!("kill {round}: no channel has an owner");
            };
            (o, vec![c])
        };
        let at_ms = started.elapsed().as_millis() as u64;
        let t0 = Instant::now();
        nodes.lock()[(target - 1) as usize].kill9();
        let survivors: Vec<&str> = (1..=nodes.bases.len() as u64)
            .filter(|id| *id != target)
            .map(|id| nodes.base(id))
            .collect();
        let mut heal = Heal {
            target,
            at_ms,
            ..Heal::default()
        };
        while t0.elapsed() < FAILOVER_CAP {
            if args.failover == "leader" && heal.leader_ms.is_none() {
                for b in &survivors {
                    if let Some((me, Some(l), _)) = cluster_view(&client, b).await
                        && l == me
                    {
                        heal.leader_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                }
            }
            if heal.bind_ms.is_none() && !channels.is_empty() {
                let mut all = true;
                for c in &channels {
                    all &= rebound(&client, survivors[0], c, target).await;
                }
                if all {
                    heal.bind_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
                }
            }
            let leader_done = args.failover != "leader" || heal.leader_ms.is_some();
            let bind_done = channels.is_empty() || heal.bind_ms.is_some();
            if leader_done && bind_done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!(
            "kill {}: node {target} ({}) leader {:?} ms, bind {:?} ms",
            round + 1,
            args.failover,
            heal.leader_ms.map(f64::round),
            heal.bind_ms.map(f64::round)
        );
        heals.push(heal);
        nodes.lock()[(target - 1) as usize]
            .start(ADMIN_TOKEN)
            .context("restart node")?;
        wait_ok(
            &client,
            &format!("{}/readyz", nodes.base(target)),
            Duration::from_secs(60),
        )
        .await?;
    }
    Ok(heals)
}
