//! An openraft storage error as an operator reads it in `/readyz` and in a 503: the OS's
//! reason first, then what the node was doing. openraft prints its errors as
//! `when Write Apply(LogId { leader_id: LeaderId { term: 1, node_id: 1 }, index: 1702 }):
//! std::io::error::Error: No space left on device (os error 28)`; the operator needs
//! "No space left on device" and "entry 1702", not the type names.

/// `text` (openraft's `StorageError` display) as "storage failed: <reason>; the node stops
/// (while <doing>)".
pub(super) fn storage_failure(text: &str) -> String {
    let parsed = text.strip_prefix("when ").and_then(|rest| {
        let (verb, after) = rest.split_once(' ')?;
        let (subject, reason) = split_at_top_level(after)?;
        Some((verb, subject, reason))
    });
    match parsed {
        Some((verb, subject, reason)) => format!(
            "storage failed: {}; the node stops (while {} {})",
            os_reason(reason),
            doing(verb),
            what(subject)
        ),
        None => format!("storage failed: {}; the node stops", os_reason(text)),
    }
}

/// Splits `text` at its first ": " outside parentheses and braces.
fn split_at_top_level(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => depth -= 1,
            ':' if depth == 0 && text[i + 1..].starts_with(' ') => {
                return Some((&text[..i], &text[i + 2..]));
            }
            _ => {}
        }
    }
    None
}

/// The reason without a leading Rust type path (`std::io::error::Error: `) and without
/// the OS error number.
fn os_reason(reason: &str) -> &str {
    let reason = match reason.split_once(": ") {
        Some((head, tail)) if head.contains("::") && !head.contains(' ') => tail,
        _ => reason,
    };
    match reason.find(" (os error ") {
        Some(i) => &reason[..i],
        None => reason,
    }
}

fn doing(verb: &str) -> String {
    match verb {
        "Read" => "reading".into(),
        "Write" => "writing".into(),
        "Seek" => "seeking".into(),
        "Delete" => "deleting".into(),
        other => other.to_lowercase(),
    }
}

/// What openraft's error subject names, in words.
fn what(subject: &str) -> String {
    let name = subject.split(['(', ' ']).next().unwrap_or(subject);
    let entry = subject
        .rsplit_once("index: ")
        .map(|(_, tail)| {
            tail.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .or_else(|| {
            subject
                .strip_prefix("LogIndex(")
                .map(|t| t.chars().take_while(char::is_ascii_digit).collect())
        })
        .filter(|n| !n.is_empty());
    match (name, entry) {
        ("Apply", Some(n)) => format!("the state for log entry {n}"),
        ("Log" | "LogIndex", Some(n)) => format!("log entry {n}"),
        ("Logs", _) => "the log".into(),
        ("Vote", _) => "the vote".into(),
        ("StateMachine", _) => "the state".into(),
        ("Snapshot", _) => "a snapshot".into(),
        ("Store", _) => "the store".into(),
        _ => subject.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::storage_failure;

    #[test]
    fn the_os_reason_first_then_what_was_being_done() {
        assert_eq!(
            storage_failure("when Write Logs: No space left on device (os error 28)"),
            "storage failed: No space left on device; the node stops (while writing the log)"
        );
        assert_eq!(
            storage_failure(
                "when Write Apply(LogId { leader_id: LeaderId { term: 1, node_id: 1 }, index: 1702 }): \
                 std::io::error::Error: No space left on device (os error 28)"
            ),
            "storage failed: No space left on device; the node stops (while writing the state \
             for log entry 1702)"
        );
        assert_eq!(
            storage_failure("when Read LogIndex(17): checksum mismatch"),
            "storage failed: checksum mismatch; the node stops (while reading log entry 17)"
        );
        assert_eq!(
            storage_failure("disk gone"),
            "storage failed: disk gone; the node stops"
        );
    }
}
