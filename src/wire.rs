//! The one place that knows the binary format of stored rows and Raft RPC bodies
//! (bincode 2, standard config). Swapping the format means changing only this file.

use serde::{Serialize, de::DeserializeOwned};

/// A row or RPC body that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("encode: {0}")]
    Encode(String),
    #[error("decode: {0}")]
    Decode(String),
}

/// Encodes a value for storage or the wire.
///
/// Encodes into a buffer kept per thread and returns an exact-size copy: bincode's own
/// `encode_to_vec` starts from an empty vector and grows it by doubling, a reallocation
/// and a copy for each doubling of every stored row (docs/benchmarks.md).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let written = encode_into(value, &mut buf).map(|()| buf.to_vec());
            if buf.capacity() > SCRATCH_KEEP_BYTES {
                *buf = Vec::with_capacity(SCRATCH_START_BYTES);
            }
            written
        }
        // Only if a value's serialisation encoded something itself.
        Err(_) => {
            let mut buf = Vec::new();
            encode_into(value, &mut buf).map(|()| buf)
        }
    })
}

fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), WireError> {
    bincode::serde::encode_into_std_write(value, buf, bincode::config::standard())
        .map(|_| ())
        .map_err(|e| WireError::Encode(e.to_string()))
}

/// The per-thread buffer's starting size: a message row and most RPC bodies fit.
const SCRATCH_START_BYTES: usize = 4 * 1024;
/// A buffer grown past this by a large value (a snapshot chunk, a long batch) is given
/// back rather than kept for the thread's lifetime.
const SCRATCH_KEEP_BYTES: usize = 256 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(SCRATCH_START_BYTES));
}

/// The most any one decoded value may claim (and so allocate). Without a limit bincode
/// reserves a claimed string or vector length before checking the bytes exist, so an
/// 11-byte body from a peer could ask for 2^56 bytes and abort the process (found by the
/// `raft_proposal` fuzz target; regression test below).
pub const MAX_DECODE_BYTES: usize = 256 * 1024 * 1024;

/// Decodes a value; never panics or over-allocates on malformed bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let config = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();
    bincode::serde::decode_from_slice(bytes, config)
        .map(|(v, _)| v)
        .map_err(|e| WireError::Decode(e.to_string()))
}

impl From<WireError> for std::io::Error {
    fn from(e: WireError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Op, Proposal};

    #[test]
    fn huge_claimed_lengths_are_errors_not_aborts() {
        // Inputs found by `fuzz/fuzz_targets/raft_proposal.rs`.
        for hex in [
            "0101fd0000000000000001",
            "0101fdffffffffffffffff",
            "010dfd0000a4008a726500",
        ] {
            let bytes = hex::decode(hex).unwrap_or_default();
            assert!(decode::<Proposal>(&bytes).is_err(), "{hex}");
            assert!(decode::<Vec<Op>>(&bytes).is_err(), "{hex}");
        }
    }

    #[test]
    fn the_scratch_buffer_changes_no_byte() {
        let small = Proposal {
            ops: vec![Op::DeleteTenant { id: "t".into() }].into(),
        };
        // Larger than the buffer the thread keeps: it is given back, the next is fresh.
        let big = Proposal {
            ops: vec![Op::DeleteTenant {
                id: "x".repeat(300 * 1024),
            }]
            .into(),
        };
        for p in [&small, &big, &small] {
            let plain =
                bincode::serde::encode_to_vec(p, bincode::config::standard()).unwrap_or_default();
            assert_eq!(encode(p).unwrap_or_default(), plain);
        }
    }

    #[test]
    fn round_trip() {
        let p = Proposal {
            ops: vec![Op::DeleteTenant { id: "t".into() }].into(),
        };
        let bytes = encode(&p).unwrap_or_default();
        assert_eq!(decode::<Proposal>(&bytes).ok(), Some(p));
    }
}
