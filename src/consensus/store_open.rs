//! Opening the data dir's store, and refusing one that cannot be trusted.
//!
//! Before fjall opens the store, its journals are read (`journal_check`): fjall's only
//! recovery mode cuts a journal at the first entry it cannot decode, so damage in the
//! middle of a journal would be destroyed by the very start that refuses it. A journal
//! damaged anywhere but its last few bytes is refused before fjall runs, leaving the store
//! byte for byte as it was; the last few bytes of the newest journal (a write torn by a
//! crash, or a cut) are copied to `<data_dir>/recovery-<unix time>/` before fjall drops
//! them, and the copy is named if the start is then refused.
//!
//! fjall reports some damage by panicking inside `Database::open` (a corrupted journal
//! entry fails an assertion in its journal reader, with a long backtrace and no path), and
//! reports a read-only or unreadable dir as a raw `FjallError: Io(...)`. Both are turned
//! into [`StartError::Refused`]: one line naming the data dir, the path and what to do,
//! and exit status 2. A log that ends below the watermark (`watermark`), or a log with
//! entries whose watermark file is missing, is refused the same way
//! ([`check_watermark`]): fjall opens a cut journal as if the tail were torn by a crash.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::StartError;
use super::arrivals::HeartbeatArrivals;
use super::journal_check::{self, Cut};
use super::log_store::LogStore;
use super::watermark::Watermark;
use crate::state::StateStore;

/// What to do with a data dir whose store is damaged or short (named in every refusal).
pub const WHAT_TO_DO: &str = "restore the data dir from a backup, or in a cluster remove \
     the node, wipe its data dir and add it again so it catches up from a snapshot (README \
     \"Backups and restore\")";

/// Opens the store in `<data_dir>/store` (one fjall database for the Raft log and the
/// state) and the log and state keyspaces in it, and holds the log to the watermark
/// ([`check_watermark`]; `accept_missing_watermark`: see there).
pub fn open(
    data_dir: &Path,
    max_journal_bytes: u64,
    arrivals: Arc<HeartbeatArrivals>,
    watermark: Arc<Watermark>,
    accept_missing_watermark: bool,
) -> Result<(StateStore, LogStore), StartError> {
    let store_dir = data_dir.join("store");
    let acknowledged = watermark.at_start();
    let set_aside = before_recovery(data_dir, &store_dir)?;
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
    let (store, log) = match opened {
        Ok(r) => r?,
        Err(panic) => {
            return Err(StartError::Refused(format!(
                "data_dir {}: the store in {} is damaged: reading {} failed ({panic}); \
                 {WHAT_TO_DO}",
                data_dir.display(),
                store_dir.display(),
                journals(&store_dir)
            )));
        }
    };
    check_watermark(
        data_dir,
        &log,
        acknowledged,
        accept_missing_watermark,
        set_aside.as_ref(),
    )?;
    if let Some(aside) = set_aside {
        // The log reaches the watermark: what fjall dropped was not acknowledged.
        tracing::warn!(
            journal = %aside.cut.file.display(), at = aside.cut.at, bytes = aside.cut.dropped(),
            "dropped the end of the journal that is not a whole batch (a write torn by a \
             crash); the Raft log reaches the log watermark, so no acknowledged entry was \
             among them"
        );
        if let Err(e) = std::fs::remove_dir_all(&aside.dir) {
            tracing::warn!(dir = %aside.dir.display(), error = %e, "cannot remove the copy");
        }
    }
    Ok((store, log))
}

/// The end of a journal copied aside before fjall's recovery dropped it.
pub struct SetAside {
    /// `<data_dir>/recovery-<unix time>`.
    dir: PathBuf,
    /// The copy (`<n>.jnl.from-<offset>`): the journal's bytes from `cut.at` to `cut.end`.
    copy: PathBuf,
    cut: Cut,
}

impl SetAside {
    /// For a refusal: what was dropped and where the bytes are.
    fn describe(&self) -> String {
        format!(
            "the journal {} is cut short or damaged after its byte {}: the {} bytes from \
             there were dropped when the store opened, and were first copied to {} (to put \
             them back: truncate the journal to {} bytes and append the copy)",
            self.cut.file.display(),
            self.cut.at,
            self.cut.dropped(),
            self.copy.display(),
            self.cut.at
        )
    }
}

/// Reads the journals before fjall opens them: refuses a corrupted one, leaving it as it
/// is, and copies aside a torn end that fjall will drop.
fn before_recovery(data_dir: &Path, store_dir: &Path) -> Result<Option<SetAside>, StartError> {
    if !store_dir.is_dir() {
        return Ok(None);
    }
    // Another process on the store (a running node) is fjall's refusal to make; its live
    // journal is no evidence of damage. fjall's lock: `<store>/lock`, flock'd.
    if let Ok(lock) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(store_dir.join("lock"))
        && let Err(std::fs::TryLockError::WouldBlock) = lock.try_lock()
    {
        return Err(StartError::Locked);
    }
    let cuts = journal_check::check(store_dir).map_err(|e| {
        refused_open(
            data_dir,
            store_dir,
            &format!("reading its journal: {}", crate::data_dir::io_reason(&e)),
        )
    })?;
    if let Some(bad) = cuts.iter().find(|c| !c.torn_tail) {
        return Err(StartError::Refused(format!(
            "data_dir {}: the store in {} is damaged: the journal {} is corrupted at byte {} \
             ({} bytes of it follow, more than a write torn by a crash; fjall would drop \
             them); not starting, and the store was left as it was: keep a copy of the data \
             dir to examine, then {WHAT_TO_DO}",
            data_dir.display(),
            store_dir.display(),
            bad.file.display(),
            bad.at,
            bad.dropped()
        )));
    }
    let Some(cut) = cuts.into_iter().next() else {
        return Ok(None);
    };
    copy_aside(data_dir, cut).map(Some).map_err(|e| {
        refused_open(
            data_dir,
            store_dir,
            &format!(
                "cannot copy the end of a journal aside before recovery drops it: {}",
                crate::data_dir::io_reason(&e)
            ),
        )
    })
}

/// Copies the bytes fjall will drop from `cut.file` to `<data_dir>/recovery-<unix time>/`,
/// synced.
fn copy_aside(data_dir: &Path, cut: Cut) -> std::io::Result<SetAside> {
    use std::io::{Read, Seek, Write};
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = data_dir.join(format!("recovery-{secs}"));
    std::fs::create_dir_all(&dir)?;
    let name = cut
        .file
        .file_name()
        .map_or("journal".into(), |n| n.to_string_lossy().into_owned());
    let copy = dir.join(format!("{name}.from-{}", cut.at));
    let mut from = std::fs::File::open(&cut.file)?;
    from.seek(std::io::SeekFrom::Start(cut.at))?;
    let mut bytes = Vec::new();
    from.take(cut.dropped()).read_to_end(&mut bytes)?;
    let mut to = std::fs::File::create(&copy)?;
    to.write_all(&bytes)?;
    to.sync_all()?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(SetAside { dir, copy, cut })
}

/// Refuses a log that ends below the index this node had fsync'd (`acknowledged`, the
/// watermark read before the store was opened), and a log with entries whose watermark
/// file is missing in a store that has kept one (`LogStore::watermark_kept`): a deleted
/// `log_watermark` must not let a cut journal through. `accept_missing_watermark` (the
/// operator's word that the log is whole) writes a fresh watermark at the log's end
/// instead. A store from a build before the watermark starts with a WARN and is kept
/// with one from now on.
pub fn check_watermark(
    data_dir: &Path,
    log: &LogStore,
    acknowledged: Option<u64>,
    accept_missing_watermark: bool,
    set_aside: Option<&SetAside>,
) -> Result<(), StartError> {
    let unreadable = |e: std::io::Error| {
        StartError::Refused(format!(
            "data_dir {}: cannot read the Raft log's end: {}; {WHAT_TO_DO}",
            data_dir.display(),
            crate::data_dir::io_reason(&e)
        ))
    };
    let last = log.last_index().map_err(unreadable)?;
    let kept = log.watermark_kept().map_err(unreadable)?;
    let file = data_dir.join(super::watermark::FILE);
    tracing::info!(
        watermark = ?acknowledged, log_last_index = ?last, file = %file.display(),
        "store opened: the Raft log's end and the log watermark (the index fsync'd before \
         the last stop)"
    );
    match (acknowledged, last) {
        (Some(acknowledged), last) if last.is_none_or(|l| l < acknowledged) => {
            let shown = last.map_or("no entry".to_string(), |l| format!("index {l}"));
            let why = match set_aside {
                Some(aside) => aside.describe(),
                None => format!(
                    "a truncated, lost or older journal file in {}",
                    data_dir.join("store").display()
                ),
            };
            return Err(StartError::Refused(format!(
                "data_dir {}: the Raft log ends at {shown} but this node had written and \
                 fsync'd it up to index {acknowledged} ({}): entries it acknowledged are \
                 missing ({why}); not starting: {WHAT_TO_DO}",
                data_dir.display(),
                file.display(),
            )));
        }
        (None, Some(last)) if kept && !accept_missing_watermark => {
            return Err(StartError::Refused(format!(
                "data_dir {}: the Raft log holds entries up to index {last} but {} is \
                 missing: without it a journal cut short cannot be told from a whole one; \
                 not starting. If the file was deleted and the store is known to be whole, \
                 start once with --accept-missing-watermark (accept_missing_watermark = \
                 true) to write a fresh one at index {last}; otherwise {WHAT_TO_DO}",
                data_dir.display(),
                file.display()
            )));
        }
        (None, Some(last)) if kept => {
            tracing::warn!(
                file = %file.display(), index = last,
                "accept_missing_watermark: the log watermark was missing; the Raft log is \
                 taken as whole and a fresh watermark written at its end (remove the \
                 setting again)"
            );
            log.watermark()
                .write_final(Some(last))
                .map_err(|e| refused_write(data_dir, &file, &e))?;
        }
        (None, Some(last)) => tracing::warn!(
            file = %file.display(), index = last,
            "this store was written by a build before the log watermark: its Raft log \
             cannot be checked for entries lost before this start; it is kept with a \
             watermark from now on"
        ),
        _ => {}
    }
    if !kept {
        log.mark_watermark_kept()
            .map_err(|e| refused_open(data_dir, &data_dir.join("store"), &e.to_string()))?;
    }
    Ok(())
}

fn refused_write(data_dir: &Path, file: &Path, e: &std::io::Error) -> StartError {
    StartError::Refused(format!(
        "data_dir {}: cannot write {}: {}",
        data_dir.display(),
        file.display(),
        crate::data_dir::io_reason(e)
    ))
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
    let files = journal_check::journals(store_dir).unwrap_or_default();
    if files.is_empty() {
        return "its journal".into();
    }
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
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
