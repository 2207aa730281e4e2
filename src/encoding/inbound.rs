//! Inbound (mobile-originated) user data: strip and read the UDH or the SAR
//! TLVs, unpack septets when the channel packs them, and say how the body
//! decodes. The result feeds [`super::reassembly::Reassembler`].

use super::udh::{self, Concat, UdhError};
use super::{NationalShift, gsm7, national, octet, ucs2};

/// How an inbound body is written, from `data_coding` (SMPP values, and the
/// TS 23.038 general / message-class groups some SMSCs pass through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// Unpacked GSM septets with these shift tables.
    Gsm7(NationalShift),
    /// UTF-16BE.
    Ucs2,
    /// ISO-8859-1.
    Latin1,
    /// ASCII.
    Ia5,
    /// Octets, shown as hex.
    Binary,
    /// Another SMPP national coding (JIS, Cyrillic, Hebrew, KS C 5601), via `encoding_rs`.
    Other(&'static encoding_rs::Encoding),
}

impl Body {
    fn from_data_coding(dc: u8, shift: NationalShift) -> Self {
        match dc {
            0x00 => Body::Gsm7(shift),
            0x01 => Body::Ia5,
            0x03 => Body::Latin1,
            0x08 => Body::Ucs2,
            0x02 | 0x04 => Body::Binary,
            0x05 | 0x0D => Body::Other(encoding_rs::SHIFT_JIS),
            0x06 => Body::Other(encoding_rs::ISO_8859_5),
            0x07 => Body::Other(encoding_rs::ISO_8859_8),
            0x0A => Body::Other(encoding_rs::ISO_2022_JP),
            0x0E => Body::Other(encoding_rs::EUC_KR),
            // Message class group: bit 2 = 8-bit data, else GSM 7-bit.
            0xF0..=0xFF if dc & 0x04 != 0 => Body::Binary,
            0xF0..=0xFF => Body::Gsm7(shift),
            // General data coding group: bits 3..2 = alphabet.
            // General data coding groups (uncompressed): bits 3..2 = alphabet.
            0x10..=0x7F if dc & 0x20 == 0 => match (dc >> 2) & 0x03 {
                0 => Body::Gsm7(shift),
                2 => Body::Ucs2,
                _ => Body::Binary,
            },
            0x10..=0x7F => Body::Binary,
            _ => Body::Latin1,
        }
    }

    /// Decodes a complete body (the parts' bodies concatenated). Never panics.
    #[must_use]
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Body::Gsm7(shift) => national::decode(bytes, shift),
            Body::Ucs2 => ucs2::decode(bytes),
            Body::Latin1 => octet::decode_latin1(bytes),
            Body::Ia5 => octet::decode_ia5(bytes),
            Body::Binary => hex::encode(bytes),
            Body::Other(e) => e.decode_without_bom_handling(bytes).0.into_owned(),
        }
    }
}

/// One inbound PDU's user data, ready for reassembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Concatenation info from the UDH or the SAR TLVs (None: a whole message).
    pub concat: Option<Concat>,
    /// How the body decodes.
    pub body_kind: Body,
    /// The body without UDH, septets unpacked (one per octet).
    pub body: Vec<u8>,
}

/// Reads one deliver_sm's user data. `esm_class` bit 0x40 says a UDH
/// starts the data; `sar` are the SAR TLV values (reference, total, seq);
/// `packed` is the channel's GSM packing. A malformed UDH is an error (the
/// caller accepts the PDU and logs it: resending would not fix it).
///
/// # Errors
/// [`UdhError`] when the UDH lengths do not fit.
pub fn read(
    esm_class: u8,
    data_coding: u8,
    user_data: &[u8],
    sar: Option<(u16, u8, u8)>,
    packed: bool,
) -> Result<Part, UdhError> {
    let (header, rest) = if esm_class & 0x40 != 0 {
        let h = udh::parse(user_data)?;
        let rest = user_data.get(h.len..).unwrap_or(&[]);
        (Some(h), rest)
    } else {
        (None, user_data)
    };
    let shift = header.as_ref().map(|h| h.shift).unwrap_or_default();
    let body_kind = Body::from_data_coding(data_coding, shift);
    let body = match body_kind {
        Body::Gsm7(_) if packed => {
            // Packed septets continue after the UDH's fill bits.
            let udh_len = header.as_ref().map_or(0, |h| h.len);
            let mut septets = gsm7::unpack(user_data, 0);
            let skip = (udh_len * 8).div_ceil(7);
            septets.drain(..skip.min(septets.len()));
            septets
        }
        _ => rest.to_vec(),
    };
    let concat = header.and_then(|h| h.concat).or_else(|| {
        sar.and_then(|(reference, total, seq)| {
            (total >= 1 && seq >= 1 && seq <= total).then_some(Concat {
                reference,
                sixteen_bit: true,
                total,
                seq,
            })
        })
    });
    Ok(Part {
        concat: concat.filter(|c| c.total > 1),
        body_kind,
        body,
    })
}
