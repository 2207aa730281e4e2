//! User Data Header (TS 23.040 9.2.3.24): the concatenation IEs (0x00 8-bit
//! reference, 0x08 16-bit reference) and national language shift IEs (0x24
//! single, 0x25 locking), written for outbound parts and parsed from inbound
//! ones. Parsing never panics on hostile input.

use super::{NationalLanguage, NationalShift};

/// Concatenation information of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// The reference shared by all parts (8-bit references are 0..=255).
    pub reference: u16,
    /// IE 0x08 (16-bit reference) rather than IE 0x00.
    pub sixteen_bit: bool,
    /// Parts in the message.
    pub total: u8,
    /// This part, 1-based.
    pub seq: u8,
}

impl Concat {
    /// Appends the IE (identifier, length, value).
    pub(crate) fn push_ie(self, out: &mut Vec<u8>) {
        if self.sixteen_bit {
            let [hi, lo] = self.reference.to_be_bytes();
            out.extend_from_slice(&[0x08, 0x04, hi, lo, self.total, self.seq]);
        } else {
            out.extend_from_slice(&[
                0x00,
                0x03,
                (self.reference & 0xFF) as u8,
                self.total,
                self.seq,
            ]);
        }
    }
}

/// What an inbound UDH said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Concatenation IE, if any (the last one wins, as TS 23.040 allows only one).
    pub concat: Option<Concat>,
    /// National shift IEs.
    pub shift: NationalShift,
    /// Octets of the UDH including the UDHL octet.
    pub len: usize,
}

/// Why a UDH could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdhError {
    /// No octets at all where a UDH was announced.
    #[error("UDHI is set but the user data is empty")]
    Empty,
    /// UDHL points past the end of the user data.
    #[error("UDH length {udhl} exceeds the {available} octets present")]
    TooLong {
        /// The UDHL octet.
        udhl: usize,
        /// Octets after it.
        available: usize,
    },
    /// An IE's length points past the end of the UDH.
    #[error("information element {iei:#04x} is truncated")]
    Truncated {
        /// Its identifier.
        iei: u8,
    },
}

/// Parses the UDH at the start of `user_data` (UDHI set). Unknown IEs are
/// skipped; a concatenation IE with total 0 or seq 0 or seq > total is
/// ignored (treated as a single message), as receivers do.
///
/// # Errors
/// [`UdhError`] when the lengths do not fit the data.
pub fn parse(user_data: &[u8]) -> Result<Header, UdhError> {
    let (&udhl, rest) = user_data.split_first().ok_or(UdhError::Empty)?;
    let udhl = usize::from(udhl);
    let ies = rest.get(..udhl).ok_or(UdhError::TooLong {
        udhl,
        available: rest.len(),
    })?;
    let mut h = Header {
        len: udhl + 1,
        ..Header::default()
    };
    let mut i = 0;
    while i < ies.len() {
        let iei = ies[i];
        let len = usize::from(*ies.get(i + 1).ok_or(UdhError::Truncated { iei })?);
        let v = ies
            .get(i + 2..i + 2 + len)
            .ok_or(UdhError::Truncated { iei })?;
        match (iei, v) {
            (0x00, &[r, total, seq]) => h.concat = valid(u16::from(r), false, total, seq),
            (0x08, &[hi, lo, total, seq]) => {
                h.concat = valid(u16::from_be_bytes([hi, lo]), true, total, seq)
            }
            (0x24, &[id]) => h.shift.single = NationalLanguage::from_id(id),
            (0x25, &[id]) => {
                h.shift.locking = NationalLanguage::from_id(id).filter(|l| l.has_locking())
            }
            _ => {}
        }
        i += 2 + len;
    }
    Ok(h)
}

fn valid(reference: u16, sixteen_bit: bool, total: u8, seq: u8) -> Option<Concat> {
    (total >= 1 && seq >= 1 && seq <= total).then_some(Concat {
        reference,
        sixteen_bit,
        total,
        seq,
    })
}
