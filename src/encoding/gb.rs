//! GBK / GB18030 for the Chinese operator protocols (CMPP/SMGP/SGIP
//! `Msg_Fmt` 15), via `encoding_rs`: encode, split into parts of at most
//! 140 octets (minus the UDH) without cutting a multi-octet character, and
//! decode without ever panicking.

use encoding_rs::{Encoding, GB18030, GBK};

/// Which of the two Chinese national codings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GbCoding {
    /// GBK: two-octet characters; characters outside it cannot be sent.
    Gbk,
    /// GB18030: covers all of Unicode (four-octet sequences beyond GBK).
    Gb18030,
}

impl GbCoding {
    fn encoding(self) -> &'static Encoding {
        match self {
            GbCoding::Gbk => GBK,
            GbCoding::Gb18030 => GB18030,
        }
    }
}

/// A character GBK cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("character {character:?} at position {position} is not in GBK")]
pub struct NotGbk {
    /// The character.
    pub character: char,
    /// Its index in chars from 0.
    pub position: usize,
}

/// Encodes one character; None when the coding cannot hold it.
fn encode_char(coding: GbCoding, c: char, out: &mut Vec<u8>) -> bool {
    if c.is_ascii() {
        out.push(c as u8);
        return true;
    }
    let mut buf = [0u8; 4];
    let (bytes, _, had_errors) = coding.encoding().encode(c.encode_utf8(&mut buf));
    if had_errors {
        return false;
    }
    out.extend_from_slice(&bytes);
    true
}

/// The text as parts of at most `single` octets when it fits one message,
/// else `part` octets each (e.g. 140 and 134 with an 8-bit concatenation
/// UDH). A character is never cut.
///
/// # Errors
/// [`NotGbk`] for a character GBK lacks (never with GB18030).
pub fn split(
    text: &str,
    coding: GbCoding,
    single: usize,
    part: usize,
) -> Result<Vec<Vec<u8>>, NotGbk> {
    let mut encoded: Vec<(usize, usize)> = Vec::with_capacity(text.len());
    let mut all = Vec::with_capacity(text.len() * 2);
    for (position, character) in text.chars().enumerate() {
        let start = all.len();
        if !encode_char(coding, character, &mut all) {
            return Err(NotGbk {
                character,
                position,
            });
        }
        encoded.push((start, all.len()));
    }
    if all.len() <= single {
        return Ok(vec![all]);
    }
    let limit = part.max(4);
    let mut parts = Vec::new();
    let mut cur = Vec::with_capacity(limit);
    for (s, e) in encoded {
        if !cur.is_empty() && cur.len() + (e - s) > limit {
            parts.push(std::mem::replace(&mut cur, Vec::with_capacity(limit)));
        }
        cur.extend_from_slice(&all[s..e]);
    }
    parts.push(cur);
    Ok(parts)
}

/// Decodes GBK or GB18030 octets; malformed sequences become U+FFFD.
#[must_use]
pub fn decode(bytes: &[u8], coding: GbCoding) -> String {
    let (text, _) = coding.encoding().decode_without_bom_handling(bytes);
    text.into_owned()
}
