//! SIGTERM drains in-flight work and exits 0; after a restart every accepted message
//! reaches a final status and no acknowledged part was sent twice. Bad configuration
//! exits 2 with one line naming the field.
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_restart_finishes_everything_without_resends() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    // A slow SMSC and a narrow channel so SIGTERM lands with messages queued and in flight.
    let smsc = Smsc::start(
        dir.path(),
        "sg",
        &["--submit-latency-ms", "50", "--dlr-delay-ms", "300"],
    )
    .await;
    let mut node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("g");
    ch["tps"] = json!(100);
    ch["window"] = json!(4);
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;

    let bodies: Vec<Value> = (0..150)
        .map(|i| json!({"to": TO, "text": format!("drain {i:03}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    // Wait until sending is under way, then SIGTERM.
    eventually("submits under way", Duration::from_secs(20), || async {
        let st = smsc.stats().await?;
        (st["submits"].as_u64()? >= 10).then_some(())
    })
    .await;
    let at_term = smsc.stats().await.expect("stats")["submits"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        at_term < 150,
        "SIGTERM must land while messages are still waiting ({at_term} sent)"
    );
    let started = Instant::now();
    let status = node.proc.terminate(Duration::from_secs(15));
    let took = started.elapsed();
    let status =
        status.unwrap_or_else(|| panic!("no exit within 15 s of SIGTERM (killed after {took:?})"));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exit status {status:?} after {took:?}"
    );
    let log = node.proc.log_text();
    assert!(!log.contains("panicked"), "panic during drain");

    // Restart: every accepted message is still there and reaches a final status.
    node.restart().await;
    node.wait_bound().await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    // A graceful stop resends nothing that the SMSC had acknowledged.
    let ledger = smsc.ledger_at_least(150).await;
    let dups = ledger_duplicates(&ledger);
    assert_eq!(
        dups,
        0,
        "graceful shutdown resent {dups} acknowledged parts ({} ledger lines for 150 messages)",
        ledger.len()
    );
    assert_eq!(ledger.len(), 150);
}

/// With an SMSC slower than the drain, SIGTERM must still not abandon submits the SMSC
/// has taken: the drain finishes what is in flight (responses come within 1.5 s, the
/// drain allows 3 s) instead of starting new submits until the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_slow_smsc_abandons_no_submit() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(
        dir.path(),
        "sl",
        &["--submit-latency-ms", "1500", "--dlr-delay-ms", "50"],
    )
    .await;
    let mut node = GwNode::start(dir.path(), &["--drain-seconds", "3"]).await;
    let mut ch = smsc.channel("l");
    ch["window"] = json!(4);
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;
    let bodies: Vec<Value> = (0..20)
        .map(|i| json!({"to": TO, "text": format!("slow {i:03}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    eventually(
        "a full window in flight",
        Duration::from_secs(10),
        || async { (smsc.stats().await?["submits"].as_u64()? >= 4).then_some(()) },
    )
    .await;
    let at_term = smsc.stats().await.expect("stats");
    let started = Instant::now();
    let status = node.proc.terminate(Duration::from_secs(15));
    let took = started.elapsed();
    let status = status.unwrap_or_else(|| panic!("no exit within 15 s of SIGTERM"));
    assert_eq!(status.code(), Some(0), "SIGTERM exit status {status:?}");
    let at_exit = smsc.stats().await.expect("stats");
    eprintln!("SMSC at SIGTERM {at_term}, at exit after {took:?} {at_exit}");

    node.restart().await;
    for id in &ids {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    let ledger = smsc.ledger_at_least(20).await;
    let dups = ledger_duplicates(&ledger);
    assert_eq!(
        dups,
        0,
        "SIGTERM abandoned submits the SMSC had taken: {dups} sent twice ({} ledger lines for 20 messages; \
         SMSC at SIGTERM {at_term}, at exit {at_exit})",
        ledger.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_sends_keeps_every_202() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(
        dir.path(),
        "sh",
        &["--submit-latency-ms", "10", "--dlr-delay-ms", "100"],
    )
    .await;
    let mut node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("h")]).await;
    let key = node.tenant("t", json!({})).await;
    node.wait_bound().await;

    // Sends keep coming while SIGTERM lands; every 202 is a promise.
    let url = node.url("/v1/messages");
    let sender = tokio::spawn({
        let key = key.clone();
        async move {
            let mut accepted = Vec::new();
            let c = client();
            for i in 0..10_000 {
                let r = c
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"to": TO, "text": format!("term {i:05}")}))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status().as_u16() == 202
                    && let Ok(v) = r.json::<Value>().await
                    && let Some(id) = v["id"].as_str()
                {
                    accepted.push(id.to_string());
                }
            }
            accepted
        }
    });
    eventually("sends under way", Duration::from_secs(20), || async {
        let st = smsc.stats().await?;
        (st["submits"].as_u64()? >= 20).then_some(())
    })
    .await;
    // SIGHUP (logrotate, `systemctl reload`, a closed terminal) is logged and ignored:
    // the node keeps taking and sending messages.
    let pid = node.proc.child.as_ref().map(|c| c.id()).expect("node pid");
    unsafe {
        libc::kill(pid as i32, libc::SIGHUP);
    }
    eventually("SIGHUP logged", Duration::from_secs(10), || async {
        node.proc
            .log_text()
            .contains("SIGHUP ignored")
            .then_some(())
    })
    .await;
    let after_hup = smsc
        .stats()
        .await
        .and_then(|s| s["submits"].as_u64())
        .unwrap_or(0);
    eventually(
        "still sending after SIGHUP",
        Duration::from_secs(20),
        || async {
            let st = smsc.stats().await?;
            (st["submits"].as_u64()? >= after_hup + 20).then_some(())
        },
    )
    .await;
    let status = node.proc.terminate(Duration::from_secs(15));
    let status = status.unwrap_or_else(|| panic!("no exit within 15 s of SIGTERM during sends"));
    assert_eq!(status.code(), Some(0), "SIGTERM exit status {status:?}");
    let accepted = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .expect("sender ends")
        .expect("sender task");
    assert!(
        accepted.len() >= 20,
        "some sends were accepted: {}",
        accepted.len()
    );

    node.restart().await;
    for id in &accepted {
        let (s, v) = node.message(&key, id).await;
        assert_eq!(
            s, 200,
            "message {id} answered 202 before SIGTERM is gone: {v}"
        );
    }
    for id in &accepted {
        let v = node.wait_final(&key, id, Duration::from_secs(60)).await;
        assert_eq!(v["status"], "delivered", "{v}");
    }
    assert_eq!(
        ledger_duplicates(&smsc.ledger_at_least(accepted.len()).await),
        0,
        "graceful shutdown resent acknowledged parts"
    );
}

/// (argv, environment, the word the one error line must contain)
type ConfigCase<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);

/// Non-empty lines of a process's output.
/// Command-line arguments as owned strings.
fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_exits_2_with_one_line_naming_the_field() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let data = dir.path().join("data").display().to_string();
    let demo_data = dir.path().join("demo").display().to_string();
    let good_toml = dir.path().join("good.toml");
    let unknown_key = dir.path().join("unknown.toml");
    std::fs::write(&unknown_key, "node_id = 1\nbogus_key = 1\n").expect("write toml");
    let wrong_type = dir.path().join("wrong.toml");
    std::fs::write(&wrong_type, "node_id = \"one\"\n").expect("write toml");
    let bad_syntax = dir.path().join("syntax.toml");
    std::fs::write(&bad_syntax, "node_id = = 1\n").expect("write toml");
    std::fs::write(&good_toml, "max_body_bytes = 10\n").expect("write toml");
    let token = ADMIN_TOKEN;
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = owned(&[
            "start",
            "--data-dir",
            &data,
            "--admin-token",
            token,
            "--cluster-addr",
            "127.0.0.1:0",
        ]);
        v.extend(owned(extra));
        v
    };
    let unknown = unknown_key.display().to_string();
    let wrong = wrong_type.display().to_string();
    let syntax = bad_syntax.display().to_string();
    let small = good_toml.display().to_string();
    // (args, env, word the one line must contain)
    // A port a listener of this test holds, for the simulator to find taken.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to hold");
    let taken = holder.local_addr().expect("held address").to_string();
    let cases: Vec<ConfigCase> = vec![
        (base(&["--http", "notanaddress"]), vec![], "http"),
        (
            base(&["--http", "127.0.0.1:0", "--config", &unknown]),
            vec![],
            "bogus_key",
        ),
        (
            base(&["--http", "127.0.0.1:0", "--config", &wrong]),
            vec![],
            "node_id",
        ),
        (
            base(&["--http", "127.0.0.1:0", "--config", &syntax]),
            vec![],
            "syntax.toml",
        ),
        (
            base(&["--http", "127.0.0.1:0", "--config", &small]),
            vec![],
            "max_body_bytes",
        ),
        (
            base(&["--http", "127.0.0.1:0", "--max-body-bytes", "10"]),
            vec![],
            "max_body_bytes",
        ),
        (
            base(&["--http", "127.0.0.1:0"]),
            vec![("SMSGW_NODE_ID", "abc")],
            "node_id",
        ),
        (
            owned(&[
                "start",
                "--data-dir",
                &data,
                "--admin-token",
                token,
                "--http",
                "127.0.0.1:0",
                "--cluster-addr",
                "nope",
            ]),
            vec![],
            "cluster_addr",
        ),
        (
            base(&["--http", "127.0.0.1:0", "--peers", "x@y"]),
            vec![],
            "peers",
        ),
        (
            owned(&[
                "start",
                "--data-dir",
                &data,
                "--admin-token",
                "short",
                "--http",
                "127.0.0.1:0",
                "--cluster-addr",
                "127.0.0.1:0",
            ]),
            vec![],
            "admin_token",
        ),
        // Refused by the command-line parser itself, before the config is built.
        (
            base(&["--http", "127.0.0.1:0", "--node-id", "abc"]),
            vec![],
            "--node-id",
        ),
        // A negative number is a bad value of its flag, not an unknown argument.
        (
            base(&["--http", "127.0.0.1:0", "--node-id", "-1"]),
            vec![],
            "--node-id",
        ),
        (
            owned(&[
                "tenant",
                "add",
                "--id",
                "x",
                "--name",
                "x",
                "--per-second",
                "-5",
                "--token",
                "t",
            ]),
            vec![],
            "--per-second",
        ),
        // A log filter tracing would misread (a bare word is a target name) is refused.
        (
            base(&["--http", "127.0.0.1:0", "--log", "verbose"]),
            vec![],
            "log",
        ),
        // A missing required argument is named on the one line.
        (owned(&["send", "--to", "+4915112345678"]), vec![], "--text"),
        // The demo checks its addresses before it starts anything (it exited 1 after
        // starting its simulators and writing a token).
        (
            owned(&["demo", "--data-dir", &demo_data, "--http", "bad"]),
            vec![],
            "--http",
        ),
        (
            owned(&["sim", "smsc", "--throttle-rate", "2"]),
            vec![],
            "--throttle-rate",
        ),
        (
            owned(&["sim", "smsc", "--listen", "bad"]),
            vec![],
            "--listen",
        ),
        (
            owned(&["sim", "smsc", "--dlr-mix", "delivered=50,foo=50"]),
            vec![],
            "--dlr-mix",
        ),
        (
            owned(&["sim", "smsc", "--dlr-mix", "delivered=0"]),
            vec![],
            "--dlr-mix",
        ),
        (
            owned(&["sim", "smsc", "--drop-after", "0"]),
            vec![],
            "--drop-after",
        ),
        (
            owned(&["sim", "smsc", "--system-id", "sixteen-chars-id"]),
            vec![],
            "--system-id",
        ),
        (
            owned(&["sim", "http-provider", "--dlr-mix", "bogus=100"]),
            vec![],
            "--dlr-mix",
        ),
        (
            owned(&["sim", "http-provider", "--throttle-rate", "2"]),
            vec![],
            "--throttle-rate",
        ),
        (
            owned(&["sim", "http-provider", "--receipt-batch", "0"]),
            vec![],
            "--receipt-batch",
        ),
        (
            owned(&["sim", "http-provider", "--receipts-url", "notaurl"]),
            vec![],
            "--receipts-url",
        ),
        (
            owned(&["sim", "http-provider", "--receipt-token", "t"]),
            vec![],
            "--receipts-url",
        ),
        (
            owned(&[
                "sim",
                "smsc",
                "--listen",
                "127.0.0.1:0",
                "--ledger",
                "/nonexistent/dir/x",
            ]),
            vec![],
            "--ledger",
        ),
        (
            owned(&["sim", "smsc", "--listen", &taken]),
            vec![],
            "Address already in use",
        ),
        (
            owned(&["demo", "--data-dir", &demo_data, "--cluster-addr", "x"]),
            vec![],
            "--cluster-addr",
        ),
    ];
    for (args, env, word) in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run_bounded(&argv, env, dir.path(), Duration::from_secs(15));
        let what = format!("smsgw {} (env {env:?})", argv.join(" "));
        assert_eq!(
            code,
            Some(2),
            "{what}: exit code; stdout {out:?} stderr {err:?}"
        );
        let all = format!("{out}{err}");
        let ls = lines(&all);
        assert_eq!(ls.len(), 1, "{what}: exactly one line, got {ls:?}");
        assert!(
            ls[0].contains(word),
            "{what}: the line must name {word:?}: {:?}",
            ls[0]
        );
    }
    assert!(
        !dir.path().join("demo").exists(),
        "a refused demo created its data dir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_port_in_use_is_a_fatal_exit_not_a_hang() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let addr = held.local_addr().expect("addr").to_string();
    let data = dir.path().join("data").display().to_string();
    // No --admin-token: a start that cannot listen must not generate (and print once) a
    // token before it fails.
    let args = [
        "start",
        "--data-dir",
        &data,
        "--http",
        &addr,
        "--cluster-addr",
        "127.0.0.1:0",
    ];
    let (code, out, err) = run_bounded(&args, &[], dir.path(), Duration::from_secs(20));
    assert!(
        matches!(code, Some(c) if c != 0),
        "port {addr} in use: exit {code:?}; stdout {out:?} stderr {err:?}"
    );
    let all = format!("{out}{err}");
    assert!(
        all.contains(&addr) && all.contains("--http"),
        "the message names the address and the flag: {out:?} {err:?}"
    );
    assert!(
        !dir.path().join("data").join("admin.token").exists(),
        "a token was generated before the start failed: {out:?}"
    );
    drop(held);
}
