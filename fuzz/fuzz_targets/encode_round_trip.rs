//! Any UTF-8 text through choose → build → inbound read → reassemble →
//! decode equals the text, and no part exceeds 140 octets of TP-UD.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgw::encoding::{
    Carrier, Layout, NationalLanguage, Options, TextEncoding, build_segments, fill_bits, inbound,
    prepare, reassembly::Reassembler,
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let carrier = [Carrier::Udh8, Carrier::Udh16, Carrier::Sar][usize::from(flags % 3)];
    let tables = [NationalLanguage::Turkish, NationalLanguage::Hindi];
    let opts = Options {
        carrier,
        national: if flags & 4 != 0 { &tables } else { &[] },
        smart: flags & 8 != 0,
        ..Options::default()
    };
    let Ok(p) = prepare(text, &opts) else { return };
    if p.plan.parts > 255 {
        return;
    }
    let packed = flags & 16 != 0 && !p.text.contains('\r');
    let layout = Layout {
        carrier,
        packed,
        shift: p.plan.shift,
        user_udh: vec![],
    };
    let segs = build_segments(&p.text, p.plan.encoding, &layout, u16::from(flags))
        .expect("plannable text builds");
    assert_eq!(segs.len(), p.plan.submits);
    let mut r = Reassembler::default();
    let mut out = Vec::new();
    for s in segs.iter().rev() {
        let tp_ud = if p.plan.encoding == TextEncoding::Gsm7 && !packed {
            s.udh.len() + (fill_bits(s.udh.len()) + 7 * s.data.len()).div_ceil(8)
        } else {
            s.udh.len() + s.data.len()
        };
        assert!(tp_ud <= 140, "{tp_ud} octets");
        let esm = if s.udh.is_empty() { 0 } else { 0x40 };
        let part = inbound::read(
            esm,
            p.plan.encoding.data_coding(),
            &s.user_data(),
            s.sar,
            packed,
        )
        .expect("own UDH parses");
        out.extend(r.push("s", "d", part, 0));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, p.text.as_ref());
});
