//! Running one node as an operator does: a demo restarted with other SMSC ports still
//! delivers; a drain cut by its deadline or by a second signal says how many submits it
//! left; an unset drain outlasts the channels' response timeouts; values that turn out
//! unusable only at start (a busy port, a data dir of another node or in use) exit 2
//! naming the field and where it was set; logs obey `--log` over `RUST_LOG`, go to
//! stderr and carry no colour off a terminal; every metric family has a HELP line.
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

/// Sends `sig` to a child without waiting for it.
fn signal(proc: &Proc, sig: i32) {
    let pid = proc.child.as_ref().expect("running").id();
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Waits (bounded) for a child's exit status.
async fn exit_status(proc: &mut Proc, timeout: Duration) -> Option<i32> {
    let c = proc.child.as_mut().expect("running");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = c.try_wait() {
            proc.child = None;
            return s.code();
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `smsgw demo` on its own ports; waits until it printed its instructions.
async fn demo(dir: &std::path::Path, data: &str, http: u16, smsc: [u16; 2], n: usize) -> Proc {
    let args: Vec<String> = [
        "demo",
        "--data-dir",
        data,
        "--http",
        &format!("127.0.0.1:{http}"),
        "--cluster-addr",
        &format!("127.0.0.1:{}", free_port()),
        "--smsc-ports",
        &format!("{},{}", smsc[0], smsc[1]),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn(&args, &[], dir.join(format!("demo-{n}.log")));
    eventually("demo ready", Duration::from_secs(60), || async {
        proc.log_text().contains("Stop with Ctrl-C").then_some(())
    })
    .await;
    proc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_restarted_with_other_smsc_ports_moves_its_channels_and_delivers() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let data = dir.path().join("demo").display().to_string();
    let http = free_port();
    let first = [free_port(), free_port()];
    let mut run1 = demo(dir.path(), &data, http, first, 1).await;
    let status = run1.terminate(Duration::from_secs(30)).expect("demo exits");
    assert_eq!(status.code(), Some(0));

    let second = [free_port(), free_port()];
    let run2 = demo(dir.path(), &data, http, second, 2).await;
    let log = run2.log_text();
    for (i, id) in ["smsc-a", "smsc-b"].iter().enumerate() {
        let moved = format!("{id} 127.0.0.1:{} → 127.0.0.1:{}", first[i], second[i]);
        assert!(log.contains(&moved), "the demo says {moved:?}: {log}");
    }
    let token =
        std::fs::read_to_string(dir.path().join("demo").join("admin.token")).expect("admin.token");
    let key = std::fs::read_to_string(dir.path().join("demo").join("demo.api_key"))
        .expect("demo.api_key");
    let c = client();
    let channels: Value = c
        .get(format!("http://127.0.0.1:{http}/admin/v1/channels"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("channels")
        .json()
        .await
        .expect("json");
    let ports: Vec<u64> = channels
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|ch| ch["port"].as_u64())
        .collect();
    assert_eq!(
        ports,
        second.iter().map(|p| u64::from(*p)).collect::<Vec<_>>(),
        "{channels}"
    );
    let r: Value = c
        .post(format!("http://127.0.0.1:{http}/v1/messages"))
        .bearer_auth(key.trim())
        .json(&json!({"to": TO, "text": "after a restart on other ports"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = r["id"].as_str().expect("id").to_string();
    eventually("delivered", Duration::from_secs(30), || async {
        let v: Value = c
            .get(format!("http://127.0.0.1:{http}/v1/messages/{id}"))
            .bearer_auth(key.trim())
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["status"] == "delivered").then_some(())
    })
    .await;
    drop(run2);
}

/// A drain cut by `drain_seconds` warns with the number of submits it left; after the
/// restart a second signal during the (now unset, longer) drain stops at once with 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_drain_says_how_many_submits_it_left_and_a_second_signal_stops_at_once() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // Answers slower than any drain here: every submit stays in flight.
    let smsc = Smsc::start(dir.path(), "slow", &["--submit-latency-ms", "60000"]).await;
    let mut node = GwNode::start(dir.path(), &["--drain-seconds", "1"]).await;
    let mut ch = smsc.channel("s");
    ch["options"] = json!({"response_timeout_seconds": 120});
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let bodies: Vec<Value> = (0..3)
        .map(|i| json!({"to": TO, "text": format!("cut {i}")}))
        .collect();
    node.send_all_accepted(&key, bodies).await;
    eventually("3 submits at the SMSC", Duration::from_secs(20), || async {
        (smsc.stats().await?["submits"].as_u64()? >= 3).then_some(())
    })
    .await;
    signal(&node.proc, libc::SIGTERM);
    let code = exit_status(&mut node.proc, Duration::from_secs(20)).await;
    assert_eq!(
        code,
        Some(0),
        "a drain cut by its deadline is still a clean stop"
    );
    let log = node.proc.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("drain deadline reached") && l.contains("unanswered=3")),
        "{log}"
    );

    // Unset drain_seconds: the drain would wait 125 s for the 120 s response timeout.
    node.extra.clear();
    node.restart().await;
    eventually(
        "resubmitted after restart",
        Duration::from_secs(30),
        || async { (smsc.stats().await?["submits"].as_u64()? >= 6).then_some(()) },
    )
    .await;
    signal(&node.proc, libc::SIGTERM);
    eventually("draining", Duration::from_secs(10), || async {
        node.proc.log_text().contains("draining").then_some(())
    })
    .await;
    let second_at = Instant::now();
    signal(&node.proc, libc::SIGINT);
    let code = exit_status(&mut node.proc, Duration::from_secs(10)).await;
    assert_eq!(code, Some(130), "a forced stop exits 130");
    assert!(
        second_at.elapsed() < Duration::from_secs(5),
        "the second signal stops at once ({:?})",
        second_at.elapsed()
    );
    let log = node.proc.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("second signal: drain cut") && l.contains("unanswered=3")),
        "{log}"
    );
    assert!(
        log.contains("drain_seconds=125"),
        "the unset drain outlasts the response timeout: {log}"
    );
}

/// Unset `drain_seconds` waits past the old 10 s default for an operator that answers in
/// 11 s (within the channel's 14 s response timeout): the stop sends nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_drain_outlasts_a_slow_operator_and_resends_nothing() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(
        dir.path(),
        "eleven",
        &["--submit-latency-ms", "11000", "--dlr-delay-ms", "50"],
    )
    .await;
    let mut node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("e");
    ch["options"] = json!({"response_timeout_seconds": 14});
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let bodies: Vec<Value> = (0..4)
        .map(|i| json!({"to": TO, "text": format!("slow answer {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    eventually("4 submits at the SMSC", Duration::from_secs(20), || async {
        (smsc.stats().await?["submits"].as_u64()? >= 4).then_some(())
    })
    .await;
    let status = node
        .proc
        .terminate(Duration::from_secs(40))
        .expect("exits within the drain");
    assert_eq!(status.code(), Some(0));
    let log = node.proc.log_text();
    assert!(!log.contains("drain deadline reached"), "{log}");
    node.restart().await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    let ledger = smsc.ledger_at_least(4).await;
    assert_eq!(ledger_duplicates(&ledger), 0, "{ledger:?}");
}

/// One line, exit 2, naming the field and where its value came from.
fn assert_config_exit(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    wants: &[&str],
) -> String {
    let (code, out, err) = run_bounded(args, env, dir, Duration::from_secs(30));
    let what = format!("smsgw {} (env {env:?})", args.join(" "));
    assert_eq!(code, Some(2), "{what}: stdout {out:?} stderr {err:?}");
    let all = format!("{out}{err}");
    let lines: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line, got {lines:?}");
    for w in wants {
        assert!(
            lines[0].contains(w),
            "{what}: {w:?} missing in {:?}",
            lines[0]
        );
    }
    lines[0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_unusable_at_start_exit_2_naming_field_and_source() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let busy = held.local_addr().expect("addr").to_string();
    let fresh = |name: &str| dir.path().join(name).display().to_string();
    let any = "127.0.0.1:0";

    // A busy HTTP port set by env, a busy cluster port set in the file.
    let d = fresh("env");
    assert_config_exit(
        dir.path(),
        &["start", "--data-dir", &d, "--cluster-addr", any],
        &[("SMSGW_HTTP", busy.as_str())],
        &["field 'http' (env SMSGW_HTTP)", &busy, "in use"],
    );
    let toml = dir.path().join("busy.toml");
    std::fs::write(&toml, format!("cluster_addr = \"{busy}\"\n")).expect("toml");
    let d = fresh("file");
    assert_config_exit(
        dir.path(),
        &[
            "start",
            "--data-dir",
            &d,
            "--http",
            any,
            "--config",
            &toml.display().to_string(),
        ],
        &[],
        &["field 'cluster_addr' (file '", "line 1)", "in use"],
    );
    // The same address for both.
    let d = fresh("same");
    assert_config_exit(
        dir.path(),
        &[
            "start",
            "--data-dir",
            &d,
            "--http",
            "127.0.0.1:24301",
            "--cluster-addr",
            "127.0.0.1:24301",
        ],
        &[],
        &["field 'cluster_addr' (flag --cluster-addr)"],
    );
    // A data dir that is a file, or cannot be made.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("file");
    let f = file.display().to_string();
    assert_config_exit(
        dir.path(),
        &[
            "start",
            "--data-dir",
            &f,
            "--http",
            any,
            "--cluster-addr",
            any,
        ],
        &[],
        &["field 'data_dir' (flag --data-dir)", "is a file"],
    );
    assert_config_exit(
        dir.path(),
        &["start", "--http", any, "--cluster-addr", any],
        &[("SMSGW_DATA_DIR", &format!("{f}/below"))],
        &[
            "field 'data_dir' (env SMSGW_DATA_DIR)",
            "cannot create directory",
        ],
    );
    // A hand-edited admin.token shorter than the rules allow.
    let short = dir.path().join("short");
    std::fs::create_dir_all(&short).expect("dir");
    std::fs::write(short.join("admin.token"), "short\n").expect("token file");
    let line = assert_config_exit(
        dir.path(),
        &[
            "start",
            "--data-dir",
            &short.display().to_string(),
            "--http",
            any,
            "--cluster-addr",
            any,
        ],
        &[],
        &[
            "field 'admin_token' (file '",
            "admin.token' line 1)",
            "at least 16",
        ],
    );
    assert!(!line.contains(": short"), "the token is not shown: {line}");
    // This node's own peers entry is not where it listens; a host name is not an address.
    assert_config_exit(
        dir.path(),
        &[
            "start",
            "--data-dir",
            &fresh("peers"),
            "--http",
            any,
            "--cluster-addr",
            "127.0.0.1:24302",
            "--peers",
            "1@127.0.0.1:24303",
        ],
        &[],
        &["field 'peers' (flag --peers)", "port 24303"],
    );
    assert_config_exit(
        dir.path(),
        &[
            "start",
            "--data-dir",
            &fresh("name"),
            "--http",
            "localhost:24304",
        ],
        &[],
        &[
            "field 'http' (flag --http)",
            "want IP:PORT",
            "host name is not accepted",
        ],
    );
    // The demo's own busy port names its flag.
    assert_config_exit(
        dir.path(),
        &[
            "demo",
            "--data-dir",
            &fresh("demo"),
            "--http",
            any,
            "--cluster-addr",
            any,
            "--smsc-ports",
            busy.rsplit_once(':').expect("port").1,
        ],
        &[],
        &["field 'smsc_ports' (flag --smsc-ports)", "in use"],
    );

    // A data dir in use, and a data dir of another node.
    let mut node = GwNode {
        node_id: 2,
        proc: Proc {
            child: None,
            log: dir.path().join("node2.log"),
        },
        http: free_port(),
        cluster: free_port(),
        dir: dir.path().to_path_buf(),
        token: ADMIN_TOKEN.into(),
        extra: vec![],
        envs: vec![],
    };
    node.restart().await;
    let data = dir.path().join("data").display().to_string();
    assert_config_exit(
        dir.path(),
        &[
            "start",
            "--node-id",
            "2",
            "--data-dir",
            &data,
            "--http",
            any,
            "--cluster-addr",
            any,
            "--admin-token",
            ADMIN_TOKEN,
        ],
        &[],
        &[
            "field 'data_dir' (flag --data-dir)",
            "in use by another process",
        ],
    );
    node.proc.terminate(Duration::from_secs(30)).expect("stops");
    assert_config_exit(
        dir.path(),
        &[
            "start",
            "--node-id",
            "5",
            "--data-dir",
            &data,
            "--http",
            any,
            "--cluster-addr",
            any,
            "--admin-token",
            ADMIN_TOKEN,
        ],
        &[],
        &[&format!(
            "field 'node_id' (flag --node-id): data dir {data} belongs to node 2"
        )],
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_log_over_rust_log_on_stderr_without_colour() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let http = free_port();
    let out_path = dir.path().join("node.out");
    let err_path = dir.path().join("node.err");
    let mut child = std::process::Command::new(bin())
        .args(["start", "--http", &format!("127.0.0.1:{http}")])
        .args(["--cluster-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--data-dir", &dir.path().join("data").display().to_string()])
        .args(["--log", "debug"])
        .env("RUST_LOG", "error")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("out"))
        .stderr(std::fs::File::create(&err_path).expect("err"))
        .spawn()
        .expect("spawn");
    eventually("ready", Duration::from_secs(60), || async {
        let r = client()
            .get(format!("http://127.0.0.1:{http}/readyz"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    let out = std::fs::read_to_string(&out_path).expect("stdout");
    let err = std::fs::read_to_string(&err_path).expect("stderr");
    // stdout: only what is printed for the user (the generated admin token).
    let out_lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(out_lines.len(), 1, "{out}");
    assert!(out_lines[0].starts_with("admin token (stored in "), "{out}");
    assert!(
        err.contains(" DEBUG "),
        "--log debug beats RUST_LOG=error: {err}"
    );
    assert!(!err.contains('\u{1b}'), "no ANSI colour off a terminal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_family_has_help_and_idle_latency_is_null() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (_smsc, node, key) =
        gateway_with_smsc(dir.path(), "m", &["--dlr-delay-ms", "50"], &[]).await;
    let (_, channels) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels", None)
        .await;
    let stats = &channels[0]["stats"];
    assert!(
        stats["submit_latency_ms_p50"].is_null() && stats["submit_latency_ms_p99"].is_null(),
        "no submits yet: no latency, as in stats.sla: {stats}"
    );
    let bodies: Vec<Value> = (0..5)
        .map(|i| json!({"to": TO, "text": format!("metrics {i}")}))
        .collect();
    for id in node.send_all_accepted(&key, bodies).await {
        node.wait_status(&key, &id, "delivered", Duration::from_secs(30))
            .await;
    }
    let (_, channels) = node
        .admin(reqwest::Method::GET, "/admin/v1/channels", None)
        .await;
    assert!(
        channels[0]["stats"]["submit_latency_ms_p50"].is_number(),
        "{channels}"
    );
    let text = client()
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(typed.len() > 20, "{text}");
    let missing: Vec<&&str> = typed
        .iter()
        .filter(|f| !text.contains(&format!("# HELP {f} ")))
        .collect();
    assert!(missing.is_empty(), "families without # HELP: {missing:?}");
    let help = text
        .lines()
        .find(|l| l.starts_with("# HELP smsgw_channel_submit_total "))
        .expect("help");
    assert!(
        help.contains("temporary") && help.contains("permanent") && !help.contains("timeout"),
        "{help}"
    );
}

/// Signal handlers exist from the start: a node still waiting to join (its lowest-id
/// peer never comes) stops on SIGTERM with 0, instead of being killed by the default
/// action or, once handlers exist only later, never noticing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_still_joining_stops_cleanly() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (http, cluster) = (free_port(), free_port());
    let peers = format!("1@127.0.0.1:{},2@127.0.0.1:{cluster}", free_port());
    let args: Vec<String> = [
        "start",
        "--node-id",
        "2",
        "--http",
        &format!("127.0.0.1:{http}"),
        "--cluster-addr",
        &format!("127.0.0.1:{cluster}"),
        "--data-dir",
        &dir.path().join("data").display().to_string(),
        "--admin-token",
        ADMIN_TOKEN,
        "--peers",
        &peers,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut proc = Proc::spawn(&args, &[], dir.path().join("joining.log"));
    eventually("HTTP up while joining", Duration::from_secs(30), || async {
        let r = client()
            .get(format!("http://127.0.0.1:{http}/healthz"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    signal(&proc, libc::SIGTERM);
    assert_eq!(
        exit_status(&mut proc, Duration::from_secs(10)).await,
        Some(0)
    );
}
