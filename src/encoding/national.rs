//! National language shift tables (3GPP TS 23.038 Annex A) as an alphabet:
//! which language a channel accepts, which (locking, single) pair a text is
//! written with, and char ↔ septet lookup for any pair. The default pair
//! (no national table) is the plain GSM 03.38 alphabet.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::gsm7::{ESC, Septet};
use super::national_tables::{LOCKING, SINGLE};

/// A national language of TS 23.038 with its national language identifier
/// (the value carried in UDH IE 0x24/0x25).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NationalLanguage {
    /// Turkish (1): locking and single shift.
    #[serde(rename = "tr")]
    Turkish = 1,
    /// Spanish (2): single shift only.
    #[serde(rename = "es")]
    Spanish = 2,
    /// Portuguese (3).
    #[serde(rename = "pt")]
    Portuguese = 3,
    /// Bengali and Assamese (4).
    #[serde(rename = "bn")]
    Bengali = 4,
    /// Gujarati (5).
    #[serde(rename = "gu")]
    Gujarati = 5,
    /// Hindi (6).
    #[serde(rename = "hi")]
    Hindi = 6,
    /// Kannada (7).
    #[serde(rename = "kn")]
    Kannada = 7,
    /// Malayalam (8).
    #[serde(rename = "ml")]
    Malayalam = 8,
    /// Oriya (9).
    #[serde(rename = "or")]
    Oriya = 9,
    /// Punjabi (10).
    #[serde(rename = "pa")]
    Punjabi = 10,
    /// Tamil (11).
    #[serde(rename = "ta")]
    Tamil = 11,
    /// Telugu (12).
    #[serde(rename = "te")]
    Telugu = 12,
    /// Urdu (13).
    #[serde(rename = "ur")]
    Urdu = 13,
}

impl NationalLanguage {
    /// Every language, in identifier order.
    pub const ALL: [NationalLanguage; 13] = [
        NationalLanguage::Turkish,
        NationalLanguage::Spanish,
        NationalLanguage::Portuguese,
        NationalLanguage::Bengali,
        NationalLanguage::Gujarati,
        NationalLanguage::Hindi,
        NationalLanguage::Kannada,
        NationalLanguage::Malayalam,
        NationalLanguage::Oriya,
        NationalLanguage::Punjabi,
        NationalLanguage::Tamil,
        NationalLanguage::Telugu,
        NationalLanguage::Urdu,
    ];

    /// The national language identifier of TS 23.038 table 6.2.1.2.4.1.
    #[must_use]
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The language for an identifier (inbound UDH), if it is one.
    #[must_use]
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }

    /// The channel-option code ("tr", "es", ...), the same as the serde form.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            NationalLanguage::Turkish => "tr",
            NationalLanguage::Spanish => "es",
            NationalLanguage::Portuguese => "pt",
            NationalLanguage::Bengali => "bn",
            NationalLanguage::Gujarati => "gu",
            NationalLanguage::Hindi => "hi",
            NationalLanguage::Kannada => "kn",
            NationalLanguage::Malayalam => "ml",
            NationalLanguage::Oriya => "or",
            NationalLanguage::Punjabi => "pa",
            NationalLanguage::Tamil => "ta",
            NationalLanguage::Telugu => "te",
            NationalLanguage::Urdu => "ur",
        }
    }

    /// Parses a channel-option code.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// Does the language have a locking shift table (all but Spanish)?
    #[must_use]
    pub fn has_locking(self) -> bool {
        LOCKING[usize::from(self.id())].is_some()
    }
}

/// The tables a GSM-7 text is written with: `None` is the default alphabet
/// (locking) or the default extension table (single). Default is plain GSM 03.38.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct NationalShift {
    /// Locking shift table (UDH IE 0x25), replacing the basic table.
    pub locking: Option<NationalLanguage>,
    /// Single shift table (UDH IE 0x24), replacing the extension table.
    pub single: Option<NationalLanguage>,
}

impl NationalShift {
    /// No national table: the GSM 03.38 default alphabet and extension table.
    pub const DEFAULT: NationalShift = NationalShift {
        locking: None,
        single: None,
    };

    /// Is this the plain default alphabet?
    #[must_use]
    pub fn is_default(self) -> bool {
        self.locking.is_none() && self.single.is_none()
    }

    /// Octets the national IEs add to a UDH (3 per IE, without the UDHL octet).
    #[must_use]
    pub fn ie_octets(self) -> usize {
        3 * (usize::from(self.locking.is_some()) + usize::from(self.single.is_some()))
    }

    /// The IEs themselves: `25 01 id` (locking) and `24 01 id` (single).
    pub(crate) fn push_ies(self, out: &mut Vec<u8>) {
        if let Some(l) = self.single {
            out.extend_from_slice(&[0x24, 0x01, l.id()]);
        }
        if let Some(l) = self.locking {
            out.extend_from_slice(&[0x25, 0x01, l.id()]);
        }
    }
}

/// Reverse lookup of one table: char → code.
type Reverse = HashMap<char, u8>;

fn reverse(table: &[char; 128]) -> Reverse {
    let mut map = HashMap::new();
    for (code, &c) in table.iter().enumerate() {
        if c != '\0' && code != usize::from(ESC) {
            // The first position wins for the few characters a table lists twice.
            map.entry(c).or_insert(code as u8);
        }
    }
    map
}

fn locking_reverse(id: usize) -> Option<&'static Reverse> {
    static MAPS: OnceLock<Vec<Option<Reverse>>> = OnceLock::new();
    MAPS.get_or_init(|| LOCKING.iter().map(|t| t.as_ref().map(reverse)).collect())
        .get(id)?
        .as_ref()
}

fn single_reverse(id: usize) -> Option<&'static Reverse> {
    static MAPS: OnceLock<Vec<Reverse>> = OnceLock::new();
    MAPS.get_or_init(|| SINGLE.iter().map(reverse).collect())
        .get(id)
}

fn locking_id(shift: NationalShift) -> usize {
    shift.locking.map_or(0, |l| usize::from(l.id()))
}

fn single_id(shift: NationalShift) -> usize {
    shift.single.map_or(0, |l| usize::from(l.id()))
}

/// Map a character to its septet(s) with these tables, or `None`.
/// Small enough to inline: the default alphabet (almost every text) is a
/// table lookup, the national tables' hash lookups stay out of line.
#[inline]
pub(crate) fn encode_char(c: char, shift: NationalShift) -> Option<Septet> {
    if shift.is_default() {
        return super::gsm7::encode_char(c);
    }
    encode_national(c, shift)
}

/// [`encode_char`] with at least one national table.
#[inline(never)]
fn encode_national(c: char, shift: NationalShift) -> Option<Septet> {
    if let Some(&code) = locking_reverse(locking_id(shift)).and_then(|m| m.get(&c)) {
        return Some(Septet::Basic(code));
    }
    single_reverse(single_id(shift))
        .and_then(|m| m.get(&c))
        .map(|&code| Septet::Extended(code))
}

/// Decode unpacked septets written with these tables; same rules as the
/// default decoder (ESC + unassigned → the basic character, ESC ESC and a
/// trailing ESC → space, non-septets → U+FFFD).
pub(crate) fn decode(bytes: &[u8], shift: NationalShift) -> String {
    if shift.is_default() {
        return super::gsm7::decode(bytes);
    }
    let basic = LOCKING[locking_id(shift)]
        .as_ref()
        .unwrap_or(&super::gsm7::BASIC);
    let single = &SINGLE[single_id(shift)];
    let basic_char = |code: u8| match basic[usize::from(code)] {
        '\0' => ' ',
        c => c,
    };
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied();
    while let Some(b) = iter.next() {
        let c = if b > 0x7F {
            char::REPLACEMENT_CHARACTER
        } else if b == ESC {
            match iter.next() {
                None | Some(ESC) => ' ',
                Some(next) if next > 0x7F => char::REPLACEMENT_CHARACTER,
                Some(next) => match single[usize::from(next)] {
                    '\0' => basic_char(next),
                    c => c,
                },
            }
        } else {
            basic_char(b)
        };
        out.push(c);
    }
    out
}
