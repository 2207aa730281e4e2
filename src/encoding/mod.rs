//! GSM 03.38 / UCS-2 text encoding and long-message splitting. Pure code:
//! no I/O, no clock, no allocation on the counting path.
//!
//! - [`plan`] picks the encoding and counts parts; the HTTP preview endpoint
//!   shows it and the accept path stores it.
//! - [`encode_parts`] produces the per-part payloads (without UDH) that the
//!   SMPP layer puts in `short_message`, prefixed with [`concat_udh_8bit`]
//!   when there is more than one part.
//! - [`decode`] turns operator-sent octets (MO messages, receipt text) back
//!   into text for any `data_coding`, never panicking.
//!
//! Splitting rules (see `split.rs`): GSM-7 fits 160 septets in one SMS and
//! 153 per concatenated part; UCS-2 (UTF-16BE) fits 70 code units and 67 per
//! part. An ESC pair (extension-table character) or a surrogate pair (emoji)
//! is never split across parts.

mod gsm7;
mod split;
mod ucs2;

#[cfg(test)]
mod tests;

use split::{Limits, PartCounter, PartWriter};

/// Septets a GSM-7 text may have and still go as one SMS.
pub const GSM7_SINGLE_SEPTETS: usize = 160;
/// Septets per part of a concatenated GSM-7 message (6-octet UDH takes the rest).
pub const GSM7_PART_SEPTETS: usize = 153;
/// UTF-16 code units a UCS-2 text may have and still go as one SMS.
pub const UCS2_SINGLE_UNITS: usize = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message.
pub const UCS2_PART_UNITS: usize = 67;
/// Most parts an 8-bit-reference concatenated message can have (`total` is
/// one octet); callers must reject a [`Plan`] with more parts than this.
pub const MAX_PARTS: usize = 255;
/// Length of the UDH produced by [`concat_udh_8bit`], including its length octet.
pub const CONCAT_UDH_8BIT_LEN: usize = 6;

const GSM7_LIMITS: Limits = Limits {
    single: GSM7_SINGLE_SEPTETS,
    part: GSM7_PART_SEPTETS,
};
const UCS2_LIMITS: Limits = Limits {
    single: UCS2_SINGLE_UNITS,
    part: UCS2_PART_UNITS,
};

/// How the text is carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextEncoding {
    /// GSM 03.38 default alphabet, unpacked septets, `data_coding` 0x00.
    Gsm7,
    /// UTF-16BE (UCS-2 with surrogate pairs), `data_coding` 0x08.
    Ucs2,
}

impl TextEncoding {
    /// The SMPP `data_coding` value to send with this encoding.
    #[must_use]
    pub fn data_coding(self) -> u8 {
        match self {
            TextEncoding::Gsm7 => 0x00,
            TextEncoding::Ucs2 => 0x08,
        }
    }

    /// Stable lowercase name, the same as the serde form (logs, metrics labels, storage).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TextEncoding::Gsm7 => "gsm7",
            TextEncoding::Ucs2 => "ucs2",
        }
    }

    /// Units (septets or UTF-16 code units) that fit one unconcatenated SMS.
    #[must_use]
    pub fn single_units(self) -> usize {
        self.limits().single
    }

    /// Units that fit one part of a concatenated SMS.
    #[must_use]
    pub fn part_units(self) -> usize {
        self.limits().part
    }

    fn limits(self) -> Limits {
        match self {
            TextEncoding::Gsm7 => GSM7_LIMITS,
            TextEncoding::Ucs2 => UCS2_LIMITS,
        }
    }
}

impl std::fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller asked for (`encoding` field of the HTTP API): auto = GSM-7
/// when every character fits, else UCS-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingChoice {
    /// GSM-7 when every character is in GSM 03.38, else UCS-2.
    #[default]
    Auto,
    /// GSM-7 or an error ([`EncodingError::NotGsm7`]).
    Gsm7,
    /// Always UCS-2, even for plain ASCII.
    Ucs2,
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
    /// There is nothing to send.
    #[error("text is empty")]
    Empty,
}

/// The cost of a text: what the preview endpoint shows and what the accept path stores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// The encoding chosen (or forced).
    pub encoding: TextEncoding,
    /// SMS parts the text needs (1 when it fits a single SMS).
    pub parts: usize,
    /// Unicode scalar values in the text.
    pub characters: usize,
    /// Septets (GSM-7, ESC pairs count 2) or UTF-16 code units (UCS-2).
    pub units: usize,
}

/// Count GSM-7 septets and parts, or report the first character that does not fit.
fn count_gsm7(text: &str) -> Result<(PartCounter, usize), EncodingError> {
    let mut counter = PartCounter::new(GSM7_LIMITS);
    let mut characters = 0;
    for (position, character) in text.chars().enumerate() {
        let septet = gsm7::encode_char(character).ok_or(EncodingError::NotGsm7 {
            character,
            position,
        })?;
        counter.push(septet.cost());
        characters = position + 1;
    }
    Ok((counter, characters))
}

/// Count UTF-16 code units and parts.
fn count_ucs2(text: &str) -> (PartCounter, usize) {
    let mut counter = PartCounter::new(UCS2_LIMITS);
    let mut characters = 0;
    for c in text.chars() {
        counter.push(ucs2::units(c));
        characters += 1;
    }
    (counter, characters)
}

fn make_plan(encoding: TextEncoding, counter: PartCounter, characters: usize) -> Plan {
    Plan {
        encoding,
        parts: counter.parts(),
        characters,
        units: counter.units(),
    }
}

/// Choose the encoding and count parts, without allocating the parts. Must
/// be fast (called on every request): one table lookup per character, no
/// allocation.
///
/// # Errors
/// [`EncodingError::Empty`] for an empty text; [`EncodingError::NotGsm7`]
/// when `gsm7` is forced and a character is outside GSM 03.38.
pub fn plan(text: &str, choice: EncodingChoice) -> Result<Plan, EncodingError> {
    if text.is_empty() {
        return Err(EncodingError::Empty);
    }
    match choice {
        EncodingChoice::Gsm7 => {
            let (counter, characters) = count_gsm7(text)?;
            Ok(make_plan(TextEncoding::Gsm7, counter, characters))
        }
        EncodingChoice::Ucs2 => {
            let (counter, characters) = count_ucs2(text);
            Ok(make_plan(TextEncoding::Ucs2, counter, characters))
        }
        EncodingChoice::Auto => {
            if let Ok((counter, characters)) = count_gsm7(text) {
                Ok(make_plan(TextEncoding::Gsm7, counter, characters))
            } else {
                let (counter, characters) = count_ucs2(text);
                Ok(make_plan(TextEncoding::Ucs2, counter, characters))
            }
        }
    }
}

/// The encoded payload of each part, WITHOUT any UDH: GSM-7 as unpacked
/// septets (one octet per septet, ESC pairs kept together), UCS-2 as
/// UTF-16BE octets. One element when the text fits a single SMS (160
/// septets / 70 units), else parts of at most 153 septets / 67 units.
/// `encode_parts(t, e).len() == plan(t, ..).parts` whenever plan chose e.
///
/// # Errors
/// [`EncodingError::Empty`] for an empty text; [`EncodingError::NotGsm7`]
/// for GSM-7 when a character is outside GSM 03.38.
pub fn encode_parts(text: &str, encoding: TextEncoding) -> Result<Vec<Vec<u8>>, EncodingError> {
    if text.is_empty() {
        return Err(EncodingError::Empty);
    }
    match encoding {
        TextEncoding::Gsm7 => {
            let (counter, _) = count_gsm7(text)?;
            let mut writer = PartWriter::new(counter.part_limit(), 1, counter.parts());
            for (position, character) in text.chars().enumerate() {
                let septet = gsm7::encode_char(character).ok_or(EncodingError::NotGsm7 {
                    character,
                    position,
                })?;
                gsm7::push_septets(writer.slot(septet.cost()), septet);
            }
            Ok(writer.finish())
        }
        TextEncoding::Ucs2 => {
            let (counter, _) = count_ucs2(text);
            let mut writer = PartWriter::new(counter.part_limit(), 2, counter.parts());
            for c in text.chars() {
                ucs2::push_char(writer.slot(ucs2::units(c)), c);
            }
            Ok(writer.finish())
        }
    }
}

/// The 6-octet concatenation UDH with an 8-bit reference: 05 00 03 ref total
/// seq (seq is 1-based). Prefix each part's payload with it (and set UDHI in
/// `esm_class`) when a message has more than one part.
#[must_use]
pub fn concat_udh_8bit(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, 0x00, 0x03, reference, total, seq]
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
        0x01 => bytes
            .iter()
            .map(|&b| {
                if b.is_ascii() {
                    char::from(b)
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })
            .collect(),
        0x03 => bytes.iter().map(|&b| char::from(b)).collect(),
        0x08 => ucs2::decode(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Is this character encodable in GSM 03.38 (basic or extension table)?
/// Lets callers validate or highlight text without planning it whole.
#[must_use]
pub fn is_gsm7(c: char) -> bool {
    gsm7::encode_char(c).is_some()
}
