//! Opening the data dir's store, and refusing one that cannot be trusted.
//!
//! fjall reports some damage by panicking inside `Database::open` (a corrupted journal
//! entry fails an assertion in its journal reader, with a long backtrace and no path), and
//! reports a read-only or unreadable dir as a raw `FjallError: Io(...)`. Both are turned
//! into [`StartError::Refused`]: one line naming the data dir, the path and what to do,
//! and exit status 2. A log that ends below the watermark (`watermark`) is refused the
//! same way: fjall opens a cut journal as if the tail were torn by a crash.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::StartError;
use super::arrivals::HeartbeatArrivals;
use super::log_store::LogStore;
use super::watermark::Watermark;
use crate::state::StateStore;

/// What to do with a data dir whose store is damaged or short (named in every refusal).
pub const WHAT_TO_DO: &str = "restore the data dir from a backup, or in a cluster remove \
     the node, wipe its data dir and add it again so it catches up from a snapshot (README \
     \"Backups and restore\")";

/// Opens the store in `<data_dir>/store` (one fjall database for the Raft log and the
/// state) and the log and state keyspaces in it.
pub fn open(
    data_dir: &Path,
    max_journal_bytes: u64,
    arrivals: Arc<HeartbeatArrivals>,
    watermark: Arc<Watermark>,
) -> Result<(StateStore, LogStore), StartError> {
    let store_dir = data_dir.join("store");
    let opened = catch_quietly(|| {
        // A write batch stays in fjall's journal buffer until the log flusher moves it to
        // the kernel (or the 8 KiB buffer fills), instead of costing a write(2) under the
        // journal lock at every commit. Only the Raft log must be on disk when a caller is
        // told so, and the flusher persists before it says so. A state-machine batch lost
        // with the buffer (kill -9) is re-applied from the log at restart: the journal
        // keeps order, so what survives a crash is a prefix, and a log purge that survived
        // means the rows it relies on did too. Writes that need their own durability say
        // so (votes, truncation, snapshot staging and installs).
        let db = fjall::Database::builder(&store_dir)
            .manual_journal_persist(true)
            .max_journaling_size(max_journal_bytes)
            .open()
            .map_err(|e| match e {
                fjall::Error::Locked => StartError::Locked,
                // A journal entry that fails its checksum (bytes changed on disk): the
                // store is damaged, as when reading an entry panics.
                fjall::Error::JournalRecovery(r) => StartError::Refused(format!(
                    "data_dir {}: the store in {} is damaged: reading {} failed \
                     ({r:?}); {WHAT_TO_DO}",
                    data_dir.display(),
                    store_dir.display(),
                    journals(&store_dir)
                )),
                e => refused_open(data_dir, &store_dir, &fjall_reason(&e)),
            })?;
        let store = StateStore::open(&db)
            .map_err(|e| refused_open(data_dir, &store_dir, &e.to_string()))?;
        let log = LogStore::open(&db, &store_dir, arrivals, watermark)
            .map_err(|e| refused_open(data_dir, &store_dir, &crate::data_dir::io_reason(&e)))?;
        Ok((store, log))
    });
    match opened {
        Ok(r) => r,
        Err(panic) => Err(StartError::Refused(format!(
            "data_dir {}: the store in {} is damaged: reading {} failed ({panic}); {WHAT_TO_DO}",
            data_dir.display(),
            store_dir.display(),
            journals(&store_dir)
        ))),
    }
}

/// Refuses a log that ends below the index this node had fsync'd (`acknowledged`, the
/// watermark read before the store was opened).
pub fn check_watermark(
    data_dir: &Path,
    log: &LogStore,
    acknowledged: Option<u64>,
) -> Result<(), StartError> {
    let Some(acknowledged) = acknowledged else {
        return Ok(());
    };
    let last = log.last_index().map_err(|e| {
        StartError::Refused(format!(
            "data_dir {}: cannot read the Raft log's end: {}; {WHAT_TO_DO}",
            data_dir.display(),
            crate::data_dir::io_reason(&e)
        ))
    })?;
    if last.is_some_and(|l| l >= acknowledged) {
        return Ok(());
    }
    let shown = last.map_or("no entry".to_string(), |l| format!("index {l}"));
    Err(StartError::Refused(format!(
        "data_dir {}: the Raft log ends at {shown} but this node had written and fsync'd it \
         up to index {acknowledged} ({}): entries it acknowledged are missing (a truncated, \
         lost or older journal file in {}); not starting: {WHAT_TO_DO}",
        data_dir.display(),
        data_dir.join(super::watermark::FILE).display(),
        data_dir.join("store").display()
    )))
}

fn refused_open(data_dir: &Path, store_dir: &Path, reason: &str) -> StartError {
    StartError::Refused(format!(
        "data_dir {}: cannot open the store at {}: {reason}",
        data_dir.display(),
        store_dir.display()
    ))
}

/// A fjall error as a reason: the OS's words for an I/O error.
fn fjall_reason(e: &fjall::Error) -> String {
    match e {
        fjall::Error::Io(io) | fjall::Error::Storage(fjall::LsmError::Io(io)) => {
            crate::data_dir::io_reason(io)
        }
        e => format!("{e:?}"),
    }
}

/// The journal files of the store (which a panic while opening was reading), for the
/// refusal: "store/3.jnl, store/4.jnl".
fn journals(store_dir: &Path) -> String {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(store_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name();
                    let id = name.to_str()?.strip_suffix(".jnl")?.parse::<u64>().ok()?;
                    Some((id, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        return "its journal".into();
    }
    let names: Vec<String> = files.iter().map(|(_, p)| p.display().to_string()).collect();
    format!("its journal ({})", names.join(", "))
}

/// Serialises [`catch_quietly`]: the panic hook is one per process.
static HOOK: Mutex<()> = Mutex::new(());

/// Runs `f`, turning a panic on this thread into `Err` with its message and location,
/// without the panic message and backtrace on stderr. Panics on other threads meanwhile
/// still reach the hook that was installed before.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let _one_at_a_time = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let caught: Arc<Mutex<Option<String>>> = Arc::default();
    let previous = Arc::new(std::panic::take_hook());
    let me = std::thread::current().id();
    {
        let caught = caught.clone();
        let previous = previous.clone();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() != me {
                return previous(info);
            }
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", crate_relative(l.file()), l.line()))
                .unwrap_or_default();
            *caught.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message}{at}"));
        }));
    }
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    // Drops the quiet hook (and its handle on the previous one), then puts that back.
    drop(std::panic::take_hook());
    if let Ok(previous) = Arc::try_unwrap(previous) {
        std::panic::set_hook(previous);
    }
    result.map_err(|_| {
        caught
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "panic".into())
    })
}

/// A source path inside cargo's registry from the crate on ("fjall-3.1.13/src/...").
fn crate_relative(file: &str) -> &str {
    match file.find("registry/src/") {
        Some(i) => {
            let rest = &file[i + "registry/src/".len()..];
            rest.split_once('/').map_or(rest, |(_, r)| r)
        }
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_location() {
        let r: Result<(), String> = catch_quietly(|| panic!("assertion `left == right` failed"));
        let shown = r.expect_err("caught");
        assert!(
            shown.starts_with("assertion `left == right` failed at src/consensus/store_open.rs:"),
            "{shown}"
        );
        assert_eq!(catch_quietly(|| 7), Ok(7));
        assert_eq!(
            crate_relative("/root/.cargo/registry/src/index.crates.io-19/fjall-3.1.13/src/a.rs"),
            "fjall-3.1.13/src/a.rs"
        );
    }
}
