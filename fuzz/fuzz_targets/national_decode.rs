//! Every text decoder on arbitrary octets: the SMPP data codings and the
//! GSM-7 decoder with every national table pair. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgw::encoding::{NationalLanguage, NationalShift, decode, decode_gsm7};

fuzz_target!(|data: &[u8]| {
    let Some((&dc, bytes)) = data.split_first() else {
        return;
    };
    let text = decode(dc, bytes);
    if matches!(dc, 0x00 | 0x01 | 0x03) {
        assert!(text.chars().count() <= bytes.len());
    }
    let lang = NationalLanguage::from_id(dc % 14);
    let shift = NationalShift {
        locking: lang.filter(|l| l.has_locking() && dc & 0x80 != 0),
        single: lang,
    };
    assert!(decode_gsm7(bytes, shift).chars().count() <= bytes.len());
});
