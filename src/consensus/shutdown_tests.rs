//! Stopping a node: the writes under way get their answer before Raft stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Consensus, ConsensusOptions, WriteError};
use crate::state::Op;

async fn single_node() -> (tempfile::TempDir, Arc<Consensus>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let consensus = Consensus::start(
        dir.path(),
        ConsensusOptions {
            node_id: 1,
            cluster_addr: "127.0.0.1:1".into(),
            http_addr: "127.0.0.1:2".into(),
            peers: Default::default(),
            election_timeout_ms: (150, 300),
            heartbeat_ms: 50,
            snapshot_every: 0,
            snapshot_chunk_bytes: crate::state::snapshot::CHUNK_BYTES,
        },
    )
    .await
    .expect("consensus");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !consensus.is_leader() {
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (dir, consensus)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_under_way_are_answered_before_raft_stops() {
    let (_dir, consensus) = single_node().await;
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
