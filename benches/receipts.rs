//! Parsing one SMPP delivery receipt: every receipt an SMSC sends passes through
//! `parse_receipt` on the bind's reader task before it is matched and recorded.
//!
//! Run: `cargo bench --bench receipts`.
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smsgw::protocols::smpp::parse_receipt;

/// The SMPP 3.4 Appendix B layout, as the simulator and most SMSCs write it.
const PLAIN: &[u8] = b"id:1A2467335AA sub:001 dlvrd:001 submit date:2612051344 \
done date:2612051345 stat:DELIVRD err:000 text:Hello from smsgw";
/// Variations real SMSCs send: key case, `Text:`, 12-digit dates, doubled spaces.
const VARIANT: &[u8] = b"ID:0000012345  SUB:001 DLVRD:001 Submit_Date:261205134401 \
Done Date:261205134502 Stat:UNDELIV Err:0x45 Text:Your code is 493027";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("receipt_parse");
    g.throughput(Throughput::Elements(1));
    for (name, text) in [("plain", PLAIN), ("variant", VARIANT)] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(parse_receipt(0x04, black_box(text), None, None, None)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
