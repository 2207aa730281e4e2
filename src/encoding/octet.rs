//! One-octet codings: Latin-1 (`data_coding` 3), IA5/ASCII (1), and the hex
//! form in which binary user data travels through the JSON API.

/// Latin-1: every octet is the code point of the same value.
pub(crate) fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// IA5 (ASCII): octets above 0x7F are not IA5 and become U+FFFD.
pub(crate) fn decode_ia5(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

/// Octets a hex string stands for, or why it is not hex.
pub(crate) fn hex_len(text: &str) -> Result<usize, String> {
    if !text.len().is_multiple_of(2) {
        return Err("an even number of hex digits is needed".into());
    }
    if let Some(p) = text.bytes().position(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("not a hex digit at position {p}"));
    }
    Ok(text.len() / 2)
}

/// Decodes hex (either case) into octets.
pub(crate) fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    hex_len(text)?;
    hex::decode(text).map_err(|e| e.to_string())
}
