//! How much memory each fjall keyspace may hold in its write buffer (memtable) before fjall
//! writes it out as a table.
//!
//! fjall gives every keyspace a 64 MiB memtable, and its database-wide cap is not
//! implemented (`max_write_buffer_size` in fjall 3.1 is stored but never read). With ten
//! keyspaces written per message, a node that had carried 400,000 messages held 318 MB of
//! memtables (RSS peak 830 MB). Most keyspaces hold small index rows, or entries that are
//! deleted soon after (the Raft log, claims), so a smaller memtable costs them almost
//! nothing. The message rows are the exception: each is rewritten about four times while
//! it is live, and a large memtable keeps those versions from ever reaching a table; 16 MiB
//! there cost 10–13 % more CPU per message (`docs/benchmarks.md`, "Memtables").
//!
//! fjall records a keyspace's memtable size when it creates the keyspace, so these sizes
//! apply to data directories created by this version on.

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

/// The keyspace of the message rows (`sm_messages`), which keeps fjall's default.
pub const MESSAGE_ROWS: &str = "sm_messages";

/// The message rows' memtable: fjall's default, so that a row's rewrites meet in memory.
const MESSAGE_ROWS_MEMTABLE_BYTES: u64 = 64 * 1024 * 1024;

/// Every other keyspace's memtable (the Raft log, indexes, claims, config, outbox).
const MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

/// Opens (or creates, with its memtable size) a keyspace of the node's database: the one
/// way the Raft log and the state store open theirs.
pub fn open_keyspace(db: &Database, name: &str) -> fjall::Result<Keyspace> {
    db.keyspace(name, || keyspace_options(name))
}

/// The options a keyspace is created with.
fn keyspace_options(name: &str) -> KeyspaceCreateOptions {
    let bytes = if name == MESSAGE_ROWS {
        MESSAGE_ROWS_MEMTABLE_BYTES
    } else {
        MEMTABLE_BYTES
    };
    KeyspaceCreateOptions::default().max_memtable_size(bytes)
}
