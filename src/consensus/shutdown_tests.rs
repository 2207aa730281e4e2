//! Stopping a node: the writes under way get their answer before Raft stops.

use std::time::Duration;

use super::WriteError;
use super::test_node::leading_single_node;
use crate::state::Op;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_under_way_are_answered_before_raft_stops() {
    let (_dir, consensus) = leading_single_node().await;
    let mut under_way = Vec::new();
    for i in 0..64 {
        let c = consensus.clone();
        under_way.push(tokio::spawn(async move {
            c.propose(Op::DeleteTenant {
                id: format!("t{i}"),
            })
            .await
        }));
    }
    // Let some of them reach Raft before the stop begins.
    tokio::time::sleep(Duration::from_millis(1)).await;
    consensus.shutdown().await;
    let mut answered = 0;
    for w in under_way {
        match w.await.expect("write task") {
            Ok(_) => answered += 1,
            // Refused before it was proposed: the caller may send it elsewhere.
            Err(WriteError::Unavailable(_)) => {}
            Err(e) => panic!("a write under way was cut off by the stop: {e}"),
        }
    }
    eprintln!("{answered} of 64 writes committed before the stop");
    match consensus
        .propose(Op::DeleteTenant { id: "late".into() })
        .await
    {
        Err(WriteError::Unavailable(why)) => assert!(why.contains("stopping"), "{why}"),
        other => panic!("a write after the stop must be refused as unavailable: {other:?}"),
    }
}
