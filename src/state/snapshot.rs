//! Moving the whole replicated state to a lagging peer in bounded pieces.
//!
//! A member that was down while the others compacted their logs can only catch up from a
//! snapshot, and with messages retained for days the state is far larger than memory or
//! one RPC body. So the sender reads its rows out of a read view in chunks of about
//! [`CHUNK_BYTES`], the receiver writes each chunk into a staging keyspace as it arrives,
//! and only a complete transfer is installed. Installing is crash-safe: a durable marker
//! is written before the live rows are touched, and a node that dies in the middle of the
//! copy finishes it when it opens the store again, before anything reads the rows.

use serde::{Deserialize, Serialize};

use super::store::{StateStore, StoreError};
use crate::wire;

/// About how many row bytes one chunk carries by default (`snapshot_chunk_bytes`): large
/// enough that per-call overhead does not matter, small enough that sender, wire and
/// receiver each hold only a few megabytes.
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// One piece of a snapshot transfer: rows grouped by the keyspace they belong to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotChunk {
    /// Chosen by the sender for one transfer; a chunk of another transfer starts over.
    pub transfer: u64,
    /// 0, 1, 2, ... within the transfer; chunk 0 discards whatever was staged before.
    pub seq: u32,
    /// (keyspace name, its rows).
    pub groups: Vec<(String, Vec<RowBytes>)>,
}

/// One row as stored: (key, value).
pub type RowBytes = (Vec<u8>, Vec<u8>);

/// Why a chunk could not be staged or a transfer not installed. Not fatal for the node:
/// the sender starts the transfer over.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error(
        "snapshot chunk {got} of transfer {transfer:x} arrived out of order (expected {expected})"
    )]
    OutOfOrder {
        transfer: u64,
        expected: String,
        got: u32,
    },
    #[error("snapshot transfer {transfer:x} is incomplete: {staged} of {chunks} chunks are staged")]
    Incomplete {
        transfer: u64,
        staged: String,
        chunks: u32,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Memtable bytes (fjall's write buffers, all keyspaces) above which staging and installing
/// wait for fjall's flushes to catch up: the transfer writes at disk speed, and without the
/// wait the sealed memtables waiting to be flushed grow with the size of the state.
const WRITE_BUFFER_LIMIT: u64 = 192 * 1024 * 1024;
/// The longest one such wait lasts (then the write goes ahead anyway: never an error).
const FLUSH_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Staging keys of the bookkeeping rows start with this byte; row keys start with their
/// keyspace's index, which is far below it.
const CONTROL: u8 = 0xFF;
/// (transfer, chunks staged so far).
const PROGRESS_KEY: [u8; 2] = [CONTROL, b'p'];
/// The meta rows to install with a complete transfer: present only while installing.
const INSTALL_KEY: [u8; 2] = [CONTROL, b'i'];

/// The meta rows (applied log id, membership) that go in with an installed snapshot.
pub type MetaRows = Vec<(String, Vec<u8>)>;

fn staging_key(keyspace_index: usize, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(keyspace_index as u8);
    k.extend_from_slice(key);
    k
}

impl StateStore {
    /// Reads every row of `view` and hands them to `send` in chunks of about `chunk_bytes`
    /// (blocking; run it off the async executor). Stops early, without an
    /// error, when `send` returns false (the receiving side went away). Returns how many
    /// chunks were handed over; an empty state is one empty chunk, so that the receiver
    /// always discards an older staging.
    pub fn export_chunks(
        &self,
        view: &fjall::Snapshot,
        transfer: u64,
        chunk_bytes: usize,
        mut send: impl FnMut(SnapshotChunk) -> bool,
    ) -> Result<u32, StoreError> {
        use fjall::Readable;
        let mut seq = 0u32;
        let mut chunk = SnapshotChunk {
            transfer,
            seq,
            groups: Vec::new(),
        };
        let mut bytes = 0usize;
        for (name, ks) in self.all_keyspaces() {
            for kv in view.iter(ks) {
                let (k, v) = kv.into_inner()?;
                if chunk.groups.last().map(|(n, _)| n.as_str()) != Some(name) {
                    chunk.groups.push((name.to_string(), Vec::new()));
                }
                bytes += k.len() + v.len();
                if let Some((_, rows)) = chunk.groups.last_mut() {
                    rows.push((k.to_vec(), v.to_vec()));
                }
                if bytes >= chunk_bytes {
                    seq += 1;
                    let next = SnapshotChunk {
                        transfer,
                        seq,
                        groups: Vec::new(),
                    };
                    if !send(std::mem::replace(&mut chunk, next)) {
                        return Ok(seq);
                    }
                    bytes = 0;
                }
            }
        }
        if seq == 0 || !chunk.groups.is_empty() {
            seq += 1;
            if !send(chunk) {
                return Ok(seq);
            }
        }
        Ok(seq)
    }

    /// Writes one received chunk into the staging keyspace. Chunk 0 starts a transfer
    /// (discarding any earlier staging); every other chunk must follow the previous one of
    /// the same transfer.
    pub fn stage_chunk(&self, chunk: SnapshotChunk) -> Result<(), StagingError> {
        let _one_at_a_time = self.staging_lock();
        let staging = self.staging();
        if chunk.seq == 0 {
            staging.clear().map_err(StoreError::from)?;
        } else {
            let progress = self.staging_progress()?;
            if progress != Some((chunk.transfer, chunk.seq)) {
                return Err(StagingError::OutOfOrder {
                    transfer: chunk.transfer,
                    expected: describe_progress(progress, chunk.transfer),
                    got: chunk.seq,
                });
            }
        }
        let keyspaces = self.all_keyspaces();
        self.let_flushes_catch_up();
        // Handed to the kernel at commit: the sender is told this chunk is staged, and a
        // restart after kill -9 must find it (the store's batches otherwise wait for the
        // log flusher, `Consensus::start`).
        let mut batch = self
            .db()
            .batch()
            .durability(Some(fjall::PersistMode::Buffer));
        for (name, rows) in chunk.groups {
            // A keyspace this build does not know (a newer peer's) is skipped.
            let Some(index) = keyspaces.iter().position(|(n, _)| *n == name) else {
                tracing::warn!(keyspace = %name, "snapshot rows of an unknown keyspace skipped");
                continue;
            };
            for (k, v) in rows {
                batch.insert(staging, staging_key(index, &k), v);
            }
        }
        let progress = wire::encode(&(chunk.transfer, chunk.seq + 1)).map_err(StoreError::from)?;
        batch.insert(staging, PROGRESS_KEY, progress);
        batch.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Ok when all `chunks` chunks of `transfer` are staged.
    pub fn staged_whole(&self, transfer: u64, chunks: u32) -> Result<(), StagingError> {
        let progress = self.staging_progress()?;
        if progress == Some((transfer, chunks)) {
            return Ok(());
        }
        Err(StagingError::Incomplete {
            transfer,
            staged: describe_progress(progress, transfer),
            chunks,
        })
    }

    /// Discards the staged rows of `transfer`, if they are still there (installed
    /// transfers are gone already).
    pub fn drop_staged(&self, transfer: u64) -> Result<(), StoreError> {
        let _one_at_a_time = self.staging_lock();
        if matches!(self.staging_progress()?, Some((t, _)) if t == transfer) {
            self.staging().clear()?;
        }
        Ok(())
    }

    /// Replaces the state with a completely staged transfer of `chunks` chunks, plus `meta`
    /// (the snapshot's applied log id and membership), and rebuilds the in-memory indexes.
    /// Blocking, O(rows). Safe against a crash at any point: see [`Self::resume_install`].
    pub fn install_staged(
        &self,
        transfer: u64,
        chunks: u32,
        meta: MetaRows,
    ) -> Result<(), StagingError> {
        let _one_at_a_time = self.staging_lock();
        self.staged_whole(transfer, chunks)?;
        let started = std::time::Instant::now();
        tracing::info!(transfer = %format!("{transfer:x}"), chunks, "installing a received snapshot");
        let marker = wire::encode(&meta).map_err(StoreError::from)?;
        self.staging()
            .insert(INSTALL_KEY, marker)
            .map_err(StoreError::from)?;
        // From here on the install is finished even if the process dies: the staged rows
        // and the marker are on disk before any live row changes.
        self.db()
            .persist(fjall::PersistMode::SyncAll)
            .map_err(StoreError::from)?;
        self.finish_install(meta)?;
        tracing::info!(
            transfer = %format!("{transfer:x}"),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot installed"
        );
        Ok(())
    }

    /// Finishes an install that a crash interrupted (called when the store opens, before
    /// the indexes are built), and drops a transfer that never completed. Returns whether
    /// an install was finished.
    pub(super) fn resume_install(&self) -> Result<bool, StoreError> {
        let staging = self.staging();
        match staging.get(INSTALL_KEY)? {
            Some(marker) => {
                let meta: MetaRows = wire::decode(&marker)?;
                tracing::warn!("finishing a snapshot install that was interrupted");
                self.finish_install(meta)?;
                Ok(true)
            }
            None => {
                if !staging.is_empty()? {
                    staging.clear()?;
                }
                Ok(false)
            }
        }
    }

    /// Clears the live rows, copies the staged rows in, writes `meta`, makes it durable,
    /// then drops the staging. Idempotent: a rerun after a crash gives the same state.
    fn finish_install(&self, meta: MetaRows) -> Result<(), StoreError> {
        let keyspaces = self.all_keyspaces();
        for (_, ks) in &keyspaces {
            ks.clear()?;
        }
        if crate::failpoints::fire("snapshot_install_crash") {
            // Tests: die like kill -9 with the live rows gone and the staged ones not in.
            tracing::error!("failpoint snapshot_install_crash: aborting mid-install");
            std::process::abort();
        }
        // Copied in batches of about CHUNK_BYTES, each read by its own short range scan: an
        // iterator open through the whole copy would keep fjall from freeing the memtables
        // flushed meanwhile, and the copy would hold the whole state in memory.
        let staging = self.staging();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let scan = match &after {
                None => staging.iter(),
                Some(k) => staging.range::<Vec<u8>, _>((
                    std::ops::Bound::Excluded(k.clone()),
                    std::ops::Bound::Unbounded,
                )),
            };
            let mut batch = self.db().batch();
            let mut bytes = 0usize;
            let mut last = None;
            for kv in scan {
                let (k, v) = kv.into_inner()?;
                last = Some(k.to_vec());
                let Some((&index, key)) = k.split_first() else {
                    continue;
                };
                let Some((_, ks)) = keyspaces.get(index as usize) else {
                    continue; // the control rows
                };
                bytes += k.len() + v.len();
                batch.insert(ks, key, v);
                if bytes >= CHUNK_BYTES {
                    break;
                }
            }
            batch.commit()?;
            match last {
                Some(k) if bytes >= CHUNK_BYTES => after = Some(k),
                _ => break,
            }
            self.let_flushes_catch_up();
        }
        let mut batch = self.db().batch();
        for (k, v) in meta {
            batch.insert(self.meta_keyspace(), k.as_bytes(), v);
        }
        batch.commit()?;
        self.db().persist(fjall::PersistMode::SyncAll)?;
        staging.clear()?;
        self.rebuild()
    }

    /// Waits (bounded) while fjall's memtables hold more than [`WRITE_BUFFER_LIMIT`] and
    /// flushes are under way, so that a transfer's memory does not grow with the state.
    fn let_flushes_catch_up(&self) {
        let db = self.db();
        let deadline = std::time::Instant::now() + FLUSH_WAIT_MAX;
        while db.outstanding_flushes() > 0
            && db.write_buffer_size() > WRITE_BUFFER_LIMIT
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The staged transfer and how many of its chunks are in.
    fn staging_progress(&self) -> Result<Option<(u64, u32)>, StoreError> {
        match self.staging().get(PROGRESS_KEY)? {
            Some(v) => Ok(Some(wire::decode(&v)?)),
            None => Ok(None),
        }
    }
}

fn describe_progress(progress: Option<(u64, u32)>, transfer: u64) -> String {
    match progress {
        None => "chunk 0: nothing is staged".into(),
        Some((t, next)) if t == transfer => format!("chunk {next}"),
        Some((t, _)) => format!("chunk 0: transfer {t:x} is staged"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Op, Proposal, Tenant};

    fn tenant(id: &str, pad: usize) -> Tenant {
        Tenant {
            id: id.into(),
            name: "x".repeat(pad),
            api_key_hash: format!("hash-{id}"),
            ..crate::state::cache_tests::tenant()
        }
    }

    fn open(dir: &std::path::Path) -> (fjall::Database, StateStore) {
        let db = fjall::Database::builder(dir).open().expect("open db");
        let store = StateStore::open(&db).expect("open store");
        (db, store)
    }

    /// A store with `n` tenants, each a row of ~`pad` bytes.
    fn filled(dir: &std::path::Path, n: usize, pad: usize) -> (fjall::Database, StateStore) {
        let (db, store) = open(dir);
        let ops: Vec<Proposal> = (0..n)
            .map(|i| Proposal {
                ops: vec![Op::PutTenant(Box::new(tenant(&format!("t{i:05}"), pad)))].into(),
            })
            .collect();
        let refs: Vec<&Proposal> = ops.iter().collect();
        store.apply(&refs, &[("applied", vec![7])]).expect("apply");
        (db, store)
    }

    fn rows(store: &StateStore) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let view = store.view();
        let mut out = Vec::new();
        store
            .export_chunks(&view, 1, CHUNK_BYTES, |c| {
                for (name, rs) in c.groups {
                    for (k, v) in rs {
                        out.push((name.clone(), k, v));
                    }
                }
                true
            })
            .expect("export");
        out
    }

    fn transfer(from: &StateStore, to: &StateStore, id: u64) -> u32 {
        let view = from.view();
        from.export_chunks(&view, id, CHUNK_BYTES, |c| {
            to.stage_chunk(c).expect("stage");
            true
        })
        .expect("export")
    }

    fn meta() -> MetaRows {
        vec![("applied".into(), vec![9, 9])]
    }

    #[test]
    fn a_large_state_moves_in_bounded_chunks_and_installs_whole() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let (_da, from) = filled(a.path(), 3_000, 4_000);
        let (_db, to) = filled(b.path(), 10, 10);
        let view = from.view();
        let mut sizes = Vec::new();
        let chunks = from
            .export_chunks(&view, 5, CHUNK_BYTES, |c| {
                sizes.push(wire::encode(&c).map(|b| b.len()).unwrap_or(0));
                to.stage_chunk(c).expect("stage");
                true
            })
            .expect("export");
        assert!(chunks >= 3, "12 MB of rows in {chunks} chunks");
        assert!(
            sizes.iter().all(|s| *s < CHUNK_BYTES + 64 * 1024),
            "every chunk is about CHUNK_BYTES: {sizes:?}"
        );
        to.install_staged(5, chunks, meta()).expect("install");
        let mut expected = rows(&from);
        for r in expected
            .iter_mut()
            .filter(|r| r.0 == "sm_meta" && r.1 == b"applied")
        {
            r.2 = vec![9, 9];
        }
        assert_eq!(rows(&to), expected);
        assert_eq!(to.config().tenants.len(), 3_000, "indexes rebuilt");
        assert!(to.staging().is_empty().expect("read"), "staging dropped");
    }

    #[test]
    fn out_of_order_and_incomplete_transfers_are_refused() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let (_da, from) = filled(a.path(), 2_000, 4_000);
        let (_db, to) = filled(b.path(), 10, 10);
        let view = from.view();
        let mut all = Vec::new();
        let chunks = from
            .export_chunks(&view, 8, CHUNK_BYTES, |c| {
                all.push(c);
                true
            })
            .expect("export");
        assert!(chunks >= 2);
        // A chunk with no start, then a skipped chunk.
        assert!(matches!(
            to.stage_chunk(all[1].clone()),
            Err(StagingError::OutOfOrder { .. })
        ));
        to.stage_chunk(all[0].clone()).expect("chunk 0");
        if chunks > 2 {
            assert!(matches!(
                to.stage_chunk(all[2].clone()),
                Err(StagingError::OutOfOrder { .. })
            ));
        }
        // Installing before the last chunk changes nothing.
        let err = to
            .install_staged(8, chunks, meta())
            .expect_err("incomplete");
        assert!(err.to_string().contains("incomplete"), "{err}");
        assert_eq!(to.config().tenants.len(), 10);
        // A new transfer starts over cleanly.
        let n = transfer(&from, &to, 9);
        to.install_staged(9, n, meta()).expect("install");
        assert_eq!(to.config().tenants.len(), 2_000);
    }

    #[test]
    fn an_install_cut_short_is_finished_when_the_store_opens() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let (_da, from) = filled(a.path(), 1_500, 4_000);
        {
            let (db, to) = filled(b.path(), 10, 10);
            let n = transfer(&from, &to, 3);
            // What install_staged does before the copy, then a "crash" half-way through
            // clearing the live rows.
            to.staging()
                .insert(INSTALL_KEY, wire::encode(&meta()).expect("encode"))
                .expect("marker");
            to.config_keyspace().clear().expect("clear");
            db.persist(fjall::PersistMode::SyncAll).expect("persist");
            assert!(n >= 1);
        }
        let (_db, reopened) = open(b.path());
        assert_eq!(
            reopened.config().tenants.len(),
            1_500,
            "install finished at open"
        );
        assert!(reopened.staging().is_empty().expect("read"));
        let applied = reopened
            .meta_get_at(&reopened.view(), "applied")
            .expect("read");
        assert_eq!(applied, Some(vec![9, 9]));
    }

    #[test]
    fn an_abandoned_transfer_is_dropped_at_open_and_the_state_kept() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let (_da, from) = filled(a.path(), 500, 4_000);
        {
            let (_db, to) = filled(b.path(), 10, 10);
            transfer(&from, &to, 4);
        }
        let (_db, reopened) = open(b.path());
        assert_eq!(reopened.config().tenants.len(), 10);
        assert!(reopened.staging().is_empty().expect("read"));
    }
}
