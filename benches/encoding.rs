//! Encode + split throughput: the full accept-time choice (`prepare`) and the
//! wire form (`build_segments`) of a 160-character GSM-7 text and a
//! 70-character UCS-2 text, plus a 3-part long text. Target: ≥ 1,000,000
//! messages/s per core for the two single-part cases.
//!
//! Run: `cargo bench --bench encoding`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smsgw::encoding::{Layout, Options, TextEncoding, build_segments, prepare};

/// Encode + split alone: the wire form of a text whose encoding is known.
fn encode_split_only(text: &str, encoding: TextEncoding) -> usize {
    build_segments(text, encoding, &Layout::default(), 7).map_or(0, |s| s.len())
}

/// Choose the encoding (prepare) and then encode + split.
fn encode_and_split(text: &str) -> usize {
    let p = prepare(text, &Options::default()).map(|p| p.plan);
    match p {
        Ok(plan) => build_segments(text, plan.encoding, &Layout::default(), 7)
            .map(|s| s.len())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

fn bench(c: &mut Criterion) {
    let gsm: String =
        "Your code is 483920. Valid 10 min. Don't share it! ACME @ £5 credit (Ä Ö Ü). "
            .chars()
            .cycle()
            .take(160)
            .collect();
    let ucs: String = "Ваш код 483920, действителен 10 минут. Никому не сообщайте 😀 "
        .chars()
        .filter(|c| c.len_utf16() == 1)
        .cycle()
        .take(70)
        .collect();
    let long: String = "Long message text that needs three parts to go out. "
        .chars()
        .cycle()
        .take(400)
        .collect();
    assert_eq!(encode_and_split(&gsm), 1);
    assert_eq!(encode_and_split(&ucs), 1);
    assert_eq!(encode_and_split(&long), 3);
    let mut g = c.benchmark_group("encode_split");
    g.throughput(Throughput::Elements(1));
    g.bench_function("gsm7_160", |b| {
        b.iter(|| encode_split_only(black_box(&gsm), TextEncoding::Gsm7))
    });
    g.bench_function("ucs2_70", |b| {
        b.iter(|| encode_split_only(black_box(&ucs), TextEncoding::Ucs2))
    });
    g.bench_function("plan_gsm7_160", |b| {
        b.iter(|| encode_and_split(black_box(&gsm)))
    });
    g.bench_function("plan_ucs2_70", |b| {
        b.iter(|| encode_and_split(black_box(&ucs)))
    });
    g.bench_function("gsm7_400_3parts", |b| {
        b.iter(|| encode_and_split(black_box(&long)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
