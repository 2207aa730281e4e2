//! The compliance verdict for one message (pure): opt-out, sender id, US 10DLC, India
//! DLT, content rules, quiet hours, and the window counters the accept must fit into.
//! Reads only the registry, the compiled rules and the request; decides nothing durable.

use crate::state::Tenant;
use crate::state::compliance::{
    CapKey, ComplianceRegistry, CountryRules, MessageCompliance, RuleAction, SenderKind,
};
use crate::state::model::Category;

use super::content::RuleSet;
use super::dlt::Template;
use super::quiet;

/// What the checks look at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub tenant: &'a Tenant,
    /// Normalised E.164 recipient.
    pub to: &'a str,
    /// ISO country of `to`, if known.
    pub country: Option<&'a str>,
    /// The sender intake chose (the request's, or the tenant's default).
    pub from: &'a str,
    /// Whether the request named the sender itself.
    pub explicit_from: bool,
    pub text: &'a str,
    pub category: Category,
    /// (entity id, template id) from the request's `dlt`.
    pub dlt: Option<(&'a str, &'a str)>,
    pub campaign_id: Option<&'a str>,
    /// When it would be sent: `send_at` or now.
    pub send_time: i64,
}

/// Why a message is refused; each maps to one contract error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("blocked by content rule {rule}")]
    ContentBlocked { rule: String },
    #[error("{0}")]
    SenderNotAllowed(String),
    #[error("{0}")]
    Unregistered10dlc(String),
    #[error("{0} opted out of this tenant's {1} messages")]
    OptedOut(String, &'static str),
    #[error("{0}")]
    DltRequired(String),
    #[error("{0}")]
    DltTemplateMismatch(String),
    /// The template exists but belongs to another entity (the request's `dlt.entity_id`
    /// is what is wrong).
    #[error("{0}")]
    DltEntityMismatch(String),
    #[error(
        "frequency cap reached: at most {max} {category} messages per {per_seconds} s to this number"
    )]
    FrequencyCapped {
        max: u32,
        category: &'static str,
        per_seconds: i64,
        retry_after_ms: i64,
    },
    #[error(
        "campaign {campaign} is at its throughput of {tps} message parts per second (a long message counts each part)"
    )]
    CampaignThroughput {
        campaign: String,
        tps: u32,
        retry_after_ms: i64,
    },
}

impl Refusal {
    /// The check that refused (metrics label).
    pub fn check(&self) -> &'static str {
        match self {
            Refusal::ContentBlocked { .. } => "content",
            Refusal::SenderNotAllowed(_) => "sender",
            Refusal::Unregistered10dlc(_) => "ten_dlc",
            Refusal::OptedOut(..) => "opt_out",
            Refusal::DltRequired(_)
            | Refusal::DltTemplateMismatch(_)
            | Refusal::DltEntityMismatch(_) => "dlt",
            Refusal::FrequencyCapped { .. } => "frequency",
            Refusal::CampaignThroughput { .. } => "campaign_throughput",
        }
    }
}

/// What the checks decided for a message they let through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// The sender to use (may differ from the request's: registered id, pool number).
    pub from: String,
    /// Recorded on the message row.
    pub record: MessageCompliance,
    /// Human-readable decisions for the message's first event.
    pub notes: Vec<String>,
    /// Quiet hours moved the send time here.
    pub send_at: Option<i64>,
    /// Window counters the accept must fit into (decided in the state machine).
    pub caps: Vec<CapKey>,
    /// (check, action) of every decision taken, for metrics.
    pub decisions: Vec<(&'static str, &'static str)>,
}

/// Toll-free area codes of the North American numbering plan.
const TOLL_FREE: &[&str] = &["800", "833", "844", "855", "866", "877", "888"];

/// What kind of sender `from` is, and its canonical form (numbers with a `+`).
pub fn classify(from: &str) -> (SenderKind, String) {
    let digits = from.strip_prefix('+').unwrap_or(from);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if !from.starts_with('+') && digits.len() <= 8 {
            return (SenderKind::ShortCode, from.to_string());
        }
        let e164 = format!("+{digits}");
        let toll_free =
            digits.len() == 11 && digits.starts_with('1') && TOLL_FREE.contains(&&digits[1..4]);
        let kind = if toll_free {
            SenderKind::TollFree
        } else {
            SenderKind::LongCode
        };
        return (kind, e164);
    }
    (SenderKind::Alphanumeric, from.to_string())
}

fn registered<'a>(
    reg: &'a ComplianceRegistry,
    tenant: &str,
    sender: &str,
    country: &str,
) -> Option<&'a crate::state::compliance::SenderId> {
    reg.senders
        .get(tenant)?
        .get(sender)
        .filter(|s| s.countries.is_empty() || s.countries.iter().any(|c| c == country))
}

/// The opt-out refusal, when `to` is on the tenant's list and the tenant applies its
/// list to `category` (at accept, and again when a waiting message is due).
pub fn opt_out(
    tenant: &Tenant,
    reg: &ComplianceRegistry,
    to: &str,
    category: Category,
) -> Option<Refusal> {
    (tenant.opt_out_categories.contains(&category) && reg.opted_out(&tenant.id, to))
        .then(|| Refusal::OptedOut(to.to_string(), category.as_str()))
}

/// Runs every check for one message.
pub fn check(
    inp: &Input<'_>,
    reg: &ComplianceRegistry,
    rules: &RuleSet,
) -> Result<Verdict, Refusal> {
    let tenant = &inp.tenant.id;
    let cc = inp.country.unwrap_or("");
    let cr: CountryRules = reg.country(cc);
    let mut v = Verdict {
        from: inp.from.to_string(),
        ..Verdict::default()
    };

    if let Some(r) = opt_out(inp.tenant, reg, inp.to, inp.category) {
        return Err(r);
    }

    // Sender id: a registered id for the country when none was asked for, a pool number
    // where alphanumerics are forbidden, registration where the country demands it.
    // The tenant's default (its first `senders` entry, registered for every country by
    // the tenant's own list) stays unless a sender is registered for this very country.
    if !inp.explicit_from
        && let Some(s) = reg.senders.get(tenant).and_then(|m| {
            m.values()
                .find(|s| s.countries.iter().any(|c| c == cc))
                .or_else(|| {
                    if m.get(&v.from).is_some_and(|s| s.countries.is_empty()) {
                        None
                    } else {
                        m.values().find(|s| s.countries.is_empty())
                    }
                })
        })
        && s.sender != v.from
        && (cr.alphanumeric_allowed || s.kind != SenderKind::Alphanumeric)
    {
        v.notes
            .push(format!("sender {} (registered for {cc})", s.sender));
        v.record.sender_choice = Some(format!("registered sender {} for {cc}", s.sender));
        v.from = s.sender.clone();
        v.decisions.push(("sender", "registered"));
    }
    let (mut kind, mut canonical) = classify(&v.from);
    let mut from_pool = false;
    if kind == SenderKind::Alphanumeric && !cr.alphanumeric_allowed {
        let pool = &inp.tenant.sender_pool;
        if pool.is_empty() {
            return Err(Refusal::SenderNotAllowed(format!(
                "{cc} does not allow alphanumeric sender ids and the tenant has no sender_pool"
            )));
        }
        // The same recipient always sees the same pool number.
        let digits: u64 = crate::state::compliance::number_key(inp.to).unwrap_or(0);
        let pick = pool[(digits % pool.len() as u64) as usize].clone();
        v.notes.push(format!(
            "sender {} replaced by {pick} from the sender pool ({cc} does not allow alphanumeric senders)",
            v.from
        ));
        v.record.sender_choice = Some(format!(
            "pool number {pick} instead of {} ({cc} forbids alphanumeric senders)",
            v.from
        ));
        v.from = pick;
        (kind, canonical) = classify(&v.from);
        from_pool = true;
        v.decisions.push(("sender", "pool"));
    }
    if cr.sender_registration_required
        && !from_pool
        && registered(reg, tenant, &v.from, cc).is_none()
    {
        return Err(Refusal::SenderNotAllowed(format!(
            "sender {} is not registered for {cc}; register it with POST /admin/v1/tenants/{tenant}/senders",
            v.from
        )));
    }

    // US 10DLC: long codes belong to a campaign; toll-free and short codes are registered.
    if cr.ten_dlc_required {
        match kind {
            SenderKind::LongCode => {
                let campaigns = reg.campaigns.get(tenant);
                let campaign = match inp.campaign_id {
                    Some(id) => campaigns
                        .and_then(|m| m.get(id))
                        .filter(|c| c.numbers.contains(&canonical))
                        .ok_or_else(|| {
                            Refusal::Unregistered10dlc(format!(
                                "{canonical} is not registered to campaign {id} of this tenant"
                            ))
                        })?,
                    None => campaigns
                        .and_then(|m| m.values().find(|c| c.numbers.contains(&canonical)))
                        .ok_or_else(|| {
                            Refusal::Unregistered10dlc(format!(
                                "{canonical} is not registered to any 10DLC campaign of this tenant"
                            ))
                        })?,
                };
                v.record.campaign_id = Some(campaign.id.clone());
                if campaign.tps > 0 {
                    v.caps
                        .push(CapKey::campaign(tenant, &campaign.id, campaign.tps));
                }
                v.decisions.push(("ten_dlc", "pass"));
            }
            SenderKind::TollFree | SenderKind::ShortCode => {
                let ok = registered(reg, tenant, &v.from, cc)
                    .or_else(|| registered(reg, tenant, &canonical, cc))
                    .is_some_and(|s| s.kind == kind);
                if !ok {
                    let what = if kind == SenderKind::TollFree {
                        "toll-free number"
                    } else {
                        "short code"
                    };
                    return Err(Refusal::SenderNotAllowed(format!(
                        "{what} {} is not verified for this tenant in {cc}; register it as a sender of type {}",
                        v.from,
                        if kind == SenderKind::TollFree {
                            "toll_free"
                        } else {
                            "short_code"
                        }
                    )));
                }
                v.decisions.push(("ten_dlc", "pass"));
            }
            SenderKind::Alphanumeric => {}
        }
    }

    // India DLT.
    if cr.dlt_required || inp.dlt.is_some() {
        let Some((entity, template_id)) = inp.dlt else {
            return Err(Refusal::DltRequired(format!(
                "messages to {cc} need dlt.entity_id and dlt.template_id"
            )));
        };
        let tpl = reg
            .templates
            .get(tenant)
            .and_then(|m| m.get(template_id))
            .ok_or_else(|| {
                Refusal::DltTemplateMismatch(format!(
                    "template {template_id} is not registered for this tenant"
                ))
            })?;
        if tpl.entity_id != entity {
            return Err(Refusal::DltEntityMismatch(format!(
                "template {template_id} belongs to entity {}, not {entity}",
                tpl.entity_id
            )));
        }
        if !Template::parse(&tpl.text).matches(inp.text) {
            return Err(Refusal::DltTemplateMismatch(format!(
                "the text does not match template {template_id}: {:?}",
                tpl.text
            )));
        }
        v.record.dlt_entity_id = Some(entity.to_string());
        v.record.dlt_template_id = Some(template_id.to_string());
        v.decisions.push(("dlt", "pass"));
    }

    // Content rules.
    if !rules.is_empty() {
        let hits = rules.evaluate(tenant, inp.text);
        if let Some(h) = hits.iter().find(|h| h.action == RuleAction::Reject) {
            return Err(Refusal::ContentBlocked {
                rule: h.rule.clone(),
            });
        }
        for h in &hits {
            v.notes.push(format!(
                "flagged by content rule {} ({})",
                h.rule,
                h.kind.as_str()
            ));
            v.record.flags.push(h.rule.clone());
            v.decisions.push(("content", "flag"));
        }
        if hits.is_empty() {
            v.decisions.push(("content", "pass"));
        }
    }

    // Quiet hours (marketing only): scheduled, not refused.
    if inp.category == Category::Marketing
        && let Some(q) = &cr.quiet_hours
        && let Some(t) = quiet::next_allowed(inp.send_time, q)
    {
        v.notes.push(format!(
            "quiet hours {}-{} {} in {cc}: scheduled to {}",
            quiet::hhmm(q.start_min),
            quiet::hhmm(q.end_min),
            q.timezone,
            crate::clock::rfc3339(t)
        ));
        v.record.quiet_hours_until = Some(t);
        v.send_at = Some(t);
        v.decisions.push(("quiet_hours", "schedule"));
    }

    // Frequency caps of this category.
    for c in inp
        .tenant
        .frequency_caps
        .iter()
        .filter(|c| c.category == inp.category)
    {
        v.caps.push(CapKey::frequency(
            tenant,
            inp.to,
            inp.category,
            c.max,
            c.per_seconds as i64 * 1000,
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RateLimit;
    use crate::state::compliance::{Campaign, ComplianceOp, DltTemplate, FrequencyCap, SenderId};

    fn tenant() -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "acme".into(),
            api_key_hash: String::new(),
            webhook_secret: String::new(),
            rate_limit: RateLimit {
                per_second: 1,
                burst: 1,
            },
            callback_url: None,
            max_parts: 10,
            queue_limit: 10,
            smart_encoding: false,
            senders: vec![],
            created_at: 0,
            frequency_caps: vec![FrequencyCap {
                category: Category::Otp,
                max: 5,
                per_seconds: 600,
            }],
            sender_pool: vec!["+12025550100".into()],
            opt_out_categories: vec![Category::Marketing],
        }
    }

    fn input<'a>(
        t: &'a Tenant,
        to: &'a str,
        cc: &'a str,
        from: &'a str,
        text: &'a str,
    ) -> Input<'a> {
        Input {
            tenant: t,
            to,
            country: Some(cc),
            from,
            explicit_from: true,
            text,
            category: Category::Transactional,
            dlt: None,
            campaign_id: None,
            send_time: 0,
        }
    }

    fn empty_rules() -> RuleSet {
        RuleSet::compile(&Default::default(), 0)
    }

    #[test]
    fn us_long_codes_need_a_campaign_and_alphanumerics_use_the_pool() {
        let t = tenant();
        let mut reg = ComplianceRegistry::default();
        let r = empty_rules();
        let i = input(&t, "+12025550199", "US", "+12025550123", "hi");
        assert!(matches!(
            check(&i, &reg, &r),
            Err(Refusal::Unregistered10dlc(_))
        ));
        reg.apply(&ComplianceOp::PutCampaign(Campaign {
            tenant: "acme".into(),
            id: "C1".into(),
            use_case: "2fa".into(),
            numbers: vec!["+12025550123".into(), "+12025550100".into()],
            tps: 3,
            created_at: 0,
        }))
        .expect("apply");
        let v = check(&i, &reg, &r).expect("registered");
        assert_eq!(v.record.campaign_id.as_deref(), Some("C1"));
        assert_eq!(v.caps, vec![CapKey::campaign("acme", "C1", 3)]);
        let i = input(&t, "+12025550199", "US", "ACME", "hi");
        let v = check(&i, &reg, &r).expect("pool");
        assert_eq!(v.from, "+12025550100");
        assert!(v.record.sender_choice.is_some());
        let i = input(&t, "+12025550199", "US", "18005550100", "hi");
        assert!(matches!(
            check(&i, &reg, &r),
            Err(Refusal::SenderNotAllowed(_))
        ));
        reg.apply(&ComplianceOp::PutSender(SenderId {
            tenant: "acme".into(),
            sender: "+18005550100".into(),
            kind: SenderKind::TollFree,
            countries: vec!["US".into()],
            created_at: 0,
        }))
        .expect("apply");
        assert!(check(&i, &reg, &r).is_ok());
    }

    #[test]
    fn dlt_and_opt_out() {
        let t = tenant();
        let mut reg = ComplianceRegistry::default();
        let r = empty_rules();
        let mut i = input(&t, "+919876543210", "IN", "ACMEIN", "Your OTP is 1234");
        // India: the header (sender id) must be registered, as on DLT.
        assert!(matches!(
            check(&i, &reg, &r),
            Err(Refusal::SenderNotAllowed(_))
        ));
        reg.apply(&ComplianceOp::PutSender(SenderId {
            tenant: "acme".into(),
            sender: "ACMEIN".into(),
            kind: SenderKind::Alphanumeric,
            countries: vec!["IN".into()],
            created_at: 0,
        }))
        .expect("apply");
        assert!(matches!(check(&i, &reg, &r), Err(Refusal::DltRequired(_))));
        i.dlt = Some(("1101", "T1"));
        assert!(matches!(
            check(&i, &reg, &r),
            Err(Refusal::DltTemplateMismatch(_))
        ));
        reg.apply(&ComplianceOp::PutTemplate(DltTemplate {
            tenant: "acme".into(),
            template_id: "T1".into(),
            entity_id: "1101".into(),
            text: "Your OTP is {#var#}".into(),
            created_at: 0,
        }))
        .expect("apply");
        assert!(check(&i, &reg, &r).is_ok());
        // The template exists; the entity is what is wrong (refusal names dlt.entity_id).
        i.dlt = Some(("9999", "T1"));
        let e = check(&i, &reg, &r).expect_err("other entity");
        assert!(matches!(e, Refusal::DltEntityMismatch(_)), "{e:?}");
        assert_eq!(
            super::super::refusal_error(&e).field.as_deref(),
            Some("dlt.entity_id")
        );
        i.dlt = Some(("1101", "T1"));
        i.text = "Your code is 1234";
        assert!(matches!(
            check(&i, &reg, &r),
            Err(Refusal::DltTemplateMismatch(_))
        ));
        let mut i = input(&t, "+4915112345678", "DE", "ACME", "sale");
        reg.apply(&ComplianceOp::AddOptOuts {
            tenant: "acme".into(),
            numbers: vec!["+4915112345678".into()],
        })
        .expect("apply");
        assert!(
            check(&i, &reg, &r).is_ok(),
            "transactional is not refused by default"
        );
        i.category = Category::Marketing;
        assert!(matches!(check(&i, &reg, &r), Err(Refusal::OptedOut(..))));
        i.category = Category::Otp;
        assert_eq!(check(&i, &reg, &r).expect("otp").caps.len(), 1);
    }

    #[test]
    fn classify_senders() {
        assert_eq!(classify("ACME").0, SenderKind::Alphanumeric);
        assert_eq!(classify("12345").0, SenderKind::ShortCode);
        assert_eq!(classify("+18885550100").0, SenderKind::TollFree);
        assert_eq!(classify("+12025550100").0, SenderKind::LongCode);
        assert_eq!(
            classify("12025550100"),
            (SenderKind::LongCode, "+12025550100".into())
        );
    }
}
