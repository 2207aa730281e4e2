//! The dashboard in a real browser: Debian's headless Chromium (driven by playwright-core
//! from `tests/browser/`, no downloaded browser) loads `GET /dashboard` from a running node
//! with simulator traffic, types the admin token, and the test checks the channel rows
//! against `GET /admin/v1/channels`, a chart that changes between two readings, the
//! message lookup, the drain/undrain buttons and that no JavaScript error was logged.
//! The screenshot is kept in `target/test-artifacts/dashboard.png`.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`) and Node.js; `.ci/run` installs both. A
//! missing browser fails the test; `SMSGW_SKIP_BROWSER=1` skips it with a message.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where screenshots are kept: `$CARGO_TARGET_DIR/test-artifacts` or `target/test-artifacts`.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The browser tooling is there (installing the npm package from its lockfile when
/// needed), or the test fails loudly. False only when SMSGW_SKIP_BROWSER=1.
fn browser_ready() -> bool {
    if std::env::var("SMSGW_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: the dashboard browser test (SMSGW_SKIP_BROWSER=1); \
             install Debian's chromium and unset it to run"
        );
        return false;
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "headless Chromium not found at {chromium}: `apt-get install -y chromium` (.ci/run does), \
         or set SMSGW_SKIP_BROWSER=1 to skip the browser test"
    );
    // One install for the tests of this binary: `npm ci` empties node_modules first, so a
    // second test that saw the package half installed ran node against it and failed.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !browser_dir().join("node_modules/playwright-core").exists() {
        let st = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(browser_dir())
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "`npm ci` in tests/browser failed (Node.js and npm are needed for the browser test)"
        );
    }
    true
}

/// Runs `tests/browser/dashboard.mjs` with `envs` (bounded) and returns its JSON report.
async fn run_browser(envs: &[(&str, String)]) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("dashboard.mjs")
        .current_dir(browser_dir())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("browser script finished within 240 s")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("no report from the browser script\nstdout: {stdout}\nstderr: {stderr}")
        });
    assert!(
        report.get("failure").is_none(),
        "browser script failed: {}\nsteps: {}\nconsole: {}",
        report["failure"],
        report["steps"],
        report["console"]
    );
    report
}

/// Sends messages at about `per_second` (client_ref `dash-<i>`) until the file `until`
/// exists (the browser has read its charts), at least `min` of them and for at most 120 s.
async fn traffic(node: &GwNode, key: &str, per_second: u64, min: usize, until: &Path) {
    let started = Instant::now();
    let mut i = 0;
    while (i < min || !until.exists()) && started.elapsed() < Duration::from_secs(120) {
        let (s, v) = node
            .send(
                key,
                json!({"to": "+4915112345678", "text": format!("dashboard traffic {i}"), "client_ref": format!("dash-{i}")}),
            )
            .await;
        assert_eq!(s, 202, "send: {v}");
        i += 1;
        let due = Duration::from_millis(1000 * i as u64 / per_second);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

fn figure(c: &Value, name: &str) -> String {
    let v = c
        .get(name)
        .filter(|v| !v.is_null())
        .or_else(|| c["stats"].get(name))
        .cloned()
        .unwrap_or(Value::Null);
    match v {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The same figure: equal text, or equal numbers (JavaScript writes 0.0 as "0"). Exact:
/// serde_json parses with `float_roundtrip`, so the API's number reads back bit for bit.
fn same(page: &str, api: &str) -> bool {
    page == api || matches!((page.parse::<f64>(), api.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    if !browser_ready() {
        return;
    }
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let a = Smsc::start(
        dir.path(),
        "dasha",
        &[
            "--dlr-delay-ms",
            "300",
            "--dlr-mix",
            "delivered=85,undeliverable=15",
            "--throttle-rate",
            "0.05",
        ],
    )
    .await;
    let b = Smsc::start(dir.path(), "dashb", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[a.channel("a"), b.channel("b")])
        .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let charts_read = dir.path().join("charts.read");
    let shot = artifacts().join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let envs = [
        ("DASH_URL", node.url("")),
        ("ADMIN_TOKEN", node.token.clone()),
        ("SCREENSHOT", shot.display().to_string()),
        ("LOOKUP_REF", "dash-3".to_string()),
        ("CHART_SIGNAL", charts_read.display().to_string()),
    ];
    // Traffic runs while the browser reads the page; the script waits for the figures to
    // settle before it compares the rows.
    let (report, ()) = tokio::join!(
        run_browser(&envs),
        traffic(&node, &key, 20, 40, &charts_read)
    );

    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.is_empty(), "JavaScript errors: {errors:?}");
    assert_eq!(
        report["foreign_requests"],
        json!([]),
        "the page loads nothing from outside the node"
    );
    assert_eq!(report["token_in_session_storage"], json!(true));
    assert_eq!(
        report["token_in_local_storage"],
        json!(0),
        "token only in the session"
    );

    // A chart that changed between two readings, with traffic on it.
    let (c1, c2) = (&report["chart1"], &report["chart2"]);
    assert!(
        c2["points"].as_u64() > c1["points"].as_u64(),
        "new samples: {c1} {c2}"
    );
    assert_ne!(c1["d"], c2["d"], "the accepted/s line moved");
    let accepted: f64 = c2["accepted"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    assert!(accepted > 0.0, "accepted/s shows the traffic: {c2}");

    // The rows and figures are the API's.
    let (_, api) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels", None)
        .await;
    let api = api.as_array().cloned().unwrap_or_default();
    let rows = report["page_rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), api.len(), "one row per channel: {rows:?}");
    for c in &api {
        let id = c["id"].as_str().unwrap_or_default();
        let row = rows
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row data-channel={id}: {rows:?}"));
        for m in [
            "state",
            "success_rate",
            "submit_latency_ms_p99",
            "queue_depth",
        ] {
            let page = row["metrics"][m].as_str().unwrap_or("<missing>");
            assert!(
                same(page, &figure(c, m)),
                "channel {id} figure {m}: page {page:?} api {:?}\npage row {row}\napi {c}",
                figure(c, m)
            );
        }
    }
    // The script's own API reading, taken right after it read the page, agrees too.
    for r in report["api_rows"].as_array().into_iter().flatten() {
        let row = rows
            .iter()
            .find(|p| p["id"] == r["id"])
            .cloned()
            .unwrap_or_default();
        for (m, v) in r["metrics"].as_object().into_iter().flatten() {
            let page = row["metrics"][m].as_str().unwrap_or("<missing>");
            assert!(
                same(page, v.as_str().unwrap_or_default()),
                "channel {} figure {m}: page {page:?} api {v}",
                r["id"]
            );
        }
    }
    let a_row = api
        .iter()
        .find(|c| c["id"] == "a")
        .cloned()
        .unwrap_or_default();
    let throttled = a_row["stats"]["throttled"].as_u64().unwrap_or(0);
    assert!(
        throttled > 0,
        "the simulator's 5 % throttling shows: {a_row}"
    );
    let rate = a_row["stats"]["success_rate"].as_f64().unwrap_or(1.0);
    assert!(
        rate < 1.0 && rate > 0.5,
        "the 85/15 receipt mix shows: {a_row}"
    );

    // Lookup by client_ref: the timeline and the part states.
    let lookup = &report["lookup"];
    assert_eq!(lookup["messages"], json!(1), "{lookup}");
    let events: Vec<&str> = lookup["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(&events[..2], &["accepted", "sent"], "{lookup}");
    assert_eq!(
        lookup["parts"].as_array().map(Vec::len),
        Some(1),
        "{lookup}"
    );

    // Buttons drive the admin API.
    assert_eq!(report["after_drain_api"], json!("draining"));
    assert_ne!(report["after_undrain_api"], json!("draining"));

    // Cluster and routes sections.
    let nodes = report["cluster"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nodes.len(), 1, "{}", report["cluster"]);
    assert_eq!(nodes[0][1], json!("leader"));
    let routes = report["routes"].as_array().cloned().unwrap_or_default();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0]["strategy"], json!("priority"));

    let png = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(png > 10_000, "screenshot kept at {}", shot.display());
    eprintln!("dashboard screenshot: {}", shot.display());
}

/// Starts node `id` of a cluster described by `peers` and waits for its /readyz.
fn cluster_node(dir: &Path, id: u64, http: u16, cluster: u16, peers: &str) -> Proc {
    let args: Vec<String> = vec![
        "start".into(),
        "--node-id".into(),
        id.to_string(),
        "--http".into(),
        format!("127.0.0.1:{http}"),
        "--cluster-addr".into(),
        format!("127.0.0.1:{cluster}"),
        "--data-dir".into(),
        dir.join(format!("data-{id}")).display().to_string(),
        "--peers".into(),
        peers.into(),
        "--admin-token".into(),
        ADMIN_TOKEN.into(),
    ];
    Proc::spawn(&args, &[], dir.join(format!("node{id}.log")))
}

/// The page keeps working when the node that served it dies: it switches to another node
/// it learned from the cluster view (cross-origin, allowed by that node's CORS answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_switches_node_when_its_node_dies() {
    if !browser_ready() {
        return;
    }
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "dashf", &[]).await;
    let http: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let raft: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers = (0..3)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, raft[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = Vec::new();
    for i in 0..3 {
        procs.push(cluster_node(
            dir.path(),
            i as u64 + 1,
            http[i],
            raft[i],
            &peers,
        ));
    }
    let c = client();
    for h in &http {
        let url = format!("http://127.0.0.1:{h}/readyz");
        eventually("cluster node ready", Duration::from_secs(60), || async {
            let r = c.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }
    // The page is served by node 2; node 1 (which the cluster view lists with its HTTP
    // address) is where it must go when node 2 dies.
    let n1 = format!("http://127.0.0.1:{}", http[0]);
    let n2 = format!("http://127.0.0.1:{}", http[1]);
    let r = c
        .post(format!("{n1}/admin/v1/channels"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&smsc.channel("a"))
        .send()
        .await
        .expect("create channel");
    assert_eq!(r.status().as_u16(), 201);

    let ready = dir.path().join("browser.ready");
    let kill = dir.path().join("node2.killed");
    let shot = artifacts().join("dashboard-cluster.png");
    let envs = [
        ("DASH_URL", n2.clone()),
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("SCREENSHOT", shot.display().to_string()),
        ("FAILOVER", "1".to_string()),
        ("READY_SIGNAL", ready.display().to_string()),
        ("KILL_SIGNAL", kill.display().to_string()),
    ];
    let killer = async {
        eventually(
            "browser ready for the kill",
            Duration::from_secs(120),
            || async { ready.exists().then_some(()) },
        )
        .await;
        procs[1].kill9();
        std::fs::write(&kill, "killed").expect("kill signal");
    };
    let (report, ()) = tokio::join!(run_browser(&envs), killer);

    let f = &report["failover"];
    let banner = f["banner"].as_str().unwrap_or_default();
    assert!(
        banner.contains("now reading from node 1") && banner.contains(&n1),
        "switched to node 1: {f}"
    );
    assert!(
        f["conn"].as_str().unwrap_or_default().contains(&n1),
        "live from node 1: {f}"
    );
    assert!(
        f["rows"].as_u64() >= Some(1),
        "channel rows still shown: {f}"
    );
    assert_eq!(f["nodes"].as_array().map(Vec::len), Some(3), "{f}");
    // Before the kill: no console message at all of type error; after it, only the
    // browser's own notes about the refused connections to the dead node.
    for e in report["errors"].as_array().into_iter().flatten() {
        let e = e.as_str().unwrap_or_default();
        assert!(
            e.contains("ERR_CONNECTION_REFUSED") || e.contains("Failed to fetch"),
            "unexpected JavaScript error: {e}"
        );
    }
    drop(procs);
}

/// Every `smsgw_*` name in an expression of `docs/grafana-dashboard.json`.
fn grafana_metric_names() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("grafana json"))
        .expect("grafana json parses");
    let mut names = Vec::new();
    for p in doc["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            for (i, _) in expr.match_indices("smsgw_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name)
                    .to_string();
                names.push(base);
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The Grafana dashboard only names metrics the gateway exports: each one is in a running
/// node's `/metrics` after traffic, or (for events the traffic did not cause, like
/// throttling or MO) named in the source where it is recorded.
#[tokio::test]
async fn grafana_dashboard_names_real_metrics() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) =
        gateway_with_smsc(dir.path(), "graf", &["--dlr-delay-ms", "50"], &[]).await;
    let (s, v) = node
        .send(&key, json!({"to": "+4915112345678", "text": "for grafana"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap_or_default().to_string();
    node.wait_status(&key, &id, "delivered", Duration::from_secs(20))
        .await;
    let text = node.metrics_text().await;
    let mut source = String::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("src").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                source.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let names = grafana_metric_names();
    assert!(names.len() >= 15, "{names:?}");
    let mut live = 0;
    for n in &names {
        let exported = text.lines().any(|l| {
            l.strip_prefix(n.as_str())
                .is_some_and(|rest| rest.starts_with(['{', ' ', '_']))
        });
        live += usize::from(exported);
        assert!(
            exported || source.contains(&format!("\"{n}\"")),
            "{n} is in docs/grafana-dashboard.json but neither exported nor recorded in src/"
        );
    }
    // The contract's metrics (§7) and the dashboard's receipt latency are on the board.
    for must in [
        "smsgw_messages_total",
        "smsgw_http_requests_total",
        "smsgw_channel_submit_total",
        "smsgw_channel_up",
        "smsgw_submit_latency_seconds",
        "smsgw_raft_leader",
        "smsgw_queue_depth",
        "smsgw_receipt_latency_seconds",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "{must} missing from the board"
        );
    }
    assert!(
        live >= 12,
        "most panels have data after one message: {live} of {}",
        names.len()
    );
}
