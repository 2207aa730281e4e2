//! Table tests and property tests for the encoding module.

use super::*;
use proptest::prelude::*;

fn gsm_plan(text: &str) -> Plan {
    plan(text, EncodingChoice::Gsm7).expect("gsm7 text")
}

fn ucs_plan(text: &str) -> Plan {
    plan(text, EncodingChoice::Ucs2).expect("ucs2 text")
}

fn part_lens(text: &str, encoding: TextEncoding) -> Vec<usize> {
    encode_parts(text, encoding)
        .expect("encodable")
        .iter()
        .map(Vec::len)
        .collect()
}

// ---------------------------------------------------------------- tables

#[test]
fn basic_table_round_trips_every_septet() {
    for septet in 0u8..128 {
        if septet == gsm7::ESC {
            continue;
        }
        let c = gsm7::BASIC[usize::from(septet)];
        assert_eq!(
            gsm7::encode_char(c),
            Some(gsm7::Septet::Basic(septet)),
            "septet {septet:#04x} {c:?}"
        );
        assert_eq!(decode(0x00, &[septet]), c.to_string());
    }
}

#[test]
fn extension_table_round_trips() {
    for (code, c) in gsm7::EXTENSION {
        assert_eq!(gsm7::encode_char(c), Some(gsm7::Septet::Extended(code)));
        assert_eq!(decode(0x00, &[gsm7::ESC, code]), c.to_string());
    }
}

#[test]
fn low_table_holds_exactly_the_alphabet() {
    // U+0000..=U+00FF go through one compile-time table: it must say "not
    // GSM" for every character neither table lists (ç, `, controls, ...).
    for code in 0u32..0x100 {
        let Some(c) = char::from_u32(code) else {
            continue;
        };
        let basic = gsm7::BASIC
            .iter()
            .enumerate()
            .position(|(s, &b)| b == c && s != usize::from(gsm7::ESC));
        let ext = gsm7::EXTENSION.iter().find(|&&(_, e)| e == c);
        let expected = match (basic, ext) {
            (Some(s), _) => Some(gsm7::Septet::Basic(s as u8)),
            (None, Some(&(code, _))) => Some(gsm7::Septet::Extended(code)),
            (None, None) => None,
        };
        assert_eq!(gsm7::encode_char(c), expected, "{c:?}");
    }
}

#[test]
fn table_spot_checks() {
    assert_eq!(encode_parts("$", TextEncoding::Gsm7), Ok(vec![vec![0x02]]));
    assert_eq!(encode_parts("¤", TextEncoding::Gsm7), Ok(vec![vec![0x24]]));
    assert_eq!(encode_parts("@", TextEncoding::Gsm7), Ok(vec![vec![0x00]]));
    assert_eq!(
        encode_parts("€", TextEncoding::Gsm7),
        Ok(vec![vec![0x1B, 0x65]])
    );
    assert_eq!(
        encode_parts("\u{0C}", TextEncoding::Gsm7),
        Ok(vec![vec![0x1B, 0x0A]])
    );
    assert_eq!(encode_parts("\n", TextEncoding::Gsm7), Ok(vec![vec![0x0A]]));
    assert_eq!(
        encode_parts("Aa0", TextEncoding::Gsm7),
        Ok(vec![vec![0x41, 0x61, 0x30]])
    );
    assert!(!is_gsm7('`'));
    assert!(!is_gsm7('\u{1B}'));
    assert!(!is_gsm7('ç'));
    assert!(!is_gsm7('П'));
    assert!(!is_gsm7('😀'));
    for c in "^{}\\[~]|€\u{0C}".chars() {
        assert!(is_gsm7(c), "{c:?}");
        assert_eq!(gsm_plan(&c.to_string()).units, 2, "{c:?}");
    }
    for c in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà".chars()
    {
        assert!(is_gsm7(c), "{c:?}");
        assert_eq!(gsm_plan(&c.to_string()).units, 1, "{c:?}");
    }
    // All printable ASCII except the backtick is GSM-7.
    for b in 0x20u8..0x7F {
        assert_eq!(is_gsm7(char::from(b)), b != b'`', "{:?}", char::from(b));
    }
}

#[test]
fn encoding_metadata() {
    assert_eq!(TextEncoding::Gsm7.data_coding(), 0x00);
    assert_eq!(TextEncoding::Ucs2.data_coding(), 0x08);
    assert_eq!(TextEncoding::Gsm7.as_str(), "gsm7");
    assert_eq!(TextEncoding::Ucs2.to_string(), "ucs2");
    assert_eq!(
        serde_json::to_string(&TextEncoding::Ucs2).expect("json"),
        "\"ucs2\""
    );
    assert_eq!(
        serde_json::from_str::<EncodingChoice>("\"auto\"").expect("json"),
        EncodingChoice::Auto
    );
    assert_eq!(
        serde_json::from_str::<EncodingChoice>("\"gsm7\"").expect("json"),
        EncodingChoice::Gsm7
    );
    assert_eq!(EncodingChoice::default(), EncodingChoice::Auto);
    assert_eq!(concat_udh_8bit(0xAB, 3, 1), [0x05, 0x00, 0x03, 0xAB, 3, 1]);
    assert_eq!(CONCAT_UDH_8BIT_LEN, concat_udh_8bit(0, 0, 0).len());
}

// ------------------------------------------------------------- splitting

#[test]
fn gsm_part_boundaries() {
    let cases = [
        (1, 1),
        (160, 1),
        (161, 2),
        (306, 2),
        (307, 3),
        (459, 3),
        (460, 4),
    ];
    for (len, parts) in cases {
        let text = "a".repeat(len);
        let p = gsm_plan(&text);
        assert_eq!(
            (p.encoding, p.parts, p.units, p.characters),
            (TextEncoding::Gsm7, parts, len, len),
            "len {len}"
        );
        assert_eq!(
            encode_parts(&text, TextEncoding::Gsm7).expect("gsm").len(),
            parts
        );
    }
    assert_eq!(
        part_lens(&"a".repeat(161), TextEncoding::Gsm7),
        vec![153, 8]
    );
    assert_eq!(part_lens(&"a".repeat(160), TextEncoding::Gsm7), vec![160]);
}

#[test]
fn ucs_part_boundaries() {
    for (len, parts) in [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3)] {
        let text = "П".repeat(len);
        let p = plan(&text, EncodingChoice::Auto).expect("auto");
        assert_eq!(
            (p.encoding, p.parts, p.units, p.characters),
            (TextEncoding::Ucs2, parts, len, len),
            "len {len}"
        );
        assert_eq!(
            encode_parts(&text, TextEncoding::Ucs2).expect("ucs").len(),
            parts
        );
    }
    // 67 + 4 units = 134 + 8 octets.
    assert_eq!(part_lens(&"П".repeat(71), TextEncoding::Ucs2), vec![134, 8]);
}

#[test]
fn extension_char_at_boundary_moves_whole() {
    // 152 plain + '€' would occupy septets 153 and 154: the pair moves.
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let parts = encode_parts(&text, TextEncoding::Gsm7).expect("gsm");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].len(), 152);
    assert_eq!(&parts[1][..2], &[0x1B, 0x65]);
    assert_eq!(parts[1].len(), 12);
    let p = gsm_plan(&text);
    assert_eq!((p.parts, p.units, p.characters), (2, 164, 163));

    // 151 plain + '€' exactly fills 153 septets.
    let text = format!("{}€{}", "a".repeat(151), "b".repeat(10));
    assert_eq!(part_lens(&text, TextEncoding::Gsm7), vec![153, 10]);
}

#[test]
fn extension_char_pushes_over_single_limit() {
    let text = format!("{}€", "a".repeat(159));
    let p = gsm_plan(&text);
    assert_eq!((p.units, p.parts, p.characters), (161, 2, 160));
    assert_eq!(part_lens(&text, TextEncoding::Gsm7), vec![153, 8]);

    let text = format!("{}€", "a".repeat(158));
    let p = gsm_plan(&text);
    assert_eq!((p.units, p.parts), (160, 1));
    assert_eq!(part_lens(&text, TextEncoding::Gsm7), vec![160]);
}

#[test]
fn only_extension_chars() {
    // 80 × 2 = 160 septets: one SMS.
    assert_eq!(gsm_plan(&"€".repeat(80)).parts, 1);
    // 81 × 2 = 162: 76 per part (152 septets), 5 left.
    let text = "{".repeat(81);
    assert_eq!(part_lens(&text, TextEncoding::Gsm7), vec![152, 10]);
    assert_eq!(gsm_plan(&text).parts, 2);
}

#[test]
fn emoji_straddling_boundary_moves_whole() {
    // 66 units + emoji (2 units) + filler: emoji would be units 67 and 68.
    let text = format!("{}😀{}", "П".repeat(66), "П".repeat(10));
    let parts = encode_parts(&text, TextEncoding::Ucs2).expect("ucs");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].len(), 132);
    assert_eq!(parts[1].len(), 24);
    assert_eq!(decode(0x08, &parts[1][..4]), "😀");
    let p = plan(&text, EncodingChoice::Auto).expect("auto");
    assert_eq!(
        (p.encoding, p.parts, p.units, p.characters),
        (TextEncoding::Ucs2, 2, 78, 77)
    );
}

#[test]
fn only_emoji() {
    // 35 emoji = 70 units: one SMS.
    let p = plan(&"😀".repeat(35), EncodingChoice::Auto).expect("auto");
    assert_eq!((p.parts, p.units, p.characters), (1, 70, 35));
    // 36 emoji = 72 units: 33 per part (66 units), 3 left.
    let text = "🎉".repeat(36);
    let p = plan(&text, EncodingChoice::Auto).expect("auto");
    assert_eq!((p.parts, p.units, p.characters), (2, 72, 36));
    assert_eq!(part_lens(&text, TextEncoding::Ucs2), vec![132, 12]);
    // 100 emoji = 200 units: 33 + 33 + 33 + 1.
    assert_eq!(
        part_lens(&"😀".repeat(100), TextEncoding::Ucs2),
        vec![132, 132, 132, 4]
    );
    assert_eq!(ucs_plan(&"😀".repeat(100)).parts, 4);
}

// ------------------------------------------------------------- choosing

#[test]
fn auto_choice() {
    let p = plan("Hello @£$", EncodingChoice::Auto).expect("auto");
    assert_eq!(
        p,
        Plan {
            encoding: TextEncoding::Gsm7,
            shift: NationalShift::DEFAULT,
            parts: 1,
            submits: 1,
            characters: 9,
            units: 9
        }
    );
    let p = plan("Привет", EncodingChoice::Auto).expect("auto");
    assert_eq!(
        p,
        Plan {
            encoding: TextEncoding::Ucs2,
            shift: NationalShift::DEFAULT,
            parts: 1,
            submits: 1,
            characters: 6,
            units: 6
        }
    );
    let p = plan("Hello 😀", EncodingChoice::Auto).expect("auto");
    assert_eq!(
        p,
        Plan {
            encoding: TextEncoding::Ucs2,
            shift: NationalShift::DEFAULT,
            parts: 1,
            submits: 1,
            characters: 7,
            units: 8
        }
    );
    // Forced UCS-2 for a GSM-able text.
    let p = plan("Hello", EncodingChoice::Ucs2).expect("ucs2");
    assert_eq!((p.encoding, p.units), (TextEncoding::Ucs2, 5));
    assert_eq!(
        encode_parts("Hi", TextEncoding::Ucs2),
        Ok(vec![vec![0x00, b'H', 0x00, b'i']])
    );
}

#[test]
fn errors() {
    let err = plan("abПc", EncodingChoice::Gsm7).expect_err("not gsm");
    assert_eq!(
        err,
        EncodingError::NotGsm7 {
            character: 'П',
            position: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "character 'П' at position 2 is not in the GSM 03.38 alphabet"
    );
    // Position counts chars, not bytes.
    assert_eq!(
        encode_parts("ééé`", TextEncoding::Gsm7),
        Err(EncodingError::NotGsm7 {
            character: '`',
            position: 3
        })
    );
    for choice in [
        EncodingChoice::Auto,
        EncodingChoice::Gsm7,
        EncodingChoice::Ucs2,
    ] {
        assert_eq!(plan("", choice), Err(EncodingError::Empty));
    }
    assert_eq!(
        encode_parts("", TextEncoding::Gsm7),
        Err(EncodingError::Empty)
    );
    assert_eq!(
        encode_parts("", TextEncoding::Ucs2),
        Err(EncodingError::Empty)
    );
}

// --------------------------------------------------------------- decoding

#[test]
fn decode_edge_cases() {
    // GSM: trailing ESC, ESC ESC, ESC + unassigned code, high octets.
    assert_eq!(decode(0x00, &[0x41, 0x1B]), "A ");
    assert_eq!(decode(0x00, &[0x1B, 0x1B, 0x41]), " A");
    assert_eq!(decode(0x00, &[0x1B, 0x41]), "A");
    assert_eq!(decode(0x00, &[0x80, 0x41, 0xFF]), "\u{FFFD}A\u{FFFD}");
    assert_eq!(decode(0x00, &[0x1B, 0xFF]), "\u{FFFD}");
    assert_eq!(decode(0x00, &[]), "");
    // IA5 and Latin-1.
    assert_eq!(decode(0x01, b"Hi`"), "Hi`");
    assert_eq!(decode(0x01, &[0x48, 0xE9]), "H\u{FFFD}");
    assert_eq!(decode(0x03, &[0x48, 0xE9]), "Hé");
    // UCS-2: surrogate pair, lone surrogates, odd length.
    assert_eq!(decode(0x08, &[0xD8, 0x3D, 0xDE, 0x00]), "😀");
    assert_eq!(decode(0x08, &[0xD8, 0x3D, 0x00, 0x41]), "\u{FFFD}A");
    assert_eq!(decode(0x08, &[0xDE, 0x00]), "\u{FFFD}");
    assert_eq!(decode(0x08, &[0x00, 0x41, 0x00]), "A\u{FFFD}");
    // Anything else: lossy UTF-8.
    assert_eq!(decode(0x04, "é".as_bytes()), "é");
    assert_eq!(decode(0xF5, &[0xFF]), "\u{FFFD}");
}

// ------------------------------------------------------------- properties

/// Characters from both GSM tables plus a few awkward ones, so long texts
/// hit ESC pairs at part boundaries often.
fn gsm_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => (0usize..128)
            .prop_filter("not ESC", |i| *i != 0x1B)
            .prop_map(|i| gsm7::BASIC[i]),
        1 => (0usize..gsm7::EXTENSION.len()).prop_map(|i| gsm7::EXTENSION[i].1),
    ]
}

fn gsm_text() -> impl Strategy<Value = String> {
    prop::collection::vec(gsm_char(), 0..500).prop_map(|v| v.into_iter().collect())
}

/// Mixed BMP and non-BMP text, so surrogate pairs hit part boundaries.
fn ucs_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        2 => prop::char::range('a', 'z'),
        2 => prop::char::range('А', 'я'),
        2 => prop::char::range('\u{1F600}', '\u{1F64F}'),
        1 => any::<char>(),
    ];
    prop::collection::vec(c, 0..300).prop_map(|v| v.into_iter().collect())
}

/// Any text: arbitrary strings, GSM-biased ones and surrogate-heavy ones.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), gsm_text(), ucs_text()]
}

/// Parts by the textbook rule: units per char, 160/153 or 70/67, a char
/// that does not fit starts the next part.
fn reference_part_count(text: &str, encoding: TextEncoding) -> usize {
    let cost = |c: char| match encoding {
        TextEncoding::Gsm7 => {
            if "^{}\\[~]|€\u{0C}".contains(c) {
                2
            } else {
                1
            }
        }
        _ => c.len_utf16(),
    };
    let (single, part) = match encoding {
        TextEncoding::Gsm7 => (160, 153),
        _ => (70, 67),
    };
    let total: usize = text.chars().map(cost).sum();
    if total <= single {
        return 1;
    }
    let (mut n, mut fill) = (1, 0);
    for c in text.chars() {
        let k = cost(c);
        if fill + k > part {
            n += 1;
            fill = 0;
        }
        fill += k;
    }
    n
}

/// Check every splitting invariant for one text and encoding.
fn check_parts(text: &str, encoding: TextEncoding) -> Result<(), TestCaseError> {
    let choice = match encoding {
        TextEncoding::Gsm7 => EncodingChoice::Gsm7,
        TextEncoding::Ucs2 => EncodingChoice::Ucs2,
        _ => unreachable!("only gsm7 and ucs2 here"),
    };
    let p = plan(text, choice).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let parts = encode_parts(text, encoding).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(p.encoding, encoding);
    prop_assert_eq!(p.parts, parts.len());
    prop_assert_eq!(p.characters, text.chars().count());
    let octets_per_unit = encoding.octets_per_unit();
    let total: usize = parts.iter().map(Vec::len).sum();
    prop_assert_eq!(p.units * octets_per_unit, total);

    let max_octets = if parts.len() == 1 {
        encoding.single_units() * octets_per_unit
    } else {
        encoding.part_units() * octets_per_unit
    };
    let dc = encoding.data_coding();
    let mut per_part = String::new();
    for part in &parts {
        prop_assert!(!part.is_empty());
        prop_assert!(part.len() <= max_octets, "part of {} octets", part.len());
        match encoding {
            TextEncoding::Gsm7 => {
                // No lone ESC at the end: walk the pairs.
                let mut i = 0;
                while i < part.len() {
                    i += if part[i] == gsm7::ESC { 2 } else { 1 };
                }
                prop_assert_eq!(i, part.len(), "ESC pair split");
                prop_assert!(part.iter().all(|&b| b < 0x80));
            }
            TextEncoding::Ucs2 => {
                prop_assert_eq!(part.len() % 2, 0);
                let last = u16::from_be_bytes([part[part.len() - 2], part[part.len() - 1]]);
                prop_assert!(
                    !(0xD800..0xDC00).contains(&last),
                    "ends with high surrogate"
                );
                let first = u16::from_be_bytes([part[0], part[1]]);
                prop_assert!(
                    !(0xDC00..0xE000).contains(&first),
                    "starts with low surrogate"
                );
            }
            _ => unreachable!("only gsm7 and ucs2 here"),
        }
        // Each part decodes on its own: nothing was split.
        per_part.push_str(&decode(dc, part));
    }
    prop_assert_eq!(&per_part, text);
    prop_assert_eq!(&decode(dc, &parts.concat()), text);
    // Minimal: the same count as an independent character-level greedy cut
    // (optimal for an ordered sequence), even when grapheme clusters moved.
    prop_assert_eq!(parts.len(), reference_part_count(text, encoding));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_and_split_invariants(text in any_text()) {
        if text.is_empty() {
            prop_assert_eq!(plan(&text, EncodingChoice::Auto), Err(EncodingError::Empty));
            return Ok(());
        }
        check_parts(&text, TextEncoding::Ucs2)?;
        let all_gsm = text.chars().all(is_gsm7);
        if all_gsm {
            check_parts(&text, TextEncoding::Gsm7)?;
        } else {
            let first_bad = text.chars().position(|c| !is_gsm7(c));
            let is_not_gsm7_at_first_bad = matches!(
                encode_parts(&text, TextEncoding::Gsm7),
                Err(EncodingError::NotGsm7 { position, .. }) if Some(position) == first_bad
            );
            prop_assert!(is_not_gsm7_at_first_bad);
        }
        let auto = plan(&text, EncodingChoice::Auto).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = if all_gsm { TextEncoding::Gsm7 } else { TextEncoding::Ucs2 };
        prop_assert_eq!(auto.encoding, expected);
        prop_assert!(auto.parts >= 1);
    }

    #[test]
    fn decode_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        dc in prop_oneof![Just(0u8), Just(1), Just(3), Just(8), Just(4), any::<u8>()],
    ) {
        let text = decode(dc, &bytes);
        if dc == 0x00 || dc == 0x01 || dc == 0x03 {
            prop_assert!(text.chars().count() <= bytes.len());
        }
    }
}
