//! The `Smsgw-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<raw body>"`, keyed with the tenant's webhook secret.
//!
//! Pure functions: `sign` is what the dispatcher sends, `verify` is the reference a
//! customer's receiver follows (and what our tests check against).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The name of the header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Smsgw-Signature";

/// A MAC over `"<t>.<body>"`. HMAC takes keys of any length, so this never fails in
/// practice; `None` only if the hmac crate ever refuses a key.
fn mac(secret: &[u8], unix_seconds: i64, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The full `Smsgw-Signature` header value for `body` sent at `unix_seconds`, so the
/// receiver can check the sender (secret) and the freshness (timestamp) of a webhook.
pub fn sign(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    sign_all(&[secret], unix_seconds, body)
}

/// The header with one `v1=` per secret, in order (`t=...,v1=<new>,v1=<old>`): during a
/// secret rotation's overlap a receiver that still has the old secret, or already the
/// new one, finds a match (Stripe-style; `verify` accepts any `v1`).
pub fn sign_all(secrets: &[&[u8]], unix_seconds: i64, body: &[u8]) -> String {
    let mut header = format!("t={unix_seconds}");
    for secret in secrets {
        let digest = match mac(secret, unix_seconds, body) {
            Some(m) => hex::encode(m.finalize().into_bytes()),
            // Cannot happen with HMAC; an empty v1 is rejected by every receiver.
            None => String::new(),
        };
        header.push_str(",v1=");
        header.push_str(&digest);
    }
    header
}

/// Checks a `Smsgw-Signature` header value against `body`: true when one of its `v1`
/// values is the HMAC of `"<t>.<body>"` and `t` is within `tolerance_s` seconds of
/// `now` (unix seconds). This is the reference check for customers' receivers.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_s: i64) -> bool {
    let mut t: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "t" => match v.trim().parse::<i64>() {
                Ok(x) if t.is_none() => t = Some(x),
                // Two timestamps or a bad one: refuse rather than guess.
                _ => return false,
            },
            "v1" => match hex::decode(v.trim()) {
                Ok(bytes) => candidates.push(bytes),
                Err(_) => continue,
            },
            _ => {}
        }
    }
    let Some(t) = t else {
        return false;
    };
    if now.abs_diff(t) > tolerance_s.max(0).unsigned_abs() {
        return false;
    }
    candidates.iter().any(|c| {
        // verify_slice compares in constant time.
        mac(secret, t, body).is_some_and(|m| m.verify_slice(c).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"event_id":"m1-0","status":"delivered"}"#;
    const T: i64 = 1_700_000_000;

    /// HMAC computed straight with the hmac crate, independent of `sign`.
    fn reference(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut m = HmacSha256::new_from_slice(secret).expect("hmac key");
        let mut msg = format!("{t}.").into_bytes();
        msg.extend_from_slice(body);
        m.update(&msg);
        hex::encode(m.finalize().into_bytes())
    }

    #[test]
    fn sign_matches_fixed_vector() {
        // Computed with: printf '1700000000.<body>' | openssl dgst -sha256 -hmac whsec_test
        let expected =
            "t=1700000000,v1=dba6c1d86f47ad8dadf6e193d101f3ea7d0cbd68d8b85f4dfa94efde6f11cd65";
        assert_eq!(sign(SECRET, T, BODY), expected);
        assert_eq!(format!("t={T},v1={}", reference(SECRET, T, BODY)), expected);
    }

    #[test]
    fn sign_matches_direct_hmac() {
        for (secret, t, body) in [
            (&b""[..], 0_i64, &b""[..]),
            (&b"k"[..], 1, &b"{}"[..]),
            (&[0xffu8; 100][..], 4_102_444_800, &b"\x00\x01binary"[..]),
        ] {
            assert_eq!(
                sign(secret, t, body),
                format!("t={t},v1={}", reference(secret, t, body))
            );
        }
    }

    #[test]
    fn verify_accepts_own_signature() {
        let h = sign(SECRET, T, BODY);
        assert!(verify(SECRET, &h, BODY, T, 300));
        assert!(verify(SECRET, &h, BODY, T + 300, 300));
        assert!(verify(SECRET, &h, BODY, T - 300, 300));
    }

    #[test]
    fn verify_rejects_tampering_and_staleness() {
        let h = sign(SECRET, T, BODY);
        assert!(!verify(b"other", &h, BODY, T, 300), "wrong secret");
        assert!(!verify(SECRET, &h, b"{}", T, 300), "other body");
        assert!(!verify(SECRET, &h, BODY, T + 301, 300), "too old");
        assert!(
            !verify(SECRET, &h, BODY, T - 301, 300),
            "too far in the future"
        );
        let moved = h.replace("t=1700000000", "t=1700000001");
        assert!(!verify(SECRET, &moved, BODY, T, 300), "timestamp is signed");
        assert!(!verify(SECRET, "", BODY, T, 300));
        assert!(!verify(SECRET, "v1=00", BODY, T, 300), "no timestamp");
        assert!(!verify(SECRET, &format!("t={T}"), BODY, T, 300), "no v1");
        assert!(
            !verify(SECRET, &format!("t={T},v1=zz"), BODY, T, 300),
            "not hex"
        );
        assert!(
            !verify(SECRET, &format!("t={T},t={T},{}", &h[13..]), BODY, T, 300),
            "two timestamps"
        );
    }

    #[test]
    fn verify_accepts_any_matching_v1() {
        // Room for secret rotation: a receiver accepts when any v1 matches.
        let good = reference(SECRET, T, BODY);
        let h = format!("t={T}, v1={}, v1={good}", "00".repeat(32));
        assert!(verify(SECRET, &h, BODY, T, 5));
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let header = sign_all(&[b"whsec_new", b"whsec_old"], T, BODY);
        assert_eq!(header.matches("v1=").count(), 2, "{header}");
        assert!(header.starts_with(&format!("t={T},v1={}", reference(b"whsec_new", T, BODY))));
        assert!(header.ends_with(&reference(b"whsec_old", T, BODY)));
        assert!(verify(b"whsec_new", &header, BODY, T, 300));
        assert!(verify(b"whsec_old", &header, BODY, T, 300));
        assert!(!verify(b"whsec_other", &header, BODY, T, 300));
        assert_eq!(sign(SECRET, T, BODY), sign_all(&[SECRET], T, BODY));
    }
}
