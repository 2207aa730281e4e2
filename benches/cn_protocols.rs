//! Encode + decode of one submit PDU per protocol (CMPP 2.0, CMPP 3.0, SMGP
//! 3.0, SGIP 1.2), the per-message codec cost on the gateway's hot path.
//! Target: ≥ 500,000 submits/s per core each (docs/benchmarks.md).
//!
//! Run: `cargo bench --bench cn_protocols`.
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smsgw::protocols::cmpp::codec as cm;
use smsgw::protocols::sgip::codec as sg;
use smsgw::protocols::smgp::codec as sm;

const TEXT: &[u8] = b"Your verification code is 493027. It expires in 10 minutes.";

fn cmpp_submit() -> cm::Submit {
    cm::Submit {
        pk_total: 1,
        pk_number: 1,
        registered_delivery: 1,
        msg_level: 1,
        service_id: "MTEST".into(),
        fee_user_type: 2,
        msg_src: "901234".into(),
        fee_type: "01".into(),
        fee_code: "000000".into(),
        src_id: "10690".into(),
        dest_terminal_ids: vec!["8613800138000".into()],
        content: TEXT.to_vec(),
        ..cm::Submit::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("submit_encode_decode");
    g.throughput(Throughput::Elements(1));
    for v in [cm::Version::V20, cm::Version::V30] {
        let pdu = cm::Pdu::Submit(Box::new(cmpp_submit()));
        g.bench_function(format!("cmpp_{v:?}"), |b| {
            b.iter(|| {
                let f = black_box(&pdu).encode(7, v);
                black_box(cm::Pdu::decode(&f, v).is_ok())
            })
        });
    }
    let smgp = sm::Pdu::Submit(Box::new(sm::Submit {
        msg_type: 6,
        need_report: 1,
        priority: 1,
        service_id: "MTEST".into(),
        fee_type: "01".into(),
        fee_code: "000000".into(),
        fixed_fee: "000000".into(),
        src_term_id: "10659".into(),
        dest_term_ids: vec!["8613800138000".into()],
        content: TEXT.to_vec(),
        tlvs: vec![
            sm::Tlv {
                tag: sm::tag::PK_TOTAL,
                value: vec![1],
            },
            sm::Tlv {
                tag: sm::tag::PK_NUMBER,
                value: vec![1],
            },
        ],
        ..sm::Submit::default()
    }));
    g.bench_function("smgp", |b| {
        b.iter(|| {
            let f = black_box(&smgp).encode(7);
            black_box(sm::Pdu::decode(&f).is_ok())
        })
    });
    let sgip = sg::Pdu::Submit(Box::new(sg::Submit {
        sp_number: "10655".into(),
        charge_number: "0".repeat(21),
        user_numbers: vec!["8613800138000".into()],
        corp_id: "12345".into(),
        service_type: "MTEST".into(),
        fee_type: 1,
        report_flag: 1,
        content: TEXT.to_vec(),
        ..sg::Submit::default()
    }));
    let seq = sg::Seq {
        node: 3_010_012_345,
        time: 1_203_065_310,
        n: 7,
    };
    g.bench_function("sgip", |b| {
        b.iter(|| {
            let f = black_box(&sgip).encode(seq);
            black_box(sg::Pdu::decode(&f).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
