//! A data dir whose store cannot be trusted is refused at start, exit status 2, with one
//! line naming the data dir and what to do (never a panic's backtrace, never a node that
//! comes up having forgotten messages it answered 202 for):
//! - a journal cut short (fjall alone takes it for a crash's torn tail) is caught by the
//!   log watermark kept outside the journal; the bytes fjall drops are copied aside first;
//! - a missing watermark file on a store that kept one (unless the operator accepts it);
//! - damage in the middle of a journal, refused before fjall cuts it: the store is left
//!   byte for byte as it was;
//! - garbage in the middle of a journal (fjall panics while reading it);
//! - a store that cannot be opened (an I/O error).
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// The args `GwNode::spawn` starts the node with.
fn start_args(node: &GwNode) -> Vec<String> {
    vec![
        "start".into(),
        "--node-id".into(),
        node.node_id.to_string(),
        "--http".into(),
        format!("127.0.0.1:{}", node.http),
        "--cluster-addr".into(),
        format!("127.0.0.1:{}", node.cluster),
        "--data-dir".into(),
        node.dir.join("data").display().to_string(),
        "--admin-token".into(),
        node.token.clone(),
    ]
}

/// Starts the node on its damaged dir and returns (exit code, stderr).
fn start_refused(node: &GwNode) -> (Option<i32>, String) {
    let args = start_args(node);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = run_bounded(&args, &[], &node.dir, Duration::from_secs(60));
    eprintln!("start on the damaged dir: {code:?} {err}");
    (code, err)
}

/// The biggest journal file of the store.
fn biggest_journal(data: &Path) -> PathBuf {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(data.join("store"))
        .expect("store dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jnl"))
        .map(|e| (e.metadata().map(|m| m.len()).unwrap_or(0), e.path()))
        .collect();
    files.sort();
    files.pop().expect("a journal file").1
}

/// How much of a journal holds entries: fjall preallocates the file (64 MiB of zeros),
/// so "half the journal" is half of what precedes the zeros.
fn written_len(journal: &Path) -> u64 {
    let bytes = std::fs::read(journal).expect("journal");
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    assert!(end > 4096, "the journal holds the messages ({end} bytes)");
    end as u64
}

/// A node that accepted `n` messages and was stopped cleanly; returns it, the ids and the
/// tenant's key.
async fn stopped_node_with_messages(dir: &Path, n: usize) -> (GwNode, Vec<String>, String) {
    let (_smsc, mut node, key) = gateway_with_smsc(dir, "sd", &[], &[]).await;
    let bodies = (0..n)
        .map(|i| json!({"to": "+4915112345678", "text": format!("kept {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    let status = node.proc.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "clean stop");
    (node, ids, key)
}

/// The refusal is one line (with the `error:` prefix), names the data dir and says what to
/// do; no panic message or backtrace reached stderr.
fn assert_one_line_refusal(err: &str, data: &Path, want: &str) {
    // Log records (timestamped; fjall logs a failed checksum as an ERROR record before
    // the refusal) are not the refusal: exactly one line is.
    let is_log = |l: &str| {
        l.starts_with("20")
            && [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|lv| l.contains(lv))
    };
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_log(l))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    let line = lines[0];
    assert!(
        line.starts_with(&format!("error: data_dir {}", data.display())),
        "{line}"
    );
    assert!(line.contains(want), "wants {want:?}: {line}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_journal_is_refused_not_opened_without_the_lost_messages() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, ids, _) = stopped_node_with_messages(dir.path(), 200).await;
    let data = node.dir.join("data");
    let watermark = std::fs::read_to_string(data.join("log_watermark")).expect("watermark");
    assert!(watermark.starts_with("last_log_index "), "{watermark}");

    let journal = biggest_journal(&data);
    let bytes = std::fs::read(&journal).expect("journal");
    // Cut inside the trailer of a batch's end marker: the last batch is not whole.
    let half = written_len(&journal) as usize / 2;
    let cut = (half..bytes.len() - 4)
        .find(|&i| bytes[i..i + 4] == *b"FJL\x03")
        .expect("a batch end in the second half")
        + 2;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open journal");
    f.set_len(cut as u64).expect("truncate");
    drop(f);

    let (code, err) = start_refused(&node);
    assert_eq!(code, Some(2), "refused with exit status 2: {err}");
    assert_one_line_refusal(&err, &data, "the Raft log ends at");
    assert!(
        err.contains("log_watermark") && err.contains("restore the data dir from a backup"),
        "{err}"
    );
    // The partial batch fjall dropped was copied aside first, and the refusal says where.
    let copy = err
        .split_whitespace()
        .find(|w| w.contains("/recovery-"))
        .expect("names the copy");
    let copied = std::fs::read(copy).expect("the copy exists");
    assert!(
        !copied.is_empty() && bytes[..cut].ends_with(&copied),
        "{copy}"
    );
    assert!(!ids.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_watermark_is_refused_unless_the_operator_accepts_it() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (mut node, ids, key) = stopped_node_with_messages(dir.path(), 50).await;
    let data = node.dir.join("data");
    let file = data.join("log_watermark");
    std::fs::remove_file(&file).expect("delete the watermark");

    let (code, err) = start_refused(&node);
    assert_eq!(code, Some(2), "refused with exit status 2: {err}");
    assert_one_line_refusal(&err, &data, &format!("{} is missing", file.display()));
    assert!(err.contains("--accept-missing-watermark"), "{err}");
    assert!(!file.exists(), "a refused start writes no watermark");

    node.extra.push("--accept-missing-watermark".into());
    node.restart().await;
    let text = std::fs::read_to_string(&file).expect("a fresh watermark");
    assert!(text.starts_with("last_log_index "), "{text}");
    for id in &ids {
        let (s, v) = node.message(&key, id).await;
        assert_eq!(s, 200, "{id}: {v}");
    }
    assert!(
        node.proc.log_text().contains("accept_missing_watermark"),
        "the start says the watermark was missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_corrupted_mid_way_is_refused_and_left_as_it_was() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, _, _) = stopped_node_with_messages(dir.path(), 200).await;
    let data = node.dir.join("data");
    let journal = biggest_journal(&data);
    let mut bytes = std::fs::read(&journal).expect("journal");
    let end = written_len(&journal) as usize;
    // 16 bytes flipped at a batch start in the middle, and more data after them than a
    // write torn by a crash (5 MiB where fjall preallocated zeros).
    let at = (end / 2..end)
        .find(|&i| bytes[i..i + 4] == *b"FJL\x03" && bytes[i + 4] == 1)
        .expect("a batch start in the second half")
        + 4;
    for b in &mut bytes[at..at + 16] {
        *b = !*b;
    }
    let more = 5 << 20;
    if bytes.len() < end + more {
        bytes.resize(end + more, 0);
    }
    for b in &mut bytes[end..end + more] {
        *b = 0xA5;
    }
    std::fs::write(&journal, &bytes).expect("write");
    let before = store_files(&data);

    let (code, err) = start_refused(&node);
    assert_eq!(code, Some(2), "refused with exit status 2: {err}");
    assert_one_line_refusal(
        &err,
        &data,
        &format!("the journal {} is corrupted at byte", journal.display()),
    );
    assert!(
        err.contains("the store was left as it was")
            && err.contains("restore the data dir from a backup"),
        "{err}"
    );
    assert!(!err.contains("truncated"), "{err}");
    assert!(
        before == store_files(&data),
        "the refused start changed no file of the store"
    );
}

/// Every file of the store with its bytes.
fn store_files(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![data.join("store")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("dir").filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("file")));
            }
        }
    }
    out.sort();
    out
}

/// The offset of the first uncompressed journal item header at or after `from` (fjall
/// 3.1: tag 2, value type, compression 0, keyspace id u64, key length u16, value length
/// u32, stored value length u32; the two lengths equal).
fn item_header_after(bytes: &[u8], from: usize) -> Option<usize> {
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (from..bytes.len().saturating_sub(21)).find(|&i| {
        bytes[i] == 2
            && bytes[i + 1] <= 4
            && bytes[i + 2] == 0
            && bytes[i + 5..i + 11].iter().all(|b| *b == 0)
            && (1..=512).contains(&u16::from_le_bytes([bytes[i + 11], bytes[i + 12]]))
            && u32_at(i + 13) == u32_at(i + 17)
            && (1..1 << 20).contains(&u32_at(i + 13))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_journal_entry_is_refused_without_a_backtrace() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, _, _) = stopped_node_with_messages(dir.path(), 200).await;
    let data = node.dir.join("data");
    let journal = biggest_journal(&data);
    let mut bytes = std::fs::read(&journal).expect("journal");
    // One item's value length no longer matches its stored length: fjall's journal
    // reader fails an assertion (a panic inside `Database::open`).
    let at = item_header_after(&bytes, written_len(&journal) as usize / 2)
        .expect("an item header in the second half");
    bytes[at + 13] = bytes[at + 13].wrapping_add(1);
    std::fs::write(&journal, &bytes).expect("write");

    let (code, err) = start_refused(&node);
    assert_eq!(code, Some(2), "refused with exit status 2: {err}");
    assert_one_line_refusal(&err, &data, "is damaged: reading its journal");
    assert!(
        err.contains(&journal.display().to_string())
            && err.contains("restore the data dir from a backup"),
        "names the journal and what to do: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_a_journal_is_refused_without_a_backtrace() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (node, _, _) = stopped_node_with_messages(dir.path(), 200).await;
    let data = node.dir.join("data");
    let journal = biggest_journal(&data);
    let mut bytes = std::fs::read(&journal).expect("journal");
    let mid = written_len(&journal) as usize / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b = 0xA5;
    }
    std::fs::write(&journal, &bytes).expect("write");

    let (code, err) = start_refused(&node);
    assert_eq!(code, Some(2), "refused with exit status 2: {err}");
    // fjall takes the rest for a torn tail (the watermark catches the shorter log), or
    // panics reading an entry (caught: "is damaged").
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(
        line.contains("is damaged") || line.contains("the Raft log ends at"),
        "{err}"
    );
    assert_one_line_refusal(&err, &data, "restore the data dir from a backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_opened_is_refused_naming_the_path_and_reason() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let mut node = node;
    node.proc.terminate(Duration::from_secs(30));
    let data = node.dir.join("data");
    // As root a read-only mode does not stop writes; a store dir that is a file is an I/O
    // error at open all the same.
    std::fs::remove_dir_all(data.join("store")).expect("remove store");
    std::fs::write(data.join("store"), b"not a dir").expect("file");
    let (code, err) = start_refused(&node);
    assert_eq!(code, Some(2), "refused with exit status 2: {err}");
    assert_one_line_refusal(
        &err,
        &data,
        &format!("cannot open the store at {}", data.join("store").display()),
    );
    assert!(!err.contains("FjallError"), "{err}");
}
