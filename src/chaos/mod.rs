//! Chaos and failover simulation runs (`smsgw sim run simulations/<scenario>.toml`).
//!
//! A run starts real node processes on 127.0.0.1, SMSC simulators and a webhook receiver
//! in its own process, routes every inter-node and SMSC link through a TCP fault proxy,
//! drives load with unique client references, injects the scenario's faults on schedule,
//! then checks the invariants I1–I8 (`shared/RELIABILITY.md`) from the outside and writes
//! a report with charts. Its last line of output is one JSON object with the figures; the
//! exit status is non-zero when an invariant broke.
//!
//! - [`scenario`]: the TOML schema.
//! - [`proxy`]: the TCP fault proxy (hang, reset, latency, bandwidth, one direction).
//! - [`procs`]: node processes (kill -9, SIGSTOP/SIGCONT, SIGTERM, restart).
//! - [`webhook`]: the webhook receiver (ok, failing, slow).
//! - [`load`]: the load generator with client retry to another node.
//! - [`oracle`]: invariants and figures from ledgers, webhooks and the status API.
//! - [`ports`]: listening ports for child processes, outside the ephemeral range.
//! - [`report`]: markdown and SVG charts.
//! - [`runner`]: one run from start to verdict.
//! - [`deterministic`]: the seeded, reproducible simulation of the message lifecycle.

pub mod deterministic;
pub mod load;
pub mod oracle;
pub mod ports;
pub mod procs;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod webhook;

use std::path::PathBuf;

/// Options of `smsgw sim run`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimRunArgs {
    /// Scenario files, run one after the other (e.g. `simulations/*.toml`).
    #[arg(required = true, value_name = "SCENARIO.toml")]
    pub scenarios: Vec<PathBuf>,
    /// Seed for every run (default: the file's, else a random one; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run directories (logs, data, ledgers, report) go.
    #[arg(long, value_name = "DIR", default_value = "target/chaos")]
    pub out: PathBuf,
    /// The smsgw binary for the nodes (default: this one).
    #[arg(long, value_name = "FILE")]
    pub bin: Option<PathBuf>,
    /// Ports the nodes' HTTP and Raft listeners are chosen from, inclusive (at least 16;
    /// keep it below the kernel's ephemeral range, 32768 and up on Linux). The runner's
    /// own proxies, simulators and webhook receiver listen on kernel-chosen ports.
    #[arg(
        long,
        value_name = "LOW-HIGH",
        env = "SMSGW_SIM_PORTS",
        default_value = "10000-31999"
    )]
    pub ports: ports::PortRange,
}

/// The scenario file's name without `.toml`, for the JSON line of a run that did not start.
fn stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Resolves on ctrl-c (SIGINT) or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs every scenario; exit code 0 when all held, 1 when an invariant broke (or none of a
/// run's faults could be injected), 2 when a scenario file is invalid (checked for every
/// file before any run starts) or a run could not be set up. Ctrl-C or SIGTERM stops the
/// run and everything it started (exit 130).
pub async fn run_cli(args: SimRunArgs) -> u8 {
    let bin = match args
        .bin
        .clone()
        .map(Ok)
        .unwrap_or_else(std::env::current_exe)
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot find the smsgw binary: {e}");
            return 2;
        }
    };
    // Every file is read and checked first: a typo in the last of a long list stops the
    // invocation at once, not after the runs before it.
    let mut scenarios = Vec::new();
    let mut invalid = false;
    for path in &args.scenarios {
        match scenario::Scenario::load(path) {
            Ok(s) => scenarios.push((path, s)),
            Err(e) => {
                eprintln!("error: {e}");
                println!(
                    "{}",
                    serde_json::json!({"scenario": stem(path), "error": e.to_string(), "dir": null})
                );
                invalid = true;
            }
        }
    }
    if invalid {
        return 2;
    }
    if let Some((lo, hi)) = args.ports.ephemeral_overlap() {
        eprintln!(
            "warning: --ports {} overlaps the kernel's ephemeral range {lo}-{hi}: an outgoing connection may take a node's port before it binds it",
            args.ports
        );
    }
    let setup = runner::RunSetup {
        seed: args.seed,
        out_root: &args.out,
        bin: &bin,
        ports: &args.ports,
    };
    let mut code = 0u8;
    for (path, sc) in &scenarios {
        let run = runner::run(path, sc, &setup);
        let r = tokio::select! {
            r = run => r,
            _ = interrupted() => {
                eprintln!("chaos: interrupted; stopping everything this run started");
                return 130;
            }
        };
        match r {
            Ok(o) => {
                // Also collected in <out>/results.jsonl (simulations/README.md is made from it).
                let line = format!("{}\n", o.json);
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(args.out.join("results.jsonl"))
                    .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
                println!("{}", o.json);
                if !o.pass {
                    code = code.max(1);
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                println!(
                    "{}",
                    serde_json::json!({"scenario": stem(path), "error": e.to_string(), "dir": e.run_dir()})
                );
                code = 2;
            }
        }
    }
    code
}
