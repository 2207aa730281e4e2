//! The log watermark: how far this node's Raft log is known to have been fsync'd, kept in
//! `<data_dir>/log_watermark`, outside fjall's journal.
//!
//! Why: fjall takes a journal cut short (a truncated or half-restored `store/<n>.jnl`) for
//! the torn tail of a crash and opens what is left without a word, so a node could come up
//! having forgotten entries it acknowledged (messages that got a 202 answer 404). Every
//! log append is fsync'd before it is acknowledged, so the node knows a lower bound of its
//! log's end: at start a log that ends below the watermark has lost entries, and the node
//! refuses to start (`Consensus::start`).
//!
//! The file is written atomically (temp file, fsync, rename, fsync of the dir) at most
//! about once a second by its own thread (never on the fsync path of the log), at clean
//! shutdown, and synchronously before the log is truncated (a follower whose unconfirmed
//! entries a new leader overwrites: the log may then legitimately end lower). It lags the
//! log by up to a second, which is safe: only a log *below* it is a loss.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// The file name inside the data dir.
pub const FILE: &str = "log_watermark";
/// How often the watermark thread writes a changed watermark.
const WRITE_EVERY: Duration = Duration::from_secs(1);

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

/// The watermark of one data dir (shared by the log store, its flusher and the thread
/// that writes the file).
pub struct Watermark {
    path: PathBuf,
    durable: Mutex<Durable>,
    /// The index in the file; held while the file is written, so a truncation's write
    /// and the thread's write never interleave.
    written: Mutex<Option<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the watermark of `data_dir`: `None` when there is none (a new dir, or one from a
/// build before the watermark existed).
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

impl Watermark {
    /// The watermark of `data_dir`, whose file holds `written` now, and its writer thread
    /// (which ends when the last handle is dropped).
    pub fn start(data_dir: &Path, written: Option<u64>) -> io::Result<Arc<Self>> {
        let w = Arc::new(Watermark {
            path: data_dir.join(FILE),
            durable: Mutex::new(Durable {
                index: written,
                epoch: 0,
            }),
            written: Mutex::new(written),
        });
        let weak = Arc::downgrade(&w);
        std::thread::Builder::new()
            .name("raft-log-watermark".into())
            .spawn(move || writer(weak))?;
        Ok(w)
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

    /// Before the log is truncated to end at `last`: lowers the watermark (durably, now)
    /// when it is above, and disregards flushes of entries appended before.
    pub fn lower_to(&self, last: Option<u64>) -> io::Result<()> {
        let mut written = lock(&self.written);
        {
            let mut d = lock(&self.durable);
            d.epoch += 1;
            d.index = min_index(d.index, last);
        }
        if *written != min_index(*written, last) {
            let to = min_index(*written, last);
            self.write_file(to)?;
            *written = to;
        }
        Ok(())
    }

    /// Writes the watermark when it moved since the last write.
    pub fn write_pending(&self) -> io::Result<()> {
        let mut written = lock(&self.written);
        let index = lock(&self.durable).index;
        if index != *written {
            self.write_file(index)?;
            *written = index;
        }
        Ok(())
    }

    /// At clean shutdown, with the whole log fsync'd: records where it ends.
    pub fn write_final(&self, last: Option<u64>) -> io::Result<()> {
        let mut written = lock(&self.written);
        lock(&self.durable).index = last;
        if last != *written {
            self.write_file(last)?;
            *written = last;
        }
        Ok(())
    }

    fn write_file(&self, index: Option<u64>) -> io::Result<()> {
        let Some(index) = index else {
            // An empty log: no file is the same as index "none".
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => sync_dir(&self.path),
            };
        };
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("last_log_index {index}\n").as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)
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

/// Writes a changed watermark about once a second, while the watermark is in use.
fn writer(w: Weak<Watermark>) {
    let mut warned = false;
    loop {
        std::thread::sleep(WRITE_EVERY);
        let Some(w) = w.upgrade() else {
            return;
        };
        match w.write_pending() {
            Ok(()) => warned = false,
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(file = %w.path.display(), error = %e, "cannot write the log watermark");
            }
            Err(_) => {}
        }
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
        w.write_pending().expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(42));
        assert!(!dir.path().join("log_watermark.tmp").exists());
    }

    #[test]
    fn a_truncation_lowers_it_at_once_and_ignores_older_flushes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Watermark::start(dir.path(), None).expect("start");
        let before = w.epoch();
        w.flushed(100, before);
        w.write_pending().expect("write");
        w.lower_to(Some(80)).expect("lower");
        assert_eq!(read(dir.path()).expect("read"), Some(80));
        // A flush of entries appended before the truncation names an index the log no
        // longer reaches.
        w.flushed(100, before);
        w.write_pending().expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(80));
        w.flushed(90, w.epoch());
        w.write_pending().expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(90));
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
