//! `smsgw-load`: the benchmark load tool. It starts a real SMSC simulator and a real
//! gateway node (fsync on) as child processes on free ports, creates a tenant, channels
//! and a route, drives HTTP sends (single messages at a concurrency, or batches), and
//! reports end-to-end msg/s counted at the SMSC, accept latency p50/p99 and the node's RSS.
//!
//! Example: `cargo build --release && target/release/smsgw-load --mode single --messages 100000`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "smsgw-load",
    about = "Drive HTTP load through one smsgw node into the SMSC simulator"
)]
struct Args {
    /// single: one message per request; batch: `--batch-size` per request.
    #[arg(long, default_value = "single")]
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
    /// Channel protocol: smpp, cmpp, smgp or sgip (`sim smsc --protocol`), or http
    /// (`sim http-provider`, receipts POSTed back to `/v1/receipts/{channel}`).
    #[arg(long, default_value = "smpp")]
    protocol: String,
    /// Where node data goes (removed first).
    #[arg(long, default_value = "/tmp/smsgw-load")]
    dir: PathBuf,
    /// The smsgw binary (default: next to this one).
    #[arg(long)]
    smsgw: Option<PathBuf>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

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

async fn smsc_accepted(client: &reqwest::Client, controls: &[u16]) -> u64 {
    let mut total = 0;
    for c in controls {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{c}/stats"))
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
        {
            total += v["accepted"].as_u64().unwrap_or(0);
        }
    }
    total
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let smsgw = match &args.smsgw {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("smsgw"),
    };
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let client = smsgw::http_client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let mut procs = Vec::new();
    let mut smscs = Vec::new();
    if !matches!(
        args.protocol.as_str(),
        "smpp" | "http" | "cmpp" | "smgp" | "sgip"
    ) {
        bail!("--protocol: smpp, http, cmpp, smgp or sgip");
    }
    let (http, cluster) = (free_port()?, free_port()?);
    let receipt_token = "load-receipt-token-0123456789";
    // SGIP: the simulator delivers reports to the channel's listener on this port.
    let listen_ports: Vec<u16> = (0..args.channels)
        .map(|_| free_port())
        .collect::<Result<_>>()?;
    for (i, listen_port) in listen_ports.iter().enumerate() {
        if args.protocol == "http" {
            // The provider's API and /stats share one port.
            let port = free_port()?;
            let log = std::fs::File::create(args.dir.join(format!("provider{i}.log")))?;
            let child = Command::new(&smsgw)
                .args([
                    "sim",
                    "http-provider",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                ])
                .args([
                    "--receipts-url",
                    &format!("http://127.0.0.1:{http}/v1/receipts/c{i}"),
                    "--receipt-token",
                    receipt_token,
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
        let child = Command::new(&smsgw)
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
    let token = "load-admin-token-0123456789";
    let node_log = std::fs::File::create(args.dir.join("node.log"))?;
    let node = Command::new(&smsgw)
        .args([
            "start",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--cluster-addr",
            &format!("127.0.0.1:{cluster}"),
        ])
        .args([
            "--data-dir",
            &args.dir.join("data").display().to_string(),
            "--admin-token",
            token,
            "--log",
            "warn",
        ])
        .args([
            "--tenant-queue-limit",
            "2000000",
            "--node-queue-limit",
            "2000000",
        ])
        .stdout(Stdio::null())
        .stderr(node_log)
        .spawn()
        .context("start node")?;
    let node_pid = node.id();
    procs.push(Kill(node));
    let base = format!("http://127.0.0.1:{http}");
    wait_ok(&client, &format!("{base}/readyz"), Duration::from_secs(60)).await?;
    for (_, control) in &smscs {
        wait_ok(
            &client,
            &format!("http://127.0.0.1:{control}/stats"),
            Duration::from_secs(20),
        )
        .await?;
    }
    let admin = |path: &str, body: Value| {
        let req = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = req.send().await?;
            let s = r.status();
            let v: Value = r.json().await.unwrap_or_default();
            if !s.is_success() {
                bail!("{s}: {v}");
            }
            Ok::<Value, anyhow::Error>(v)
        }
    };
    let mut route = Vec::new();
    for (i, (port, _)) in smscs.iter().enumerate() {
        let channel = if args.protocol == "http" {
            json!({"id": format!("c{i}"), "protocol": "http", "tps": 1_000_000, "window": 256,
            "options": {
                "request": {"url": format!("http://127.0.0.1:{port}/sms"),
                            "body": {"to": "{to}", "from": "{from}", "text": "{text}", "reference": "{reference}"}},
                "response": {"id_path": "/message/id", "error_code_path": "error.code"},
                "receipts": {"auth": {"type": "token", "token": receipt_token},
                             "id_path": "data.id", "status_path": "data.status", "error_code_path": "data.error_code"}}})
        } else {
            json!({"id": format!("c{i}"), "protocol": args.protocol, "host": "127.0.0.1", "port": port,
            "system_id": format!("load{i}"), "password": "pw", "tps": 1_000_000, "window": 256,
            "options": if args.protocol == "sgip" {
                json!({"listen": format!("127.0.0.1:{}", listen_ports[i]),
                       "listen_login_name": "smg", "listen_password": "smgpw"})
            } else { json!({}) }})
        };
        admin("/admin/v1/channels", channel).await?;
        route.push(json!({"id": format!("c{i}")}));
    }
    admin(
        "/admin/v1/routes",
        json!({"id": "default", "match": {}, "channels": route}),
    )
    .await?;
    let t = admin("/admin/v1/tenants", json!({"id": "load", "name": "load", "rate_limit": {"per_second": 1_000_000, "burst": 1_000_000},
        "queue_limit": 2_000_000})).await?;
    let key = t["api_key"].as_str().context("api key")?.to_string();
    // Wait for the binds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = client
            .get(format!("{base}/admin/v1/channels"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        if v.as_array()
            .is_some_and(|a| a.iter().all(|c| c["state"] == "bound"))
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("channels did not bind: {v}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if args.queue_only {
        // Spread over the routes' channels but let nothing out: drain every channel.
        for i in 0..smscs.len() {
            admin(&format!("/admin/v1/channels/c{i}/drain"), json!({})).await?;
        }
    }
    let rss_idle = rss_mb(node_pid);

    let per_request = if args.mode == "batch" {
        args.batch_size as u64
    } else {
        1
    };
    let requests = args.messages.div_ceil(per_request);
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, failures, key, base, mode) = (
            client.clone(),
            next.clone(),
            failures.clone(),
            key.clone(),
            base.clone(),
            args.mode.clone(),
        );
        let (rate, batch_size, total) = (args.rate, args.batch_size, args.messages);
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                if rate > 0 {
                    let due = started + Duration::from_secs_f64((n * per_request) as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t0 = Instant::now();
                let ok = if mode == "batch" {
                    let k = (total - n * batch_size as u64).min(batch_size as u64);
                    let msgs: Vec<Value> = (0..k)
                        .map(|j| json!({"to": "+4915112345678", "text": format!("load {n}-{j}"), "client_ref": format!("r{n}-{j}")}))
                        .collect();
                    client.post(format!("{base}/v1/messages/batch")).bearer_auth(&key).json(&json!({"messages": msgs})).send().await
                        .is_ok_and(|r| r.status().as_u16() == 200)
                } else {
                    client.post(format!("{base}/v1/messages")).bearer_auth(&key)
                        .json(&json!({"to": "+4915112345678", "text": format!("load {n}"), "client_ref": format!("r{n}")}))
                        .send().await.is_ok_and(|r| r.status().as_u16() == 202)
                };
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
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
    let rss_accepted = rss_mb(node_pid);
    lat.sort_unstable();
    let controls: Vec<u16> = smscs.iter().map(|s| s.1).collect();
    let (e2e_secs, at_smsc) = if args.queue_only {
        (0.0, smsc_accepted(&client, &controls).await)
    } else {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut got;
        loop {
            got = smsc_accepted(&client, &controls).await;
            if got >= args.messages || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (started.elapsed().as_secs_f64(), got)
    };
    let rss_peak = rss_mb(node_pid).max(rss_accepted);
    if let Ok(r) = client.get(format!("{base}/metrics")).send().await
        && let Ok(text) = r.text().await
    {
        let _ = std::fs::write(args.dir.join("metrics.txt"), text);
    }
    let receipts_committed = if args.protocol == "http" {
        // Wait (bounded) for the providers' receipts to be committed by the gateway.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut sent = 0;
            for c in &controls {
                if let Ok(r) = client
                    .get(format!("http://127.0.0.1:{c}/stats"))
                    .send()
                    .await
                    && let Ok(v) = r.json::<Value>().await
                {
                    sent += v["receipts_sent"].as_u64().unwrap_or(0);
                }
            }
            if sent >= at_smsc || Instant::now() > deadline {
                break json!(sent);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        Value::Null
    };
    let report = json!({
        "protocol": args.protocol, "receipts_committed": receipts_committed,
        "mode": args.mode, "messages": args.messages, "concurrency": args.concurrency,
        "batch_size": if args.mode == "batch" { json!(args.batch_size) } else { Value::Null },
        "rate_target": args.rate, "failed_requests": failures.load(Ordering::Relaxed),
        "accept_msgs_per_s": (args.messages as f64 / accept_secs).round(),
        "end_to_end_msgs_per_s": if e2e_secs > 0.0 { (at_smsc as f64 / e2e_secs).round() } else { 0.0 },
        "at_smsc": at_smsc,
        "accept_latency_ms_p50": percentile(&lat, 0.5), "accept_latency_ms_p99": percentile(&lat, 0.99),
        "rss_mb_idle": rss_idle.round(), "rss_mb_after_accept": rss_accepted.round(), "rss_mb_peak": rss_peak.round(),
        "queued_only": args.queue_only,
    });
    println!("{report}");
    Ok(())
}
