//! `--hold-channels`: a node (a restored copy, say) starts, serves the API and reads, but
//! binds no channel and sends nothing until it is restarted without the flag; its channels
//! show down with the reason, and its log says so in a WARN.
use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_node_serves_the_api_but_sends_nothing_until_restarted_without_it() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, mut node, key) = gateway_with_smsc(dir.path(), "sh", &[], &[]).await;
    // Killed while owning the channel: the state still names it the owner, as in a copy
    // of a running node's data dir.
    node.proc.kill9();
    node.extra.push("--hold-channels".into());
    node.restart().await;
    // The WARN is written as the node finishes starting, which may be just after /readyz
    // first answers 200.
    eventually(
        "a WARN says the channels are held",
        Duration::from_secs(10),
        || async {
            node.proc
                .log_text()
                .lines()
                .any(|l| l.contains(" WARN ") && l.contains("hold_channels is set"))
                .then_some(())
        },
    )
    .await;

    let ids = node
        .send_all_accepted(
            &key,
            (0..3)
                .map(|i| json!({"to": "+4915112345678", "text": format!("held {i}")}))
                .collect(),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smsc.ledger_lines().len(), 0, "nothing sent while held");
    for id in &ids {
        let (s, v) = node.message(&key, id).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "accepted", "{v}");
    }
    let ch = node.channel_view("a").await;
    assert_eq!(ch["state"], "down", "{ch}");
    assert!(
        ch["binds"]
            .as_array()
            .is_none_or(|b| b.iter().all(|b| b["state"] == "down")),
        "{ch}"
    );
    assert!(
        ch["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("hold_channels")),
        "the reason is shown: {ch}"
    );

    // Without the flag the waiting messages go out.
    node.proc.terminate(Duration::from_secs(30));
    node.extra.clear();
    node.restart().await;
    for id in &ids {
        node.wait_status(&key, id, "delivered", Duration::from_secs(60))
            .await;
    }
}
