//! For tests: a one-member cluster on a temporary data dir, started and leading.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Consensus, ConsensusOptions};

/// Starts a single node on a fresh temporary dir (kept alive by the returned guard) and
/// waits (at most 10 s) until it leads, so that writes are taken at once.
pub(crate) async fn leading_single_node() -> (tempfile::TempDir, Arc<Consensus>) {
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
            max_journal_bytes: 256 << 20,
            cluster_secret: None,
            accept_missing_watermark: false,
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
