//! Raft entries from peers: `smsgw::wire::decode::<smsgw::state::Proposal>`.
//!
//! Properties:
//! - never panics, whatever the bytes (`wire::decode` promises this);
//! - a decoded proposal re-encodes, and the re-encoding decodes to a value
//!   that encodes to the same bytes (compared as bytes, because an f64 price
//!   may be NaN, which is never equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgw::state::Proposal;
use smsgw::wire;

fuzz_target!(|data: &[u8]| {
    let Ok(proposal) = wire::decode::<Proposal>(data) else {
        return;
    };
    let _ = proposal.to_string();
    let bytes = wire::encode(&proposal).expect("a decoded Proposal must re-encode");
    let again: Proposal = wire::decode(&bytes).expect("a re-encoded Proposal must decode");
    let bytes_again = wire::encode(&again).expect("re-encode");
    assert_eq!(bytes, bytes_again, "Proposal encoding does not round-trip");
});
