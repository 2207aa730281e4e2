//! The rows of the replicated state: tenants, channels, routes and messages.
//! Every field here is written only by applying a Raft entry.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::encoding::{Layout, NationalLanguage, TextEncoding};

/// A customer account: who may send, how fast, and where its webhooks go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// SHA-256 (hex) of the API key; the key itself is shown once and never stored.
    pub api_key_hash: String,
    /// HMAC key for webhook signatures.
    pub webhook_secret: String,
    pub rate_limit: RateLimit,
    pub callback_url: Option<String>,
    /// More parts than this is refused with `too_long` instead of being truncated.
    pub max_parts: u32,
    /// Bounds the tenant's backlog (memory, and how long a new message would wait):
    /// messages due now and scheduled ones are each held to it, with headroom kept for
    /// otp and transactional traffic (`state::admission`); refused with `queue_full`.
    pub queue_limit: u64,
    pub smart_encoding: bool,
    pub senders: Vec<String>,
    pub created_at: i64,
    /// Per-recipient caps, decided exactly in the state machine (compliance).
    pub frequency_caps: Vec<super::compliance::FrequencyCap>,
    /// Numbers used where a country forbids alphanumeric senders.
    pub sender_pool: Vec<String>,
    /// Categories refused (403 `opted_out`) to numbers on the tenant's opt-out list.
    pub opt_out_categories: Vec<Category>,
}

/// A tenant's webhook secret before its last rotation, still signing webhooks (as a
/// second `v1=`) until `until`, so receivers can switch secrets without losing events.
/// A row of its own (`w/<tenant>`), not a `Tenant` field: tenant rows and the
/// `Op::PutTenant` entries of the Raft log are bincode, which has no way to skip a field
/// that rows written before lack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: String,
    /// Unix ms (the leader's clock at the rotation, plus the overlap).
    pub until: i64,
}

/// Requests per second and burst allowed to one tenant on one node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// How a channel binds to the operator.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BindKind {
    #[default]
    Transceiver,
    Transmitter,
}

/// Where long messages carry their concatenation information.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UdhMode {
    #[default]
    #[serde(rename = "8bit")]
    Udh8,
    #[serde(rename = "16bit")]
    Udh16,
    Sar,
    Payload,
}

/// A connection to one operator SMSC: credentials, limits and prices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Channel {
    pub id: String,
    pub protocol: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub bind: BindKind,
    /// Parallel sessions opened to the SMSC.
    pub binds: u32,
    /// Operator-agreed parts per second for the whole channel.
    pub tps: u32,
    /// Submits outstanding without a response, per bind.
    pub window: u32,
    pub enquire_link_seconds: u32,
    /// Price per part: "default" and E.164 prefixes.
    pub cost: BTreeMap<String, f64>,
    pub udh: UdhMode,
    /// A final receipt that never comes is settled as `undelivered`/`unknown` after this.
    pub dlr_timeout_seconds: u64,
    /// Other protocol options as given, kept so that GET shows what was set.
    pub options_json: String,
    pub drained: bool,
    pub created_at: i64,
    /// SLA thresholds whose breach fires an alert webhook; None = no alerting.
    pub sla: Option<SlaPolicy>,
    /// How this channel wants text written (packing, national tables, coding).
    #[serde(default)]
    pub text: ChannelText,
}

/// A channel's SLA: thresholds over one window and where breach alerts go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlaPolicy {
    /// "5m", "1h" or "24h".
    pub window: String,
    pub min_availability: Option<f64>,
    pub min_success_rate: Option<f64>,
    pub max_submit_latency_ms_p99: Option<f64>,
    /// Receives `channel.sla_breached` / `channel.sla_recovered` POSTs.
    pub alert_url: String,
    /// HMAC key of the alerts' `Smsgw-Signature` header.
    pub alert_secret: String,
}

/// A channel's text options (`options.gsm_packing`, `options.national_tables`,
/// `options.text_coding`): decided per channel because operators differ.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ChannelText {
    /// GSM-7 as packed septets instead of one octet per septet.
    pub packed: bool,
    /// National shift tables (3GPP TS 23.038) the operator accepts.
    pub national_tables: Vec<NationalLanguage>,
    /// Send text that fits Latin-1 / IA5 in that coding instead of GSM-7.
    pub coding: TextCoding,
}

/// The one-octet coding a channel prefers for text, if any.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TextCoding {
    /// GSM-7 (or UCS-2), the SMPP default.
    #[default]
    Gsm7,
    /// ISO-8859-1, data_coding 3.
    Latin1,
    /// IA5/ASCII, data_coding 1.
    Ia5,
}

impl UdhMode {
    /// The encoding module's carrier for this mode.
    pub fn carrier(self) -> crate::encoding::Carrier {
        match self {
            UdhMode::Udh8 => crate::encoding::Carrier::Udh8,
            UdhMode::Udh16 => crate::encoding::Carrier::Udh16,
            UdhMode::Sar => crate::encoding::Carrier::Sar,
            UdhMode::Payload => crate::encoding::Carrier::Payload,
        }
    }
}

/// A channel of a route, with its place in the failover order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteChannel {
    pub id: String,
    pub weight: u32,
    pub priority: u32,
}

/// Which traffic goes to which channels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Route {
    pub id: String,
    pub prefixes: Vec<String>,
    pub country: Option<String>,
    pub tenant: Option<String>,
    pub category: Option<Category>,
    pub strategy: String,
    pub channels: Vec<RouteChannel>,
    pub created_at: i64,
    /// Operator (MCC+MNC, e.g. "26201") from the number-range table or the HLR hook.
    pub operator: Option<String>,
    /// Sender kind: alphanumeric, short_code, long_code.
    pub sender_type: Option<String>,
    /// `least_cost`: only channels whose live success rate is at least this (0..1).
    pub min_success_rate: Option<f64>,
    /// A/B test: this share of the route's traffic uses variant B.
    pub ab: Option<AbSplit>,
}

impl Route {
    /// Every channel the route names, variant B's included.
    pub fn channel_ids(&self) -> impl Iterator<Item = &str> {
        self.channels
            .iter()
            .chain(self.ab.iter().flat_map(|ab| ab.channels.iter()))
            .map(|c| c.id.as_str())
    }
}

/// Variant B of an A/B-tested route: its own strategy and channels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AbSplit {
    /// Percent (0..=100) of the route's messages that take variant B.
    pub split_percent: u32,
    pub strategy: String,
    pub channels: Vec<RouteChannel>,
    pub min_success_rate: Option<f64>,
}

/// Cluster-wide routing settings (replicated so every node decides alike).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RoutingSettings {
    /// Number-range table (`prefix,country,mcc,mnc,operator`); None = the built-in one.
    pub number_ranges_csv: Option<String>,
    /// Price list (`channel,prefix,price`): overrides the channels' `cost` maps.
    pub price_list_csv: Option<String>,
    /// HLR / number-portability endpoint: `GET <url>?msisdn=+49...` → `{"mccmnc": "26202"}`.
    pub hlr_url: Option<String>,
    pub hlr_timeout_ms: u64,
    pub hlr_cache_seconds: u64,
    /// Sliding window of the receipt feedback used by `success_rate`; 0 = default (15 min).
    pub success_window_seconds: u64,
}

/// Drives priority (OTP first) and compliance.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Otp,
    #[default]
    Transactional,
    Marketing,
}

impl Category {
    /// Queue lane: lower is served first.
    pub fn lane(self) -> usize {
        match self {
            Category::Otp => 0,
            Category::Transactional => 1,
            Category::Marketing => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Otp => "otp",
            Category::Transactional => "transactional",
            Category::Marketing => "marketing",
        }
    }
}

/// The contract's message statuses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Scheduled,
    Accepted,
    Sent,
    Delivered,
    PartiallyDelivered,
    Undelivered,
    Expired,
    Failed,
    /// Withdrawn by the tenant before any part went to a channel (`POST
    /// /v1/messages/{id}/cancel`). Last, so that stored rows keep their statuses.
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Accepted => "accepted",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::PartiallyDelivered => "partially_delivered",
            Status::Undelivered => "undelivered",
            Status::Expired => "expired",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "scheduled" => Status::Scheduled,
            "accepted" => Status::Accepted,
            "sent" => Status::Sent,
            "delivered" => Status::Delivered,
            "partially_delivered" => Status::PartiallyDelivered,
            "undelivered" => Status::Undelivered,
            "expired" => Status::Expired,
            "failed" => Status::Failed,
            "canceled" => Status::Canceled,
            _ => return None,
        })
    }
    /// No transition leaves a final status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Delivered
                | Status::PartiallyDelivered
                | Status::Undelivered
                | Status::Expired
                | Status::Failed
                | Status::Canceled
        )
    }
    /// The contract's transition table.
    pub fn may_become(self, next: Status) -> bool {
        use Status::*;
        match self {
            Scheduled => matches!(next, Accepted | Expired | Canceled),
            Accepted => matches!(next, Sent | Failed | Expired | Canceled),
            Sent => matches!(next, Delivered | PartiallyDelivered | Undelivered | Expired),
            _ => false,
        }
    }
    pub const ALL: [Status; 9] = [
        Status::Scheduled,
        Status::Accepted,
        Status::Sent,
        Status::Delivered,
        Status::PartiallyDelivered,
        Status::Undelivered,
        Status::Expired,
        Status::Failed,
        Status::Canceled,
    ];
}

/// A normalised failure with the operator's raw code kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    pub smsc_code: Option<String>,
}

/// State of one part at the operator.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    Pending,
    Sent,
    Delivered,
    Undelivered,
    Expired,
}

/// One part of a (possibly long) message, tracked on its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartState {
    pub smsc_message_id: Option<String>,
    pub status: PartStatus,
    pub error: Option<ErrorInfo>,
}

/// One line of a message's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub status: Status,
    pub at: i64,
    pub channel: Option<String>,
    pub smsc_message_ids: Vec<String>,
    /// Why something happened that is not a status change (retry, failover, requeue).
    pub note: Option<String>,
}

/// A message as stored: everything needed to send it, and everything that happened to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub id: String,
    pub tenant: Arc<str>,
    pub to: Arc<str>,
    pub from: Arc<str>,
    pub text: Arc<str>,
    pub encoding: TextEncoding,
    pub parts: u32,
    pub category: Category,
    pub client_ref: Option<Arc<str>>,
    pub callback_url: Option<Arc<str>>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Not sent by then: `expired`.
    pub expires_at: i64,
    pub send_at: Option<i64>,
    pub status: Status,
    /// Candidate channels in failover order, fixed at accept time by the route.
    pub route: Arc<[String]>,
    pub channel: Option<String>,
    pub part_states: Vec<PartState>,
    pub events: Vec<Event>,
    pub error: Option<ErrorInfo>,
    /// Submit attempts so far (temporary errors, failovers).
    pub attempts: u32,
    /// Concatenation reference used for every attempt, so a resend reassembles
    /// (16 bits; the 8-bit carrier uses the low byte).
    pub concat_ref: u16,
    pub idempotency_key: Option<String>,
    pub body_hash: Option<String>,
    /// The route chosen at accept time (its strategy ordered `route`, also at accept).
    pub route_id: Option<String>,
    /// A/B variant of that route: 0 = A, 1 = B.
    pub ab_variant: Option<u8>,
    /// Channels this message failed over away from (skipped while others remain).
    pub avoid: Vec<String>,
    /// MCC+MNC resolved at accept time (number-range table or HLR), for routing feedback.
    pub operator: Option<String>,
    /// Compliance decisions recorded at accept (sender choice, flags, DLT ids, campaign).
    pub compliance: Option<Arc<super::compliance::MessageCompliance>>,
    /// Wire layout fixed at accept time (carrier, packing, national tables, binary UDH).
    #[serde(default)]
    pub layout: Layout,
}
