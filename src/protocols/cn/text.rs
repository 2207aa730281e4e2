//! Turns one gateway part (SMPP shape: `data_coding` 0 GSM-7 septets or 8
//! UCS-2, optional UDH) into what the Chinese protocols carry: `Msg_Fmt` 0
//! (ASCII), 8 (UCS-2) or 15 (GBK/GB18030), `TP_udhi` and the UDH kept in the
//! content, `Pk_total`/`Pk_number` read from the UDH. The part count never
//! changes, so a message can fail over between SMPP and Chinese channels.

use encoding_rs::{Encoding, GB18030, GBK};

/// Largest content (UDH included) for `Msg_Fmt` 8 and 15 (CMPP: "≤140").
pub const MAX_OCTETS: usize = 140;
/// Largest content for ASCII (`Msg_Fmt` 0): the UDH plus 153 characters of a
/// concatenated part, or 160 characters of a single message.
pub const MAX_ASCII_OCTETS: usize = 160;

/// `Msg_Fmt` / `MsgFormat` / `MessageCoding` values the gateway sends.
pub mod msg_fmt {
    /// ASCII.
    pub const ASCII: u8 = 0;
    /// UCS-2 (UTF-16BE).
    pub const UCS2: u8 = 8;
    /// GBK (CMPP "GB", SGIP) or GB18030 (SMGP).
    pub const GB: u8 = 15;
}

/// Which Chinese encoding a channel uses for `Msg_Fmt` 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GbFlavour {
    /// GBK (CMPP, SGIP): characters outside GBK fall back to UCS-2.
    Gbk,
    /// GB18030 (SMGP): every Unicode character.
    Gb18030,
}

impl GbFlavour {
    fn encoding(self) -> &'static Encoding {
        match self {
            GbFlavour::Gbk => GBK,
            GbFlavour::Gb18030 => GB18030,
        }
    }
}

/// The channel option `msg_fmt`: how non-ASCII text goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextPreference {
    /// ASCII when the part is ASCII, else UCS-2 (else GB if only that fits).
    #[default]
    Auto,
    /// ASCII when the part is ASCII, else GBK/GB18030 (else UCS-2 if only that fits).
    Gb,
}

/// One part ready for a Chinese submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnText {
    /// Msg_Fmt.
    pub msg_fmt: u8,
    /// TP_udhi: the content starts with a UDH.
    pub udhi: bool,
    /// Pk_total (1 for a single message).
    pub pk_total: u8,
    /// Pk_number (1-based).
    pub pk_number: u8,
    /// UDH (if any) followed by the encoded text.
    pub content: Vec<u8>,
}

/// Why a part cannot be carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// No Chinese encoding fits the part into 140 octets (GSM-7 text with
    /// non-ASCII characters; send such text with encoding `ucs2`).
    #[error("part does not fit {MAX_OCTETS} octets in ASCII, UCS-2 or GB ({0} characters)")]
    TooLong(usize),
}

/// Splits `sm` into (UDH incl. its length octet, rest) when `udhi` is set and the
/// UDH length is sane; otherwise (empty, sm).
pub fn split_udh(udhi: bool, sm: &[u8]) -> (&[u8], &[u8]) {
    if udhi && let Some(&l) = sm.first() {
        let end = 1 + usize::from(l);
        if end <= sm.len() {
            return sm.split_at(end);
        }
    }
    (&[], sm)
}

/// Reads (total, number) from a concatenation IE (0x00 8-bit or 0x08 16-bit ref).
pub fn concat_info(udh: &[u8]) -> Option<(u8, u8)> {
    let mut i = 1;
    while i + 1 < udh.len() {
        let (iei, l) = (udh[i], usize::from(udh[i + 1]));
        let v = udh.get(i + 2..i + 2 + l)?;
        match (iei, l) {
            (0x00, 3) => return Some((v[1], v[2])),
            (0x08, 4) => return Some((v[2], v[3])),
            _ => i += 2 + l,
        }
    }
    None
}

/// Re-encodes one part. `data_coding` 0 (GSM-7 septets) and 8 (UCS-2) are
/// understood; anything else is passed through as binary-safe UCS-2 if it is 8,
/// else as its own code.
pub fn transcode(
    data_coding: u8,
    esm_class: u8,
    short_message: &[u8],
    pref: TextPreference,
    gb: GbFlavour,
) -> Result<CnText, TextError> {
    let udhi = esm_class & 0x40 != 0;
    let (udh, body) = split_udh(udhi, short_message);
    let udhi = !udh.is_empty();
    let (pk_total, pk_number) = concat_info(udh).unwrap_or((1, 1));
    let text = crate::encoding::decode(data_coding, body);
    let mk = |msg_fmt: u8, enc: &[u8]| {
        let mut content = Vec::with_capacity(udh.len() + enc.len());
        content.extend_from_slice(udh);
        content.extend_from_slice(enc);
        CnText {
            msg_fmt,
            udhi,
            pk_total,
            pk_number,
            content,
        }
    };
    // A part planned as UCS-2 goes as UCS-2 (or GB), even when it is ASCII: the
    // message's `encoding` says what went on the wire.
    if data_coding != 8 && text.is_ascii() && udh.len() + text.len() <= MAX_ASCII_OCTETS {
        return Ok(mk(msg_fmt::ASCII, text.as_bytes()));
    }
    let ucs2 = || -> Vec<u8> { text.encode_utf16().flat_map(u16::to_be_bytes).collect() };
    let gb_bytes = || -> Option<Vec<u8>> {
        let (b, _, had_errors) = gb.encoding().encode(&text);
        (!had_errors).then(|| b.into_owned())
    };
    let fits = |b: &Vec<u8>| udh.len() + b.len() <= MAX_OCTETS;
    type Candidate = Option<(u8, Vec<u8>)>;
    let (first, second): (Candidate, Candidate) = match pref {
        TextPreference::Auto => (
            Some((
                msg_fmt::UCS2,
                if data_coding == 8 {
                    body.to_vec()
                } else {
                    ucs2()
                },
            )),
            gb_bytes().map(|b| (msg_fmt::GB, b)),
        ),
        TextPreference::Gb => (
            gb_bytes().map(|b| (msg_fmt::GB, b)),
            Some((
                msg_fmt::UCS2,
                if data_coding == 8 {
                    body.to_vec()
                } else {
                    ucs2()
                },
            )),
        ),
    };
    for (fmt, b) in [first, second].into_iter().flatten() {
        if fits(&b) {
            return Ok(mk(fmt, &b));
        }
    }
    Err(TextError::TooLong(text.chars().count()))
}

/// Decodes content received in a Chinese deliver (MO text) for logs.
pub fn decode(msg_fmt: u8, bytes: &[u8]) -> String {
    match msg_fmt {
        msg_fmt::UCS2 => crate::encoding::decode(0x08, bytes),
        msg_fmt::GB => GB18030.decode_without_bom_handling(bytes).0.into_owned(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn ascii_gsm7_part_becomes_msg_fmt_0() {
        let t = transcode(0, 0, b"Hello", TextPreference::Auto, GbFlavour::Gbk).unwrap();
        assert_eq!(t.msg_fmt, 0);
        assert_eq!(t.content, b"Hello");
        assert_eq!((t.pk_total, t.pk_number, t.udhi), (1, 1, false));
    }

    #[test]
    fn udh_is_kept_and_read() {
        let mut sm = vec![5, 0, 3, 0x2A, 3, 2];
        sm.extend_from_slice(&[0x00, 0x41, 0x4E, 0x2D]); // "A中" in UCS-2
        let t = transcode(8, 0x40, &sm, TextPreference::Auto, GbFlavour::Gbk).unwrap();
        assert_eq!(t.msg_fmt, 8);
        assert!(t.udhi);
        assert_eq!((t.pk_total, t.pk_number), (3, 2));
        assert_eq!(t.content, sm);
        let g = transcode(8, 0x40, &sm, TextPreference::Gb, GbFlavour::Gbk).unwrap();
        assert_eq!(g.msg_fmt, 15);
        assert_eq!(&g.content[6..], &[0x41, 0xD6, 0xD0]); // "A" + 中 in GBK
    }

    #[test]
    fn sixteen_bit_reference_and_garbage_udh() {
        assert_eq!(concat_info(&[6, 8, 4, 1, 2, 5, 4]), Some((5, 4)));
        assert_eq!(concat_info(&[3, 0x24, 1]), None);
        assert_eq!(concat_info(&[9, 0, 3]), None);
        let (u, b) = split_udh(true, &[200, 1, 2]);
        assert!(u.is_empty());
        assert_eq!(b, &[200, 1, 2]);
    }

    /// Audit defect 9: a UCS-2 part of ASCII characters (a backtick is not GSM) went
    /// out as Msg_Fmt 0 while the API said `ucs2`.
    #[test]
    fn ucs2_part_of_ascii_stays_ucs2() {
        let sm: Vec<u8> = "a`b".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let t = transcode(8, 0, &sm, TextPreference::Auto, GbFlavour::Gbk).unwrap();
        assert_eq!((t.msg_fmt, t.content), (msg_fmt::UCS2, sm));
    }

    #[test]
    fn too_long_non_ascii_gsm7_is_refused() {
        let text = format!("é{}", "a".repeat(152));
        let septets: Vec<u8> = text
            .chars()
            .map(|c| if c == 'é' { 0x05 } else { c as u8 })
            .collect();
        assert!(matches!(
            transcode(0, 0, &septets, TextPreference::Auto, GbFlavour::Gb18030),
            Err(TextError::TooLong(153))
        ));
        // Short enough: goes as UCS-2.
        let t = transcode(0, 0, &[0x05, b'a'], TextPreference::Auto, GbFlavour::Gbk).unwrap();
        assert_eq!((t.msg_fmt, t.content), (8, vec![0, 0xE9, 0, b'a']));
    }
}
