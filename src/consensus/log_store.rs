//! The Raft log on fjall with group commit.
//!
//! `append` writes the entries into fjall at once (so replication can read them) and
//! hands the flush callback to one flusher thread. The flusher takes every callback
//! that is waiting, fsyncs the journal once (outside fjall's lock, `journal_sync`), then
//! fires them all: many entries, one fsync.
//!
//! The newest entries are also kept decoded in memory (`Tail`), so replication to every
//! follower and the state machine read them without a fjall lookup and a bincode decode
//! each time.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use fjall::{Database, Keyspace, PersistMode};
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use super::TypeConfig;
use super::journal_sync::JournalSync;
use super::watermark::Watermark;
use crate::state::memtables::open_keyspace;
use crate::wire;

type C = TypeConfig;

/// Handle to the log keyspaces; cheap to clone (readers share it).
#[derive(Clone)]
pub struct LogStore {
    db: Database,
    log: Keyspace,
    meta: Keyspace,
    flusher: Arc<mpsc::Sender<Flush>>,
    tail: Arc<Mutex<Tail>>,
    /// How far the log is known fsync'd, kept outside the journal (`watermark`).
    watermark: Arc<Watermark>,
    /// Heartbeats are noted as they arrive (for the placement controller's liveness).
    arrivals: Arc<super::arrivals::HeartbeatArrivals>,
}

/// Entries kept decoded up to the newest appended one (bounded by count and encoded size).
/// Replication and apply read within a few hundred entries of the end; a follower further
/// behind reads fjall. A decoded accept takes several times its encoded size: with 64 MB
/// (encoded) of batched accepts, 100,000 queued messages held 400 MB RSS, with 8 MB
/// 330 MB, with 1 MB 281 MB (`smsgw-load --queue-only`, docs/benchmarks.md).
const TAIL_MAX_ENTRIES: usize = 2048;
const TAIL_MAX_BYTES: usize = 1 << 20;

/// The newest log entries, decoded: a contiguous run ending at the last appended index.
/// Every append, truncate and purge updates it together with fjall.
#[derive(Default)]
struct Tail {
    entries: BTreeMap<u64, (EntryOf<C>, usize)>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, index: u64, entry: EntryOf<C>, size: usize) {
        if let Some((_, old)) = self.entries.insert(index, (entry, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.entries.len() > TAIL_MAX_ENTRIES || self.bytes > TAIL_MAX_BYTES {
            let Some((_, (_, size))) = self.entries.pop_first() else {
                break;
            };
            self.bytes -= size;
        }
    }

    /// Drops entries at `from` and after.
    fn truncate(&mut self, from: u64) {
        for (_, (_, size)) in self.entries.split_off(&from) {
            self.bytes -= size;
        }
    }

    /// Drops entries up to and including `upto`.
    fn purge(&mut self, upto: u64) {
        let keep = self.entries.split_off(&upto.saturating_add(1));
        for (_, (_, size)) in std::mem::replace(&mut self.entries, keep) {
            self.bytes -= size;
        }
    }

    /// The entries of `range` when the tail holds its start (and so all of it that exists).
    fn get<RB: RangeBounds<u64>>(&self, start: u64, range: &RB) -> Option<Vec<EntryOf<C>>> {
        let (first, _) = self.entries.first_key_value()?;
        if *first > start {
            return None;
        }
        Some(
            self.entries
                .range(start..)
                .take_while(|(i, _)| range.contains(i))
                .map(|(_, (e, _))| e.clone())
                .collect(),
        )
    }
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    /// Opens the log keyspaces and starts the flusher thread.
    pub fn open(
        db: &Database,
        store_dir: &std::path::Path,
        arrivals: Arc<super::arrivals::HeartbeatArrivals>,
        watermark: Arc<Watermark>,
    ) -> Result<Self, io::Error> {
        let log = open_keyspace(db, "raft_log").map_err(io_err)?;
        let meta = open_keyspace(db, "raft_meta").map_err(io_err)?;
        let (tx, rx) = mpsc::channel::<Flush>();
        let flush_db = db.clone();
        let flush_mark = watermark.clone();
        let journal = match JournalSync::open(store_dir) {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::warn!(error = %e, "fsyncing the Raft log under fjall's journal lock");
                None
            }
        };
        std::thread::Builder::new()
            .name("raft-log-flusher".into())
            .spawn(move || flusher(flush_db, journal, rx, flush_mark))
            .map_err(io_err)?;
        Ok(LogStore {
            db: db.clone(),
            log,
            meta,
            flusher: Arc::new(tx),
            tail: Arc::default(),
            arrivals,
            watermark,
        })
    }

    /// The index of the last entry the log holds, or of the last purged one when it holds
    /// none (what `get_log_state` reports as the log's end).
    pub fn last_index(&self) -> Result<Option<u64>, io::Error> {
        let last_purged: Option<LogIdOf<C>> = self.meta_get("last_purged")?;
        Ok(self.last_entry_id()?.or(last_purged).map(|l| l.index()))
    }

    fn last_entry_id(&self) -> Result<Option<LogIdOf<C>>, io::Error> {
        match self.log.last_key_value() {
            Some(g) => {
                let v = g.value().map_err(io_err)?;
                let e: EntryOf<C> = wire::decode(&v)?;
                Ok(Some(e.log_id()))
            }
            None => Ok(None),
        }
    }

    /// The watermark this log keeps up to date.
    pub fn watermark(&self) -> &Arc<Watermark> {
        &self.watermark
    }

    /// Whether a build that keeps `log_watermark` has opened this store: then a log with
    /// entries and no watermark file means the file was lost, not that it never existed
    /// (`store_open::check_watermark`).
    pub fn watermark_kept(&self) -> Result<bool, io::Error> {
        Ok(self.meta_get::<bool>(WATERMARK_KEPT)?.unwrap_or(false))
    }

    /// Records (durably) that this store's log is held to `log_watermark` from now on.
    pub fn mark_watermark_kept(&self) -> Result<(), io::Error> {
        self.meta_put_durable(WATERMARK_KEPT, &true)
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meta_get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, io::Error> {
        match self.meta.get(key.as_bytes()).map_err(io_err)? {
            Some(v) => Ok(Some(wire::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn meta_put_durable<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), io::Error> {
        self.meta
            .insert(key.as_bytes(), wire::encode(value)?)
            .map_err(io_err)?;
        self.db.persist(PersistMode::SyncAll).map_err(io_err)
    }
}

/// One fsync for every callback that queued up while the previous one ran. Outside fjall's
/// journal lock when the journal file was found (`JournalSync`), so appends and the
/// state machine's commits go on while the disk syncs.
/// One append's flush request: openraft's callback, the append's last index and the log
/// generation it was appended in (for the watermark).
struct Flush {
    callback: IOFlushed<C>,
    last: Option<u64>,
    epoch: u64,
}

fn flusher(
    db: Database,
    mut journal: Option<JournalSync>,
    rx: mpsc::Receiver<Flush>,
    watermark: Arc<Watermark>,
) {
    let mut last_done: Option<std::time::Instant> = None;
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        if last_done.is_some_and(|t| t.elapsed() < FLUSH_LINGER_WHEN_BUSY * 4) {
            // Busy (the previous fsync ended just now): wait a moment so that one fsync
            // covers the appends about to arrive, instead of one fsync for each few.
            std::thread::sleep(FLUSH_LINGER_WHEN_BUSY);
        }
        while let Ok(more) = rx.try_recv() {
            waiting.push(more);
        }
        let started = std::time::Instant::now();
        let result = match journal.as_mut() {
            Some(j) => j.persist(&db),
            None => db.persist(PersistMode::SyncAll).map_err(io_err),
        };
        metrics::histogram!("smsgw_raft_fsync_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("smsgw_raft_entries_per_fsync").record(waiting.len() as f64);
        metrics::counter!("smsgw_raft_log_fsync_total").increment(1);
        if result.is_ok() {
            for f in &waiting {
                if let Some(last) = f.last {
                    watermark.flushed(last, f.epoch);
                }
            }
            // Before the callbacks: no append is acknowledged before the watermark covers
            // it (a pwrite into the page cache, no fsync: it survives a kill -9).
            watermark.write_unsynced();
        }
        for f in waiting {
            f.callback
                .io_completed(result.as_ref().map(|_| ()).map_err(io_err));
        }
        last_done = Some(std::time::Instant::now());
    }
}

/// How long the flusher waits for more appends before an fsync when the previous one has
/// just finished (under load); an idle log is fsync'd at once.
const FLUSH_LINGER_WHEN_BUSY: std::time::Duration = std::time::Duration::from_micros(200);

/// The `raft_meta` key saying the store is kept with a watermark file.
const WATERMARK_KEPT: &str = "watermark_kept";

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<C>>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        if let Some(hit) = self.tail().get(start, &range) {
            return Ok(hit);
        }
        let mut out = Vec::new();
        for kv in self.log.range(key(start)..) {
            let (k, v) = kv.into_inner().map_err(io_err)?;
            let mut idx = [0u8; 8];
            if k.len() != 8 {
                continue;
            }
            idx.copy_from_slice(&k);
            if !range.contains(&u64::from_be_bytes(idx)) {
                break;
            }
            out.push(wire::decode(&v)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.meta_get("vote")
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged: Option<LogIdOf<C>> = self.meta_get("last_purged")?;
        let last = self.last_entry_id()?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.meta_put_durable("vote", vote)
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        // Not fsync'd: it only lets the state machine catch up sooner after a restart. A
        // batch, not `Keyspace::insert`, which would hand the journal buffer to the kernel
        // each time (the flusher's next persist takes it along).
        let mut batch = self.db.batch();
        batch.insert(&self.meta, "committed", wire::encode(&committed)?);
        batch.commit().map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.meta_get::<Option<LogIdOf<C>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        if crate::failpoints::disk_full() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut batch = self.db.batch();
        let mut decoded = Vec::new();
        let arrived = std::time::Instant::now();
        for e in entries {
            if let openraft::EntryPayload::Normal(p) = &e.payload {
                self.arrivals.appended(p, arrived);
            }
            let (index, bytes) = (e.index(), wire::encode(&e)?);
            decoded.push((index, bytes.len(), e));
            batch.insert(&self.log, key(index), bytes);
        }
        // Timed: the journal is shared with the state machine's commits and the fsyncs
        // that still take its lock (votes, snapshots).
        let t0 = std::time::Instant::now();
        batch.commit().map_err(io_err)?;
        metrics::histogram!("smsgw_raft_log_append_seconds").record(t0.elapsed().as_secs_f64());
        let decoded_last = decoded.last().map(|(index, ..)| *index);
        let mut tail = self.tail();
        if let (Some((first, ..)), Some((&last, _))) =
            (decoded.first(), tail.entries.last_key_value())
            && *first != last + 1
        {
            // Not contiguous with what the tail holds (after a restart or a truncation the
            // tail restarts from here).
            *tail = Tail::default();
        }
        for (index, size, e) in decoded {
            tail.push(index, e, size);
        }
        drop(tail);
        let last = decoded_last;
        let epoch = self.watermark.epoch();
        self.flusher
            .send(Flush {
                callback,
                last,
                epoch,
            })
            .map_err(|_| io::Error::other("log flusher thread is gone"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        // The log may now end lower than it once did (a new leader overwrote entries no
        // quorum had): the watermark goes down first, so a crash in between does not make
        // the next start take the shorter log for a lost journal.
        self.watermark.lower_to(last_log_id.map(|l| l.index()))?;
        self.tail().truncate(from);
        let mut batch = self.db.batch();
        for kv in self.log.range(key(from)..) {
            batch.remove(&self.log, kv.key().map_err(io_err)?);
        }
        batch.commit().map_err(io_err)?;
        self.db.persist(PersistMode::SyncAll).map_err(io_err)
    }

    /// The purge point and the removals go in one batch, so no crash leaves a hole; it
    /// needs no fsync of its own: a purge lost in a crash leaves entries the snapshot
    /// already covers (the state machine's batches are earlier in the same journal, so
    /// a purge that survives implies they did). Removal starts after the previous purge
    /// point, not at the log's first key: the range would otherwise walk every tombstone
    /// of every earlier purge still in the memtable.
    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let from = self
            .meta_get::<LogIdOf<C>>("last_purged")?
            .map_or(0, |l| l.index().saturating_add(1));
        self.tail().purge(log_id.index());
        let mut batch = self.db.batch();
        batch.insert(&self.meta, "last_purged", wire::encode(&log_id)?);
        for kv in self.log.range(key(from)..=key(log_id.index())) {
            batch.remove(&self.log, kv.key().map_err(io_err)?);
        }
        batch.commit().map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> EntryOf<C> {
        EntryOf::<C>::new_blank(openraft::testing::log_id::<C>(1, 1, index))
    }

    fn indexes(v: Option<Vec<EntryOf<C>>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.index()).collect())
    }

    #[test]
    fn tail_serves_ranges_it_holds_and_follows_truncate_and_purge() {
        let mut t = Tail::default();
        for i in 5..=9 {
            t.push(i, entry(i), 10);
        }
        assert_eq!(indexes(t.get(6, &(6..8))), Some(vec![6, 7]));
        assert_eq!(indexes(t.get(8, &(8..))), Some(vec![8, 9]));
        // Starts before the tail: the caller must read fjall.
        assert_eq!(indexes(t.get(4, &(4..7))), None);
        t.truncate(8);
        assert_eq!(indexes(t.get(5, &(5..))), Some(vec![5, 6, 7]));
        t.purge(5);
        assert_eq!(indexes(t.get(5, &(5..))), None);
        assert_eq!(indexes(t.get(6, &(6..))), Some(vec![6, 7]));
        assert_eq!(t.bytes, 20);
    }

    #[test]
    fn tail_is_bounded_by_count() {
        let mut t = Tail::default();
        for i in 1..=(TAIL_MAX_ENTRIES as u64 + 10) {
            t.push(i, entry(i), 1);
        }
        assert_eq!(t.entries.len(), TAIL_MAX_ENTRIES);
        assert_eq!(t.bytes, TAIL_MAX_ENTRIES);
        assert_eq!(t.entries.first_key_value().map(|(k, _)| *k), Some(11));
    }
}
