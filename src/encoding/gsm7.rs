//! GSM 03.38 (3GPP TS 23.038) default alphabet: the basic table, the
//! extension table reached through ESC, and conversion between `char` and
//! unpacked septets (one octet per septet, as SMPP carries them).

/// The escape septet that switches the next septet to the extension table.
pub(crate) const ESC: u8 = 0x1B;

/// Basic table indexed by septet. Slot 0x1B is ESC, which is not a character;
/// the decoder handles it before looking here, so the slot only holds the
/// space a receiver shows for a bare escape.
pub(crate) static BASIC: [char; 128] = [
    // 0x00
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    // 0x10
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É',
    // 0x20
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    // 0x30
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    // 0x40
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    // 0x50
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    // 0x60
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    // 0x70
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// Extension table: (code after ESC, character).
pub(crate) static EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// How one character is written in GSM-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Septet {
    /// One septet from the basic table.
    Basic(u8),
    /// ESC followed by this code from the extension table.
    Extended(u8),
}

impl Septet {
    /// Septets this character occupies (ESC pairs cost two).
    #[inline]
    pub(crate) fn cost(self) -> usize {
        match self {
            Septet::Basic(_) => 1,
            Septet::Extended(_) => 2,
        }
    }
}

/// Marker in [`LOW_TO_GSM`] for "not encodable".
const NONE: u8 = 0xFF;
/// Flag in [`LOW_TO_GSM`] for "extension table code".
const EXT_FLAG: u8 = 0x80;

/// U+0000..=U+00FF → septet, built at compile time from the two tables above
/// so the tables stay the single source of truth. ASCII and the Latin-1
/// letters of the basic table (£ ¥ è é Ä Ö Ü ß ...) are most of what real
/// GSM-7 texts hold, so one array lookup covers them. `NONE` = not
/// encodable, `EXT_FLAG | code` = extension table code, else the basic septet.
static LOW_TO_GSM: [u8; 256] = build_low_table();

const fn build_low_table() -> [u8; 256] {
    let mut table = [NONE; 256];
    let mut septet: u8 = 0;
    while septet < 128 {
        let c = BASIC[septet as usize] as u32;
        if septet != ESC && c < 256 && table[c as usize] == NONE {
            table[c as usize] = septet;
        }
        septet += 1;
    }
    let mut i = 0;
    while i < EXTENSION.len() {
        let (code, c) = EXTENSION[i];
        let c = c as u32;
        if c < 256 {
            table[c as usize] = EXT_FLAG | code;
        }
        i += 1;
    }
    table
}

/// Map a character to its GSM-7 representation, or `None` if it is outside
/// GSM 03.38. U+0000..=U+00FF go through a compile-time table; the rest
/// (Greek capitals, €) is a match.
#[inline]
pub(crate) fn encode_char(c: char) -> Option<Septet> {
    let code = c as u32;
    if code < 256 {
        return match LOW_TO_GSM[code as usize] {
            NONE => None,
            v if v & EXT_FLAG != 0 => Some(Septet::Extended(v & !EXT_FLAG)),
            v => Some(Septet::Basic(v)),
        };
    }
    let septet = match c {
        'Δ' => 0x10,
        'Φ' => 0x12,
        'Γ' => 0x13,
        'Λ' => 0x14,
        'Ω' => 0x15,
        'Π' => 0x16,
        'Ψ' => 0x17,
        'Σ' => 0x18,
        'Θ' => 0x19,
        'Ξ' => 0x1A,
        '€' => return Some(Septet::Extended(0x65)),
        _ => return None,
    };
    Some(Septet::Basic(septet))
}

/// The character for an extension-table code, if that code is assigned.
#[inline]
fn extension_char(code: u8) -> Option<char> {
    match code {
        0x0A => Some('\u{0C}'),
        0x14 => Some('^'),
        0x28 => Some('{'),
        0x29 => Some('}'),
        0x2F => Some('\\'),
        0x3C => Some('['),
        0x3D => Some('~'),
        0x3E => Some(']'),
        0x40 => Some('|'),
        0x65 => Some('€'),
        _ => None,
    }
}

/// Append the unpacked septets of one character to `out` (ESC pair kept together).
#[inline]
pub(crate) fn push_septets(out: &mut Vec<u8>, septet: Septet) {
    match septet {
        Septet::Basic(s) => out.push(s),
        Septet::Extended(s) => {
            out.push(ESC);
            out.push(s);
        }
    }
}

/// Decode unpacked septets (one per octet). Rules, per TS 23.038 where it
/// has one:
/// - ESC + assigned extension code → that character;
/// - ESC + unassigned code → the basic-table character for that code;
/// - ESC + ESC (reserved for a further table) and a trailing lone ESC → space;
/// - an octet above 0x7F (not a septet) → U+FFFD, also right after ESC.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied();
    while let Some(b) = iter.next() {
        if b == ESC {
            let c = match iter.next() {
                None | Some(ESC) => ' ',
                Some(next) if next > 0x7F => char::REPLACEMENT_CHARACTER,
                Some(next) => extension_char(next).unwrap_or(BASIC[usize::from(next)]),
            };
            out.push(c);
        } else {
            out.push(
                BASIC
                    .get(usize::from(b))
                    .copied()
                    .unwrap_or(char::REPLACEMENT_CHARACTER),
            );
        }
    }
    out
}

/// Fill bits after a UDH of `udh_octets` octets (UDHL included) so that the
/// first septet starts on a septet boundary (TS 23.040 9.2.3.24).
#[inline]
pub(crate) fn fill_bits(udh_octets: usize) -> usize {
    (7 - (udh_octets * 8) % 7) % 7
}

/// The padding septet TS 23.038 6.1.2.3.1 puts in 7 spare bits so that they
/// are not read as `@`.
const CR: u8 = 0x0D;

/// Pack septets LSB first, starting after `fill` zero bits. When the last
/// octet has 7 spare bits they carry CR (TS 23.038 6.1.2.3.1).
pub(crate) fn pack(septets: &[u8], fill: usize) -> Vec<u8> {
    let bits = fill + septets.len() * 7;
    let mut out = vec![0u8; bits.div_ceil(8)];
    let mut put = |pos: usize, s: u8| {
        let v = u16::from(s & 0x7F) << (pos % 8);
        let i = pos / 8;
        out[i] |= (v & 0xFF) as u8;
        if v > 0xFF
            && let Some(next) = out.get_mut(i + 1)
        {
            *next |= (v >> 8) as u8;
        }
    };
    for (k, &s) in septets.iter().enumerate() {
        put(fill + k * 7, s);
    }
    if bits % 8 == 1 {
        put(bits, CR);
    }
    out
}

/// Unpack septets that start after `fill` bits; a CR filling exactly the
/// 7 spare bits of the last octet is padding and dropped.
pub(crate) fn unpack(packed: &[u8], fill: usize) -> Vec<u8> {
    let bits = (packed.len() * 8).saturating_sub(fill);
    let n = bits / 7;
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let pos = fill + k * 7;
        let i = pos / 8;
        let lo = u16::from(packed.get(i).copied().unwrap_or(0));
        let hi = u16::from(packed.get(i + 1).copied().unwrap_or(0));
        out.push((((hi << 8 | lo) >> (pos % 8)) & 0x7F) as u8);
    }
    // The septets end exactly on the octet boundary: the last one may be the
    // CR that pack() wrote into 7 spare bits.
    if n > 0 && fill + n * 7 == packed.len() * 8 && out.last() == Some(&CR) {
        out.pop();
    }
    out
}
