//! Mobile-originated (inbound) messages for tenants: two-way SMS.
//!
//! An MO reaches a channel's bind (`deliver_sm` that is not a receipt, or a CN protocol's
//! deliver); long ones are put back together per channel (`desk`). The whole message is
//! committed as one `Op::Inbound` (with the opt-out or opt-in its keyword asks for) before
//! the operator gets its acknowledgement, so a crash makes the SMSC deliver it again
//! (`receive`). The state machine gives it to every tenant that sends from the number it
//! was sent to (its senders, sender pool or 10DLC campaign numbers,
//! `compliance::mo::owners`), stores a row per tenant, and queues a signed webhook to the
//! tenant's callback URL with `"status": "received"`. Tenants read them with
//! `GET /v1/inbound` and `GET /v1/inbound/{id}` (`api::inbound`).

pub mod desk;
pub mod receive;

use serde::{Deserialize, Serialize};

/// What an inbound keyword did to the sender's standing with the tenant.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum KeywordAction {
    /// STOP and its synonyms: the sender is on the tenant's opt-out list now.
    OptOut,
    /// START and its synonyms: the sender is off it.
    OptIn,
}

impl KeywordAction {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeywordAction::OptOut => "opt_out",
            KeywordAction::OptIn => "opt_in",
        }
    }
}

/// One inbound message as it is replicated and stored (once per tenant that owns `to`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InboundMessage {
    /// A ULID made where it arrived (time-ordered).
    pub id: String,
    /// The channel it came in on.
    pub channel: String,
    /// The handset that sent it (`+digits` when it is a number).
    pub from: String,
    /// The tenant's number or short code it was sent to (`+digits` when it is a number,
    /// whether the operator wrote it with `+`, `00` or neither).
    pub to: String,
    /// The decoded text (binary bodies as hex).
    pub text: String,
    /// Parts it announced (1 for a single message).
    pub parts: u32,
    /// Every part arrived (a long message whose parts stopped coming is delivered after
    /// the reassembly timeout with what arrived).
    pub complete: bool,
    /// Sequence numbers of the parts that never arrived.
    pub missing_parts: Vec<u8>,
    /// The opt-out or opt-in the text asked for, if it was such a keyword.
    pub keyword: Option<KeywordAction>,
    /// When the gateway received it (ms).
    pub received_at: i64,
}

impl InboundMessage {
    /// The API's view (status answer, list item and webhook body) of `tenant`'s copy:
    /// with the webhook's `event_id` and `at`, so a tenant that reads the list and takes
    /// the webhooks deduplicates by the same id.
    pub fn json(&self, tenant: &str) -> serde_json::Value {
        serde_json::json!({
            "event_id": self.event_id(tenant),
            "at": crate::clock::rfc3339(self.received_at),
            "id": self.id,
            "direction": "inbound",
            "status": "received",
            "from": self.from,
            "to": self.to,
            "text": self.text,
            "parts": self.parts,
            "complete": self.complete,
            "missing_parts": self.missing_parts,
            "keyword": self.keyword.map(KeywordAction::as_str),
            "channel": self.channel,
            "received_at": crate::clock::rfc3339(self.received_at),
        })
    }

    /// The webhook body of `tenant`'s copy: the API's view.
    pub fn webhook_body(&self, tenant: &str) -> String {
        self.json(tenant).to_string()
    }

    /// The webhook event id for `tenant`'s copy: stable, so a receiver deduplicates.
    pub fn event_id(&self, tenant: &str) -> String {
        format!("{}-in-{tenant}", self.id)
    }
}

/// Row keys of the inbound keyspace: `t` + tenant + NUL + id holds the message (a tenant's
/// rows in time order, for listing); `a` + id + NUL + tenant is empty (every row in time
/// order, for dropping those past the retention time).
pub mod keys {
    /// The row holding `tenant`'s copy of message `id`.
    pub fn by_tenant(tenant: &str, id: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(tenant.len() + id.len() + 2);
        k.push(b't');
        k.extend_from_slice(tenant.as_bytes());
        k.push(0);
        k.extend_from_slice(id.as_bytes());
        k
    }

    /// The age index entry of `tenant`'s copy of `id`.
    pub fn by_age(tenant: &str, id: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(tenant.len() + id.len() + 2);
        k.push(b'a');
        k.extend_from_slice(id.as_bytes());
        k.push(0);
        k.extend_from_slice(tenant.as_bytes());
        k
    }

    /// The first age-index key at or after time `ms` (ids are ULIDs: time first).
    pub fn age_bound(ms: i64) -> Vec<u8> {
        let id = ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(0), 0).to_string();
        let mut k = vec![b'a'];
        k.extend_from_slice(id.as_bytes());
        k
    }

    /// (id, tenant) of an age-index key.
    pub fn split_age(key: &[u8]) -> Option<(String, String)> {
        let rest = key.strip_prefix(b"a")?;
        let cut = rest.iter().position(|b| *b == 0)?;
        Some((
            String::from_utf8_lossy(&rest[..cut]).into_owned(),
            String::from_utf8_lossy(&rest[cut + 1..]).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_keys_sort_by_time_and_split_back() {
        let old = ulid::Ulid::from_parts(1_000, 7).to_string();
        let new = ulid::Ulid::from_parts(2_000, 1).to_string();
        assert!(keys::by_age("t", &old) < keys::age_bound(1_500));
        assert!(keys::by_age("t", &new) > keys::age_bound(1_500));
        assert_eq!(
            keys::split_age(&keys::by_age("acme", &old)),
            Some((old.clone(), "acme".to_string()))
        );
    }

    #[test]
    fn the_webhook_body_is_the_view_with_event_id_and_at() {
        let m = InboundMessage {
            id: "01ABC".into(),
            channel: "smsc-a".into(),
            from: "+4915112345678".into(),
            to: "+4915550001".into(),
            text: "STOP".into(),
            parts: 1,
            complete: true,
            missing_parts: vec![],
            keyword: Some(KeywordAction::OptOut),
            received_at: 0,
        };
        let body: serde_json::Value =
            serde_json::from_str(&m.webhook_body("acme")).unwrap_or_default();
        assert_eq!(body["status"], "received");
        assert_eq!(body["keyword"], "opt_out");
        assert_eq!(body["event_id"], "01ABC-in-acme");
        assert_eq!(body["at"], "1970-01-01T00:00:00.000Z");
    }
}
