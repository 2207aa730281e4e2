//! GBK / GB18030 decoding of arbitrary octets, and re-splitting what was
//! decoded: never panics, parts never exceed their limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgw::encoding::gb::{GbCoding, decode, split};

fuzz_target!(|data: &[u8]| {
    for coding in [GbCoding::Gbk, GbCoding::Gb18030] {
        let text = decode(data, coding);
        if let Ok(parts) = split(&text, coding, 140, 134) {
            assert!(
                parts.len() == 1 && parts[0].len() <= 140 || parts.iter().all(|p| p.len() <= 134)
            );
        }
    }
});
