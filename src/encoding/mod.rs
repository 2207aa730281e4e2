//! Text encoding for SMS, both directions. Pure code: no I/O, no clock.
//!
//! - [`plan`] / [`prepare`] pick the encoding that costs the fewest parts
//!   (GSM-7, GSM-7 with a national shift table of 3GPP TS 23.038, or UCS-2),
//!   apply smart look-alike replacement when asked, and count parts; the
//!   HTTP preview shows the result and the accept path stores it.
//! - [`build_segments`] produces what goes on the wire for each submit: the
//!   UDH (concatenation with an 8- or 16-bit reference, national shift IEs,
//!   a caller's UDH for binary), the user data (unpacked or packed septets
//!   with fill bits, UTF-16BE, Latin-1, IA5, binary), SAR values, or one
//!   `message_payload`, per the channel's [`Carrier`].
//! - [`decode`] / [`inbound`] turn operator-sent octets back into text, and
//!   [`reassembly`] puts concatenated inbound parts back together.
//! - [`gb`] encodes and splits GBK / GB18030 for the Chinese protocols.
//!
//! Splitting rules (see `split.rs`): a part holds at most what 140 octets of
//! TP-UD hold after the UDH (160/153/152 septets, 70/67/66 UTF-16 units, ...);
//! an ESC pair or a surrogate pair is never split; a grapheme cluster (emoji
//! ZWJ sequence, flag, skin tone, combining marks, CR LF) stays within one
//! part whenever that does not cost an extra part.

pub mod gb;
mod gsm7;
pub mod inbound;
mod national;
mod national_tables;
mod octet;
pub mod reassembly;
mod refs;
mod smart;
mod split;
mod ucs2;
pub mod udh;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_more;

use std::borrow::Cow;

pub use national::{NationalLanguage, NationalShift};
pub use refs::ConcatRefs;
pub use smart::Replacement;
use split::{Limits, PartCounter};

/// Septets a GSM-7 text may have and still go as one SMS.
pub const GSM7_SINGLE_SEPTETS: usize = 160;
/// Septets per part of a concatenated GSM-7 message (6-octet UDH takes the rest).
pub const GSM7_PART_SEPTETS: usize = 153;
/// UTF-16 code units a UCS-2 text may have and still go as one SMS.
pub const UCS2_SINGLE_UNITS: usize = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message.
pub const UCS2_PART_UNITS: usize = 67;
/// Most parts a concatenated message can have (`total` is one octet in every
/// carrier); callers must reject a [`Plan`] with more parts than this.
pub const MAX_PARTS: usize = 255;
/// Length of the UDH produced by [`concat_udh_8bit`], including its length octet.
pub const CONCAT_UDH_8BIT_LEN: usize = 6;
/// Octets of TP-UD in one SMS (UDH included).
pub const TP_UD_OCTETS: usize = 140;

/// How the text is carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextEncoding {
    /// GSM 03.38 default alphabet (or a national table), `data_coding` 0x00.
    Gsm7,
    /// UTF-16BE (UCS-2 with surrogate pairs), `data_coding` 0x08.
    Ucs2,
    /// ISO-8859-1, one octet per character, `data_coding` 0x03.
    Latin1,
    /// IA5 (ASCII), `data_coding` 0x01; the SMSC sends it as 7-bit.
    Ia5,
    /// Caller-supplied octets (the text is their hex form), `data_coding` 0x04.
    Binary,
}

/// Bits one unit occupies in TP-UD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitBits {
    Seven,
    Eight,
    Sixteen,
}

impl TextEncoding {
    /// The SMPP `data_coding` value to send with this encoding.
    #[must_use]
    pub fn data_coding(self) -> u8 {
        match self {
            TextEncoding::Gsm7 => 0x00,
            TextEncoding::Ucs2 => 0x08,
            TextEncoding::Latin1 => 0x03,
            TextEncoding::Ia5 => 0x01,
            TextEncoding::Binary => 0x04,
        }
    }

    /// Stable lowercase name, the same as the serde form (logs, metrics labels, storage).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TextEncoding::Gsm7 => "gsm7",
            TextEncoding::Ucs2 => "ucs2",
            TextEncoding::Latin1 => "latin1",
            TextEncoding::Ia5 => "ia5",
            TextEncoding::Binary => "binary",
        }
    }

    /// Units (septets, UTF-16 code units or octets) that fit one unconcatenated SMS.
    #[must_use]
    pub fn single_units(self) -> usize {
        capacity(self.bits(), 0)
    }

    /// Units that fit one part of a concatenated SMS with an 8-bit reference UDH.
    #[must_use]
    pub fn part_units(self) -> usize {
        capacity(self.bits(), CONCAT_UDH_8BIT_LEN)
    }

    /// Octets one unit takes in the unpacked payload (before any 7-bit packing).
    #[must_use]
    pub fn octets_per_unit(self) -> usize {
        match self {
            TextEncoding::Ucs2 => 2,
            _ => 1,
        }
    }

    fn bits(self) -> UnitBits {
        match self {
            TextEncoding::Gsm7 | TextEncoding::Ia5 => UnitBits::Seven,
            TextEncoding::Latin1 | TextEncoding::Binary => UnitBits::Eight,
            TextEncoding::Ucs2 => UnitBits::Sixteen,
        }
    }
}

impl std::fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Units that fit in TP-UD after a UDH of `udh_octets` (UDHL included, 0 = no UDH).
fn capacity(bits: UnitBits, udh_octets: usize) -> usize {
    let free = TP_UD_OCTETS.saturating_sub(udh_octets);
    match bits {
        // The UDH is padded with fill bits to a septet boundary.
        UnitBits::Seven => (TP_UD_OCTETS * 8 - (udh_octets * 8).div_ceil(7) * 7) / 7,
        UnitBits::Eight => free,
        UnitBits::Sixteen => free / 2,
    }
}

/// What the caller asked for (`encoding` field of the HTTP API): auto = the
/// encoding with the fewest parts among GSM-7, GSM-7 + the channel's
/// national tables, and UCS-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingChoice {
    /// Fewest parts; GSM-7 before UCS-2 on a tie.
    #[default]
    Auto,
    /// GSM-7 (default or national tables) or an error ([`EncodingError::NotGsm7`]).
    Gsm7,
    /// Always UCS-2, even for plain ASCII.
    Ucs2,
    /// ISO-8859-1 (`data_coding` 3), for channels that want it.
    Latin1,
    /// IA5 / ASCII (`data_coding` 1).
    Ia5,
    /// Binary (`data_coding` 4): `text` is the hex of the octets.
    Binary,
}

/// Where the concatenation information of a long message goes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Carrier {
    /// UDH IE 0x00, 8-bit reference (6-octet UDH).
    #[default]
    #[serde(rename = "8bit")]
    Udh8,
    /// UDH IE 0x08, 16-bit reference (7-octet UDH).
    #[serde(rename = "16bit")]
    Udh16,
    /// SMPP TLVs sar_msg_ref_num / sar_total_segments / sar_segment_seqnum; no UDH.
    #[serde(rename = "sar")]
    Sar,
    /// One submit with the whole text in `message_payload`; the SMSC splits.
    #[serde(rename = "payload")]
    Payload,
}

impl Carrier {
    /// Octets of the concatenation IE (without UDHL) each part must leave
    /// room for. With SAR the SMSC writes the UDH itself from a 16-bit
    /// reference, so the room of a 16-bit IE is kept free.
    fn concat_ie_octets(self) -> usize {
        match self {
            Carrier::Udh8 => 5,
            Carrier::Udh16 | Carrier::Sar => 6,
            Carrier::Payload => 0,
        }
    }
}

/// Everything about a message's wire form that is decided at accept time
/// and must be the same on every attempt: stored with the message.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// Long-message carrier.
    pub carrier: Carrier,
    /// GSM-7 as packed septets (with fill bits after a UDH) instead of one octet per septet.
    pub packed: bool,
    /// National shift tables for GSM-7 (default: none).
    pub shift: NationalShift,
    /// Caller-supplied UDH IEs (binary only), without the UDHL octet.
    pub user_udh: Vec<u8>,
}

/// What [`prepare`] needs to know besides the text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Requested encoding.
    pub choice: EncodingChoice,
    /// The channel's long-message carrier.
    pub carrier: Carrier,
    /// National tables the channel accepts (empty: default alphabet only).
    pub national: &'a [NationalLanguage],
    /// Replace look-alike characters when that keeps the text in GSM-7.
    pub smart: bool,
    /// Binary only: octets of caller UDH IEs (without UDHL) in every part.
    pub user_udh_octets: usize,
}

/// Why a text cannot be planned or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// `gsm7` was requested but the text has a character outside GSM 03.38.
    /// `position` counts Unicode scalar values (chars) from 0, not bytes.
    #[error("character {character:?} at position {position} is not in the GSM 03.38 alphabet")]
    NotGsm7 {
        /// The offending character.
        character: char,
        /// Its index in the text, in chars from 0.
        position: usize,
    },
    /// `latin1` or `ia5` was requested and a character is outside it.
    #[error("character {character:?} at position {position} cannot be written in {encoding}")]
    NotRepresentable {
        /// The encoding asked for.
        encoding: TextEncoding,
        /// The offending character.
        character: char,
        /// Its index in the text, in chars from 0.
        position: usize,
    },
    /// Binary text that is not an even number of hex digits, or a caller UDH
    /// that leaves no room for data.
    #[error("binary: {0}")]
    Binary(String),
    /// There is nothing to send.
    #[error("text is empty")]
    Empty,
}

/// The cost of a text: what the preview endpoint shows and what the accept path stores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// The encoding chosen (or forced).
    pub encoding: TextEncoding,
    /// National shift tables used (GSM-7 only; default = none).
    pub shift: NationalShift,
    /// SMS parts the handset receives and the operator bills (1 when it fits one SMS).
    pub parts: usize,
    /// Submits sent to the SMSC: `parts`, or 1 with [`Carrier::Payload`].
    pub submits: usize,
    /// Unicode scalar values in the text (octets for binary).
    pub characters: usize,
    /// Septets (ESC pairs count 2), UTF-16 code units or octets.
    pub units: usize,
}

/// A plan with the text it is for (after smart replacement) and what was replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared<'t> {
    /// The text to store and send.
    pub text: Cow<'t, str>,
    /// Look-alike characters replaced (empty when none or smart encoding is off).
    pub replacements: Vec<Replacement>,
    /// The chosen encoding and its cost.
    pub plan: Plan,
}

/// One character set as an alphabet: cost and encoding of each char.
pub(crate) trait Alphabet {
    /// Units the character costs, or None if it is not in the alphabet.
    fn cost(&self, c: char) -> Option<usize>;
    /// Appends the character's unpacked octets (it is known to be encodable).
    fn write(&self, c: char, out: &mut Vec<u8>);
    /// Appends the character's octets and returns its cost, or None (nothing
    /// written) if it is not in the alphabet: the encode path's one lookup
    /// per character where `cost` then `write` would take two.
    #[inline]
    fn encode(&self, c: char, out: &mut Vec<u8>) -> Option<usize> {
        let cost = self.cost(c)?;
        self.write(c, out);
        Some(cost)
    }
}

/// GSM 03.38 with optional national tables.
#[derive(Clone, Copy)]
pub(crate) struct Gsm(pub(crate) NationalShift);

impl Alphabet for Gsm {
    #[inline]
    fn cost(&self, c: char) -> Option<usize> {
        national::encode_char(c, self.0).map(gsm7::Septet::cost)
    }
    #[inline]
    fn write(&self, c: char, out: &mut Vec<u8>) {
        if let Some(s) = national::encode_char(c, self.0) {
            gsm7::push_septets(out, s);
        }
    }
    #[inline]
    fn encode(&self, c: char, out: &mut Vec<u8>) -> Option<usize> {
        let s = national::encode_char(c, self.0)?;
        gsm7::push_septets(out, s);
        Some(s.cost())
    }
}

/// UTF-16BE.
pub(crate) struct Ucs2;

impl Alphabet for Ucs2 {
    #[inline]
    fn cost(&self, c: char) -> Option<usize> {
        Some(ucs2::units(c))
    }
    #[inline]
    fn write(&self, c: char, out: &mut Vec<u8>) {
        ucs2::push_char(out, c);
    }
    #[inline]
    fn encode(&self, c: char, out: &mut Vec<u8>) -> Option<usize> {
        ucs2::push_char(out, c);
        Some(ucs2::units(c))
    }
}

/// One octet per character below `limit` (Latin-1: 0x100, IA5: 0x80).
pub(crate) struct Octet(pub(crate) u32);

impl Alphabet for Octet {
    #[inline]
    fn cost(&self, c: char) -> Option<usize> {
        ((c as u32) < self.0).then_some(1)
    }
    #[inline]
    fn write(&self, c: char, out: &mut Vec<u8>) {
        out.push(c as u32 as u8);
    }
}

/// UDH octets (UDHL included) of a single SMS and of one part of a long one.
fn udh_octets(carrier: Carrier, shift: NationalShift, user: usize) -> (usize, usize) {
    let base = shift.ie_octets() + user;
    let single = if base > 0 { 1 + base } else { 0 };
    let part_ies = base + carrier.concat_ie_octets();
    let part = if part_ies > 0 { 1 + part_ies } else { 0 };
    (single, part)
}

fn limits(encoding: TextEncoding, carrier: Carrier, shift: NationalShift, user: usize) -> Limits {
    let (single, part) = udh_octets(carrier, shift, user);
    // With message_payload the SMSC splits; count parts as it will (8-bit UDH).
    let part = if carrier == Carrier::Payload {
        udh_octets(Carrier::Udh8, shift, user).1
    } else {
        part
    };
    Limits {
        single: capacity(encoding.bits(), single),
        part: capacity(encoding.bits(), part).max(1),
    }
}

/// Count units and parts; Err((char, position)) on the first unencodable char.
fn count<A: Alphabet>(
    text: &str,
    a: &A,
    limits: Limits,
) -> Result<(PartCounter, usize), (char, usize)> {
    let mut counter = PartCounter::new(limits);
    let mut characters = 0;
    for c in text.chars() {
        let cost = a.cost(c).ok_or((c, characters))?;
        counter.push(cost);
        characters += 1;
    }
    Ok((counter, characters))
}

fn to_plan(
    encoding: TextEncoding,
    shift: NationalShift,
    carrier: Carrier,
    c: PartCounter,
    characters: usize,
) -> Plan {
    let parts = c.parts();
    Plan {
        encoding,
        shift,
        parts,
        submits: if carrier == Carrier::Payload {
            1
        } else {
            parts
        },
        characters,
        units: c.units(),
    }
}

/// The national shift pairs worth trying for a channel's languages: the
/// default first, then every (locking, single) combination.
fn shift_candidates(national: &[NationalLanguage]) -> Vec<NationalShift> {
    let mut out = vec![NationalShift::DEFAULT];
    let lockings = std::iter::once(None).chain(
        national
            .iter()
            .filter(|l| l.has_locking())
            .map(|&l| Some(l)),
    );
    for locking in lockings {
        for single in std::iter::once(None).chain(national.iter().map(|&l| Some(l))) {
            let s = NationalShift { locking, single };
            if !s.is_default() && !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// The GSM-7 plan with the fewest parts (then fewest units) over `shifts`.
fn best_gsm(text: &str, shifts: &[NationalShift], carrier: Carrier) -> Result<Plan, (char, usize)> {
    let mut best: Option<Plan> = None;
    let mut first_err = None;
    for &shift in shifts {
        match count(
            text,
            &Gsm(shift),
            limits(TextEncoding::Gsm7, carrier, shift, 0),
        ) {
            Ok((c, n)) => {
                let p = to_plan(TextEncoding::Gsm7, shift, carrier, c, n);
                if best
                    .as_ref()
                    .is_none_or(|b| (p.parts, p.units) < (b.parts, b.units))
                {
                    best = Some(p);
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    best.ok_or(first_err.unwrap_or(('\0', 0)))
}

fn ucs2_plan(text: &str, carrier: Carrier) -> Plan {
    let l = limits(TextEncoding::Ucs2, carrier, NationalShift::DEFAULT, 0);
    let mut counter = PartCounter::new(l);
    let mut characters = 0;
    for c in text.chars() {
        counter.push(ucs2::units(c));
        characters += 1;
    }
    to_plan(
        TextEncoding::Ucs2,
        NationalShift::DEFAULT,
        carrier,
        counter,
        characters,
    )
}

/// Choose the encoding and count parts for the default channel (8-bit UDH,
/// no national tables, no smart encoding), without allocating. Called on
/// every request: one table lookup per character.
///
/// # Errors
/// [`EncodingError::Empty`] for an empty text; [`EncodingError::NotGsm7`]
/// when `gsm7` is forced and a character is outside GSM 03.38; see [`prepare`].
pub fn plan(text: &str, choice: EncodingChoice) -> Result<Plan, EncodingError> {
    prepare(
        text,
        &Options {
            choice,
            ..Options::default()
        },
    )
    .map(|p| p.plan)
}

/// Choose the encoding (fewest parts), apply smart replacement when it
/// keeps the text in GSM-7, and count parts, for a channel's options.
///
/// # Errors
/// [`EncodingError::Empty`]; [`EncodingError::NotGsm7`] /
/// [`EncodingError::NotRepresentable`] when a forced encoding cannot hold
/// a character; [`EncodingError::Binary`] for bad binary hex.
pub fn prepare<'t>(text: &'t str, o: &Options<'_>) -> Result<Prepared<'t>, EncodingError> {
    if text.is_empty() {
        return Err(EncodingError::Empty);
    }
    let plain = |plan| Prepared {
        text: Cow::Borrowed(text),
        replacements: Vec::new(),
        plan,
    };
    let candidates;
    let gsm_shifts: &[NationalShift] = if o.national.is_empty() {
        &[NationalShift::DEFAULT]
    } else {
        candidates = shift_candidates(o.national);
        &candidates
    };
    match o.choice {
        EncodingChoice::Ucs2 => Ok(plain(ucs2_plan(text, o.carrier))),
        EncodingChoice::Latin1 | EncodingChoice::Ia5 => {
            let (encoding, a) = if o.choice == EncodingChoice::Latin1 {
                (TextEncoding::Latin1, Octet(0x100))
            } else {
                (TextEncoding::Ia5, Octet(0x80))
            };
            let l = limits(encoding, o.carrier, NationalShift::DEFAULT, 0);
            let (c, n) = count(text, &a, l).map_err(|(character, position)| {
                EncodingError::NotRepresentable {
                    encoding,
                    character,
                    position,
                }
            })?;
            Ok(plain(to_plan(
                encoding,
                NationalShift::DEFAULT,
                o.carrier,
                c,
                n,
            )))
        }
        EncodingChoice::Binary => {
            let octets = octet::hex_len(text).map_err(EncodingError::Binary)?;
            let l = limits(
                TextEncoding::Binary,
                o.carrier,
                NationalShift::DEFAULT,
                o.user_udh_octets,
            );
            let mut counter = PartCounter::new(l);
            for _ in 0..octets {
                counter.push(1);
            }
            let p = to_plan(
                TextEncoding::Binary,
                NationalShift::DEFAULT,
                o.carrier,
                counter,
                octets,
            );
            Ok(plain(p))
        }
        EncodingChoice::Gsm7 | EncodingChoice::Auto => {
            let original = best_gsm(text, gsm_shifts, o.carrier);
            let gsm_parts = original.as_ref().map_or(usize::MAX, |p| p.parts);
            // UCS-2 never needs fewer parts than a GSM-7 form of the same text
            // (a GSM char costs at most 2 septets: 80 > 70, 76 > 67, 73 > 66 per
            // part), so it is only counted when GSM-7 cannot carry the text.
            let ucs = (o.choice == EncodingChoice::Auto && original.is_err())
                .then(|| ucs2_plan(text, o.carrier));
            // Smart replacement is only worth it when the original is not GSM-7
            // or needs more parts than the replaced text.
            let smart = if o.smart && gsm_parts > 1 {
                smart::replace(text).and_then(|(replaced, reps)| {
                    best_gsm(&replaced, gsm_shifts, o.carrier)
                        .ok()
                        .map(|p| (replaced, reps, p))
                })
            } else {
                None
            };
            let mut chosen: Option<Prepared<'t>> = original.as_ref().ok().cloned().map(plain);
            if let Some((replaced, reps, p)) = smart
                && chosen.as_ref().is_none_or(|c| p.parts < c.plan.parts)
            {
                chosen = Some(Prepared {
                    text: Cow::Owned(replaced),
                    replacements: reps,
                    plan: p,
                });
            }
            if let Some(u) = ucs
                && chosen.as_ref().is_none_or(|c| u.parts < c.plan.parts)
            {
                chosen = Some(plain(u));
            }
            match chosen {
                Some(c) => Ok(c),
                None => {
                    // Report the first character outside the default alphabet.
                    let (character, position) = text
                        .chars()
                        .enumerate()
                        .find(|(_, c)| !is_gsm7(*c))
                        .map(|(i, c)| (c, i))
                        .or(original.err())
                        .unwrap_or(('\0', 0));
                    Err(EncodingError::NotGsm7 {
                        character,
                        position,
                    })
                }
            }
        }
    }
}

/// What one submit carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The complete UDH (UDHL first), empty when there is none; set UDHI
    /// (esm_class 0x40) when it is not empty.
    pub udh: Vec<u8>,
    /// The user data after the UDH: unpacked septets, packed septets (fill
    /// bits first), UTF-16BE or octets.
    pub data: Vec<u8>,
    /// SAR TLV values (reference, total, seq) with [`Carrier::Sar`].
    pub sar: Option<(u16, u8, u8)>,
    /// Send the user data in `message_payload` ([`Carrier::Payload`], more than one part).
    pub payload_tlv: bool,
}

impl Segment {
    /// `short_message` (or `message_payload`) octets: UDH then data.
    #[must_use]
    pub fn user_data(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.udh.len() + self.data.len());
        v.extend_from_slice(&self.udh);
        v.extend_from_slice(&self.data);
        v
    }
}

/// Build the wire form of every submit of a message. `reference` is the
/// concatenation reference (low 8 bits with [`Carrier::Udh8`]).
/// `build_segments(t, e, l, r).len() == plan.submits` for the plan that chose `e` and `l`.
///
/// # Errors
/// [`EncodingError::Empty`]; [`EncodingError::NotGsm7`] /
/// [`EncodingError::NotRepresentable`] for a character the encoding cannot
/// hold; [`EncodingError::Binary`] for bad binary input.
pub fn build_segments(
    text: &str,
    encoding: TextEncoding,
    layout: &Layout,
    reference: u16,
) -> Result<Vec<Segment>, EncodingError> {
    if text.is_empty() {
        return Err(EncodingError::Empty);
    }
    let shift = if encoding == TextEncoding::Gsm7 {
        layout.shift
    } else {
        NationalShift::DEFAULT
    };
    let user = if encoding == TextEncoding::Binary {
        layout.user_udh.len()
    } else {
        0
    };
    let l = limits(encoding, layout.carrier, shift, user);
    let payloads: Vec<Vec<u8>> = match encoding {
        TextEncoding::Gsm7 => split_encode(text, &Gsm(shift), l, |character, position| {
            EncodingError::NotGsm7 {
                character,
                position,
            }
        })?,
        TextEncoding::Ucs2 => split_encode(text, &Ucs2, l, |_, _| EncodingError::Empty)?,
        TextEncoding::Latin1 | TextEncoding::Ia5 => {
            let a = Octet(if encoding == TextEncoding::Latin1 {
                0x100
            } else {
                0x80
            });
            split_encode(text, &a, l, |character, position| {
                EncodingError::NotRepresentable {
                    encoding,
                    character,
                    position,
                }
            })?
        }
        TextEncoding::Binary => {
            let bytes = octet::from_hex(text).map_err(EncodingError::Binary)?;
            if bytes.is_empty() {
                return Err(EncodingError::Empty);
            }
            let size = if bytes.len() <= l.single {
                l.single
            } else {
                l.part
            };
            bytes.chunks(size.max(1)).map(<[u8]>::to_vec).collect()
        }
    };
    let total = payloads.len();
    let multi = total > 1;
    if layout.carrier == Carrier::Payload && multi {
        // One submit: national/user IEs only, the SMSC does the splitting.
        let mut data: Vec<u8> = payloads.concat();
        let udh = make_udh(None, shift, &layout.user_udh[..user]);
        if layout.packed && encoding == TextEncoding::Gsm7 {
            data = gsm7::pack(&data, gsm7::fill_bits(udh.len()));
        }
        return Ok(vec![Segment {
            udh,
            data,
            sar: None,
            payload_tlv: true,
        }]);
    }
    let total_u8 = u8::try_from(total).unwrap_or(u8::MAX);
    Ok(payloads
        .into_iter()
        .enumerate()
        .map(|(i, mut data)| {
            let seq = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let concat = match layout.carrier {
                Carrier::Udh8 if multi => Some(udh::Concat {
                    reference: reference & 0xFF,
                    sixteen_bit: false,
                    total: total_u8,
                    seq,
                }),
                Carrier::Udh16 if multi => Some(udh::Concat {
                    reference,
                    sixteen_bit: true,
                    total: total_u8,
                    seq,
                }),
                _ => None,
            };
            let udh = make_udh(concat, shift, &layout.user_udh[..user]);
            if layout.packed && encoding == TextEncoding::Gsm7 {
                data = gsm7::pack(&data, gsm7::fill_bits(udh.len()));
            }
            Segment {
                udh,
                data,
                sar: (layout.carrier == Carrier::Sar && multi)
                    .then_some((reference, total_u8, seq)),
                payload_tlv: false,
            }
        })
        .collect())
}

fn make_udh(concat: Option<udh::Concat>, shift: NationalShift, user: &[u8]) -> Vec<u8> {
    if concat.is_none() && shift.is_default() && user.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(16);
    out.push(0); // UDHL, set below
    if let Some(c) = concat {
        c.push_ie(&mut out);
    }
    shift.push_ies(&mut out);
    out.extend_from_slice(user);
    out[0] = u8::try_from(out.len() - 1).unwrap_or(u8::MAX);
    out
}

fn split_encode<A: Alphabet>(
    text: &str,
    a: &A,
    l: Limits,
    err: impl Fn(char, usize) -> EncodingError,
) -> Result<Vec<Vec<u8>>, EncodingError> {
    // One pass counts and writes; a text that fits one SMS is done after it.
    let mut counter = PartCounter::new(l);
    let mut out = Vec::with_capacity(l.single * 2);
    for (position, c) in text.chars().enumerate() {
        let cost = a.encode(c, &mut out).ok_or_else(|| err(c, position))?;
        counter.push(cost);
    }
    let limit = counter.part_limit();
    let parts = counter.parts();
    if parts == 1 {
        return Ok(vec![out]);
    }
    let ranges = split::cut(text, a, limit, parts);
    Ok(ranges
        .into_iter()
        .map(|r| {
            let mut out = Vec::with_capacity(limit * 2);
            for c in text[r].chars() {
                a.write(c, &mut out);
            }
            out
        })
        .collect())
}

/// One part of a message as the preview shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartInfo {
    /// 1-based part number.
    pub part: usize,
    /// Characters in the part (octets for binary).
    pub characters: usize,
    /// Septets, UTF-16 units or octets the part uses.
    pub units: usize,
    /// Units the part could hold.
    pub capacity: usize,
    /// The part's text (hex for binary).
    pub text: String,
}

/// The parts as the handset will get them (preview): the same cut as
/// [`build_segments`] for this plan and layout. With [`Carrier::Payload`]
/// these are the parts the SMSC will make.
#[must_use]
pub fn part_breakdown(text: &str, plan: &Plan, layout: &Layout) -> Vec<PartInfo> {
    let user = if plan.encoding == TextEncoding::Binary {
        layout.user_udh.len()
    } else {
        0
    };
    let l = limits(plan.encoding, layout.carrier, plan.shift, user);
    let capacity = if plan.parts > 1 { l.part } else { l.single };
    let info = |i: usize, t: &str, characters: usize, units: usize| PartInfo {
        part: i + 1,
        characters,
        units,
        capacity,
        text: t.to_string(),
    };
    fn per<A: Alphabet>(
        text: &str,
        a: &A,
        l: Limits,
    ) -> Vec<(std::ops::Range<usize>, usize, usize)> {
        ranges_for(text, a, l)
            .into_iter()
            .map(|r| {
                let chars = text[r.clone()].chars().count();
                let units = text[r.clone()]
                    .chars()
                    .map(|c| a.cost(c).unwrap_or(1))
                    .sum();
                (r, chars, units)
            })
            .collect()
    }
    let cuts = match plan.encoding {
        TextEncoding::Gsm7 => per(text, &Gsm(plan.shift), l),
        TextEncoding::Ucs2 => per(text, &Ucs2, l),
        TextEncoding::Latin1 => per(text, &Octet(0x100), l),
        TextEncoding::Ia5 => per(text, &Octet(0x80), l),
        TextEncoding::Binary => {
            return text
                .as_bytes()
                .chunks((capacity * 2).max(2))
                .enumerate()
                .map(|(i, c)| info(i, &String::from_utf8_lossy(c), c.len() / 2, c.len() / 2))
                .collect();
        }
    };
    cuts.into_iter()
        .enumerate()
        .map(|(i, (r, chars, units))| info(i, &text[r], chars, units))
        .collect()
}

fn ranges_for<A: Alphabet>(text: &str, a: &A, l: Limits) -> Vec<std::ops::Range<usize>> {
    match count(text, a, l) {
        Ok((c, _)) if c.parts() > 1 => split::cut(text, a, c.part_limit(), c.parts()),
        _ => std::iter::once(0..text.len()).collect(),
    }
}

/// The per-part payloads WITHOUT any UDH for the default layout (8-bit UDH,
/// unpacked, no national table). Kept for callers that add their own UDH.
///
/// # Errors
/// As [`build_segments`].
pub fn encode_parts(text: &str, encoding: TextEncoding) -> Result<Vec<Vec<u8>>, EncodingError> {
    Ok(build_segments(text, encoding, &Layout::default(), 0)?
        .into_iter()
        .map(|s| s.data)
        .collect())
}

/// The 6-octet concatenation UDH with an 8-bit reference: 05 00 03 ref total
/// seq (seq is 1-based).
#[must_use]
pub fn concat_udh_8bit(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, 0x00, 0x03, reference, total, seq]
}

/// The 7-octet concatenation UDH with a 16-bit reference: 06 08 04 ref_hi ref_lo total seq.
#[must_use]
pub fn concat_udh_16bit(reference: u16, total: u8, seq: u8) -> [u8; 7] {
    let [hi, lo] = reference.to_be_bytes();
    [0x06, 0x08, 0x04, hi, lo, total, seq]
}

/// Decode text an operator sent us (MO messages, receipt text):
/// `data_coding` 0x00 (GSM-7 unpacked septets, ESC handling), 0x01
/// (IA5/ASCII), 0x03 (Latin-1), 0x08 (UCS-2/UTF-16BE, surrogates joined,
/// lone surrogates → U+FFFD), anything else: lossy UTF-8. Never panics:
/// octets invalid for the coding become U+FFFD; a trailing lone ESC or an
/// ESC ESC pair becomes a space, ESC before an unassigned code yields the
/// basic-table character (TS 23.038).
#[must_use]
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        0x00 => gsm7::decode(bytes),
        0x01 => octet::decode_ia5(bytes),
        0x03 => octet::decode_latin1(bytes),
        0x08 => ucs2::decode(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Decode unpacked septets written with national shift tables.
#[must_use]
pub fn decode_gsm7(bytes: &[u8], shift: NationalShift) -> String {
    national::decode(bytes, shift)
}

/// Pack septets (one per octet, high bit ignored) into 7-bit GSM packing
/// after `fill_bits` zero bits (TS 23.038 6.1.2.1.1, fill per TS 23.040 9.2.3.24).
#[must_use]
pub fn pack_septets(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    gsm7::pack(septets, fill_bits)
}

/// Unpack 7-bit packed octets that start after `fill_bits` bits; a trailing
/// CR that only pads the last octet is dropped (TS 23.038 6.1.2.3.1).
#[must_use]
pub fn unpack_septets(packed: &[u8], fill_bits: usize) -> Vec<u8> {
    gsm7::unpack(packed, fill_bits)
}

/// Fill bits between a UDH of `udh_octets` (UDHL included) and the first septet.
#[must_use]
pub fn fill_bits(udh_octets: usize) -> usize {
    gsm7::fill_bits(udh_octets)
}

/// Is this character encodable in GSM 03.38 (basic or extension table)?
/// Lets callers validate or highlight text without planning it whole.
#[must_use]
pub fn is_gsm7(c: char) -> bool {
    gsm7::encode_char(c).is_some()
}
