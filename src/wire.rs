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
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| WireError::Encode(e.to_string()))
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
    fn round_trip() {
        let p = Proposal {
            ops: vec![Op::DeleteTenant { id: "t".into() }].into(),
        };
        let bytes = encode(&p).unwrap_or_default();
        assert_eq!(decode::<Proposal>(&bytes).ok(), Some(p));
    }
}
