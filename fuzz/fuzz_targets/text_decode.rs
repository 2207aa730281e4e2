//! Operator text: `smsgw::encoding::decode(data_coding, bytes)` for every one
//! of the 256 data_coding values on the same bytes.
//!
//! Properties:
//! - never panics;
//! - output length is bounded by the input: one char per octet at most
//!   (GSM-7: ESC pairs give one char; IA5 and Latin-1: exactly one per octet;
//!   UCS-2: one per 2 octets, plus U+FFFD for a trailing odd octet; anything
//!   else is lossy UTF-8);
//! - IA5 (0x01) yields only ASCII and U+FFFD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgw::encoding::decode;

fuzz_target!(|data: &[u8]| {
    for data_coding in 0..=u8::MAX {
        let text = decode(data_coding, data);
        let chars = text.chars().count();
        match data_coding {
            0x00 => assert!(
                chars <= data.len(),
                "GSM-7: {chars} chars from {} octets",
                data.len()
            ),
            0x01 => {
                assert_eq!(chars, data.len(), "IA5");
                assert!(
                    text.chars()
                        .all(|c| c.is_ascii() || c == char::REPLACEMENT_CHARACTER)
                );
            }
            0x03 => assert_eq!(chars, data.len(), "Latin-1"),
            0x08 => assert!(
                chars <= data.len() / 2 + data.len() % 2,
                "UCS-2: {chars} chars from {} octets",
                data.len()
            ),
            _ => assert!(
                chars <= data.len(),
                "UTF-8: {chars} chars from {} octets",
                data.len()
            ),
        }
    }
});
