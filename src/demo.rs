//! `smsgw demo`: one node on an embedded data dir, two simulated operator SMSCs, a
//! ready tenant, two channels and a default route with failover; prints the API key
//! and a working curl line. No external services needed. A demo restarted on the same
//! data dir brings its channels and route to this run's SMSC ports (and says so), so
//! `--smsc-ports` works the second time too.

use std::time::Duration;

use crate::config::{Config, ConfigError, Origin, Origins};
use crate::node::{self, Node, Stopped};
use crate::sim::smsc::SmscSimArgs;

/// Options of `smsgw demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data_dir: std::path::PathBuf,
    pub http: String,
    pub cluster_addr: String,
    pub smsc_ports: Vec<u16>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Node(#[from] node::NodeError),
    /// A flag's value cannot be used (a simulated SMSC port in use): exit 2.
    #[error(transparent)]
    Config(ConfigError),
    #[error("demo setup: {0}")]
    Setup(String),
}

/// The SMSC system id of the demo's `i`-th simulator (and channel).
fn system_id(i: usize) -> String {
    format!("demo{}", i + 1)
}

/// The demo's `i`-th channel id: smsc-a, smsc-b, ...
fn channel_id(i: usize) -> String {
    format!("smsc-{}", (b'a' + (i % 26) as u8) as char)
}

/// Where the demo's channel `id` must point this run: the simulator on `port`. When a
/// demo run before left it elsewhere (other `--smsc-ports`), it is written again in
/// place (`Op::PutChannel`, as create does; the channel supervisor rebinds it) and the
/// change is returned for the user, e.g. "smsc-a 127.0.0.1:2775 → 127.0.0.1:22077".
async fn repoint_channel(
    node: &Node,
    id: &str,
    i: usize,
    port: u16,
) -> Result<Option<String>, DemoError> {
    let Some(mut c) = node.consensus.store().config().channels.get(id).cloned() else {
        return Ok(None);
    };
    let (host, sys) = ("127.0.0.1", system_id(i));
    if c.host == host && c.port == port && c.system_id == sys && c.password == "secret" {
        return Ok(None);
    }
    let was = format!("{}:{}", c.host, c.port);
    c.host = host.into();
    c.port = port;
    c.system_id = sys;
    c.password = "secret".into();
    node.consensus
        .propose(crate::state::Op::PutChannel(Box::new(c)))
        .await
        .map_err(|e| DemoError::Setup(format!("update channel {id}: {e}")))?;
    Ok(Some(format!("{id} {was} → {host}:{port}")))
}

async fn admin(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, DemoError> {
    let resp = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| DemoError::Setup(format!("{path}: {e}")))?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() || status.as_u16() == 409 {
        Ok(v)
    } else {
        Err(DemoError::Setup(format!("{path}: {status} {v}")))
    }
}

/// Runs the demo until SIGTERM/SIGINT (a second one cuts the drain: [`Stopped::Forced`]).
pub async fn run(opts: DemoOptions) -> Result<Stopped, DemoError> {
    let mut signals = node::Signals::listen();
    let mut sims = Vec::new();
    for (i, port) in opts.smsc_ports.iter().enumerate() {
        let args = SmscSimArgs {
            listen: format!("127.0.0.1:{port}"),
            system_id: system_id(i),
            password: "secret".into(),
            dlr_delay_ms: 1500,
            ..SmscSimArgs::default()
        };
        // Bind first, so a busy port stops the demo at once with the flag to change.
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| {
                DemoError::Config(ConfigError::Field {
                    field: "smsc_ports",
                    origin: Origin::Flag("--smsc-ports"),
                    reason: format!(
                        "cannot listen on 127.0.0.1:{port}: {} (choose others with --smsc-ports)",
                        crate::data_dir::io_reason(&e)
                    ),
                })
            })?;
        let sim = crate::sim::smsc::SmscSim::start(listener, args)
            .await
            .map_err(|e| DemoError::Setup(format!("simulated SMSC port {port}: {e}")))?;
        sims.push(sim);
    }
    let cfg = Config {
        http: opts.http.clone(),
        cluster_addr: opts.cluster_addr.clone(),
        data_dir: Some(opts.data_dir.clone()),
        origins: Origins::flags(&["http", "cluster_addr", "data_dir"]),
        // Its receivers, like its simulated SMSCs, are on this machine.
        webhook_allow_private: true,
        ..Config::default()
    };
    let node = tokio::select! {
        node = Node::start(&cfg) => node?,
        _ = signals.next() => return Ok(Stopped::Clean),
    };
    let base = format!("http://{}", node.http_addr);
    let client = crate::http_client::builder()
        .build()
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let token = node.admin_token.clone();
    let mut channel_ids = Vec::new();
    // What an earlier demo run on this data dir left different, said to the user.
    let mut changes = Vec::new();
    for (i, port) in opts.smsc_ports.iter().enumerate() {
        let id = channel_id(i);
        admin(
            &client,
            &base,
            &token,
            "/admin/v1/channels",
            serde_json::json!({
                "id": id, "protocol": "smpp", "host": "127.0.0.1", "port": port,
                "system_id": system_id(i), "password": "secret", "tps": 500, "window": 32,
                "cost": {"default": 0.004 + 0.001 * i as f64},
            }),
        )
        .await?;
        changes.extend(repoint_channel(&node, &id, i, *port).await?);
        channel_ids.push(id);
    }
    let route_channels: Vec<serde_json::Value> = channel_ids
        .iter()
        .map(|c| serde_json::json!({"id": c}))
        .collect();
    admin(
        &client,
        &base,
        &token,
        "/admin/v1/routes",
        serde_json::json!({
            "id": "default", "match": {}, "strategy": "priority",
            "channels": route_channels,
        }),
    )
    .await?;
    let routed: Option<Vec<String>> = node
        .consensus
        .store()
        .config()
        .routes
        .get("default")
        .map(|r| r.channels.iter().map(|c| c.id.clone()).collect());
    if routed.as_ref() != Some(&channel_ids) {
        let resp = client
            .patch(format!("{base}/admin/v1/routes/default"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"strategy": "priority", "channels": route_channels}))
            .send()
            .await
            .map_err(|e| DemoError::Setup(format!("/admin/v1/routes/default: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            return Err(DemoError::Setup(format!(
                "/admin/v1/routes/default: {status} {v}"
            )));
        }
        changes.push(format!("route default → {}", channel_ids.join(", ")));
    }
    let tenant = admin(&client, &base, &token, "/admin/v1/tenants", serde_json::json!({
        "id": "demo", "name": "Demo tenant", "rate_limit": {"per_second": 200, "burst": 400}, "senders": ["SMSGW"],
    }))
    .await?;
    // A demo data dir from an older version has SMSGW on the tenant but not in its sender
    // registry: register it (409, already there, is fine).
    admin(
        &client,
        &base,
        &token,
        "/admin/v1/tenants/demo/senders",
        serde_json::json!({"sender": "SMSGW", "type": "alphanumeric"}),
    )
    .await?;
    // The key is kept in the data dir (0600) so that a restarted demo prints the same key
    // and the one a user saved keeps working; only a demo dir without it rotates.
    let key_file = opts.data_dir.join("demo.api_key");
    let kept = std::fs::read_to_string(&key_file)
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let api_key = match (tenant.get("api_key").and_then(|k| k.as_str()), kept) {
        (Some(new), _) => new.to_string(),
        (None, Some(kept)) => kept,
        (None, None) => admin(
            &client,
            &base,
            &token,
            "/admin/v1/tenants/demo/keys",
            serde_json::json!({}),
        )
        .await?
        .get("api_key")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string(),
    };
    crate::node::write_private_file(&key_file, &api_key)
        .map_err(|e| DemoError::Setup(format!("write {}: {e}", key_file.display())))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!();
    println!(
        "smsgw demo is running: node 1 on {base}, simulated SMSCs on ports {:?}",
        opts.smsc_ports
    );
    println!("data dir: {}", opts.data_dir.display());
    if !changes.is_empty() {
        println!(
            "updated from the last demo run on this data dir: {}",
            changes.join("; ")
        );
    }
    println!("admin token: {token}");
    println!("tenant 'demo' API key: {api_key}");
    println!();
    println!("Send a message:");
    println!(
        "  curl -s -X POST {base}/v1/messages -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' -d '{{\"to\": \"+4915112345678\", \"text\": \"Hello from smsgw\"}}'"
    );
    println!("Then look at it (accepted → sent → delivered within ~2 s):");
    println!("  curl -s {base}/v1/messages/<id> -H 'Authorization: Bearer {api_key}'");
    println!("Channels: curl -s {base}/admin/v1/channels -H 'Authorization: Bearer {token}'");
    println!("Dashboard: open {base}/dashboard and paste the admin token.");
    println!("Stop with Ctrl-C.");
    let consensus = node.consensus.clone();
    tokio::select! {
        _ = signals.next() => {}
        reason = consensus.raft_failed() => {
            // As `start` does: a node whose Raft stopped can only answer 503; exit
            // (status 1) instead of running on as a demo that never works again.
            tracing::error!(%reason, "Raft stopped; exiting");
            return Err(node::NodeError::RaftStopped(reason).into());
        }
    }
    let drain = node.drain_time(&cfg);
    let stopped = node::drain_or_stop_at_second_signal(node, drain, &mut signals).await;
    if stopped == Stopped::Forced {
        return Ok(stopped);
    }
    for s in sims {
        if let Err(e) = s.shutdown().await {
            tracing::warn!(error = %e, "demo SMSC shutdown");
        }
    }
    Ok(stopped)
}
