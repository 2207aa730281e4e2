//! SGIP 1.2 decoding as the gateway does it: the shared frame codec
//! (`common/cn_stream.rs`: byte 0 picks whole or chunked delivery), then the
//! PDU decoder (20-octet header with the 12-octet sequence number).
//!
//! Properties: those of `cn_stream`, and
//! - never panics (PDU decoders return `DecodeError` on anything hostile);
//! - a decoded PDU re-encodes without panicking.
#![no_main]

#[path = "common/cn_stream.rs"]
mod cn_stream;

use libfuzzer_sys::fuzz_target;
use smsgw::protocols::sgip::codec::Pdu;

fuzz_target!(|data: &[u8]| {
    cn_stream::for_each_frame(data, |_, frame| {
        if let Ok((seq, pdu)) = Pdu::decode(frame) {
            let _ = pdu.encode(seq);
            let _ = seq.id_text();
        }
    });
});
