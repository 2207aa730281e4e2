//! UCS-2 as operators actually use it: UTF-16BE, so characters outside the
//! BMP travel as surrogate pairs.

/// UTF-16 code units of one character (1, or 2 for a surrogate pair).
#[inline]
pub(crate) fn units(c: char) -> usize {
    c.len_utf16()
}

/// Append the UTF-16BE octets of one character to `out` (a surrogate pair is
/// written whole).
#[inline]
pub(crate) fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u16; 2];
    for unit in c.encode_utf16(&mut buf) {
        out.extend_from_slice(&unit.to_be_bytes());
    }
}

/// Decode UTF-16BE: surrogate pairs are joined, lone surrogates and a
/// trailing odd octet become U+FFFD.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let chunks = bytes.chunks_exact(2);
    let odd = !chunks.remainder().is_empty();
    let units = chunks.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut out: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if odd {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    out
}
