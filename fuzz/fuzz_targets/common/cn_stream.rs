//! What the CMPP, SMGP and SGIP targets share: a byte stream through the
//! shared length-prefixed frame codec (`protocols::cn::session::frame_codec`,
//! tokio_util `Decoder`), as the gateway reads a socket.
//!
//! Input: byte 0 (the mode) picks how the rest arrives: in one piece, or in
//! chunks of 1..=64 bytes, like short TCP reads; the rest is the byte stream.
//!
//! Checks:
//! - never loops: each successful frame consumes at least 4 bytes;
//! - `Ok(None)` consumes nothing;
//! - bytes consumed never exceed the bytes fed in.

use smsgw::protocols::cn::session::frame_codec;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Feeds `data` (mode byte, then the stream) to the frame codec and hands
/// every frame to `on_frame` with the mode byte; stops where a `Framed`
/// stream would end (the first decode error).
pub fn for_each_frame(data: &[u8], mut on_frame: impl FnMut(u8, &[u8])) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunk = match mode % 65 {
        0 => stream.len().max(1),
        n => n as usize,
    };
    let mut codec = frame_codec();
    let mut buf = BytesMut::new();
    let (mut fed, mut consumed) = (0usize, 0usize);
    for piece in stream.chunks(chunk) {
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
                Err(_) => return,
                Ok(Some(frame)) => {
                    consumed += before - buf.len();
                    assert!(consumed <= fed, "consumed more than fed");
                    on_frame(mode, &frame);
                }
            }
        }
    }
}
