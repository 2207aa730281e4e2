//! Operator protocols. Each protocol lives in its own folder with the same files:
//! `codec.rs`, `session.rs`, `receipt.rs`, `status_map.rs`, `tests.rs`.
//! [`session`] is the protocol-neutral session the bind actors drive; the
//! Chinese protocols share their session engine in [`cn`].
pub mod cmpp;
pub mod cn;
pub mod http_upstream;
pub mod session;
pub mod sgip;
pub mod smgp;
pub mod smpp;

/// Replaces the secrets `keys` of an options object with `"<redacted>"` (for the channel
/// answers of the admin API); keys that are not set stay absent.
pub fn redact_keys(
    options: Option<&mut serde_json::Map<String, serde_json::Value>>,
    keys: &[&str],
) {
    let Some(options) = options else { return };
    for k in keys {
        if let Some(v) = options.get_mut(*k) {
            *v = serde_json::Value::String("<redacted>".into());
        }
    }
}
