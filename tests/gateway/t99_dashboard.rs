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

/// Sends `n` messages at about `per_second`, each with client_ref `dash-<i>`.
async fn traffic(node: &GwNode, key: &str, n: usize, per_second: u64) {
    let started = Instant::now();
    for i in 0..n {
        let (s, v) = node
            .send(
                key,
                json!({"to": "+4915112345678", "text": format!("dashboard traffic {i}"), "client_ref": format!("dash-{i}")}),
            )
            .await;
        assert_eq!(s, 202, "send: {v}");
        let due = Duration::from_millis(1000 * (i as u64 + 1) / per_second);
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

/// The same figure: equal text, or equal numbers (JavaScript writes 0.0 as "0").
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
        ],
    )
    .await;
    let b = Smsc::start(dir.path(), "dashb", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[a.channel("a"), b.channel("b")])
        .await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let shot = artifacts().join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let envs = [
        ("DASH_URL", node.url("")),
        ("ADMIN_TOKEN", node.token.clone()),
        ("SCREENSHOT", shot.display().to_string()),
        ("LOOKUP_REF", "dash-3".to_string()),
    ];
    // Traffic runs while the browser reads the page; the script waits for the figures to
    // settle before it compares the rows.
    let (report, ()) = tokio::join!(run_browser(&envs), traffic(&node, &key, 240, 20));

    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.is_empty(), "JavaScript errors: {errors:?}");
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
