//! Byte-level helpers shared by the CMPP, SMGP and SGIP codecs: big-endian
//! integers, fixed-width NUL-padded octet strings, a bounds-checked reader that
//! never panics, the MD5 login authenticators and the `MMDDHHMMSS` timestamp.

use md5::{Digest, Md5};

/// Largest PDU any of the three protocols may send us (a submit to 100
/// recipients with 32-octet numbers is about 3.5 KB); longer frames are refused
/// before they are buffered.
pub const MAX_PDU: usize = 8 * 1024;

/// Shortest PDU any of the three protocols has: the 12-octet CMPP / SMGP
/// header (SGIP's is 20). The frame codec refuses a shorter declared length.
pub const MIN_PDU: usize = 12;

/// Why bytes could not be decoded as a PDU. Every decoder returns this instead
/// of panicking on hostile input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ends before a field does.
    #[error("truncated: {field} needs {need} octets at offset {at}, frame has {len}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Octets the field needs.
        need: usize,
        /// Where it starts.
        at: usize,
        /// Frame length.
        len: usize,
    },
    /// The length prefix disagrees with the frame or is out of range.
    #[error("bad length {0}")]
    BadLength(u32),
    /// A field has a value the protocol does not allow.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A command id this codec does not know.
    #[error("unknown command id {0:#010x}")]
    UnknownCommand(u32),
}

/// A bounds-checked cursor over one frame.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `buf` at offset `pos`.
    pub fn new(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }

    /// The next `n` octets.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DecodeError::Truncated {
                field,
                need: n,
                at: self.pos,
                len: self.buf.len(),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// One octet.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, field)?[0])
    }

    /// Big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let b = self.bytes(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A fixed-width octet string, trailing NULs (and spaces) removed, lossy UTF-8.
    pub fn cstr(&mut self, n: usize, field: &'static str) -> Result<String, DecodeError> {
        Ok(fixed_to_string(self.bytes(n, field)?))
    }

    /// Octets not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        s
    }

    /// Octets not read yet, without consuming them.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// Text of a fixed-width field: up to the first NUL, trailing spaces trimmed.
pub fn fixed_to_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

/// Appends `s` as a fixed-width field: truncated to `n` octets or padded with NULs.
pub fn put_fixed(out: &mut Vec<u8>, s: &[u8], n: usize) {
    let take = s.len().min(n);
    out.extend_from_slice(&s[..take]);
    out.resize(out.len() + (n - take), 0);
}

/// Appends a big-endian u32.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Starts a frame: a zero length placeholder, the command id, then the caller
/// appends the sequence number and body and calls [`finish`].
pub fn begin(command_id: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&[0, 0, 0, 0]);
    put_u32(&mut out, command_id);
    out
}

/// Writes the total length into the first four octets.
pub fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// Checks a whole frame's length prefix against its size and the header length.
pub fn check_frame(frame: &[u8], header_len: usize) -> Result<(), DecodeError> {
    if frame.len() < 4 {
        return Err(DecodeError::BadLength(0));
    }
    let declared = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    if declared as usize != frame.len() || frame.len() < header_len || frame.len() > MAX_PDU {
        return Err(DecodeError::BadLength(declared));
    }
    Ok(())
}

/// MD5 of the concatenation of `parts` (the login authenticators of CMPP and SMGP).
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The login authenticator of CMPP (`zeros` = 9) and SMGP (`zeros` = 7):
/// MD5(account + zeros×0x00 + secret + "MMDDHHMMSS").
pub fn login_authenticator(account: &str, zeros: usize, secret: &str, stamp: &str) -> [u8; 16] {
    let pad = [0u8; 16];
    md5(&[
        account.as_bytes(),
        &pad[..zeros.min(16)],
        secret.as_bytes(),
        stamp.as_bytes(),
    ])
}

/// Local time as `MMDDHHMMSS`, both as text (for the authenticator) and as the
/// number the login PDU carries.
pub fn timestamp_now() -> (String, u32) {
    let s = chrono::Local::now().format("%m%d%H%M%S").to_string();
    let n = s.parse().unwrap_or(0);
    (s, n)
}

/// The timestamp number written back as the 10-digit text the authenticator used.
pub fn timestamp_text(n: u32) -> String {
    format!("{n:010}")
}

/// Packs decimal digits two per octet (BCD), e.g. SMGP's 10-octet MsgID.
pub fn bcd_to_string(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        for nib in [x >> 4, x & 0x0F] {
            s.push(char::from_digit(u32::from(nib), 16).unwrap_or('0'));
        }
    }
    s
}

/// The reverse of [`bcd_to_string`]: hex/decimal digits to octets (odd length
/// is left-padded with 0, non-hex digits count as 0).
pub fn string_to_bcd(s: &str, n: usize) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
        .collect();
    let mut out = vec![0u8; n];
    let need = n * 2;
    let skip = digits.len().saturating_sub(need);
    let digits = &digits[skip..];
    let offset = need - digits.len();
    for (i, d) in digits.iter().enumerate() {
        let k = offset + i;
        if k.is_multiple_of(2) {
            out[k / 2] |= d << 4;
        } else {
            out[k / 2] |= d;
        }
    }
    out
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn reader_never_panics_and_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3], 0);
        assert_eq!(r.u8("a"), Ok(1));
        assert!(matches!(
            r.u32("b"),
            Err(DecodeError::Truncated {
                need: 4,
                at: 1,
                len: 3,
                ..
            })
        ));
        assert_eq!(r.u16("c"), Ok(0x0203));
        assert!(r.bytes(usize::MAX, "d").is_err());
        assert!(r.rest().is_empty());
    }

    #[test]
    fn fixed_fields() {
        let mut v = Vec::new();
        put_fixed(&mut v, b"abc", 5);
        put_fixed(&mut v, b"toolong", 3);
        assert_eq!(v, b"abc\0\0too");
        assert_eq!(fixed_to_string(b"ab\0\0x"), "ab");
    }

    #[test]
    fn md5_known_vector() {
        // RFC 1321 test suite: MD5("abc").
        assert_eq!(
            hex::encode(md5(&[b"a", b"bc"])),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn bcd_round_trip() {
        let b = string_to_bcd("01234567890123456789", 10);
        assert_eq!(b[0], 0x01);
        assert_eq!(b[9], 0x89);
        assert_eq!(bcd_to_string(&b), "01234567890123456789");
        assert_eq!(bcd_to_string(&string_to_bcd("12", 2)), "0012");
    }
}
