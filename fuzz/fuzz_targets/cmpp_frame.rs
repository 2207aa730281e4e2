//! CMPP 2.0/3.0 decoding as the gateway does it: the shared frame codec
//! (`common/cn_stream.rs`: byte 0 picks whole or chunked delivery), then the
//! PDU decoder for the version the mode byte's low bit picks (2.0 or 3.0),
//! and the status-report content of a DELIVER.
//!
//! Properties: those of `cn_stream`, and
//! - never panics (PDU decoders return `DecodeError` on anything hostile);
//! - a decoded PDU re-encodes without panicking.
#![no_main]

#[path = "common/cn_stream.rs"]
mod cn_stream;

use libfuzzer_sys::fuzz_target;
use smsgw::protocols::cmpp::codec::{Pdu, Report, Version};

fuzz_target!(|data: &[u8]| {
    cn_stream::for_each_frame(data, |mode, frame| {
        let v = if mode & 1 == 0 {
            Version::V20
        } else {
            Version::V30
        };
        if let Ok((seq, pdu)) = Pdu::decode(frame, v) {
            if let Pdu::Deliver(d) = &pdu {
                let _ = Report::decode(&d.content, v);
            }
            let _ = pdu.encode(seq, v);
        }
    });
});
