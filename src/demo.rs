//! `smsgw demo`: one node on an embedded data dir, two simulated operator SMSCs, a
//! ready tenant, two channels and a default route with failover; prints the API key
//! and a working curl line. No external services needed.

use std::time::Duration;

use crate::config::Config;
use crate::node::{self, Node};
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
    #[error("demo setup: {0}")]
    Setup(String),
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

/// Runs the demo until SIGTERM/SIGINT.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let mut sims = Vec::new();
    for (i, port) in opts.smsc_ports.iter().enumerate() {
        let args = SmscSimArgs {
            listen: format!("127.0.0.1:{port}"),
            system_id: format!("demo{}", i + 1),
            password: "secret".into(),
            dlr_delay_ms: 1500,
            ..SmscSimArgs::default()
        };
        // Bind first, so a busy port stops the demo at once with the flag to change.
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| {
                DemoError::Setup(format!(
                    "simulated SMSC port {port}: {e} (choose others with --smsc-ports)"
                ))
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
        ..Config::default()
    };
    let node = Node::start(&cfg).await?;
    let base = format!("http://{}", node.http_addr);
    let client = crate::http_client::builder()
        .build()
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let token = node.admin_token.clone();
    let mut channel_ids = Vec::new();
    for (i, port) in opts.smsc_ports.iter().enumerate() {
        let id = format!("smsc-{}", (b'a' + i as u8) as char);
        admin(&client, &base, &token, "/admin/v1/channels", serde_json::json!({
            "id": id, "protocol": "smpp", "host": "127.0.0.1", "port": port,
            "system_id": format!("demo{}", i + 1), "password": "secret", "tps": 500, "window": 32,
            "cost": {"default": 0.004 + 0.001 * i as f64},
        }))
        .await?;
        channel_ids.push(id);
    }
    admin(&client, &base, &token, "/admin/v1/routes", serde_json::json!({
        "id": "default", "match": {}, "strategy": "priority",
        "channels": channel_ids.iter().map(|c| serde_json::json!({"id": c})).collect::<Vec<_>>(),
    }))
    .await?;
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
    node::wait_for_signal().await;
    node.shutdown(Duration::from_secs(10)).await;
    for s in sims {
        if let Err(e) = s.shutdown().await {
            tracing::warn!(error = %e, "demo SMSC shutdown");
        }
    }
    Ok(())
}
