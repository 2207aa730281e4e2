//! CI tier of the chaos runs (issue 8 part 6): short versions of bind-owner kill, leader
//! kill and throttling storm, run by the real `smsgw sim run` against 3 real node
//! processes, one after the other, within 5 minutes in total. The run's exit status is
//! the verdict on I1–I8; the last line of each run is its JSON figures.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{bin, tempdir};

const SCENARIOS: [&str; 3] = [
    "simulations/ci-kill-bind-owner.toml",
    "simulations/ci-kill-leader.toml",
    "simulations/ci-throttling-storm.toml",
];

#[test]
fn chaos_ci_tier_holds_every_invariant() {
    let _alone = crate::ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out = tempdir();
    let root = env!("CARGO_MANIFEST_DIR");
    let started = Instant::now();
    let mut child = Command::new(bin())
        .current_dir(root)
        .arg("sim")
        .arg("run")
        .args(SCENARIOS)
        .arg("--seed")
        .arg("42")
        .arg("--out")
        .arg(out.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn smsgw sim run");
    // Bounded: the runner bounds itself; this is the backstop.
    let limit = Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the CI tier took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut reports = String::new();
    for l in &lines {
        if let Some(p) = l["report"].as_str() {
            reports.push_str(&std::fs::read_to_string(p).unwrap_or_default());
        }
    }
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}\nreports:\n{reports}");
    let complete = lines.len() == 3
        && lines
            .iter()
            .all(|l| FIGURES.iter().all(|k| !l[*k].is_null()));
    if !complete || !status.success() {
        // An errored run (setup failure) prints `error` and `dir` instead of figures;
        // its node logs are kept as a failed run's are.
        let kept = keep_for_diagnosis(&lines);
        panic!(
            "a run failed or errored ({status}): want one JSON line per run with {FIGURES:?}\n{context}\n{kept}"
        );
    }
    for l in &lines {
        assert_eq!(l["seed"], 42);
        assert!(l["accepted"].as_u64().unwrap_or(0) > 0, "{l}\n{context}");
        assert_eq!(l["lost"], 0, "{l}\n{context}");
    }
    assert!(started.elapsed() < limit);
}

/// The fields every run's JSON line carries.
const FIGURES: [&str; 10] = [
    "scenario",
    "seed",
    "accepted",
    "lost",
    "duplicates",
    "leader_failover_ms_p99",
    "bind_failover_ms_p99",
    "availability",
    "accept_ms_p99",
    "report",
];

/// A failed run's node logs outlive the temporary directory (copied under
/// `target/chaos-failures/`), and their election lines go into the failure message, which
/// is all a CI log keeps.
fn keep_for_diagnosis(lines: &[Value]) -> String {
    let keep = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/chaos-failures")
        .join(format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        ));
    let mut summary = format!("node logs kept in {}\n", keep.display());
    for l in lines
        .iter()
        .filter(|l| l["pass"] == false || !l["error"].is_null())
    {
        let Some(dir) = l["dir"].as_str().map(std::path::Path::new).or_else(|| {
            l["report"]
                .as_str()
                .and_then(|r| std::path::Path::new(r).parent())
        }) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let name = dir.file_name().unwrap_or_default();
        let _ = std::fs::create_dir_all(keep.join(name));
        let mut logs: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "log" || x == "faults" || x == "md")
            })
            .collect();
        logs.sort();
        for path in logs {
            let _ = std::fs::copy(
                &path,
                keep.join(name).join(path.file_name().unwrap_or_default()),
            );
            if path.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let election: Vec<&str> = text
                    .lines()
                    .filter(|t| t.contains("vote") || t.contains("elect") || t.contains("leader"))
                    .collect();
                let tail = &election[election.len().saturating_sub(40)..];
                summary.push_str(&format!(
                    "--- {} (last {} election lines)\n{}\n",
                    path.display(),
                    tail.len(),
                    tail.iter()
                        .map(|t| t.chars().take(300).collect::<String>())
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
        }
    }
    summary
}
