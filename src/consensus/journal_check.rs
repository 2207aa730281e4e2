//! What fjall's journal recovery would drop from each journal file, found before it runs.
//!
//! Why: fjall (3.1) has one recovery mode. Reading a journal, it cuts the file at the end
//! of the last whole batch before any entry it cannot decode, and replays what is left,
//! without a word. That is right for the torn last write of a crash, and destroys the
//! evidence of anything else: 16 bytes flipped in the middle of a 36 MB journal cut it to
//! 20 MB during a start that was then refused. Here the journals are read first, with
//! fjall's framing (tag, lengths, batch start/end with its trailer), and each file's
//! fate is known before fjall touches it ([`check`]):
//! - nothing but zeros (fjall preallocates) after the last whole batch: nothing is lost;
//! - a few bytes at the end of the newest journal (at most [`TORN_TAIL_MAX`]): a write torn
//!   by a crash, fjall may drop it (`store_open` copies the bytes aside first, and the log
//!   watermark says whether acknowledged entries were among them);
//! - more than that, or anything in an older (sealed, fsync'd when rotated) journal: the
//!   journal is corrupted, and the node refuses to start before fjall opens it, leaving
//!   every byte as it was.
//!
//! Batch checksums are not verified here: fjall reports a checksum mismatch as an error
//! without cutting anything (`StartError::Refused` by `store_open`). A compressed value
//! that fails to decompress is the one damage fjall cuts at that this does not see.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The most bytes after the last whole batch of the newest journal that count as a write
/// torn by a crash. What a crash can leave is what was written since the last fsync: after
/// a kill -9 at most one batch (fjall's 8 KiB buffer reaches the kernel mid-batch), after
/// a power loss what the disk had not synced (the flusher fsyncs every append, so a few
/// hundred KiB even with slow fsyncs under load).
pub const TORN_TAIL_MAX: u64 = 4 << 20;

/// fjall's journal entry tags and the trailer of a batch's end (fjall 3.1
/// `journal::entry`, `file::MAGIC_BYTES`).
const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;
const TRAILER: [u8; 4] = [b'F', b'J', b'L', 3];

/// One journal file fjall would cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The journal file.
    pub file: PathBuf,
    /// Where fjall would cut it: the end of its last whole batch.
    pub at: u64,
    /// Where its data ends (the last byte that is not a zero, plus one).
    pub end: u64,
    /// Whether the cut is a torn last write (see the module doc) rather than corruption.
    pub torn_tail: bool,
}

impl Cut {
    /// How many bytes that are not fjall's preallocated zeros would be dropped.
    pub fn dropped(&self) -> u64 {
        self.end - self.at
    }
}

/// The journal files (`<n>.jnl`) of the store at `store_dir`, oldest first.
pub fn journals(store_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(store_dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let id = name.to_str()?.strip_suffix(".jnl")?.parse::<u64>().ok()?;
            Some((id, e.path()))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// The journal files of the store at `store_dir` that fjall's recovery would cut, oldest
/// first (empty: it would drop nothing but zeros).
pub fn check(store_dir: &Path) -> io::Result<Vec<Cut>> {
    let files = journals(store_dir)?;
    let newest = files.len().saturating_sub(1);
    let mut cuts = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let mut f = File::open(&file)?;
        let at = whole_batches_end(&mut f)?;
        let end = data_end(&mut f, at)?;
        if end > at {
            cuts.push(Cut {
                torn_tail: i == newest && end - at <= TORN_TAIL_MAX,
                file,
                at,
                end,
            });
        }
    }
    Ok(cuts)
}

/// Where the last whole batch ends, reading entries as fjall's journal reader does up to
/// the first one it would not accept.
fn whole_batches_end(f: &mut File) -> io::Result<u64> {
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(0))?;
    let mut r = BufReader::with_capacity(1 << 20, &mut *f);
    let mut pos = 0u64;
    let mut batch_end = 0u64;
    // Items left in the batch being read (`None`: between batches).
    let mut open: Option<u32> = None;
    loop {
        let mut tag = [0u8; 1];
        if !read_fully(&mut r, &mut tag)? {
            return Ok(batch_end);
        }
        let size = match tag[0] {
            TAG_START => {
                let mut h = [0u8; 12];
                if !read_fully(&mut r, &mut h)? || open.is_some() {
                    return Ok(batch_end);
                }
                open = Some(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
                13
            }
            TAG_ITEM => {
                // value type, compression, keyspace id u64, key length u16, value length
                // u32, stored value length u32
                let mut h = [0u8; 20];
                if !read_fully(&mut r, &mut h)? {
                    return Ok(batch_end);
                }
                let value_type_ok = matches!(h[0], 0 | 1 | 2 | 4);
                let compression = h[1];
                let key_len = u64::from(u16::from_le_bytes([h[10], h[11]]));
                let value_len = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
                let stored = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
                let body = key_len + u64::from(stored);
                let fits = pos + 21 + body <= len;
                let lengths_ok = compression == 1 || (compression == 0 && value_len == stored);
                match open {
                    Some(n) if n > 0 && value_type_ok && lengths_ok && fits => {
                        open = Some(n - 1);
                    }
                    _ => return Ok(batch_end),
                }
                r.seek_relative(body as i64)?;
                21 + body
            }
            TAG_END => {
                let mut h = [0u8; 12];
                if !read_fully(&mut r, &mut h)? || h[8..] != TRAILER || open != Some(0) {
                    return Ok(batch_end);
                }
                open = None;
                batch_end = pos + 13;
                13
            }
            TAG_CLEAR => {
                let mut h = [0u8; 8];
                match open {
                    Some(n) if n > 0 && read_fully(&mut r, &mut h)? => open = Some(n - 1),
                    _ => return Ok(batch_end),
                }
                9
            }
            _ => return Ok(batch_end),
        };
        pos += size;
    }
}

/// Reads `buf` whole: false when the file ends first.
fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Where the file's data ends at or after `from`: one past its last byte that is not zero.
fn data_end(f: &mut File, from: u64) -> io::Result<u64> {
    static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
    f.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; ZEROS.len()];
    let mut pos = from;
    let mut end = from;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(end);
        }
        if buf[..n] != ZEROS[..n]
            && let Some(i) = buf[..n].iter().rposition(|b| *b != 0)
        {
            end = pos + i as u64 + 1;
        }
        pos += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjall::{Database, KeyspaceCreateOptions, PersistMode};

    /// A store with `n` small batches, closed; returns its dir and its journal.
    fn store(n: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Database::builder(dir.path()).open().expect("db");
            let ks = db
                .keyspace("k", KeyspaceCreateOptions::default)
                .expect("keyspace");
            for i in 0..n {
                ks.insert(i.to_be_bytes(), format!("value {i}").repeat(8))
                    .expect("insert");
            }
            ks.remove(0u32.to_be_bytes()).expect("remove");
            db.persist(PersistMode::SyncAll).expect("persist");
        }
        let journal = journals(dir.path())
            .expect("journals")
            .pop()
            .expect("a journal");
        (dir, journal)
    }

    /// The offset of the first batch start at or after `from` (right after a batch end's
    /// trailer): damage there breaks the framing, not just a value's checksum.
    fn batch_start_after(bytes: &[u8], from: usize) -> usize {
        (from..bytes.len() - 4)
            .find(|&i| bytes[i..i + 4] == TRAILER && bytes[i + 4] == TAG_START)
            .expect("a batch after")
            + 4
    }

    fn reopen(dir: &Path) -> u32 {
        let db = Database::builder(dir).open().expect("db");
        let ks = db
            .keyspace("k", KeyspaceCreateOptions::default)
            .expect("keyspace");
        ks.iter().count() as u32
    }

    #[test]
    fn a_whole_journal_has_nothing_to_cut_and_fjall_agrees() {
        let (dir, journal) = store(500);
        assert_eq!(check(dir.path()).expect("check"), vec![]);
        let before = std::fs::read(&journal).expect("read");
        assert_eq!(reopen(dir.path()), 499);
        let after = std::fs::read(&journal).expect("read");
        let end = data_end(&mut File::open(&journal).expect("open"), 0).expect("end");
        assert_eq!(before[..end as usize], after[..end as usize]);
    }

    #[test]
    fn a_cut_last_batch_is_a_torn_tail_where_fjall_cuts() {
        let (dir, journal) = store(500);
        let end = data_end(&mut File::open(&journal).expect("open"), 0).expect("end");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&journal)
            .expect("open");
        f.set_len(end - 30).expect("cut");
        drop(f);
        let cuts = check(dir.path()).expect("check");
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        // The data ends at the cut or before it (the last bytes kept may be zeros).
        assert!(
            cuts[0].torn_tail && cuts[0].at < cuts[0].end && cuts[0].end <= end - 30,
            "{cuts:?}"
        );
        // fjall cuts exactly there.
        reopen(dir.path());
        let left = std::fs::metadata(&journal).expect("meta").len();
        let kept = data_end(&mut File::open(&journal).expect("open"), 0).expect("end");
        assert_eq!(kept, cuts[0].at, "fjall kept {kept} of {left} bytes");
    }

    #[test]
    fn damage_followed_by_more_than_a_torn_write_is_corruption() {
        let (dir, journal) = store(40_000);
        let mut bytes = std::fs::read(&journal).expect("read");
        let end = bytes.iter().rposition(|b| *b != 0).expect("data") + 1;
        assert!(end as u64 > TORN_TAIL_MAX + 100_000, "{end}");
        let at = batch_start_after(&bytes, end - TORN_TAIL_MAX as usize - 50_000);
        for b in &mut bytes[at..at + 16] {
            *b = !*b;
        }
        std::fs::write(&journal, &bytes).expect("write");
        let cuts = check(dir.path()).expect("check");
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        assert!(!cuts[0].torn_tail, "{cuts:?}");
        assert!(
            cuts[0].at <= at as u64 && cuts[0].end == end as u64,
            "{cuts:?}"
        );
        // Near the end the same damage passes for a torn write.
        let (dir, journal) = store(500);
        let mut bytes = std::fs::read(&journal).expect("read");
        let end = bytes.iter().rposition(|b| *b != 0).expect("data") + 1;
        let at = batch_start_after(&bytes, end / 2);
        for b in &mut bytes[at..at + 16] {
            *b = !*b;
        }
        std::fs::write(&journal, &bytes).expect("write");
        let cuts = check(dir.path()).expect("check");
        assert!(cuts.len() == 1 && cuts[0].torn_tail, "{cuts:?}");
    }
}
