//! Byte-exact vectors (3GPP TS 23.038 / 23.040) and properties for national
//! tables, packing, carriers, smart encoding, grapheme-aware splitting,
//! other codings and inbound reassembly.

use super::inbound::{self, Body};
use super::reassembly::Reassembler;
use super::*;
use proptest::prelude::*;

fn layout(carrier: Carrier) -> Layout {
    Layout {
        carrier,
        ..Layout::default()
    }
}

// ---------------------------------------------------------------- vectors

#[test]
fn ts23038_packing_examples() {
    // TS 23.038 6.1.2.1.1: "hellohello" packed in 9 octets.
    let septets: Vec<u8> = "hellohello".bytes().collect();
    assert_eq!(
        pack_septets(&septets, 0),
        [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
    );
    assert_eq!(
        unpack_septets(&[0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37], 0),
        septets
    );
    // TS 23.038 6.1.2.3.1: 7 characters leave 7 spare bits, which carry CR (0x0D)
    // so that they are not read as '@'; the receiver drops it.
    let seven: Vec<u8> = "1234567".bytes().collect();
    let packed = pack_septets(&seven, 0);
    assert_eq!(packed, [0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x1A]);
    assert_eq!(unpack_septets(&packed, 0), seven);
    // 8 characters fill 7 octets exactly: no padding.
    assert_eq!(pack_septets(b"12345678", 0).len(), 7);
}

#[test]
fn ts23040_fill_bits_after_udh() {
    // TS 23.040 9.2.3.24: the first septet starts on a septet boundary after the UDH.
    assert_eq!(fill_bits(0), 0);
    assert_eq!(fill_bits(6), 1); // 8-bit concatenation UDH: 48 bits + 1
    assert_eq!(fill_bits(7), 0); // 16-bit concatenation UDH: 56 bits
    assert_eq!(fill_bits(4), 3); // single shift IE alone: 32 bits + 3
    // "Hello" after a 6-octet UDH: the packed septets shifted by one fill bit.
    assert_eq!(
        pack_septets(&[0x48, 0x65, 0x6C, 0x6C, 0x6F], 1),
        [0x90, 0x65, 0x36, 0xFB, 0x0D]
    );
    let text = "Hello ".repeat(30);
    let lay = Layout {
        carrier: Carrier::Udh8,
        packed: true,
        ..Layout::default()
    };
    let segs = build_segments(&text, TextEncoding::Gsm7, &lay, 0xCC).expect("gsm");
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].udh, [0x05, 0x00, 0x03, 0xCC, 0x02, 0x01]);
    assert_eq!(&segs[0].data[..5], &[0x90, 0x65, 0x36, 0xFB, 0x0D]);
    // 153 septets + 1 fill bit after 6 octets: exactly 140 octets of TP-UD.
    assert_eq!(segs[0].udh.len() + segs[0].data.len(), 140);
}

#[test]
fn ts23040_concatenation_ies() {
    // IE 0x00: 05 00 03 ref total seq; IE 0x08: 06 08 04 ref(2) total seq.
    let text = "x".repeat(161);
    let s8 = build_segments(&text, TextEncoding::Gsm7, &layout(Carrier::Udh8), 0x1234).expect("8");
    assert_eq!(s8[1].udh, [0x05, 0x00, 0x03, 0x34, 0x02, 0x02]);
    let s16 =
        build_segments(&text, TextEncoding::Gsm7, &layout(Carrier::Udh16), 0x1234).expect("16");
    assert_eq!(s16[0].udh, [0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01]);
    assert_eq!(s16[0].udh.to_vec(), concat_udh_16bit(0x1234, 2, 1));
    assert_eq!(s16[0].data.len(), 152);
    // SAR: no UDH, the TLV values instead.
    let sar =
        build_segments(&text, TextEncoding::Gsm7, &layout(Carrier::Sar), 0x1234).expect("sar");
    assert_eq!(sar.len(), 2);
    assert!(sar[0].udh.is_empty());
    assert_eq!(sar[0].sar, Some((0x1234, 2, 1)));
    assert_eq!(sar[0].data.len(), 152, "room for the UDH the SMSC adds");
    assert_eq!(sar[1].sar, Some((0x1234, 2, 2)));
    // Payload: one submit, in message_payload.
    let pl = build_segments(&text, TextEncoding::Gsm7, &layout(Carrier::Payload), 1).expect("pl");
    assert_eq!(pl.len(), 1);
    assert!(pl[0].payload_tlv && pl[0].udh.is_empty() && pl[0].sar.is_none());
    assert_eq!(pl[0].data.len(), 161);
    // A single SMS has no concatenation whatever the carrier.
    for c in [
        Carrier::Udh8,
        Carrier::Udh16,
        Carrier::Sar,
        Carrier::Payload,
    ] {
        let s = build_segments("hi", TextEncoding::Gsm7, &layout(c), 9).expect("one");
        assert_eq!(
            s,
            vec![Segment {
                udh: vec![],
                data: b"hi".to_vec(),
                sar: None,
                payload_tlv: false
            }]
        );
    }
}

#[test]
fn ts23038_capacities() {
    let cap = |e, c, shift: NationalShift| {
        let l = limits(e, c, shift, 0);
        (l.single, l.part)
    };
    let d = NationalShift::DEFAULT;
    let tr_single = NationalShift {
        locking: None,
        single: Some(NationalLanguage::Turkish),
    };
    let tr_both = NationalShift {
        locking: Some(NationalLanguage::Turkish),
        single: Some(NationalLanguage::Turkish),
    };
    assert_eq!(cap(TextEncoding::Gsm7, Carrier::Udh8, d), (160, 153));
    assert_eq!(cap(TextEncoding::Gsm7, Carrier::Udh16, d), (160, 152));
    assert_eq!(cap(TextEncoding::Gsm7, Carrier::Sar, d), (160, 152));
    assert_eq!(
        cap(TextEncoding::Gsm7, Carrier::Udh8, tr_single),
        (155, 149)
    );
    assert_eq!(cap(TextEncoding::Gsm7, Carrier::Udh8, tr_both), (152, 146));
    assert_eq!(cap(TextEncoding::Ucs2, Carrier::Udh8, d), (70, 67));
    assert_eq!(cap(TextEncoding::Ucs2, Carrier::Udh16, d), (70, 66));
    assert_eq!(cap(TextEncoding::Binary, Carrier::Udh8, d), (140, 134));
    assert_eq!(cap(TextEncoding::Binary, Carrier::Udh16, d), (140, 133));
    assert_eq!(cap(TextEncoding::Latin1, Carrier::Udh8, d), (140, 134));
}

#[test]
fn national_tables_match_the_default_alphabet() {
    // The generated default tables are the hand-written GSM 03.38 ones.
    let basic = national_tables::LOCKING[0].expect("default locking");
    for (s, (a, b)) in basic.iter().zip(gsm7::BASIC.iter()).enumerate() {
        if s != usize::from(gsm7::ESC) {
            assert_eq!(a, b, "septet {s:#04x}");
        }
    }
    let ext = &national_tables::SINGLE[0];
    let assigned: Vec<(u8, char)> = (0..128u8)
        .filter(|&i| ext[usize::from(i)] != '\0')
        .map(|i| (i, ext[usize::from(i)]))
        .collect();
    assert_eq!(assigned, gsm7::EXTENSION.to_vec());
    // Every language but Spanish has a locking table; all have a single shift.
    for l in NationalLanguage::ALL {
        assert_eq!(l.has_locking(), l != NationalLanguage::Spanish, "{l:?}");
        assert_eq!(NationalLanguage::from_code(l.code()), Some(l));
        assert_eq!(NationalLanguage::from_id(l.id()), Some(l));
    }
    assert_eq!(NationalLanguage::from_id(0), None);
    assert_eq!(NationalLanguage::from_id(14), None);
}

#[test]
fn turkish_tables_byte_exact() {
    let single = NationalShift {
        locking: None,
        single: Some(NationalLanguage::Turkish),
    };
    // Turkish single shift (A.2.1): Ş 0x53, ş 0x73, ğ 0x67, İ 0x49, ı 0x69, ç 0x63.
    let s = build_segments(
        "Şşğİıç",
        TextEncoding::Gsm7,
        &Layout {
            shift: single,
            ..Layout::default()
        },
        0,
    )
    .expect("tr");
    assert_eq!(s[0].udh, [0x03, 0x24, 0x01, 0x01]);
    assert_eq!(
        s[0].data,
        [
            0x1B, 0x53, 0x1B, 0x73, 0x1B, 0x67, 0x1B, 0x49, 0x1B, 0x69, 0x1B, 0x63
        ]
    );
    // Turkish locking shift (A.3.1): ğ 0x0C, Ğ 0x0B, ş 0x1D, Ş 0x1C, İ 0x40, ı 0x07, ç 0x60, € 0x04.
    let both = NationalShift {
        locking: Some(NationalLanguage::Turkish),
        single: Some(NationalLanguage::Turkish),
    };
    let s = build_segments(
        "ğĞşŞİıç€",
        TextEncoding::Gsm7,
        &Layout {
            shift: both,
            ..Layout::default()
        },
        0,
    )
    .expect("tr");
    assert_eq!(s[0].udh, [0x06, 0x24, 0x01, 0x01, 0x25, 0x01, 0x01]);
    assert_eq!(s[0].data, [0x0C, 0x0B, 0x1D, 0x1C, 0x40, 0x07, 0x60, 0x04]);
    assert_eq!(decode_gsm7(&s[0].data, both), "ğĞşŞİıç€");
    // Spanish single shift (A.2.2): á 0x61, í 0x69, ó 0x6F, ú 0x75, Á 0x41.
    let es = NationalShift {
        locking: None,
        single: Some(NationalLanguage::Spanish),
    };
    let s = build_segments(
        "áíóúÁ",
        TextEncoding::Gsm7,
        &Layout {
            shift: es,
            ..Layout::default()
        },
        0,
    )
    .expect("es");
    assert_eq!(
        s[0].data,
        [0x1B, 0x61, 0x1B, 0x69, 0x1B, 0x6F, 0x1B, 0x75, 0x1B, 0x41]
    );
    // Hindi locking shift (A.3.6): क 0x15 (U+0915), ह 0x4D (U+0939).
    let hi = NationalShift {
        locking: Some(NationalLanguage::Hindi),
        single: Some(NationalLanguage::Hindi),
    };
    let s = build_segments(
        "कह",
        TextEncoding::Gsm7,
        &Layout {
            shift: hi,
            ..Layout::default()
        },
        0,
    )
    .expect("hi");
    assert_eq!(s[0].data, [0x15, 0x4D]);
}

#[test]
fn auto_picks_the_fewest_parts() {
    let tr = [NationalLanguage::Turkish];
    // 100 Turkish characters: UCS-2 needs 2 parts; Turkish locking shift 1.
    let text = "Çığ düşün şişe ".repeat(7);
    let p = prepare(
        &text,
        &Options {
            national: &tr,
            ..Options::default()
        },
    )
    .expect("tr");
    assert_eq!(p.plan.encoding, TextEncoding::Gsm7);
    assert_eq!(p.plan.shift.locking, Some(NationalLanguage::Turkish));
    assert_eq!(p.plan.parts, 1);
    let without = plan(&text, EncodingChoice::Auto).expect("ucs2");
    assert_eq!((without.encoding, without.parts), (TextEncoding::Ucs2, 2));
    // Plain GSM text never takes a national table (the IE would only cost room).
    let p = prepare(
        "Hello world",
        &Options {
            national: &tr,
            ..Options::default()
        },
    )
    .expect("gsm");
    assert!(p.plan.shift.is_default());
    // One Turkish letter in a GSM text: a national table instead of UCS-2.
    let p = prepare(
        "Merhaba ş",
        &Options {
            national: &tr,
            ..Options::default()
        },
    )
    .expect("single");
    // One part either way; the pair with fewer septets wins (ş is basic in the locking table).
    assert_eq!(p.plan.parts, 1);
    assert_eq!(p.plan.shift.locking, Some(NationalLanguage::Turkish));
    assert_eq!(p.plan.units, 9);
    // Forced gsm7 accepts national tables too; a Cyrillic letter still fails.
    assert!(
        prepare(
            "şğ",
            &Options {
                choice: EncodingChoice::Gsm7,
                national: &tr,
                ..Options::default()
            }
        )
        .is_ok()
    );
    assert!(matches!(
        prepare(
            "şП",
            &Options {
                choice: EncodingChoice::Gsm7,
                national: &tr,
                ..Options::default()
            }
        ),
        Err(EncodingError::NotGsm7 { position: 0, .. })
    ));
}

#[test]
fn smart_encoding_replaces_only_when_it_helps() {
    let text = "\u{201C}Hello\u{201D} \u{2013} it\u{2019}s 5\u{00A0}pm\u{2026}";
    let off = prepare(text, &Options::default()).expect("off");
    assert_eq!(off.plan.encoding, TextEncoding::Ucs2);
    assert!(off.replacements.is_empty());
    let on = prepare(
        text,
        &Options {
            smart: true,
            ..Options::default()
        },
    )
    .expect("on");
    assert_eq!(on.plan.encoding, TextEncoding::Gsm7);
    assert_eq!(on.text, "\"Hello\" - it's 5 pm...");
    assert!(on.replacements.contains(&Replacement {
        from: '\u{201C}',
        to: "\"",
        count: 1
    }));
    assert!(on.replacements.contains(&Replacement {
        from: '\u{2026}',
        to: "...",
        count: 1
    }));
    // An emoji keeps the text in UCS-2 anyway: nothing is replaced.
    let emoji = format!("{text} 😀");
    let p = prepare(
        &emoji,
        &Options {
            smart: true,
            ..Options::default()
        },
    )
    .expect("emoji");
    assert_eq!(p.plan.encoding, TextEncoding::Ucs2);
    assert!(p.replacements.is_empty());
    assert_eq!(p.text, emoji);
}

#[test]
fn graphemes_stay_whole_when_it_costs_nothing() {
    // 66 units of 'a' then a family emoji (ZWJ sequence, 11 units): the
    // character-level cut would put its first person in part 1.
    let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
    let text = format!("{}{family}{}", "a".repeat(64), "b".repeat(60));
    let p = plan(&text, EncodingChoice::Ucs2).expect("plan");
    assert_eq!(p.parts, 3);
    let parts = part_breakdown(&text, &p, &Layout::default());
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().any(|x| x.text.contains(family)), "{parts:?}");
    // Flags (regional indicator pairs) and skin tones likewise.
    let flag = "🇩🇪";
    let text = format!("{}{flag}{}", "a".repeat(65), "b".repeat(70));
    let p = plan(&text, EncodingChoice::Ucs2).expect("plan");
    let parts = part_breakdown(&text, &p, &Layout::default());
    assert!(parts.iter().any(|x| x.text.contains(flag)), "{parts:?}");
    // When keeping the cluster would cost a part, the minimum wins.
    let text = format!("{}e\u{0301}{}", "a".repeat(66), "b".repeat(66));
    let p = plan(&text, EncodingChoice::Ucs2).expect("plan");
    assert_eq!(p.parts, 2);
    let parts = part_breakdown(&text, &p, &Layout::default());
    assert_eq!(parts[0].text, format!("{}e", "a".repeat(66)));
}

#[test]
fn other_codings() {
    let p = prepare(
        "Grüße",
        &Options {
            choice: EncodingChoice::Latin1,
            ..Options::default()
        },
    )
    .expect("latin1");
    assert_eq!((p.plan.encoding, p.plan.units), (TextEncoding::Latin1, 5));
    let s = build_segments("Grüße", TextEncoding::Latin1, &Layout::default(), 0).expect("latin1");
    assert_eq!(s[0].data, [0x47, 0x72, 0xFC, 0xDF, 0x65]);
    assert_eq!(decode(0x03, &s[0].data), "Grüße");
    assert!(matches!(
        prepare(
            "Grüße",
            &Options {
                choice: EncodingChoice::Ia5,
                ..Options::default()
            }
        ),
        Err(EncodingError::NotRepresentable { position: 2, .. })
    ));
    let s = build_segments("a`b", TextEncoding::Ia5, &Layout::default(), 0).expect("ia5");
    assert_eq!(s[0].data, b"a`b");
    // Binary with a caller UDH (port addressing IE 0x05), split with it in every part.
    let lay = Layout {
        user_udh: vec![0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0],
        ..Layout::default()
    };
    let hex_text = "ab".repeat(200);
    let s = build_segments(&hex_text, TextEncoding::Binary, &lay, 7).expect("binary");
    assert_eq!(s.len(), 2, "128 + 72 octets after a 12-octet UDH");
    assert_eq!(
        s[0].udh,
        [
            0x0B, 0x00, 0x03, 0x07, 0x02, 0x01, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0
        ]
    );
    assert!(s.iter().all(|x| x.udh.len() + x.data.len() <= 140));
    assert_eq!(s.iter().map(|x| x.data.len()).sum::<usize>(), 200);
    assert!(matches!(
        build_segments("abc", TextEncoding::Binary, &lay, 0),
        Err(EncodingError::Binary(_))
    ));
    // GBK / GB18030.
    let parts = gb::split("你好,世界", gb::GbCoding::Gbk, 140, 134).expect("gbk");
    assert_eq!(
        parts,
        vec![vec![0xC4, 0xE3, 0xBA, 0xC3, 0x2C, 0xCA, 0xC0, 0xBD, 0xE7]]
    );
    assert_eq!(gb::decode(&parts[0], gb::GbCoding::Gbk), "你好,世界");
    assert!(gb::split("😀", gb::GbCoding::Gbk, 140, 134).is_err());
    let long = "你".repeat(100);
    let parts = gb::split(&long, gb::GbCoding::Gb18030, 140, 134).expect("gb18030");
    assert_eq!(
        parts.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![134, 66]
    );
    let emoji = gb::split("😀", gb::GbCoding::Gb18030, 140, 134).expect("4 octets");
    assert_eq!(emoji[0].len(), 4);
    assert_eq!(gb::decode(&emoji[0], gb::GbCoding::Gb18030), "😀");
}

#[test]
fn concat_refs_rotate_per_destination() {
    let refs = ConcatRefs::new(0);
    let a: Vec<u16> = (0..300).map(|_| refs.next("+4915112345678")).collect();
    let distinct: std::collections::HashSet<u16> = a.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        300,
        "300 long messages to one number never share a reference"
    );
    assert!(a.iter().all(|r| r & 0xFF != 0), "the low byte is never 0");
    // The 8-bit carrier uses the low byte: 255 in a row are distinct.
    let low: std::collections::HashSet<u8> = a[..255].iter().map(|r| (r & 0xFF) as u8).collect();
    assert_eq!(low.len(), 255);
    // Another destination has its own counter.
    let b = refs.next("+4915112345679");
    assert_ne!(refs.next("+4915112345679"), b);
}

#[test]
fn udh_parse_and_inbound_read() {
    let h = udh::parse(&[0x05, 0x00, 0x03, 0xAB, 0x03, 0x02, 0x41]).expect("udh");
    assert_eq!(h.len, 6);
    assert_eq!(
        h.concat,
        Some(udh::Concat {
            reference: 0xAB,
            sixteen_bit: false,
            total: 3,
            seq: 2
        })
    );
    let h = udh::parse(&[0x09, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01, 0x24, 0x01, 0x01]).expect("udh");
    assert_eq!(
        h.concat.map(|c| (c.reference, c.sixteen_bit)),
        Some((0x1234, true))
    );
    assert_eq!(h.shift.single, Some(NationalLanguage::Turkish));
    assert_eq!(udh::parse(&[]), Err(udh::UdhError::Empty));
    assert!(matches!(
        udh::parse(&[0x05, 0x00]),
        Err(udh::UdhError::TooLong { .. })
    ));
    assert!(matches!(
        udh::parse(&[0x02, 0x00, 0x03]),
        Err(udh::UdhError::Truncated { iei: 0 })
    ));
    // seq 0 / seq > total: ignored, as receivers do.
    assert_eq!(
        udh::parse(&[0x05, 0x00, 0x03, 1, 2, 3])
            .expect("udh")
            .concat,
        None
    );

    let p = inbound::read(
        0x40,
        0x08,
        &[0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 0x04, 0x1F],
        None,
        false,
    )
    .expect("read");
    assert_eq!(p.body_kind, Body::Ucs2);
    assert_eq!(p.body, [0x04, 0x1F]);
    let p = inbound::read(0x00, 0x00, b"hi", Some((0x0102, 2, 1)), false).expect("sar");
    assert_eq!(
        p.concat.map(|c| (c.reference, c.total, c.seq)),
        Some((0x0102, 2, 1))
    );
    // Packed GSM after a 6-octet UDH (one fill bit).
    let mut data = vec![0x05, 0x00, 0x03, 0x01, 0x01, 0x01];
    data.extend(pack_septets(&[0x48, 0x65, 0x6C, 0x6C, 0x6F], 1));
    let p = inbound::read(0x40, 0x00, &data, None, true).expect("packed");
    assert_eq!(Body::Gsm7(NationalShift::DEFAULT).decode(&p.body), "Hello");
    // Data coding groups: 0xF0 class 0 GSM, 0xF4 8-bit, 0x18 UCS-2, 0x06 Cyrillic.
    assert_eq!(
        inbound::read(0, 0xF0, b"A", None, false)
            .expect("f0")
            .body_kind,
        Body::Gsm7(NationalShift::DEFAULT)
    );
    assert_eq!(
        inbound::read(0, 0xF4, b"A", None, false)
            .expect("f4")
            .body_kind,
        Body::Binary
    );
    assert_eq!(
        inbound::read(0, 0x18, b"A", None, false)
            .expect("18")
            .body_kind,
        Body::Ucs2
    );
    assert_eq!(Body::Other(encoding_rs::ISO_8859_5).decode(&[0xBF]), "П");
}

#[test]
fn reassembly_out_of_order_duplicates_and_timeout() {
    let text = "Ünïcödé long message ".repeat(10);
    let segs =
        build_segments(&text, TextEncoding::Ucs2, &layout(Carrier::Udh16), 0xBEEF).expect("ucs2");
    assert!(segs.len() >= 3);
    let parts: Vec<inbound::Part> = segs
        .iter()
        .map(|s| inbound::read(0x40, 0x08, &s.user_data(), None, false).expect("part"))
        .collect();
    let mut r = Reassembler::new(1000, 100);
    // Last part first, then a duplicate, then the rest.
    let n = parts.len();
    assert!(r.push("+491", "12345", parts[n - 1].clone(), 0).is_empty());
    assert!(r.push("+491", "12345", parts[n - 1].clone(), 1).is_empty());
    let mut done = Vec::new();
    for p in parts[..n - 1].iter().rev() {
        done.extend(r.push("+491", "12345", p.clone(), 2));
    }
    assert_eq!(done.len(), 1);
    assert!(done[0].complete);
    assert_eq!(done[0].text, text);
    assert_eq!(done[0].duplicates, 1);
    assert_eq!(r.pending(), 0);
    // One part missing: nothing until the timeout, then what arrived, flagged.
    for p in parts.iter().skip(1) {
        assert!(r.push("+491", "12345", p.clone(), 10).is_empty());
    }
    assert!(r.expire(500).is_empty());
    let late = r.expire(1010);
    assert_eq!(late.len(), 1);
    assert!(!late[0].complete);
    assert_eq!(late[0].missing, vec![1]);
    assert!(text.ends_with(&late[0].text));
    // Same reference from another sender is another message.
    let mut r = Reassembler::new(1000, 1);
    assert!(r.push("+491", "1", parts[0].clone(), 0).is_empty());
    let pushed_out = r.push("+492", "1", parts[0].clone(), 1);
    assert_eq!(
        pushed_out.len(),
        1,
        "capacity 1: the older group goes out incomplete"
    );
    assert_eq!(pushed_out[0].source, "+491");
}

// ------------------------------------------------------------- properties

/// Text mixing GSM, Turkish, Cyrillic, emoji, ZWJ, flags and combining marks.
fn mixed_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::char::range('a', 'z'),
        1 => prop::sample::select(vec!['{', '€', '^', ' ', '\r', '\n', 'ş', 'ğ', 'ı', 'İ']),
        1 => prop::char::range('А', 'я'),
        1 => prop::char::range('\u{1F600}', '\u{1F64F}'),
        1 => prop::sample::select(vec!['\u{200D}', '\u{0301}', '\u{1F3FD}', '\u{1F1E9}', '\u{1F1EA}', '\u{FE0F}']),
        1 => any::<char>(),
    ];
    prop::collection::vec(c, 1..600).prop_map(|v| v.into_iter().collect())
}

fn carrier() -> impl Strategy<Value = Carrier> {
    prop::sample::select(vec![Carrier::Udh8, Carrier::Udh16, Carrier::Sar])
}

/// TP-UD octets of one segment as the air interface carries it (septets packed).
fn tp_ud_octets(s: &Segment, encoding: TextEncoding, packed: bool) -> usize {
    if encoding == TextEncoding::Gsm7 && !packed {
        s.udh.len() + (fill_bits(s.udh.len()) + 7 * s.data.len()).div_ceil(8)
    } else {
        s.udh.len() + s.data.len()
    }
}

/// Parts by an independent rule: capacity from the UDH octets, each char an atom.
fn reference_parts(text: &str, a: &dyn Fn(char) -> usize, single: usize, part: usize) -> usize {
    let total: usize = text.chars().map(a).sum();
    if total <= single {
        return 1;
    }
    let (mut n, mut fill) = (1, 0);
    for c in text.chars() {
        let k = a(c);
        if fill + k > part {
            n += 1;
            fill = 0;
        }
        fill += k;
    }
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// split → reassemble → decode == input, no part over 140 octets of TP-UD,
    /// part count minimal for the chosen encoding, for every carrier and packing.
    #[test]
    fn split_reassemble_decode_round_trip(
        text in mixed_text(),
        carrier in carrier(),
        packed in any::<bool>(),
        national in any::<bool>(),
        smart in any::<bool>(),
        reference in any::<u16>(),
    ) {
        let tr = [NationalLanguage::Turkish, NationalLanguage::Spanish];
        let opts = Options {
            carrier,
            national: if national { &tr } else { &[] },
            smart,
            ..Options::default()
        };
        let prepared = prepare(&text, &opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let plan = &prepared.plan;
        // A text ending in CR exactly at an octet boundary is ambiguous when packed (TS 23.038).
        // A part ending in CR exactly at an octet boundary is ambiguous when
        // packed (TS 23.038 6.1.2.3.1), so packed cases carry no CR.
        let packed = packed && !prepared.text.contains('\r');
        let lay = Layout { carrier, packed, shift: plan.shift, user_udh: vec![] };
        let segs = build_segments(&prepared.text, plan.encoding, &lay, reference)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(segs.len(), plan.submits);
        for s in &segs {
            prop_assert!(tp_ud_octets(s, plan.encoding, packed) <= 140,
                "{} octets", tp_ud_octets(s, plan.encoding, packed));
        }
        // Minimal part count for the chosen encoding and tables.
        let l = limits(plan.encoding, carrier, plan.shift, 0);
        let expected = match plan.encoding {
            TextEncoding::Gsm7 => {
                let g = Gsm(plan.shift);
                reference_parts(&prepared.text, &|c| g.cost(c).unwrap_or(99), l.single, l.part)
            }
            _ => reference_parts(&prepared.text, &|c: char| c.len_utf16(), l.single, l.part),
        };
        prop_assert_eq!(plan.parts, expected);
        // Reassemble in reverse order with a duplicate, then decode.
        let mut r = Reassembler::new(60_000, 10);
        let mut out = Vec::new();
        let dc = plan.encoding.data_coding();
        let dup = if segs.len() > 1 { segs.last() } else { None };
        for s in segs.iter().rev().chain(dup) {
            let esm = if s.udh.is_empty() { 0 } else { 0x40 };
            let part = inbound::read(esm, dc, &s.user_data(), s.sar, packed)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            out.extend(r.push("+4915112345678", "ACME", part, 0));
        }
        prop_assert_eq!(out.len(), 1);
        prop_assert!(out[0].complete);
        prop_assert_eq!(&out[0].text, prepared.text.as_ref());
        // Without smart encoding the text is never changed.
        if !smart {
            prop_assert_eq!(prepared.text.as_ref(), text.as_str());
        }
        // Auto never picks more parts than UCS-2 or default GSM-7 of the original.
        prop_assert!(plan.parts <= ucs2_plan(&text, carrier).parts);
        if let Ok(g) = best_gsm(&text, &[NationalShift::DEFAULT], carrier) {
            prop_assert!(plan.parts <= g.parts);
        }
    }

    /// Part texts of the preview concatenate to the text.
    #[test]
    fn preview_split_concatenates_to_text(text in mixed_text(), carrier in carrier()) {
        let p = prepare(&text, &Options { carrier, ..Options::default() })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let lay = Layout { carrier, ..Layout::default() };
        let parts = part_breakdown(&p.text, &p.plan, &lay);
        let joined: String = parts.iter().map(|x| x.text.as_str()).collect();
        prop_assert_eq!(&joined, &text);
        prop_assert_eq!(parts.len(), p.plan.parts);
        prop_assert!(parts.iter().all(|x| x.units <= x.capacity));
    }

    /// Packing round-trips for every fill.
    #[test]
    fn pack_unpack_round_trip(septets in prop::collection::vec(0u8..128, 0..200), fill in 0usize..7) {
        let septets: Vec<u8> = if septets.last() == Some(&0x0D) { septets[..septets.len() - 1].to_vec() } else { septets };
        let packed = pack_septets(&septets, fill);
        prop_assert_eq!((fill + 7 * septets.len()).div_ceil(8), packed.len());
        prop_assert_eq!(unpack_septets(&packed, fill), septets);
    }

    /// Decoders never panic on arbitrary octets.
    #[test]
    fn inbound_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), esm in any::<u8>(), dc in any::<u8>(), packed in any::<bool>()) {
        if let Ok(p) = inbound::read(esm, dc, &bytes, None, packed) {
            let _ = p.body_kind.decode(&p.body);
        }
        let _ = gb::decode(&bytes, gb::GbCoding::Gb18030);
        for l in NationalLanguage::ALL {
            let _ = decode_gsm7(&bytes, NationalShift { locking: Some(l).filter(|l| l.has_locking()), single: Some(l) });
        }
    }
}
