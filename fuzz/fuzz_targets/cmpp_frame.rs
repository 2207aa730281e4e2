//! CMPP 2.0/3.0 decoding as the gateway does it: the shared length-prefixed frame
//! codec (`protocols::cn::session::frame_codec`, tokio_util `Decoder`), then the
//! PDU decoder for the version picked by the mode byte, and the status-report content of a DELIVER.
//!
//! Input: byte 0 picks how the rest arrives (in one piece, or in chunks of
//! 1..=64 bytes, like short TCP reads); its low bit picks CMPP 2.0 or 3.0; the rest is the byte stream.
//!
//! Properties:
//! - never panics (PDU decoders return `DecodeError` on anything hostile);
//! - never loops: each successful frame consumes at least 4 bytes;
//! - a decoded PDU re-encodes without panicking;
//! - bytes consumed never exceed the bytes fed in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgw::protocols::cn::session::frame_codec;
use smsgw::protocols::cmpp::codec::{Pdu, Report, Version};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunk = match mode % 65 {
        0 => stream.len().max(1),
        n => n as usize,
    };
    let v = if mode & 1 == 0 { Version::V20 } else { Version::V30 };
    let mut codec = frame_codec();
    let mut buf = BytesMut::new();
    let (mut fed, mut consumed) = (0usize, 0usize);
    'stream: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let max_calls = buf.len() / 4 + 1;
        let mut calls = 0usize;
        loop {
            calls += 1;
            assert!(calls <= max_calls, "frame decoder did not stop");
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed input");
                    break;
                }
                Err(_) => break 'stream,
                Ok(Some(frame)) => {
                    consumed += before - buf.len();
                    assert!(consumed <= fed, "consumed more than fed");
                    if let Ok((seq, pdu)) = Pdu::decode(&frame, v) {
                        if let Pdu::Deliver(d) = &pdu {
                            let _ = Report::decode(&d.content, v);
                        }
                        let _ = pdu.encode(seq, v);
                    }
                }
            }
        }
    }
});
