//! Inbound parts (UDH or SAR, packed or not, any data coding) fed to the
//! reassembler in arbitrary order with arbitrary times: never panics, and
//! every group it delivers is within its announced total.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgw::encoding::{inbound, reassembly::Reassembler};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::new(1000, 4);
    let mut now = 0i64;
    let mut rest = data;
    while rest.len() >= 6 {
        let (head, tail) = rest.split_at(6);
        let len = usize::from(head[5]).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let sar = (head[2] & 1 == 1).then_some((u16::from(head[3]), head[4] % 4, head[4] / 64));
        now += i64::from(head[3]) * 10;
        if let Ok(part) = inbound::read(head[0], head[1], payload, sar, head[2] & 2 == 2) {
            let source = if head[2] & 4 == 4 { "a" } else { "b" };
            for m in r
                .push(source, "d", part, now)
                .into_iter()
                .chain(r.expire(now))
            {
                assert!(m.missing.len() <= usize::from(m.total));
                assert_eq!(m.complete, m.missing.is_empty());
            }
        }
    }
});
