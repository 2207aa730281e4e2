//! A node restarted with another `cluster_addr` than the membership records says so in a
//! WARN naming both (peers would keep dialling the recorded one).
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_cluster_addr_is_warned_about_at_start() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let mut node = GwNode::start(dir.path(), &[]).await;
    let recorded = format!("127.0.0.1:{}", node.cluster);
    node.proc.terminate(Duration::from_secs(30));
    node.cluster = free_port();
    node.restart().await;
    let log = node.proc.log_text();
    let warned = log
        .lines()
        .find(|l| l.contains(" WARN ") && l.contains("records this node at another cluster_addr"));
    let warned = warned.unwrap_or_else(|| panic!("no WARN: {log}"));
    assert!(
        warned.contains(&recorded) && warned.contains(&format!("127.0.0.1:{}", node.cluster)),
        "{warned}"
    );
}
