//! Delivery receipts: `parse_receipt_text`, `parse_receipt_fields`,
//! `parse_receipt_date`, `parse_receipt` (TLVs + text) and `id_keys`.
//!
//! Input: byte 0 is the esm_class, byte 1 flags which TLVs are present,
//! bytes 2..6 their values, byte 6 the length of the receipted_message_id
//! TLV text that follows; the rest is the short_message.
//!
//! Properties:
//! - never panics;
//! - `id_keys`: no keys iff the trimmed id is empty, never a duplicate key,
//!   independent of ASCII case;
//! - `parse_receipt` with no TLVs finds an id iff `parse_receipt_text`
//!   does on the same text (for NUL-free UTF-8 input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgw::protocols::smpp::receipt::{
    ReceiptState, id_keys, is_receipt_esm_class, parse_receipt, parse_receipt_date,
    parse_receipt_fields, parse_receipt_text,
};

fuzz_target!(|data: &[u8]| {
    // The whole input as text, the way the text parser sees it.
    let whole = String::from_utf8_lossy(data);
    text_properties(&whole);

    if data.len() < 7 {
        return;
    }
    let (head, rest) = data.split_at(7);
    let esm_class = head[0];
    let flags = head[1];
    let id_len = (head[6] as usize).min(rest.len());
    let (tlv_id, short_message) = rest.split_at(id_len);
    let tlv_id = String::from_utf8_lossy(tlv_id);
    let receipted_message_id = (flags & 1 != 0).then_some(tlv_id.as_ref());
    let message_state = (flags & 2 != 0).then_some(head[2]);
    let network_error_code =
        (flags & 4 != 0).then_some((head[3], u16::from_be_bytes([head[4], head[5]])));

    let receipt = parse_receipt(
        esm_class,
        short_message,
        receipted_message_id,
        message_state,
        network_error_code,
    );
    match &receipt {
        None => {}
        Some(r) => {
            assert!(is_receipt_esm_class(esm_class));
            assert!(!r.smsc_message_id.is_empty());
            if let Some(v) = message_state {
                assert_eq!(r.state, ReceiptState::from_message_state(v));
            }
            let _ = (
                r.state.is_final(),
                r.state.stat_text(),
                r.state.message_state(),
            );
            keys_properties(&r.smsc_message_id);
            if let Some(f) = &r.text_fields {
                for d in [&f.submit_date, &f.done_date].into_iter().flatten() {
                    let _ = parse_receipt_date(d);
                }
            }
        }
    }

    // Text-only receipt: agrees with parse_receipt_text when the bytes are
    // already clean text (no NULs to strip, valid UTF-8).
    if let Ok(text) = std::str::from_utf8(short_message)
        && !text.contains('\0')
    {
        let by_text = parse_receipt_text(text);
        let by_pdu = parse_receipt(0x04, short_message, None, None, None);
        assert_eq!(
            by_text.as_ref().map(|t| t.0.as_str()),
            by_pdu.as_ref().map(|r| r.smsc_message_id.as_str()),
            "parse_receipt_text and parse_receipt disagree on the id"
        );
    }
    keys_properties(&tlv_id);
});

fn text_properties(text: &str) {
    if let Some((id, state, err)) = parse_receipt_text(text) {
        let _ = (state.is_final(), err);
        keys_properties(&id);
    }
    let fields = parse_receipt_fields(text);
    for d in [&fields.submit_date, &fields.done_date]
        .into_iter()
        .flatten()
    {
        let _ = parse_receipt_date(d);
    }
    let _ = parse_receipt_date(text);
    if let Some(stat) = &fields.stat {
        let _ = ReceiptState::from_stat(stat);
    }
    keys_properties(text);
}

fn keys_properties(raw: &str) {
    let keys = id_keys(raw);
    assert_eq!(
        keys.is_empty(),
        raw.trim().is_empty(),
        "id_keys({raw:?}) = {keys:?}"
    );
    for (i, k) in keys.iter().enumerate() {
        assert!(!keys[..i].contains(k), "duplicate key {k:?} in {keys:?}");
    }
    assert_eq!(
        keys,
        id_keys(&raw.to_ascii_uppercase()),
        "id_keys is case-sensitive"
    );
}
