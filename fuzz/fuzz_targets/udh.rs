//! The UDH parser on arbitrary user data: never panics, and a parsed
//! header never claims more octets than there are.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgw::encoding::udh;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = udh::parse(data) {
        assert!(h.len <= data.len());
        if let Some(c) = h.concat {
            assert!(c.seq >= 1 && c.seq <= c.total);
        }
    }
});
