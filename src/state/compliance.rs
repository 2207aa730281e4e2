//! Replicated compliance rows (content rules, country rules, sender ids, DLT templates,
//! 10DLC campaigns, opt-outs), the operations that change them, and the in-memory
//! registry every node reads at intake. Also the per-recipient window counters that make
//! frequency caps exact: the accept is refused in the state machine, in log order, when a
//! window is full, so two nodes racing cannot both pass.
//!
//! Rows live in `sm_config` under keys starting with `x`; counters in `sm_freq`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::model::Category;
use crate::wire;

/// What a content rule looks for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A word or phrase, case-insensitive, on word boundaries.
    Keyword,
    /// A regular expression (Rust `regex` syntax) anywhere in the text.
    Regex,
    /// A blocked URL domain (and its subdomains).
    UrlDomain,
    /// An allowed URL domain: once a scope has any, URLs to other domains hit the rule.
    UrlAllow,
    /// A link shortener domain; pattern `*` means the built-in list.
    LinkShortener,
}

impl RuleKind {
    /// The name used in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Keyword => "keyword",
            RuleKind::Regex => "regex",
            RuleKind::UrlDomain => "url_domain",
            RuleKind::UrlAllow => "url_allow",
            RuleKind::LinkShortener => "link_shortener",
        }
    }
}

/// What happens to a message a rule matches.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// 403 `content_blocked` with the rule id.
    Reject,
    /// Accepted, with the rule id on the message's events.
    Flag,
}

/// One content rule, global (`scope` None) or for one tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContentRule {
    pub id: String,
    /// None: every tenant; Some(id): only that tenant.
    pub scope: Option<String>,
    pub kind: RuleKind,
    pub pattern: String,
    pub action: RuleAction,
    pub created_at: i64,
}

/// Marketing is held back between `start` and `end` (minutes after local midnight).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuietHours {
    pub start_min: u16,
    pub end_min: u16,
    /// IANA time zone of the recipients (e.g. Asia/Kolkata).
    pub timezone: String,
}

/// What a destination country demands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CountryRules {
    /// ISO 3166 alpha-2.
    pub country: String,
    pub alphanumeric_allowed: bool,
    pub sender_registration_required: bool,
    pub dlt_required: bool,
    pub ten_dlc_required: bool,
    pub quiet_hours: Option<QuietHours>,
}

/// The countries whose built-in rules differ from "nothing required" (see
/// [`CountryRules::builtin`]); listed with the configured countries.
pub const BUILTIN_COUNTRIES: &[&str] = &["IN", "US"];

impl CountryRules {
    /// What applies to a country nobody configured: India needs DLT and registered
    /// senders (headers are registered on DLT with the entity and its templates, and
    /// operators scrub unregistered ones), the US 10DLC (and forbids alphanumeric
    /// senders); elsewhere nothing. An admin PUT replaces these.
    pub fn builtin(country: &str) -> CountryRules {
        CountryRules {
            country: country.to_string(),
            alphanumeric_allowed: country != "US",
            sender_registration_required: country == "IN",
            dlt_required: country == "IN",
            ten_dlc_required: country == "US",
            quiet_hours: None,
        }
    }
}

/// The kinds of sender id.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    Alphanumeric,
    ShortCode,
    LongCode,
    TollFree,
}

impl SenderKind {
    /// The name used in the API (`type` of a sender).
    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::Alphanumeric => "alphanumeric",
            SenderKind::ShortCode => "short_code",
            SenderKind::LongCode => "long_code",
            SenderKind::TollFree => "toll_free",
        }
    }
}

/// A sender id a tenant registered, for some countries (empty: every country).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SenderId {
    pub tenant: String,
    pub sender: String,
    pub kind: SenderKind,
    pub countries: Vec<String>,
    pub created_at: i64,
}

/// An India DLT content template with `{#var#}` placeholders.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DltTemplate {
    pub tenant: String,
    pub template_id: String,
    pub entity_id: String,
    pub text: String,
    pub created_at: i64,
}

/// A US 10DLC campaign: its long codes and its throughput (message parts per second,
/// as carriers count it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Campaign {
    pub tenant: String,
    pub id: String,
    pub use_case: String,
    pub numbers: Vec<String>,
    pub tps: u32,
    pub created_at: i64,
}

/// One change to the compliance rows (carried by `Op::Compliance`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ComplianceOp {
    PutRule(ContentRule),
    DeleteRule {
        id: String,
    },
    PutCountry(CountryRules),
    DeleteCountry {
        country: String,
    },
    PutSender(SenderId),
    DeleteSender {
        tenant: String,
        sender: String,
    },
    PutTemplate(DltTemplate),
    DeleteTemplate {
        tenant: String,
        template_id: String,
    },
    PutCampaign(Campaign),
    DeleteCampaign {
        tenant: String,
        id: String,
    },
    AddOptOuts {
        tenant: String,
        numbers: Vec<String>,
    },
    RemoveOptOut {
        tenant: String,
        number: String,
    },
}

/// Which limit a window counter enforces (decides the HTTP answer).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum CapKind {
    /// A tenant's per-recipient, per-category frequency cap: 429 `frequency_capped`.
    Frequency,
    /// A 10DLC campaign's message parts per second: 429 `rate_limited`.
    CampaignThroughput,
}

/// A window counter an accept must fit into: at most `max` in any `per_ms` window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct CapKey {
    /// (tenant, recipient, category) or (tenant, campaign), joined with NUL.
    pub key: String,
    pub max: u32,
    pub per_ms: i64,
    pub kind: CapKind,
}

impl CapKey {
    /// The counter of `tenant`'s `category` messages to `to`.
    pub fn frequency(tenant: &str, to: &str, category: Category, max: u32, per_ms: i64) -> Self {
        CapKey {
            key: format!("f\0{tenant}\0{to}\0{}", category.as_str()),
            max,
            per_ms,
            kind: CapKind::Frequency,
        }
    }
    /// The counter of a 10DLC campaign's message parts (one-second window).
    pub fn campaign(tenant: &str, campaign: &str, tps: u32) -> Self {
        CapKey {
            key: format!("c\0{tenant}\0{campaign}"),
            max: tps,
            per_ms: 1000,
            kind: CapKind::CampaignThroughput,
        }
    }
}

impl CapKey {
    /// How many slots of this counter a message of `parts` parts takes: its parts for a
    /// campaign's throughput (carriers count MPS in parts), one for a frequency cap (a
    /// recipient gets one message however it is split). Derived from the message in the
    /// state machine, so every replica counts the same.
    pub fn cost(&self, parts: u32) -> u32 {
        match self.kind {
            CapKind::Frequency => 1,
            CapKind::CampaignThroughput => parts.max(1),
        }
    }
}

/// A counter row: the times of the slots taken, oldest first (at most `max`). A slot may
/// lie in the future: a message with more parts than `max` fills the window and the
/// following ones, so the counter's rate holds over time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WindowRow {
    pub per_ms: i64,
    pub stamps: Vec<i64>,
}

impl WindowRow {
    /// When the row no longer counts for anything.
    pub fn expires_at(&self) -> i64 {
        self.stamps.last().copied().unwrap_or(0) + self.per_ms
    }

    /// Accepts in the window that ends at `at`.
    pub fn count_at(&self, at: i64, per_ms: i64) -> usize {
        self.stamps.iter().filter(|s| **s > at - per_ms).count()
    }

    /// `Err(ms until enough slots free)` when the window at `at` has fewer than `cost`
    /// free slots (a cost above `max` needs the whole window free).
    pub fn check(&self, cap: &CapKey, at: i64, cost: u32) -> Result<(), i64> {
        let inside: Vec<i64> = self
            .stamps
            .iter()
            .copied()
            .filter(|s| *s > at - cap.per_ms)
            .collect();
        let max = cap.max as usize;
        let need = (cost.max(1) as usize).min(max.max(1));
        if inside.len() + need > max {
            // The stamp whose leaving frees the last slot needed.
            let leaving = (inside.len() + need - max).saturating_sub(1);
            let at_free = inside.get(leaving).copied().unwrap_or(at);
            return Err((at_free + cap.per_ms - at).max(1));
        }
        Ok(())
    }

    /// Records an accept of `cost` slots at `at`, dropping stamps that left the window.
    /// Slots beyond `max` go into the following windows (`at + per_ms`, ...), so a message
    /// larger than the counter's budget delays the next ones instead of never fitting.
    pub fn record(&mut self, cap: &CapKey, at: i64, cost: u32) {
        self.per_ms = cap.per_ms;
        self.stamps.retain(|s| *s > at - cap.per_ms);
        let max = cap.max.max(1);
        for i in 0..cost.max(1) {
            let stamp = at + i64::from(i / max) * cap.per_ms;
            let pos = self.stamps.partition_point(|s| *s <= stamp);
            self.stamps.insert(pos, stamp);
        }
        let keep = max as usize;
        if self.stamps.len() > keep {
            let drop = self.stamps.len() - keep;
            self.stamps.drain(..drop);
        }
    }
}

/// Key of a counter row in `sm_freq`.
pub fn counter_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(b'c');
    k.extend_from_slice(key.as_bytes());
    k
}

/// Key of an expiry index entry in `sm_freq`: `e`, expiry (big-endian), counter key.
pub fn expiry_key(expires_at: i64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 9);
    k.push(b'e');
    k.extend_from_slice(&(expires_at.max(0) as u64).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// A tenant's frequency cap: at most `max` messages of `category` to one number per
/// `per_seconds` (contract tenant field `frequency_caps`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FrequencyCap {
    pub category: Category,
    pub max: u32,
    pub per_seconds: u64,
}

/// What compliance decided about an accepted message, kept on its row (shown in status).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageCompliance {
    /// Why this sender was used (registered id, pool number instead of an alphanumeric...).
    pub sender_choice: Option<String>,
    /// Ids of the `flag` rules the text matched.
    pub flags: Vec<String>,
    /// India DLT principal entity id and template id, passed to the operator as TLVs.
    pub dlt_entity_id: Option<String>,
    pub dlt_template_id: Option<String>,
    /// The US 10DLC campaign the sender belongs to.
    pub campaign_id: Option<String>,
    /// Held back by quiet hours until then.
    pub quiet_hours_until: Option<i64>,
}

/// Bumped on every change of content rules, so compiled rule sets can be cached.
static RULES_VERSION: AtomicU64 = AtomicU64::new(1);

/// Everything compliance checks read, kept whole in memory (opt-outs as numbers).
#[derive(Debug, Default)]
pub struct ComplianceRegistry {
    /// Changes whenever `rules` changes (unique within the process).
    pub rules_version: u64,
    pub rules: BTreeMap<String, ContentRule>,
    pub countries: BTreeMap<String, CountryRules>,
    /// tenant → sender → row.
    pub senders: HashMap<String, BTreeMap<String, SenderId>>,
    /// tenant → template id → row.
    pub templates: HashMap<String, BTreeMap<String, DltTemplate>>,
    /// tenant → campaign id → row.
    pub campaigns: HashMap<String, BTreeMap<String, Campaign>>,
    /// tenant → opted-out numbers (E.164 digits as u64: 8 bytes each, so a million fit).
    pub opt_outs: HashMap<String, HashSet<u64>>,
}

/// E.164 `+digits` as a number (None when it is not one).
pub fn number_key(e164: &str) -> Option<u64> {
    let d = e164.strip_prefix('+')?;
    if d.is_empty() || d.len() > 15 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    d.parse().ok()
}

fn pair(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}

/// (row key, Some(value) | None) writes of one compliance op, for `sm_config`.
pub type RowWrites = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl ComplianceRegistry {
    /// The rules of `country` (configured, else built in).
    pub fn country(&self, country: &str) -> CountryRules {
        self.countries
            .get(country)
            .cloned()
            .unwrap_or_else(|| CountryRules::builtin(country))
    }

    /// Whether `number` is on `tenant`'s opt-out list.
    pub fn opted_out(&self, tenant: &str, number: &str) -> bool {
        match (self.opt_outs.get(tenant), number_key(number)) {
            (Some(set), Some(n)) => set.contains(&n),
            _ => false,
        }
    }

    fn bump(&mut self) {
        self.rules_version = RULES_VERSION.fetch_add(1, Ordering::Relaxed) + 1;
    }

    /// Loads one stored row (at start); unknown keys are ignored.
    pub fn load_row(&mut self, key: &[u8], value: &[u8]) -> Result<(), wire::WireError> {
        let k = String::from_utf8_lossy(key);
        if k.starts_with("xr/") {
            let r: ContentRule = wire::decode(value)?;
            self.rules.insert(r.id.clone(), r);
            self.bump();
        } else if k.starts_with("xc/") {
            let c: CountryRules = wire::decode(value)?;
            self.countries.insert(c.country.clone(), c);
        } else if k.starts_with("xs/") {
            let s: SenderId = wire::decode(value)?;
            self.senders
                .entry(s.tenant.clone())
                .or_default()
                .insert(s.sender.clone(), s);
        } else if k.starts_with("xt/") {
            let t: DltTemplate = wire::decode(value)?;
            self.templates
                .entry(t.tenant.clone())
                .or_default()
                .insert(t.template_id.clone(), t);
        } else if k.starts_with("xk/") {
            let c: Campaign = wire::decode(value)?;
            self.campaigns
                .entry(c.tenant.clone())
                .or_default()
                .insert(c.id.clone(), c);
        } else if let Some(rest) = k.strip_prefix("xo/")
            && let Some((tenant, number)) = rest.split_once('\0')
            && let Some(n) = number_key(number)
        {
            self.opt_outs
                .entry(tenant.to_string())
                .or_default()
                .insert(n);
        }
        Ok(())
    }

    /// The numbers of a campaign being written that another campaign holds already
    /// (`+1... in campaign X of tenant Y`): decided here, in log order, because two
    /// registrations racing past the API's own check would otherwise both commit and a
    /// number would sit in two campaigns. None for every other op.
    pub fn campaign_conflict(&self, op: &ComplianceOp) -> Option<Vec<String>> {
        let ComplianceOp::PutCampaign(c) = op else {
            return None;
        };
        let taken: Vec<String> = c
            .numbers
            .iter()
            .filter_map(|n| {
                self.campaigns.iter().find_map(|(tenant, m)| {
                    m.values()
                        .find(|o| (tenant, &o.id) != (&c.tenant, &c.id) && o.numbers.contains(n))
                        .map(|o| format!("{n} in campaign {} of tenant {tenant}", o.id))
                })
            })
            .collect();
        (!taken.is_empty()).then_some(taken)
    }

    /// Applies one op to memory; returns the row writes and whether something existed
    /// (false only for a delete of nothing).
    pub fn apply(&mut self, op: &ComplianceOp) -> Result<(RowWrites, bool), wire::WireError> {
        let key = |prefix: &str, id: &str| format!("{prefix}{id}").into_bytes();
        Ok(match op {
            ComplianceOp::PutRule(r) => {
                self.rules.insert(r.id.clone(), r.clone());
                self.bump();
                (vec![(key("xr/", &r.id), Some(wire::encode(r)?))], true)
            }
            ComplianceOp::DeleteRule { id } => {
                let found = self.rules.remove(id).is_some();
                self.bump();
                (vec![(key("xr/", id), None)], found)
            }
            ComplianceOp::PutCountry(c) => {
                self.countries.insert(c.country.clone(), c.clone());
                (vec![(key("xc/", &c.country), Some(wire::encode(c)?))], true)
            }
            ComplianceOp::DeleteCountry { country } => {
                let found = self.countries.remove(country).is_some();
                (vec![(key("xc/", country), None)], found)
            }
            ComplianceOp::PutSender(s) => {
                self.senders
                    .entry(s.tenant.clone())
                    .or_default()
                    .insert(s.sender.clone(), s.clone());
                let k = key("xs/", &pair(&s.tenant, &s.sender));
                (vec![(k, Some(wire::encode(s)?))], true)
            }
            ComplianceOp::DeleteSender { tenant, sender } => {
                let found = self
                    .senders
                    .get_mut(tenant)
                    .and_then(|m| m.remove(sender))
                    .is_some();
                (vec![(key("xs/", &pair(tenant, sender)), None)], found)
            }
            ComplianceOp::PutTemplate(t) => {
                self.templates
                    .entry(t.tenant.clone())
                    .or_default()
                    .insert(t.template_id.clone(), t.clone());
                let k = key("xt/", &pair(&t.tenant, &t.template_id));
                (vec![(k, Some(wire::encode(t)?))], true)
            }
            ComplianceOp::DeleteTemplate {
                tenant,
                template_id,
            } => {
                let found = self
                    .templates
                    .get_mut(tenant)
                    .and_then(|m| m.remove(template_id))
                    .is_some();
                (vec![(key("xt/", &pair(tenant, template_id)), None)], found)
            }
            ComplianceOp::PutCampaign(c) => {
                self.campaigns
                    .entry(c.tenant.clone())
                    .or_default()
                    .insert(c.id.clone(), c.clone());
                let k = key("xk/", &pair(&c.tenant, &c.id));
                (vec![(k, Some(wire::encode(c)?))], true)
            }
            ComplianceOp::DeleteCampaign { tenant, id } => {
                let found = self
                    .campaigns
                    .get_mut(tenant)
                    .and_then(|m| m.remove(id))
                    .is_some();
                (vec![(key("xk/", &pair(tenant, id)), None)], found)
            }
            ComplianceOp::AddOptOuts { tenant, numbers } => {
                let set = self.opt_outs.entry(tenant.clone()).or_default();
                let mut writes = Vec::with_capacity(numbers.len());
                for n in numbers {
                    if let Some(k) = number_key(n) {
                        set.insert(k);
                        writes.push((key("xo/", &pair(tenant, n)), Some(Vec::new())));
                    }
                }
                (writes, true)
            }
            ComplianceOp::RemoveOptOut { tenant, number } => {
                let found = match (self.opt_outs.get_mut(tenant), number_key(number)) {
                    (Some(set), Some(k)) => set.remove(&k),
                    _ => false,
                };
                (vec![(key("xo/", &pair(tenant, number)), None)], found)
            }
        })
    }

    /// A tenant's opt-outs as E.164 strings, sorted (for the admin list).
    pub fn opt_out_list(&self, tenant: &str, limit: usize) -> Vec<String> {
        let mut v: Vec<u64> = self
            .opt_outs
            .get(tenant)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v.into_iter().take(limit).map(|n| format!("+{n}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(tenant: &str, id: &str, numbers: &[&str]) -> ComplianceOp {
        ComplianceOp::PutCampaign(Campaign {
            tenant: tenant.into(),
            id: id.into(),
            use_case: "2fa".into(),
            numbers: numbers.iter().map(|n| n.to_string()).collect(),
            tps: 1,
            created_at: 0,
        })
    }

    #[test]
    fn a_number_registered_twice_in_a_race_is_refused_in_log_order() {
        let mut reg = ComplianceRegistry::default();
        let first = campaign("acme", "C1", &["+12025550123"]);
        assert_eq!(reg.campaign_conflict(&first), None);
        reg.apply(&first).expect("apply");
        // The same campaign written again is not a conflict with itself.
        assert_eq!(reg.campaign_conflict(&first), None);
        let second = campaign("beta", "B1", &["+12025550100", "+12025550123"]);
        assert_eq!(
            reg.campaign_conflict(&second),
            Some(vec![
                "+12025550123 in campaign C1 of tenant acme".to_string()
            ])
        );
    }

    #[test]
    fn window_counts_exactly() {
        let cap = CapKey::frequency("t", "+1", Category::Otp, 3, 1000);
        let mut row = WindowRow::default();
        for at in [0, 10, 20] {
            assert!(row.check(&cap, at, 1).is_ok());
            row.record(&cap, at, 1);
        }
        assert_eq!(row.check(&cap, 30, 1), Err(970));
        // The first stamp leaves the window at 1000.
        assert!(row.check(&cap, 1000, 1).is_ok());
        row.record(&cap, 1000, 1);
        assert_eq!(row.stamps, vec![10, 20, 1000]);
        assert_eq!(row.expires_at(), 2000);
        assert_eq!(row.count_at(1015, 1000), 2);
    }

    /// A campaign's tps counts parts: a 3-part message takes 3 of the second's slots, and
    /// one larger than the budget fills the following seconds too (it is not refused
    /// forever). Frequency caps stay one per message.
    #[test]
    fn campaign_windows_count_parts() {
        let cap = CapKey::campaign("t", "C1", 3);
        assert_eq!(cap.cost(3), 3);
        assert_eq!(
            CapKey::frequency("t", "+1", Category::Otp, 3, 1000).cost(3),
            1
        );
        let mut row = WindowRow::default();
        assert!(row.check(&cap, 0, 3).is_ok());
        row.record(&cap, 0, 3);
        assert_eq!(row.check(&cap, 10, 1), Err(990), "3 parts used the second");
        let mut row = WindowRow::default();
        row.record(&cap, 0, 2);
        assert!(row.check(&cap, 10, 1).is_ok());
        assert_eq!(row.check(&cap, 10, 2), Err(990), "two parts need two slots");
        // 7 parts at 3 per second: this second, the next and one slot of the third.
        let mut row = WindowRow::default();
        assert!(row.check(&cap, 0, 7).is_ok(), "an empty window takes it");
        row.record(&cap, 0, 7);
        assert_eq!(row.check(&cap, 500, 1), Err(1500), "free from 2000 on");
        assert!(row.check(&cap, 2000, 2).is_ok());
        assert_eq!(row.check(&cap, 2000, 3), Err(1000));
    }

    fn message(id: &str, at: i64) -> crate::state::Message {
        use crate::state::{Message, PartState, PartStatus, Status};
        Message {
            id: id.into(),
            tenant: "t".into(),
            to: "+4915112345678".into(),
            from: "ACME".into(),
            text: "hi".into(),
            encoding: crate::encoding::TextEncoding::Gsm7,
            parts: 1,
            category: Category::Otp,
            client_ref: None,
            callback_url: None,
            created_at: at,
            updated_at: at,
            expires_at: at + 1_000_000,
            send_at: None,
            status: Status::Accepted,
            route: vec![].into(),
            route_id: None,
            ab_variant: None,
            avoid: Vec::new(),
            operator: None,
            layout: Default::default(),
            channel: None,
            part_states: vec![PartState {
                smsc_message_id: None,
                status: PartStatus::Pending,
                error: None,
            }],
            events: vec![crate::state::transitions::event(Status::Accepted, at)],
            error: None,
            attempts: 0,
            concat_ref: 1,
            idempotency_key: None,
            body_hash: None,
            compliance: None,
        }
    }

    /// A campaign's throughput counter takes a message's parts only through
    /// `AcceptCappedByParts`; an `AcceptCapped` (what older builds wrote) still takes one
    /// slot per message, so applying an old log again decides as it was decided.
    #[test]
    fn only_accept_capped_by_parts_counts_parts() {
        use crate::state::{Op, OpResult, Proposal, StateStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let db = fjall::Database::builder(dir.path().join("db"))
            .open()
            .expect("db");
        let store = StateStore::open(&db).expect("store");
        let old = CapKey::campaign("t", "OLD", 3);
        let new = CapKey::campaign("t", "NEW", 3);
        let three_parts = |id: &str, at: i64| {
            let mut m = message(id, at);
            m.parts = 3;
            Box::new(m)
        };
        let p = Proposal {
            ops: vec![
                Op::AcceptCapped {
                    message: three_parts("o1", 10),
                    caps: vec![old.clone()],
                },
                Op::AcceptCapped {
                    message: three_parts("o2", 20),
                    caps: vec![old.clone()],
                },
                Op::AcceptCappedByParts {
                    message: three_parts("n1", 10),
                    caps: vec![new.clone()],
                },
                Op::AcceptCappedByParts {
                    message: three_parts("n2", 20),
                    caps: vec![new.clone()],
                },
            ]
            .into(),
        };
        let out = store.apply(&[&p], &[]).expect("apply");
        let r = &out[0].results;
        assert!(matches!(r[0], OpResult::Accepted { .. }), "{:?}", r[0]);
        assert!(matches!(r[1], OpResult::Accepted { .. }), "{:?}", r[1]);
        assert!(matches!(r[2], OpResult::Accepted { .. }), "{:?}", r[2]);
        assert!(matches!(r[3], OpResult::Capped { .. }), "{:?}", r[3]);
    }

    /// AcceptCapped in the real store: exactly `max` per window even inside one batch,
    /// replays are not counted, and the GC drops only counters whose window passed.
    #[test]
    fn accept_capped_in_the_store_and_gc() {
        use crate::state::{Op, OpResult, Proposal, StateStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let db = fjall::Database::builder(dir.path().join("db"))
            .open()
            .expect("db");
        let store = StateStore::open(&db).expect("store");
        let cap = CapKey::frequency("t", "+4915112345678", Category::Otp, 2, 1000);
        let other = CapKey::frequency("t", "+4915112345679", Category::Otp, 2, 5000);
        let op = |id: &str, at: i64, cap: &CapKey| Op::AcceptCapped {
            message: Box::new(message(id, at)),
            caps: vec![cap.clone()],
        };
        let p = Proposal {
            ops: vec![
                op("a", 10, &cap),
                op("b", 20, &cap),
                op("c", 30, &cap),
                op("a", 40, &cap),
                op("x", 10, &other),
            ]
            .into(),
        };
        let out = store.apply(&[&p], &[]).expect("apply");
        let r = &out[0].results;
        assert!(matches!(r[0], OpResult::Accepted { .. }));
        assert!(matches!(r[1], OpResult::Accepted { .. }));
        assert!(
            matches!(
                r[2],
                OpResult::Capped {
                    retry_after_ms: 980,
                    kind: CapKind::Frequency,
                    ..
                }
            ),
            "{:?}",
            r[2]
        );
        assert!(
            matches!(r[3], OpResult::Duplicate { .. }),
            "a replay is not counted"
        );
        assert!(
            store.get_message("c").expect("read").is_none(),
            "nothing stored"
        );
        let row = store.window_row(&cap.key).expect("read").expect("row");
        assert_eq!(row.stamps, vec![10, 20]);
        // At 1020 the first counter's window has passed, the second's not.
        let gc = Proposal {
            ops: vec![Op::ComplianceGc { at: 1020 }].into(),
        };
        store.apply(&[&gc], &[]).expect("gc");
        assert!(store.window_row(&cap.key).expect("read").is_none());
        assert!(store.window_row(&other.key).expect("read").is_some());
        let again = Proposal {
            ops: vec![op("d", 1030, &cap)].into(),
        };
        let out = store.apply(&[&again], &[]).expect("apply");
        assert!(matches!(out[0].results[0], OpResult::Accepted { .. }));
    }

    #[test]
    fn registry_round_trips_rows() {
        let mut reg = ComplianceRegistry::default();
        let (w, _) = reg
            .apply(&ComplianceOp::AddOptOuts {
                tenant: "a".into(),
                numbers: vec!["+4915112345678".into(), "junk".into()],
            })
            .expect("apply");
        assert_eq!(w.len(), 1);
        assert!(reg.opted_out("a", "+4915112345678"));
        assert!(!reg.opted_out("b", "+4915112345678"));
        let mut again = ComplianceRegistry::default();
        for (k, v) in &w {
            again
                .load_row(k, v.as_deref().unwrap_or(&[]))
                .expect("load");
        }
        assert!(again.opted_out("a", "+4915112345678"));
        assert_eq!(reg.opt_out_list("a", 10), vec!["+4915112345678"]);
    }
}
