//! What an HTTP provider's answers and receipt statuses mean in the gateway's terms:
//! HTTP status → retry class and error code, provider receipt status → the common status
//! vocabulary (delivered, expired, undeliverable, rejected, unknown, or not final yet).
//! Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::protocols::smpp::status_map::SubmitErrorClass;

/// The contract's normalised error codes (`error.code` of a message).
pub const ERROR_CODES: &[&str] = &[
    "invalid_destination",
    "blocked",
    "rejected_by_carrier",
    "throttled",
    "no_route",
    "channel_unavailable",
    "expired",
    "unknown",
];

/// How an HTTP status answering a submit is treated: 429 slows the channel down and
/// retries (like SMPP 0x58); 5xx, 408, 425 and 401/403 (the channel's credentials,
/// not the message) retry later, maybe elsewhere; 3xx is a misconfigured URL (retry
/// after the admin fixes it); other 4xx refuse the message for good.
pub fn classify_http_status(status: u16) -> SubmitErrorClass {
    match status {
        429 => SubmitErrorClass::Throttled,
        401 | 403 | 408 | 425 => SubmitErrorClass::Temporary,
        400..=499 => SubmitErrorClass::Permanent,
        _ => SubmitErrorClass::Temporary,
    }
}

/// The contract error code of a refusal when the channel's `error_map` has no entry.
pub fn default_error_code(class: SubmitErrorClass) -> &'static str {
    match class {
        SubmitErrorClass::Throttled => "throttled",
        SubmitErrorClass::Temporary => "channel_unavailable",
        SubmitErrorClass::Permanent => "rejected_by_carrier",
    }
}

/// The common status vocabulary every receipt is normalised to (research §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommonStatus {
    /// Taken by the provider, not final (queued, scheduled).
    Accepted,
    /// On its way to the handset, not final (sending, sent, en route).
    Sent,
    Delivered,
    Expired,
    /// The operator could not deliver it (unreachable, unknown subscriber, failed).
    Undeliverable,
    /// Refused or blocked by the operator or a filter.
    Rejected,
    /// Final, but the operator does not know what happened.
    Unknown,
}

impl CommonStatus {
    /// True for statuses that end the part's life.
    pub fn is_final(self) -> bool {
        !matches!(self, CommonStatus::Accepted | CommonStatus::Sent)
    }

    /// The contract error code a final non-delivered status carries.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            CommonStatus::Expired => Some("expired"),
            CommonStatus::Undeliverable => Some("rejected_by_carrier"),
            // As SMPP's REJECTD (`receipt_error_code`): the operator refused it.
            CommonStatus::Rejected => Some("rejected_by_carrier"),
            CommonStatus::Unknown => Some("unknown"),
            _ => None,
        }
    }
}

/// Provider status words understood without configuration (case-insensitive); a
/// channel's `status_map` adds to and overrides these.
pub const DEFAULT_STATUS_WORDS: &[(&str, CommonStatus)] = &[
    ("accepted", CommonStatus::Accepted),
    ("queued", CommonStatus::Accepted),
    ("scheduled", CommonStatus::Accepted),
    ("buffered", CommonStatus::Accepted),
    ("sending", CommonStatus::Sent),
    ("sent", CommonStatus::Sent),
    ("enroute", CommonStatus::Sent),
    ("delivered", CommonStatus::Delivered),
    ("delivrd", CommonStatus::Delivered),
    ("read", CommonStatus::Delivered),
    ("expired", CommonStatus::Expired),
    ("undelivered", CommonStatus::Undeliverable),
    ("undeliverable", CommonStatus::Undeliverable),
    ("undeliv", CommonStatus::Undeliverable),
    ("failed", CommonStatus::Undeliverable),
    ("rejected", CommonStatus::Rejected),
    ("rejectd", CommonStatus::Rejected),
    ("blocked", CommonStatus::Rejected),
    ("unknown", CommonStatus::Unknown),
];

/// A channel's receipt status table: provider word → common status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTable {
    words: BTreeMap<String, CommonStatus>,
    /// Used for words in neither table (`"*"` in the channel's `status_map`); without
    /// it such receipts are recorded as not final.
    fallback: Option<CommonStatus>,
}

impl StatusTable {
    /// The defaults overlaid with the channel's entries (keys compared case-insensitively).
    pub fn new(custom: &BTreeMap<String, CommonStatus>) -> StatusTable {
        let mut words: BTreeMap<String, CommonStatus> = DEFAULT_STATUS_WORDS
            .iter()
            .map(|(w, s)| (w.to_string(), *s))
            .collect();
        let mut fallback = None;
        for (k, v) in custom {
            if k == "*" {
                fallback = Some(*v);
            } else {
                words.insert(k.trim().to_ascii_lowercase(), *v);
            }
        }
        StatusTable { words, fallback }
    }

    /// The common status of a provider's word; `None` when neither table nor fallback knows it.
    pub fn lookup(&self, raw: &str) -> Option<CommonStatus> {
        self.words
            .get(&raw.trim().to_ascii_lowercase())
            .copied()
            .or(self.fallback)
    }
}
