//! The log watermark: how far this node's Raft log is known to have been fsync'd, kept in
//! `<data_dir>/log_watermark`, outside fjall's journal.
//!
//! Why: fjall takes a journal cut short (a truncated or half-restored `store/<n>.jnl`) for
//! the torn tail of a crash and opens what is left without a word, so a node could come up
//! having forgotten entries it acknowledged (messages that got a 202 answer 404). Every
//! log append is fsync'd before it is acknowledged, so the node knows a lower bound of its
//! log's end: at start a log that ends below the watermark has lost entries, and the node
//! refuses to start (`store_open::check_watermark`).
//!
//! How far it lags the log:
//! - **kill -9: not at all.** After every fsync of the journal, and before any append it
//!   covers is acknowledged, the flusher writes the new index into the file in place
//!   ([`Watermark::write_unsynced`]: one 36-byte `pwrite` into the page cache, no fsync),
//!   and the page cache outlives the process. So any acknowledged entry missing from the
//!   log at the next start is caught.
//! - **Power loss: about a second.** The file is fdatasync'd by its own thread about once
//!   a second when it changed (never on the fsync path of the log), at clean shutdown, and
//!   synchronously before the log is truncated (a follower whose unconfirmed entries a new
//!   leader overwrites: the log may then legitimately end lower). A journal cut by less
//!   than the last second of writes before a power loss is not detected.
//!
//! The on-disk value never runs ahead of the log's durable end (it is written only after
//! the journal fsync that covers it), which is the safe direction: only a log *below* it
//! is a loss. The record has a fixed width (36 bytes at offset 0), so an in-place write
//! stays inside one disk sector, which disks write whole (PostgreSQL's `pg_control` relies
//! on the same); the file is created atomically (temp file, fsync, rename, fsync of the
//! dir), so it never exists half-written.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// The file name inside the data dir.
pub const FILE: &str = "log_watermark";
/// How often the watermark thread fdatasyncs a changed watermark.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Why the watermark file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} does not hold a log index (want one line `last_log_index N`)")]
    Malformed { path: String },
}

/// What the flusher has made durable, and the generation of the log it belongs to.
#[derive(Debug, Default)]
struct Durable {
    /// The last log index known fsync'd, not yet necessarily in the file.
    index: Option<u64>,
    /// Bumped by every truncation: a flush reported for entries appended before it may
    /// name an index the log no longer reaches.
    epoch: u64,
}

/// The file and what it holds.
#[derive(Debug, Default)]
struct OnDisk {
    /// The index the file holds (at least in the page cache).
    written: Option<u64>,
    /// The index last fdatasync'd (or written atomically).
    synced: Option<u64>,
    /// The file, open for writes in place once it exists.
    handle: Option<File>,
}

/// The watermark of one data dir (shared by the log store, its flusher and the thread
/// that syncs the file).
pub struct Watermark {
    path: PathBuf,
    /// The index in the file when the node started (what the log is checked against).
    at_start: Option<u64>,
    durable: Mutex<Durable>,
    /// Held while the file is written, so a truncation's write, the flusher's and the
    /// thread's never interleave (taken before `durable`).
    file: Mutex<OnDisk>,
    /// In-place writes that failed since the last one that worked: the first is logged,
    /// the rest only counted (a full disk would otherwise log one line per fsync).
    failures: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the watermark of `data_dir`: `None` when there is none (a new dir, an empty log,
/// a dir from a build before the watermark existed, or a deleted file: the store tells
/// these apart, `store_open::check_watermark`).
pub fn read(data_dir: &Path) -> Result<Option<u64>, WatermarkError> {
    let path = data_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(WatermarkError::Read {
                path: path.display().to_string(),
                reason: crate::data_dir::io_reason(&e),
            });
        }
    };
    text.trim()
        .strip_prefix("last_log_index ")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| WatermarkError::Malformed {
            path: path.display().to_string(),
        })
}

/// The file's content for `index`: always [`RECORD_LEN`] bytes (padded with spaces, which
/// [`read`] and builds before this one ignore), so a write in place covers the old record.
fn record(index: u64) -> String {
    format!("last_log_index {index:<w$}\n", w = RECORD_LEN - 16)
}

/// The length of every record ("last_log_index " + 20 digits + newline).
const RECORD_LEN: usize = 36;

impl Watermark {
    /// The watermark of `data_dir`, whose file holds `written` now, and its syncing thread
    /// (which ends when the last handle is dropped).
    pub fn start(data_dir: &Path, written: Option<u64>) -> io::Result<Arc<Self>> {
        let path = data_dir.join(FILE);
        // An existing file is written in place from now on; a missing one is created
        // atomically at the first write.
        let handle = match written {
            Some(_) => Some(std::fs::OpenOptions::new().write(true).open(&path)?),
            None => None,
        };
        let w = Arc::new(Watermark {
            path,
            at_start: written,
            durable: Mutex::new(Durable {
                index: written,
                epoch: 0,
            }),
            file: Mutex::new(OnDisk {
                written,
                synced: written,
                handle,
            }),
            failures: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&w);
        std::thread::Builder::new()
            .name("raft-log-watermark".into())
            .spawn(move || syncer(weak))?;
        Ok(w)
    }

    /// The index the file held when the node started (`None`: no file).
    pub fn at_start(&self) -> Option<u64> {
        self.at_start
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's generation now (read at append time, handed back with the flush).
    pub fn epoch(&self) -> u64 {
        lock(&self.durable).epoch
    }

    /// The flusher fsync'd the log up to `index`, appended in generation `epoch`.
    pub fn flushed(&self, index: u64, epoch: u64) {
        let mut d = lock(&self.durable);
        if d.epoch == epoch {
            d.index = Some(d.index.map_or(index, |i| i.max(index)));
        }
    }

    /// After a journal fsync, before the appends it covers are acknowledged: puts the new
    /// index into the file without syncing it (the page cache survives a kill -9; the
    /// syncing thread makes it durable within a second). A failure is logged once and
    /// counted; the next write that works says how many failed.
    pub fn write_unsynced(&self) {
        let result = {
            let mut f = lock(&self.file);
            let index = lock(&self.durable).index;
            if index == f.written {
                return;
            }
            self.put(&mut f, index, false)
        };
        self.note(result, "cannot write the log watermark");
    }

    /// Before the log is truncated to end at `last`: lowers the watermark (durably, now)
    /// when it is above, and disregards flushes of entries appended before.
    pub fn lower_to(&self, last: Option<u64>) -> io::Result<()> {
        let mut f = lock(&self.file);
        {
            let mut d = lock(&self.durable);
            d.epoch += 1;
            d.index = min_index(d.index, last);
        }
        let to = min_index(f.written, last);
        if f.written != to || f.synced != to {
            self.put(&mut f, to, true)?;
        }
        Ok(())
    }

    /// Makes the file durable when it changed since the last sync (the syncing thread).
    pub fn sync_pending(&self) -> io::Result<()> {
        let mut f = lock(&self.file);
        let index = lock(&self.durable).index;
        if index != f.written {
            return self.put(&mut f, index, true);
        }
        if f.synced != f.written {
            if let Some(h) = &f.handle {
                h.sync_data()?;
            }
            f.synced = f.written;
        }
        Ok(())
    }

    /// Records durably that the whole log, fsync'd, ends at `last`: at clean shutdown, and
    /// when an operator accepts a store without a watermark (`accept_missing_watermark`).
    pub fn write_final(&self, last: Option<u64>) -> io::Result<()> {
        let mut f = lock(&self.file);
        lock(&self.durable).index = last;
        if last != f.written || f.synced != f.written {
            self.put(&mut f, last, true)?;
        }
        Ok(())
    }

    /// Writes `index` into the file (in place when it exists, else atomically), synced when
    /// `sync`; `None` (an empty log) removes the file.
    fn put(&self, f: &mut OnDisk, index: Option<u64>, sync: bool) -> io::Result<()> {
        let Some(index) = index else {
            // An empty log: no file is the same as index "none".
            f.handle = None;
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => sync_dir(&self.path)?,
            }
            f.written = None;
            f.synced = None;
            return Ok(());
        };
        match &f.handle {
            Some(h) => {
                h.write_all_at(record(index).as_bytes(), 0)?;
                f.written = Some(index);
                if sync {
                    h.sync_data()?;
                    f.synced = Some(index);
                }
            }
            None => {
                f.handle = Some(self.create(index)?);
                f.written = Some(index);
                f.synced = Some(index);
            }
        }
        Ok(())
    }

    /// Creates the file atomically holding `index` (temp file, fsync, rename, fsync of the
    /// dir) and opens it for writes in place.
    fn create(&self, index: u64) -> io::Result<File> {
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(record(index).as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        std::fs::OpenOptions::new().write(true).open(&self.path)
    }

    /// Logs the first failure of a run of failed writes, and the count when one works again.
    fn note(&self, result: io::Result<()>, what: &str) {
        match result {
            Ok(()) => {
                let failed = self.failures.swap(0, Ordering::Relaxed);
                if failed > 0 {
                    tracing::info!(file = %self.path.display(), failed, "the log watermark is written again");
                }
            }
            Err(e) => {
                if self.failures.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(file = %self.path.display(), error = %e, "{what} (further failures are counted, not logged)");
                }
            }
        }
    }
}

fn min_index(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => None,
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Syncs a changed watermark about once a second, while the watermark is in use.
fn syncer(w: Weak<Watermark>) {
    loop {
        std::thread::sleep(SYNC_EVERY);
        let Some(w) = w.upgrade() else {
            return;
        };
        let result = w.sync_pending();
        w.note(result, "cannot sync the log watermark");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_atomically_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("none"), None);
        let w = Watermark::start(dir.path(), None).expect("start");
        w.flushed(42, w.epoch());
        w.sync_pending().expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(42));
        assert!(!dir.path().join("log_watermark.tmp").exists());
    }

    #[test]
    fn a_truncation_lowers_it_at_once_and_ignores_older_flushes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Watermark::start(dir.path(), None).expect("start");
        let before = w.epoch();
        w.flushed(100, before);
        w.sync_pending().expect("write");
        w.lower_to(Some(80)).expect("lower");
        assert_eq!(read(dir.path()).expect("read"), Some(80));
        // A flush of entries appended before the truncation names an index the log no
        // longer reaches.
        w.flushed(100, before);
        w.sync_pending().expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(80));
        w.flushed(90, w.epoch());
        w.sync_pending().expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(90));
    }

    #[test]
    fn each_flush_reaches_the_file_at_once_in_place_with_a_fixed_width() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file in the format of builds before fixed-width records.
        std::fs::write(dir.path().join(FILE), "last_log_index 7\n").expect("old file");
        let w = Watermark::start(dir.path(), read(dir.path()).expect("old")).expect("start");
        assert_eq!(w.at_start(), Some(7));
        w.flushed(123_456, w.epoch());
        w.write_unsynced();
        assert_eq!(read(dir.path()).expect("read"), Some(123_456));
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("text");
        assert_eq!(text.len(), RECORD_LEN, "{text:?}");
        w.flushed(9, w.epoch());
        w.write_unsynced();
        assert_eq!(
            read(dir.path()).expect("read"),
            Some(123_456),
            "never goes down"
        );
        assert_eq!(record(u64::MAX).len(), RECORD_LEN);
        // A new dir: the first write creates the file.
        let fresh = tempfile::tempdir().expect("tempdir");
        let w = Watermark::start(fresh.path(), None).expect("start");
        w.flushed(3, w.epoch());
        w.write_unsynced();
        assert_eq!(read(fresh.path()).expect("read"), Some(3));
        w.lower_to(None).expect("empty log");
        assert_eq!(read(fresh.path()).expect("read"), None);
        w.flushed(4, w.epoch());
        w.write_unsynced();
        assert_eq!(read(fresh.path()).expect("read"), Some(4), "created again");
    }

    #[test]
    fn a_malformed_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), "twelve\n").expect("write");
        assert!(matches!(
            read(dir.path()),
            Err(WatermarkError::Malformed { .. })
        ));
    }
}
