//! 7-bit unpacking with any fill: never panics; packing what was unpacked
//! gives back a prefix-compatible stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgw::encoding::{pack_septets, unpack_septets};

fuzz_target!(|data: &[u8]| {
    let Some((&f, bytes)) = data.split_first() else {
        return;
    };
    let fill = usize::from(f % 7);
    let septets = unpack_septets(bytes, fill);
    assert!(septets.iter().all(|&s| s < 0x80));
    let again = pack_septets(&septets, fill);
    assert!(again.len() <= bytes.len() + 1);
});
