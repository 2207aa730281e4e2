//! SMPP framing and PDU decoding: `SmppCodec` (tokio_util `Decoder`), then the
//! lenient fallback parsers the session uses on `Frame::Malformed`.
//!
//! Input: byte 0 picks how the rest arrives (in one piece, or in chunks of
//! 1..=64 bytes, like short TCP reads); the rest is the byte stream.
//!
//! Properties:
//! - never panics;
//! - never loops: after each chunk, `decode` returns `Ok(None)` or `Err`
//!   within `len / 16 + 1` calls (every PDU is at least 16 bytes);
//! - `Ok(None)` consumes nothing; `Ok(Some(_))` consumes exactly the
//!   `command_length` read from the header (so it never desynchronises);
//! - bytes consumed never exceed the bytes fed in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rusmpp::Pdu;
use smsgw::protocols::smpp::codec::{
    DeliverFields, Frame, SmppCodec, SubmitSmFields, command_id, parse_submit_sm_resp_lenient,
};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    // 0 = whole stream at once; otherwise chunks of 1..=64 bytes.
    let chunk = match mode % 65 {
        0 => stream.len().max(1),
        n => n as usize,
    };

    let mut codec = SmppCodec::new();
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;

    'stream: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        // Every successful decode eats >= 16 bytes, so this bound is never reached
        // unless decode returns Some without consuming input.
        let max_calls = buf.len() / 16 + 1;
        let mut calls = 0usize;
        loop {
            calls += 1;
            assert!(
                calls <= max_calls,
                "SmppCodec::decode did not stop: {calls} calls on {} buffered bytes",
                buf.len()
            );
            let before = buf.len();
            let declared = (before >= 4)
                .then(|| u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize);
            match codec.decode(&mut buf) {
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed input");
                    break;
                }
                Err(_) => break 'stream, // a Framed stream ends here
                Ok(Some(frame)) => {
                    let used = before - buf.len();
                    assert_eq!(Some(used), declared, "frame size != command_length");
                    assert!(used >= 16, "frame shorter than an SMPP header");
                    consumed += used;
                    assert!(consumed <= fed, "consumed {consumed} > fed {fed}");
                    inspect(frame);
                }
            }
        }
    }
    assert!(consumed <= fed && fed <= stream.len());
});

/// What the session and the simulator do with a frame.
fn inspect(frame: Frame) {
    match frame {
        Frame::Command(cmd) => {
            let _ = format!("{cmd:?}");
            if let Some(pdu) = cmd.pdu() {
                match pdu {
                    Pdu::DeliverSm(d) => {
                        let _ = DeliverFields::from_pdu(d);
                    }
                    Pdu::SubmitSm(s) => {
                        let _ = SubmitSmFields::from_pdu(s);
                    }
                    _ => {}
                }
            }
        }
        Frame::Malformed(m) => match m.command_id {
            command_id::DELIVER_SM => {
                let _ = DeliverFields::parse_lenient(&m.body);
            }
            command_id::SUBMIT_SM_RESP => {
                let _ = parse_submit_sm_resp_lenient(&m.body);
            }
            _ => assert!(
                m.body.is_empty(),
                "body kept for command {:#x}",
                m.command_id
            ),
        },
    }
}
