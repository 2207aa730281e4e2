//! Log compaction and snapshot catch-up: with a snapshot every 20 entries, a member that
//! was down (kill -9) while the others compacted their logs past its position comes back,
//! is sent a snapshot of the state (the entries it missed are gone) in several chunks
//! (64 KiB each here), and then answers for every message accepted while it was down;
//! also when it dies in the middle of installing that snapshot.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::cluster::{TestCluster, log_index, raft_log_of};
use crate::common::*;

/// A cluster whose member `lagging` is down and behind the others' compacted logs.
struct Lagging {
    _logs: LogsOnFailure,
    smsc: Smsc,
    cluster: TestCluster,
    leader: u64,
    lagging: u64,
    key: String,
    /// Accepted (and delivered) while it was down.
    ids: Vec<String>,
    matched_at_kill: u64,
    /// The leader's applied index once its log was purged past the lagging member.
    applied: u64,
    leader_log: Value,
    _dir: tempfile::TempDir,
}

impl Lagging {
    async fn set_up() -> Lagging {
        let dir = tempdir();
        let logs = LogsOnFailure(dir.path().to_path_buf());
        let smsc = Smsc::start(dir.path(), "s", &["--dlr-delay-ms", "20"]).await;
        let mut cluster = TestCluster::start(
            dir.path(),
            3,
            &[
                "--snapshot-every-entries",
                "20",
                "--snapshot-chunk-bytes",
                "65536",
            ],
        )
        .await;
        let leader = cluster.wait_leader(&[], Duration::from_secs(10)).await;
        let lead = cluster.node(leader);
        lead.channels_and_route(&[smsc.channel("ch")]).await;
        let key = lead.tenant("acme", json!({})).await;
        eventually("ch bound", Duration::from_secs(30), || async {
            cluster.bound_owner("ch", &[]).await
        })
        .await;

        // A follower goes down hard; where its log stood is what the leader last matched.
        let lagging = cluster
            .nodes
            .iter()
            .map(|n| n.node_id)
            .find(|id| *id != leader)
            .expect("a follower");
        cluster.node_mut(lagging).proc.kill9();
        let matched_at_kill = {
            let log = raft_log_of(cluster.node(leader))
                .await
                .expect("leader's log view");
            log_index(&log["matched_index"], &lagging.to_string())
        };

        // Traffic while it is down: accepts, submit responses and receipts are many
        // entries; long texts, so that the state is several 64 KiB chunks.
        let lead = cluster.node(leader);
        let filler = "x".repeat(400);
        let bodies = (0..100)
            .map(|i| {
                json!({"to": format!("+491511234{i:04}"), "text": format!("while down {i} {filler}")})
            })
            .collect();
        let ids = lead.send_all_accepted(&key, bodies).await;
        lead.wait_all_status(&key, &ids, "delivered", Duration::from_secs(60))
            .await;
        // The live members compacted their logs past the lagging member's position.
        let leader_log = eventually(
            "the leader's log purged past the lagging member",
            Duration::from_secs(30),
            || async {
                let log = raft_log_of(cluster.node(leader)).await?;
                (log_index(&log, "purged_index") > matched_at_kill + 1).then_some(log)
            },
        )
        .await;
        Lagging {
            _logs: logs,
            smsc,
            applied: log_index(&leader_log, "applied_index"),
            leader_log,
            cluster,
            leader,
            lagging,
            key,
            ids,
            matched_at_kill,
            _dir: dir,
        }
    }

    /// Waits until the leader has matched the lagging member up to `applied`, then checks
    /// that it installed a snapshot, reads every message through it, and sends through it.
    async fn caught_up(&self) -> Value {
        eventually(
            "the lagging member matched the leader again",
            Duration::from_secs(30),
            || async {
                let log = raft_log_of(self.cluster.node(self.leader)).await?;
                let m = log_index(&log["matched_index"], &self.lagging.to_string());
                (m >= self.applied).then_some(())
            },
        )
        .await;
        let back = self.cluster.node(self.lagging);
        let own = raft_log_of(back).await.expect("its own log view");
        assert!(
            log_index(&own, "snapshot_index") > self.matched_at_kill,
            "it installed a snapshot newer than where it stopped ({}): {own}",
            self.matched_at_kill
        );
        // Every message accepted while it was down is readable through it, as delivered.
        for id in &self.ids {
            let (s, v) = back.message(&self.key, id).await;
            assert_eq!(s, 200, "{id} through the member that was down: {v}");
            assert_eq!(v["status"], "delivered", "{v}");
        }
        // And it takes writes again.
        let (s, v) = back
            .send(
                &self.key,
                json!({"to": "+4915112345678", "text": "after catch-up"}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(ledger_duplicates(&self.smsc.ledger_lines()), 0);
        own
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_member_catches_up_by_snapshot() {
    let mut l = Lagging::set_up().await;
    // It comes back: the entries it lacks are gone, so only a snapshot can catch it up.
    l.cluster.node_mut(l.lagging).restart().await;
    let own = l.caught_up().await;
    // The leader sent it in pieces, each staged before the install.
    let sent = l
        .cluster
        .node(l.leader)
        .proc
        .log_text()
        .lines()
        .map(strip_ansi)
        .rfind(|line| line.contains("snapshot sent"))
        .unwrap_or_default();
    let chunks: u32 = sent
        .split_once("chunks=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(chunks >= 2, "the snapshot went out in chunks: {sent:?}");
    println!(
        "snapshot catch-up: matched at kill {}, leader {}, member {own}, sent in {chunks} chunks",
        l.matched_at_kill, l.leader_log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_while_installing_a_snapshot_finishes_it_at_restart() {
    let mut l = Lagging::set_up().await;
    // It comes back and dies (abort: no clean-up, like kill -9) right after clearing its
    // rows for the snapshot it received, before copying the staged ones in.
    let node = l.cluster.node_mut(l.lagging);
    node.envs
        .push(("SMSGW_FAILPOINTS".into(), "snapshot_install_crash:1".into()));
    node.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = node
            .proc
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the member did not die in the install within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "it died: {status:?}");
    assert!(
        node.proc.log_text().contains("snapshot_install_crash"),
        "it died where the failpoint is"
    );
    // Restarted on the same data dir, it finishes the install before it serves anything.
    node.envs.clear();
    node.restart().await;
    assert!(
        strip_ansi(&node.proc.log_text())
            .contains("finishing a snapshot install that was interrupted"),
        "the restart finished the install"
    );
    let own = l.caught_up().await;
    println!("killed mid-install, then caught up: member {own}");
}

/// A log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip up to and including the final letter of the escape sequence.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A member whose data dir is wiped (kill -9, rm -rf, restart under the same id) is
/// refilled by the same leader: it had lagged nothing, so the leader sees its log go
/// backwards, which openraft by default answers by never replicating to it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_is_refilled_by_the_same_leader() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "s", &["--dlr-delay-ms", "20"]).await;
    let mut cluster = TestCluster::start(dir.path(), 3, &[]).await;
    let leader = cluster.wait_leader(&[], Duration::from_secs(10)).await;
    let lead = cluster.node(leader);
    lead.channels_and_route(&[smsc.channel("ch")]).await;
    let key = lead.tenant("acme", json!({})).await;
    let bodies = (0..40)
        .map(|i| json!({"to": "+4915112345678", "text": format!("before the wipe {i}")}))
        .collect();
    let before = lead.send_all_accepted(&key, bodies).await;

    let wiped = cluster
        .nodes
        .iter()
        .map(|n| n.node_id)
        .find(|id| *id != leader)
        .expect("a follower");
    let node = cluster.node_mut(wiped);
    node.proc.kill9();
    let data = node.dir.join("data");
    std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("wipe {}: {e}", data.display()));
    node.restart().await;

    let lead = cluster.node(leader);
    let bodies = (0..40)
        .map(|i| json!({"to": "+4915112345678", "text": format!("after the wipe {i}")}))
        .collect();
    let after = lead.send_all_accepted(&key, bodies).await;
    let applied = log_index(
        &raft_log_of(lead).await.expect("leader's log view"),
        "applied_index",
    );
    eventually(
        "the leader refilled the wiped member",
        Duration::from_secs(30),
        || async {
            let log = raft_log_of(cluster.node(leader)).await?;
            (log_index(&log["matched_index"], &wiped.to_string()) >= applied).then_some(())
        },
    )
    .await;
    assert_eq!(
        cluster.leader(&[]).await,
        Some(leader),
        "refilled without a leader change"
    );
    let back = cluster.node(wiped);
    for id in before.iter().chain(&after) {
        let (s, v) = back.message(&key, id).await;
        assert_eq!(s, 200, "{id} through the wiped member: {v}");
    }
}
