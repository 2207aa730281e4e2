//! The `smsgw` binary: parses the command line and runs a node, the demo, a simulator,
//! or an admin command. Exit codes: 0 clean, 1 fatal, 2 bad configuration, 130 a drain
//! cut short by a second SIGTERM/SIGINT.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;

/// glibc malloc spent ~30% of a loaded node's CPU (profiled); mimalloc is built for this.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use smsgw::cli::{Cli, Command, SimArgs, SimCommand};
use smsgw::config::Config;

/// Logs go to stderr (stdout carries what a command prints for the user: the demo's key
/// and curl lines, a generated admin token). `filter` is the configured `log`; `RUST_LOG`
/// is read only when `log` was set nowhere (`explicit` false), so the documented
/// precedence flag > env SMSGW_LOG > file holds. Colour only on a terminal, and never
/// with `NO_COLOR` set (https://no-color.org).
fn init_tracing(filter: &str, explicit: bool) {
    use std::io::IsTerminal;
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !explicit && !v.trim().is_empty())
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok());
    let filter = from_env
        .or_else(|| {
            tracing_subscriber::EnvFilter::try_new(format!(
                "{filter},rusmpp=off,fjall=warn,lsm_tree=warn,openraft=warn"
            ))
            .ok()
        })
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}

/// The exit status of a node (or demo) that could not start or stopped: 2 when the fix
/// is a configuration change (the one line names the field) or the data dir cannot be used
/// as it is (the one line names it and says what to do), else 1.
fn node_failed(e: &smsgw::node::NodeError) -> ExitCode {
    if let Some(why) = e.as_refusal() {
        eprintln!("error: {why}");
        return ExitCode::from(2);
    }
    match e.as_config() {
        Some(c) => {
            eprintln!("{c}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// 0 after a complete drain, 130 (as for a forced interrupt) when a second signal cut it.
fn stopped(s: smsgw::node::Stopped) -> ExitCode {
    match s {
        smsgw::node::Stopped::Clean => ExitCode::SUCCESS,
        smsgw::node::Stopped::Forced => ExitCode::from(130),
    }
}

/// Transparent huge pages off for this process (and the simulators it starts): mimalloc
/// asks for them on its arenas, and every fault of a 2 MiB page it had purged zeroes the
/// whole page again. Off, a loaded node used ~20 % less memory and its p99 accept latency
/// fell by a third (docs/benchmarks.md). Process-wide, so it covers arenas mapped before
/// `main` too; a kernel without the call leaves THP as it was.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; no memory is touched.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Help and version print as clap renders them. Any other command-line error is the
/// contract's one line naming the flag (clap's first line, e.g. "error: invalid value
/// 'abc' for '--node-id <NODE_ID>': invalid digit found in string"), exit status 2.
fn cli_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    }
    eprintln!("{} (see --help)", first_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// Clap's error as one line: its first line, and when that ends with a colon (a list of
/// missing arguments follows, one per indented line) the list joined onto it, so the
/// line names the flag: "... not provided: --text <TEXT>".
fn first_line(text: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let Some(first) = lines.next() else {
        return "error: bad command line".into();
    };
    if !first.trim_end().ends_with(':') {
        return first.to_string();
    }
    let listed: Vec<&str> = lines
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    format!("{} {}", first.trim_end(), listed.join(", "))
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    smsgw::http_client::install_tls_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli_error(e),
    };
    // A simulator stands in for a remote operator but shares the cores with the node in
    // tests and benchmarks: it spends about 15 µs of CPU per message (submit, response,
    // receipt), so one thread carries tens of thousands a second, and without a pool's
    // cross-thread wake-ups three simulators used 0.15 instead of 0.21 cores at 10k msg/s.
    let mut builder = match &cli.command {
        Command::Sim(SimArgs {
            command: SimCommand::Smsc(_) | SimCommand::HttpProvider(_),
        }) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    // `start` reads its config before the runtime exists: the config sizes the runtime.
    let start_config = match &cli.command {
        Command::Start(args) => {
            let env: HashMap<String, String> = smsgw::config::process_env();
            match Config::load(args, &env).and_then(|c| c.validate().map(|_| c)) {
                Ok(c) => {
                    if c.worker_threads > 0 {
                        builder.worker_threads(c.worker_threads);
                    }
                    Some(c)
                }
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Start(_) => {
                let Some(cfg) = start_config else {
                    return ExitCode::from(2);
                };
                init_tracing(&cfg.log, cfg.origins.is_set("log"));
                match smsgw::node::run(cfg).await {
                    Ok(s) => stopped(s),
                    Err(e) => node_failed(&e),
                }
            }
            Command::Demo(args) => {
                init_tracing("info", false);
                let ports = match args.smsc_port_list() {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("invalid config: {e}");
                        return ExitCode::from(2);
                    }
                };
                // The addresses are checked before anything starts (the simulators bind
                // first), with the same one-line reasons as `start` gives.
                let addresses = smsgw::config::Config {
                    http: args.http.clone(),
                    cluster_addr: args.cluster_addr.clone(),
                    data_dir: Some(args.data_dir.clone()),
                    ..smsgw::config::Config::default()
                };
                if let Err(e) = addresses.validate() {
                    eprintln!("{}", e.with_flag_origin());
                    return ExitCode::from(2);
                }
                let opts = smsgw::demo::DemoOptions {
                    data_dir: args.data_dir.clone(),
                    http: args.http.clone(),
                    cluster_addr: args.cluster_addr.clone(),
                    smsc_ports: ports,
                };
                match smsgw::demo::run(opts).await {
                    Ok(s) => stopped(s),
                    Err(smsgw::demo::DemoError::Node(e)) => node_failed(&e),
                    Err(smsgw::demo::DemoError::Config(e)) => {
                        eprintln!("{e}");
                        ExitCode::from(2)
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            Command::Sim(sim) => match sim.command {
                SimCommand::Smsc(args) => {
                    init_tracing("info", false);
                    sim_exit(smsgw::sim::smsc::run(args).await)
                }
                SimCommand::HttpProvider(args) => {
                    init_tracing("info", false);
                    sim_exit(smsgw::sim::http_provider::run(args).await)
                }
                SimCommand::Run(args) => {
                    // Logs go to stderr: stdout is the runs' JSON lines.
                    let _ = tracing_subscriber::fmt()
                        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
                        .with_writer(std::io::stderr)
                        .with_target(false)
                        .try_init();
                    ExitCode::from(smsgw::chaos::run_cli(args).await)
                }
            },
            other => match smsgw::cli::run_admin(&other).await {
                Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            },
        }
    });
    // Tasks still running (a forced stop leaves some, and blocking storage work) get a
    // moment, not forever: the exit status is decided.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// A simulator's exit: 2 with one line when it could not start with what it was given
/// (`sim::StartRefused`), 1 for a failure while running.
fn sim_exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<smsgw::sim::StartRefused>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
