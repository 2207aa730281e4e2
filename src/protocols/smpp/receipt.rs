//! Delivery receipt parsing and message-id normalisation (pure, no I/O).
//!
//! SMSCs report receipts in two ways, often both at once: TLVs
//! (`receipted_message_id`, `message_state`, `network_error_code`) and the
//! informal SMPP 3.4 Appendix B text
//! `id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...`.
//! TLVs win when present; the text fills the gaps. Real SMSCs vary the text
//! (key case, `Text:`, 12-digit dates, missing fields, extra spaces) and write
//! the message id differently from the submit_sm_resp (hex vs decimal, leading
//! zeros, letter case), hence [`id_keys`].

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// Outcome reported by a delivery receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// DELIVRD: delivered to the handset.
    Delivered,
    /// EXPIRED: validity period ran out.
    Expired,
    /// DELETED: cancelled or deleted in the SMSC.
    Deleted,
    /// UNDELIV: permanently undeliverable.
    Undeliverable,
    /// ACCEPTD: accepted by the SMSC (intermediate).
    Accepted,
    /// UNKNOWN: state unknown or unparseable.
    Unknown,
    /// REJECTD: rejected by the network.
    Rejected,
    /// ENROUTE: still in transit (intermediate).
    Enroute,
}

impl ReceiptState {
    /// True for states after which no further receipt is expected.
    pub fn is_final(self) -> bool {
        !matches!(self, ReceiptState::Accepted | ReceiptState::Enroute)
    }

    /// The 7-character `stat:` value of the text format.
    pub fn stat_text(self) -> &'static str {
        match self {
            ReceiptState::Delivered => "DELIVRD",
            ReceiptState::Expired => "EXPIRED",
            ReceiptState::Deleted => "DELETED",
            ReceiptState::Undeliverable => "UNDELIV",
            ReceiptState::Accepted => "ACCEPTD",
            ReceiptState::Unknown => "UNKNOWN",
            ReceiptState::Rejected => "REJECTD",
            ReceiptState::Enroute => "ENROUTE",
        }
    }

    /// The `message_state` TLV value (SMPP 3.4 §5.2.28).
    pub fn message_state(self) -> u8 {
        match self {
            ReceiptState::Enroute => 1,
            ReceiptState::Delivered => 2,
            ReceiptState::Expired => 3,
            ReceiptState::Deleted => 4,
            ReceiptState::Undeliverable => 5,
            ReceiptState::Accepted => 6,
            ReceiptState::Unknown => 7,
            ReceiptState::Rejected => 8,
        }
    }

    /// Maps a `message_state` TLV value; 0 (SCHEDULED, SMPP 5) counts as en route.
    pub fn from_message_state(value: u8) -> Self {
        match value {
            0 | 1 => ReceiptState::Enroute,
            2 => ReceiptState::Delivered,
            3 => ReceiptState::Expired,
            4 => ReceiptState::Deleted,
            5 => ReceiptState::Undeliverable,
            6 => ReceiptState::Accepted,
            8 => ReceiptState::Rejected,
            _ => ReceiptState::Unknown,
        }
    }

    /// Maps a `stat:` value, tolerating case and long forms (`DELIVERED`,
    /// `UNDELIVERABLE`, `FAILED`, ...). Anything else is `Unknown`.
    pub fn from_stat(stat: &str) -> Self {
        let s = stat.trim().to_ascii_uppercase();
        let p = |prefix: &str| s.starts_with(prefix);
        if p("DELIV") {
            ReceiptState::Delivered
        } else if p("UNDEL") || p("FAIL") {
            ReceiptState::Undeliverable
        } else if p("EXPIR") {
            ReceiptState::Expired
        } else if p("DELET") {
            ReceiptState::Deleted
        } else if p("ACCEP") {
            ReceiptState::Accepted
        } else if p("REJEC") {
            ReceiptState::Rejected
        } else if p("ENROU") || p("SCHED") {
            ReceiptState::Enroute
        } else {
            ReceiptState::Unknown
        }
    }
}

/// The raw fields of a receipt's text, each present only if found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptText {
    /// `id:`
    pub id: Option<String>,
    /// `sub:`
    pub sub: Option<String>,
    /// `dlvrd:`
    pub dlvrd: Option<String>,
    /// `submit date:` (10 or 12 digits, raw; see [`parse_receipt_date`]).
    pub submit_date: Option<String>,
    /// `done date:` (raw).
    pub done_date: Option<String>,
    /// `stat:`
    pub stat: Option<String>,
    /// `err:`
    pub err: Option<String>,
    /// `text:` (everything after it).
    pub text: Option<String>,
}

impl ReceiptText {
    fn is_empty(&self) -> bool {
        *self == ReceiptText::default()
    }
}

/// A parsed delivery receipt, as handed to the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The SMSC's message id exactly as written in the receipt (TLV or text);
    /// match it against submit ids with [`id_keys`].
    pub smsc_message_id: String,
    /// Reported outcome.
    pub state: ReceiptState,
    /// The text `err:` field, else the network_error_code TLV as `type:code`.
    pub error_code: Option<String>,
    /// The text fields, when the receipt had a parseable text.
    pub text_fields: Option<ReceiptText>,
}

/// True if an esm_class marks a deliver_sm as a receipt (MC delivery receipt
/// 0x04 or intermediate notification 0x20).
pub fn is_receipt_esm_class(esm_class: u8) -> bool {
    esm_class & 0x24 != 0
}

/// Parses a receipt deliver_sm from its TLVs and/or text. Returns None if the
/// esm_class does not mark a receipt or no message id can be found.
pub fn parse_receipt(
    esm_class: u8,
    short_message: &[u8],
    receipted_message_id: Option<&str>,
    message_state: Option<u8>,
    network_error_code: Option<(u8, u16)>,
) -> Option<Receipt> {
    if !is_receipt_esm_class(esm_class) {
        return None;
    }
    let text = receipt_text_from_bytes(short_message);
    let fields = parse_receipt_fields(&text);
    let tlv_id = receipted_message_id
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let smsc_message_id = tlv_id.map(str::to_string).or_else(|| fields.id.clone())?;
    let state = match (message_state, fields.stat.as_deref()) {
        (Some(v), _) => ReceiptState::from_message_state(v),
        (None, Some(stat)) => ReceiptState::from_stat(stat),
        (None, None) => ReceiptState::Unknown,
    };
    let error_code = fields
        .err
        .clone()
        .or_else(|| network_error_code.map(|(t, c)| format!("{t}:{c}")));
    Some(Receipt {
        smsc_message_id,
        state,
        error_code,
        text_fields: if fields.is_empty() {
            None
        } else {
            Some(fields)
        },
    })
}

/// Parses the receipt text format: `(id, state, err)`. Tolerant of key case,
/// `Text:`, missing fields, 12-digit dates and extra spaces. None if there is
/// no `id:`. A missing `stat:` gives `Unknown`.
pub fn parse_receipt_text(text: &str) -> Option<(String, ReceiptState, Option<String>)> {
    let f = parse_receipt_fields(text);
    let id = f.id?;
    let state = f
        .stat
        .as_deref()
        .map(ReceiptState::from_stat)
        .unwrap_or(ReceiptState::Unknown);
    Some((id, state, f.err))
}

/// Decodes receipt bytes to text: lossy UTF-8, NULs removed (so a UCS-2
/// encoded ASCII receipt still parses). Borrows the bytes when they are
/// already clean UTF-8, as nearly every receipt is.
fn receipt_text_from_bytes(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if bytes.contains(&0) {
        let filtered: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
        std::borrow::Cow::Owned(String::from_utf8_lossy(&filtered).into_owned())
    } else {
        String::from_utf8_lossy(bytes)
    }
}

const KEYS: [&[&str]; 8] = [
    &["id"],
    &["sub"],
    &["dlvrd"],
    &["submit", "date"],
    &["done", "date"],
    &["stat"],
    &["err"],
    &["text"],
];
const TEXT_KEY: usize = 7;

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r' || b == b'\n'
}

/// Matches one of [`KEYS`] (in any letter case) followed by `:` at byte `i`.
/// Returns the key's index and where its value starts.
fn match_key(text: &[u8], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (text[i - 1].is_ascii_alphanumeric() || text[i - 1] == b'_') {
        return None;
    }
    // Every key starts with one of these letters: most bytes go no further.
    if !matches!(
        text[i].to_ascii_lowercase(),
        b'i' | b's' | b'd' | b'e' | b't'
    ) {
        return None;
    }
    'keys: for (k, words) in KEYS.iter().enumerate() {
        let mut j = i;
        for (n, word) in words.iter().enumerate() {
            if n > 0 {
                let start = j;
                while j < text.len() && (is_blank(text[j]) || text[j] == b'_') {
                    j += 1;
                }
                if j == start {
                    continue 'keys;
                }
            }
            let w = word.as_bytes();
            if !text
                .get(j..j + w.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(w))
            {
                continue 'keys;
            }
            j += w.len();
        }
        while j < text.len() && is_blank(text[j]) {
            j += 1;
        }
        if j < text.len() && text[j] == b':' {
            return Some((k, j + 1));
        }
    }
    None
}

/// Splits receipt text into its fields. Each value runs to the next key; all
/// but `text:` keep only their first whitespace-separated token. The first
/// occurrence of a key wins.
pub fn parse_receipt_fields(text: &str) -> ReceiptText {
    let bytes = text.as_bytes();
    let mut out = ReceiptText::default();
    // The key found last and where its value starts: its value ends where the
    // next key begins (or at the end of the text).
    let mut open: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        let Some((k, value_start)) = match_key(bytes, i) else {
            i += 1;
            continue;
        };
        if let Some((prev, start)) = open.replace((k, value_start)) {
            fill(&mut out, prev, text.get(start..i).unwrap_or(""));
        }
        if k == TEXT_KEY {
            break;
        }
        i = value_start;
    }
    if let Some((k, start)) = open {
        fill(&mut out, k, text.get(start..).unwrap_or(""));
    }
    out
}

/// Stores the value of key `k` unless that field is already set.
fn fill(out: &mut ReceiptText, k: usize, raw: &str) {
    let raw = raw.trim();
    let value = if k == TEXT_KEY {
        raw
    } else {
        raw.split_whitespace().next().unwrap_or("")
    };
    let slot = match k {
        0 => &mut out.id,
        1 => &mut out.sub,
        2 => &mut out.dlvrd,
        3 => &mut out.submit_date,
        4 => &mut out.done_date,
        5 => &mut out.stat,
        6 => &mut out.err,
        _ => &mut out.text,
    };
    if slot.is_none() && (k == TEXT_KEY || !value.is_empty()) {
        *slot = Some(value.to_string());
    }
}

/// Parses a receipt date `YYMMDDhhmm` or `YYMMDDhhmmss` (years 2000-2099).
pub fn parse_receipt_date(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fmt = match s.len() {
        10 => "%y%m%d%H%M",
        12 => "%y%m%d%H%M%S",
        _ => return None,
    };
    NaiveDateTime::parse_from_str(s, fmt).ok()
}

/// Keys under which a message id is indexed so that a receipt matches even
/// when the SMSC writes the id differently (hex in one place, decimal in the
/// other, leading zeros dropped, other letter case). Keys: lowercase trimmed
/// with leading zeros stripped; if all decimal digits and it fits u128, also
/// the lowercase hex of that value; if all hex digits and it fits u128, also
/// the decimal of that value. Non-numeric ids (UUIDs, etc.) get just the
/// lowercase form. An empty id has no keys.
pub fn id_keys(raw: &str) -> Vec<String> {
    readings(raw, true, true)
}

/// The normalised id, then (when asked and it applies) the hex form of it read as a
/// decimal number and the decimal form of it read as a hex number.
fn readings(raw: &str, decimal_to_hex: bool, hex_to_decimal: bool) -> Vec<String> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Vec::new();
    }
    let stripped = lower.trim_start_matches('0');
    let base = if stripped.is_empty() { "0" } else { stripped };
    let mut keys = vec![base.to_string()];
    let mut push = |k: String| {
        if !keys.contains(&k) {
            keys.push(k);
        }
    };
    if decimal_to_hex
        && base.bytes().all(|b| b.is_ascii_digit())
        && let Ok(v) = base.parse::<u128>()
    {
        push(format!("{v:x}"));
    }
    if hex_to_decimal
        && base.bytes().all(|b| b.is_ascii_hexdigit())
        && let Ok(v) = u128::from_str_radix(base, 16)
    {
        push(v.to_string());
    }
    keys
}

/// How a channel's SMSC writes message ids in its receipts (channel option
/// `dlr_id_format`). `Auto` reads every id both ways, which matches an SMSC that writes
/// the submit_sm_resp id in one base and the receipt's in the other without being told;
/// `Decimal` and `Hex` fix the receipt's base, so that `2748` in a receipt is not also
/// taken for 0x2748 (or the other way round) and cannot match a second message by it.
/// The submit_sm_resp id may still be in either base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiptIdFormat {
    /// Either base (the default).
    #[default]
    Auto,
    /// Receipt ids are decimal numbers.
    Decimal,
    /// Receipt ids are hexadecimal numbers.
    Hex,
}

impl ReceiptIdFormat {
    /// The option's value (`"auto"`, `"decimal"`, `"hex"`); `None` for anything else.
    pub fn parse(value: &str) -> Option<ReceiptIdFormat> {
        match value {
            "auto" => Some(ReceiptIdFormat::Auto),
            "decimal" => Some(ReceiptIdFormat::Decimal),
            "hex" => Some(ReceiptIdFormat::Hex),
            _ => None,
        }
    }

    /// The format a channel's `options` JSON names (`Auto` when it names none).
    pub fn of_options_json(options_json: &str) -> ReceiptIdFormat {
        serde_json::from_str::<serde_json::Value>(options_json)
            .ok()
            .and_then(|o| o.get("dlr_id_format")?.as_str().and_then(Self::parse))
            .unwrap_or_default()
    }

    /// Small number for an atomic (see `ChannelRuntime`).
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// The inverse of [`ReceiptIdFormat::to_u8`].
    pub fn from_u8(v: u8) -> ReceiptIdFormat {
        match v {
            1 => ReceiptIdFormat::Decimal,
            2 => ReceiptIdFormat::Hex,
            _ => ReceiptIdFormat::Auto,
        }
    }

    /// The readings of a receipt's id: its own form first. An id that is not a number in
    /// the declared base is read both ways, as `Auto` does.
    pub fn receipt_keys(self, raw: &str) -> Vec<String> {
        match self {
            ReceiptIdFormat::Decimal if all_digits(raw) => readings(raw, true, false),
            ReceiptIdFormat::Hex if all_hex(raw) => readings(raw, false, true),
            _ => id_keys(raw),
        }
    }

    /// The readings of a submit_sm_resp id: its own form first, then the forms a receipt
    /// in the declared base would write the same number in.
    pub fn response_keys(self, raw: &str) -> Vec<String> {
        match self {
            ReceiptIdFormat::Auto => id_keys(raw),
            ReceiptIdFormat::Decimal => readings(raw, false, true),
            ReceiptIdFormat::Hex => readings(raw, true, false),
        }
    }
}

fn all_digits(raw: &str) -> bool {
    let t = raw.trim();
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

fn all_hex(raw: &str) -> bool {
    let t = raw.trim();
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    /// The parser as it was before it stopped lowercasing a copy of the text and
    /// collecting the keys first: the reference the faster one must agree with.
    fn reference_fields(text: &str) -> ReceiptText {
        // Written with string slicing rather than byte indexes, so that it is a second
        // formulation of the key grammar and not a copy of the parser under test.
        fn key_at(lower: &str, i: usize) -> Option<(usize, usize)> {
            let before = lower[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            KEYS.iter().enumerate().find_map(|(k, words)| {
                let mut rest = &lower[i..];
                for (n, word) in words.iter().enumerate() {
                    if n > 0 {
                        let gap = rest.trim_start_matches([' ', '\t', '\r', '\n', '_']);
                        if gap.len() == rest.len() {
                            return None;
                        }
                        rest = gap;
                    }
                    rest = rest.strip_prefix(word)?;
                }
                let rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
                rest.starts_with(':')
                    .then(|| (k, lower.len() - rest.len() + 1))
            })
        }
        let lower = text.to_ascii_lowercase();
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        let mut i = 0;
        while i < lower.len() {
            if !lower.is_char_boundary(i) {
                i += 1;
                continue;
            }
            if let Some((k, value_start)) = key_at(&lower, i) {
                found.push((k, i, value_start));
                if k == TEXT_KEY {
                    break;
                }
                i = value_start;
            } else {
                i += 1;
            }
        }
        let mut out = ReceiptText::default();
        for (n, &(k, _, value_start)) in found.iter().enumerate() {
            let end = found.get(n + 1).map(|f| f.1).unwrap_or(text.len());
            fill(&mut out, k, text.get(value_start..end).unwrap_or(""));
        }
        out
    }

    proptest::proptest! {
        /// Receipt-like texts from key fragments in any case, separators and junk:
        /// the parser finds exactly the fields the reference finds.
        #[test]
        fn fields_equal_the_reference(parts in proptest::collection::vec(
            proptest::prop_oneof![
                "(?i)(id|sub|dlvrd|submit|done|date|stat|err|text)",
                "[ \t_:]{1,3}",
                "[0-9A-Za-z]{0,12}",
                "[\\x00-\\x7fé€]{0,4}",
            ],
            0..40,
        )) {
            let text: String = parts.concat();
            proptest::prop_assert_eq!(parse_receipt_fields(&text), reference_fields(&text));
        }
    }

    #[test]
    fn receipt_text_table() {
        type Row = (
            &'static str,
            Option<(&'static str, ReceiptState, Option<&'static str>)>,
        );
        let rows: Vec<Row> = vec![
            (
                "id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello",
                Some(("0123456789", ReceiptState::Delivered, Some("000"))),
            ),
            (
                "ID:abc SUB:001 DLVRD:000 SUBMIT DATE:2401011200 DONE DATE:2401011201 STAT:UNDELIV ERR:034 TEXT:x",
                Some(("abc", ReceiptState::Undeliverable, Some("034"))),
            ),
            (
                "id:77 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:EXPIRED err:000 Text:id:99 stat:DELIVRD",
                Some(("77", ReceiptState::Expired, Some("000"))),
            ),
            (
                "id:5 sub:001 dlvrd:001 submit date:240101120005 done date:240101120107 stat:DELIVRD err:0",
                Some(("5", ReceiptState::Delivered, Some("0"))),
            ),
            (
                "id:5F3A sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 stat:REJECTD text:",
                Some(("5F3A", ReceiptState::Rejected, None)),
            ),
            (
                "  id:  42   sub:001   stat :  deleted   err: 7 ",
                Some(("42", ReceiptState::Deleted, Some("7"))),
            ),
            (
                "id:9 submit_date:2401011200 stat:ACCEPTD",
                Some(("9", ReceiptState::Accepted, None)),
            ),
            ("id:9", Some(("9", ReceiptState::Unknown, None))),
            ("id:9 stat:WEIRD", Some(("9", ReceiptState::Unknown, None))),
            ("hello world", None),
            ("", None),
            ("stat:DELIVRD err:000", None),
            ("paid:100 stat:DELIVRD", None),
        ];
        for (text, expected) in rows {
            let got = parse_receipt_text(text);
            let expected =
                expected.map(|(id, st, err)| (id.to_string(), st, err.map(str::to_string)));
            assert_eq!(got, expected, "text: {text:?}");
        }
    }

    #[test]
    fn receipt_fields_dates_and_text() {
        let f = parse_receipt_fields(
            "id:1 sub:001 dlvrd:001 Submit  Date:240101120005 done date:2401011201 stat:DELIVRD err:000 text:Hi there id:2",
        );
        assert_eq!(f.submit_date.as_deref(), Some("240101120005"));
        assert_eq!(f.done_date.as_deref(), Some("2401011201"));
        assert_eq!(f.text.as_deref(), Some("Hi there id:2"));
        assert_eq!(f.sub.as_deref(), Some("001"));
        assert_eq!(f.dlvrd.as_deref(), Some("001"));
        assert!(parse_receipt_date("2401011201").is_some());
        assert!(parse_receipt_date("240101120159").is_some());
        assert!(parse_receipt_date("24010112").is_none());
        assert!(parse_receipt_date("24013112xx").is_none());
    }

    #[test]
    fn receipt_prefers_tlvs() {
        let text = b"id:111 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:";
        let r = parse_receipt(0x04, text, Some("6F"), Some(5), Some((3, 1))).unwrap();
        assert_eq!(r.smsc_message_id, "6F");
        assert_eq!(r.state, ReceiptState::Undeliverable);
        assert_eq!(r.error_code.as_deref(), Some("000"));
        assert!(r.text_fields.is_some());

        let r = parse_receipt(0x04, b"", Some("abc"), Some(2), Some((3, 11))).unwrap();
        assert_eq!(r.state, ReceiptState::Delivered);
        assert_eq!(r.error_code.as_deref(), Some("3:11"));
        assert_eq!(r.text_fields, None);

        let r = parse_receipt(0x04, text, None, None, None).unwrap();
        assert_eq!(r.smsc_message_id, "111");
        assert_eq!(r.state, ReceiptState::Delivered);

        // Not a receipt, or no id anywhere.
        assert!(parse_receipt(0x00, text, Some("1"), Some(2), None).is_none());
        assert!(parse_receipt(0x04, b"junk", None, Some(2), None).is_none());
        // UCS-2 encoded ASCII text.
        let ucs2: Vec<u8> = "id:12 stat:DELIVRD"
            .bytes()
            .flat_map(|b| [0u8, b])
            .collect();
        let r = parse_receipt(0x04, &ucs2, None, None, None).unwrap();
        assert_eq!(r.smsc_message_id, "12");
        assert_eq!(r.state, ReceiptState::Delivered);
    }

    #[test]
    fn message_state_round_trip() {
        for s in [
            ReceiptState::Delivered,
            ReceiptState::Expired,
            ReceiptState::Deleted,
            ReceiptState::Undeliverable,
            ReceiptState::Accepted,
            ReceiptState::Unknown,
            ReceiptState::Rejected,
            ReceiptState::Enroute,
        ] {
            assert_eq!(ReceiptState::from_message_state(s.message_state()), s);
            assert_eq!(ReceiptState::from_stat(s.stat_text()), s);
        }
        assert!(!ReceiptState::Enroute.is_final());
        assert!(ReceiptState::Undeliverable.is_final());
    }

    fn shares_key(a: &str, b: &str) -> bool {
        let ka = id_keys(a);
        id_keys(b).iter().any(|k| ka.contains(k))
    }

    #[test]
    fn receipt_id_format_fixes_the_receipts_base() {
        let f = ReceiptIdFormat::Decimal;
        // A decimal receipt id matches a response written in decimal or in hex ...
        let r = f.receipt_keys("2748");
        assert_eq!(r, vec!["2748", "abc"]);
        assert!(f.response_keys("2748").iter().any(|k| r.contains(k)));
        assert!(f.response_keys("ABC").iter().any(|k| r.contains(k)));
        // ... but is not also read as 0x2748 (10056).
        assert!(!f.response_keys("10056").iter().any(|k| r.contains(k)));
        assert!(id_keys("10056").iter().any(|k| id_keys("2748").contains(k)));

        let h = ReceiptIdFormat::Hex;
        let r = h.receipt_keys("00002748");
        assert_eq!(r, vec!["2748", "10056"]);
        assert!(h.response_keys("10056").iter().any(|k| r.contains(k)));
        assert!(h.response_keys("2748").iter().any(|k| r.contains(k)));
        // Not read as decimal 2748 (0xabc).
        assert!(!h.response_keys("abc").iter().any(|k| r.contains(k)));

        // An id that is not a number in the declared base is read both ways.
        assert_eq!(f.receipt_keys("abc"), id_keys("abc"));
        assert_eq!(h.receipt_keys("7f1d-xyz"), id_keys("7f1d-xyz"));
        assert_eq!(ReceiptIdFormat::Auto.receipt_keys("2748"), id_keys("2748"));
        for v in [ReceiptIdFormat::Auto, f, h] {
            assert_eq!(ReceiptIdFormat::from_u8(v.to_u8()), v);
        }
        assert_eq!(ReceiptIdFormat::parse("hex"), Some(h));
        assert_eq!(ReceiptIdFormat::parse("HEX"), None);
        assert_eq!(
            ReceiptIdFormat::of_options_json(r#"{"dlr_id_format":"decimal"}"#),
            f
        );
        assert_eq!(
            ReceiptIdFormat::of_options_json("{}"),
            ReceiptIdFormat::Auto
        );
    }

    #[test]
    fn id_keys_table() {
        assert_eq!(id_keys("0000ABC"), vec!["abc", "2748"]);
        assert_eq!(id_keys("2748"), vec!["2748", "abc", "10056"]);
        assert_eq!(id_keys("abc"), vec!["abc", "2748"]);
        assert_eq!(id_keys(" 000 "), vec!["0"]);
        assert_eq!(id_keys(""), Vec::<String>::new());
        let uuid = "7F1D2E3C-0000-4A5B-8C9D-0E1F2A3B4C5D";
        assert_eq!(id_keys(uuid), vec![uuid.to_ascii_lowercase()]);

        let same: &[(&str, &str)] = &[
            ("0000ABC", "2748"),
            ("0000ABC", "abc"),
            ("2748", "abc"),
            ("12345", "3039"),
            ("00012345", "12345"),
            ("00003039", "12345"),
        ];
        for (a, b) in same {
            assert!(shares_key(a, b), "{a} vs {b}");
            assert!(shares_key(b, a), "{b} vs {a}");
        }
        assert!(!shares_key("12345", "54321"));
        assert!(!shares_key("abc", "abd"));
        // Bigger than u128 decimal: only the plain key.
        let huge = "9".repeat(45);
        assert_eq!(id_keys(&huge), vec![huge.clone()]);
        // 20-digit decimal (beyond u64) still converts.
        assert!(shares_key("18446744073709551616", "10000000000000000"));
    }
}
