//! A data dir whose store cannot be trusted is refused at start, exit status 2, with one
//! line naming the data dir and what to do (never a panic's backtrace, never a node that
//! comes up having forgotten messages it answered 202 for):
//! - a journal cut short (fjall alone takes it for a crash's torn tail) is caught by the
//!   log watermark kept outside the journal;
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

/// A node that accepted `n` messages and was stopped cleanly; returns it and the ids.
async fn stopped_node_with_messages(dir: &Path, n: usize) -> (GwNode, Vec<String>) {
    let (_smsc, mut node, key) = gateway_with_smsc(dir, "sd", &[], &[]).await;
    let bodies = (0..n)
        .map(|i| json!({"to": "+4915112345678", "text": format!("kept {i}")}))
        .collect();
    let ids = node.send_all_accepted(&key, bodies).await;
    let status = node.proc.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "clean stop");
    (node, ids)
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
    let (node, ids) = stopped_node_with_messages(dir.path(), 200).await;
    let data = node.dir.join("data");
    let watermark = std::fs::read_to_string(data.join("log_watermark")).expect("watermark");
    assert!(watermark.starts_with("last_log_index "), "{watermark}");

    let journal = biggest_journal(&data);
    let len = written_len(&journal);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open journal");
    f.set_len(len / 2).expect("truncate");
    drop(f);

    let (code, err) = start_refused(&node);
    assert_eq!(code, Some(2), "refused with exit status 2: {err}");
    assert_one_line_refusal(&err, &data, "the Raft log ends at");
    assert!(
        err.contains("log_watermark") && err.contains("restore the data dir from a backup"),
        "{err}"
    );
    assert!(!ids.is_empty());
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
    let (node, _) = stopped_node_with_messages(dir.path(), 200).await;
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
    let (node, _) = stopped_node_with_messages(dir.path(), 200).await;
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
