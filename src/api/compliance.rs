//! `/admin/v1/compliance/*` (content rules, country rules) and the tenant's compliance
//! registries under `/admin/v1/tenants/{id}/...` (sender ids, DLT templates, 10DLC
//! campaigns, opt-outs). Every change is one `Op::Compliance` through Raft, so it takes
//! effect on every node as soon as the node applies the entry.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, parse_json};
use super::{AppState, require_admin};
use crate::clock::{now_ms, rfc3339};
use crate::compliance::{content, dlt, quiet};
use crate::state::compliance::{
    BUILTIN_COUNTRIES, Campaign, ComplianceOp, ContentRule, CountryRules, DltTemplate, QuietHours,
    RuleAction, RuleKind, SenderId, SenderKind,
};
use crate::state::{Op, OpResult};

/// Opt-out numbers per `POST .../opt_outs` call at most (larger lists: several calls).
pub const MAX_OPT_OUTS_PER_CALL: usize = 10_000;

async fn write(st: &AppState, op: ComplianceOp) -> Result<OpResult, ApiError> {
    Ok(st.consensus.propose(Op::Compliance(Box::new(op))).await?)
}

fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(ApiError::invalid(
            field,
            "1 to 64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    Ok(())
}

fn known_tenant(st: &AppState, id: &str) -> Result<(), ApiError> {
    if st.consensus.store().config().tenants.contains_key(id) {
        Ok(())
    } else {
        Err(ApiError::not_found("tenant"))
    }
}

/// An ISO 3166-1 alpha-2 code (any case) that phone numbers resolve to, upper-cased.
fn country_code(field: &str, cc: &str) -> Result<String, ApiError> {
    let up = cc.to_ascii_uppercase();
    if !crate::messages::intake::is_known_country(&up) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{cc:?} is not an ISO 3166-1 alpha-2 country code with phone numbers, like \"IN\""
            ),
        ));
    }
    Ok(up)
}

/// E.164 from a body or path (a `+` lost in a path is put back).
fn number(field: &str, raw: &str) -> Result<String, ApiError> {
    crate::messages::intake::normalize_lost_plus(raw).map_err(|e| e.field(field))
}

/// 409 when a create finds the tenant's row with that id (`created_at` of it): like every
/// other create of the admin API, an existing one is not overwritten. `what` says which
/// row ("DLT template X exists").
fn refuse_existing(what: &str, tenant: &str, created_at: Option<i64>) -> Result<(), ApiError> {
    match created_at {
        Some(at) => Err(ApiError::conflict(format!(
            "{what} for tenant {tenant} since {}; delete it first to change it",
            rfc3339(at)
        ))),
        None => Ok(()),
    }
}

fn deleted(r: OpResult, what: &str) -> Result<Response, ApiError> {
    match r {
        OpResult::NotFound => Err(ApiError::not_found(what)),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

// ---------- content rules ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    #[serde(default)]
    scope: Option<String>,
    kind: RuleKind,
    pattern: String,
    action: RuleAction,
}

fn rule_view(r: &ContentRule) -> Value {
    json!({
        "id": r.id,
        "scope": r.scope.as_ref().map(|t| format!("tenant:{t}")).unwrap_or_else(|| "global".into()),
        "kind": r.kind, "pattern": r.pattern, "action": r.action, "created_at": rfc3339(r.created_at),
    })
}

/// `PUT /admin/v1/compliance/rules/{id}`: create or replace a content rule.
pub async fn put_rule(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    check_id("id", &id)?;
    let b: RuleBody = parse_json(&body)?;
    let scope = match b.scope.as_deref().unwrap_or("global") {
        "global" => None,
        s => match s.strip_prefix("tenant:") {
            Some(t) => {
                check_id("scope", t)?;
                // A rule for a tenant that does not exist would never apply (and would
                // apply to a later tenant given that id without anyone asking).
                if !st.consensus.store().config().tenants.contains_key(t) {
                    return Err(ApiError::invalid("scope", format!("unknown tenant {t:?}")));
                }
                Some(t.to_string())
            }
            None => {
                return Err(ApiError::invalid("scope", "\"global\" or \"tenant:<id>\""));
            }
        },
    };
    if b.pattern.len() > 1000 {
        return Err(ApiError::invalid("pattern", "at most 1000 bytes"));
    }
    content::validate(b.kind, &b.pattern)
        .map_err(|e| ApiError::invalid("pattern", e.to_string()))?;
    let existed = st.consensus.store().compliance().rules.contains_key(&id);
    let r = ContentRule {
        id,
        scope,
        kind: b.kind,
        pattern: b.pattern.trim().to_string(),
        action: b.action,
        created_at: now_ms(),
    };
    write(&st, ComplianceOp::PutRule(r.clone())).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(rule_view(&r))).into_response())
}

/// `GET /admin/v1/compliance/rules`
pub async fn list_rules(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let reg = st.consensus.store().compliance();
    Ok(Json(json!(reg.rules.values().map(rule_view).collect::<Vec<_>>())).into_response())
}

/// `GET /admin/v1/compliance/rules/{id}`
pub async fn get_rule(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let reg = st.consensus.store().compliance();
    match reg.rules.get(&id) {
        Some(r) => Ok(Json(rule_view(r)).into_response()),
        None => Err(ApiError::not_found("rule")),
    }
}

/// `DELETE /admin/v1/compliance/rules/{id}`
pub async fn delete_rule(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    deleted(write(&st, ComplianceOp::DeleteRule { id }).await?, "rule")
}

// ---------- country rules ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietBody {
    start: String,
    end: String,
    timezone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountryBody {
    alphanumeric_allowed: Option<bool>,
    sender_registration_required: Option<bool>,
    dlt_required: Option<bool>,
    ten_dlc_required: Option<bool>,
    #[serde(default)]
    quiet_hours: Option<QuietBody>,
}

/// A country's rules; `built_in` when no admin configured them (the defaults in force).
fn country_view(c: &CountryRules, built_in: bool) -> Value {
    json!({
        "country": c.country, "built_in": built_in, "alphanumeric_allowed": c.alphanumeric_allowed,
        "sender_registration_required": c.sender_registration_required,
        "dlt_required": c.dlt_required, "ten_dlc_required": c.ten_dlc_required,
        "quiet_hours": c.quiet_hours.as_ref().map(|q| json!({
            "start": quiet::hhmm(q.start_min), "end": quiet::hhmm(q.end_min), "timezone": q.timezone})),
    })
}

/// `PUT /admin/v1/compliance/countries/{cc}`: fields left out keep the built-in default.
pub async fn put_country(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(cc): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let cc = country_code("country", &cc)?;
    let b: CountryBody = parse_json(&body)?;
    let base = CountryRules::builtin(&cc);
    let quiet_hours = match b.quiet_hours {
        None => None,
        Some(q) => {
            let start = quiet::parse_hhmm(&q.start)
                .ok_or_else(|| ApiError::invalid("quiet_hours.start", "HH:MM"))?;
            let end = quiet::parse_hhmm(&q.end)
                .ok_or_else(|| ApiError::invalid("quiet_hours.end", "HH:MM"))?;
            if start == end {
                return Err(ApiError::invalid(
                    "quiet_hours.end",
                    "must differ from start (an empty or all-day window); leave quiet_hours \
                     out for none",
                ));
            }
            if !quiet::valid_timezone(&q.timezone) {
                return Err(ApiError::invalid(
                    "quiet_hours.timezone",
                    "an IANA time zone like \"Asia/Kolkata\"",
                ));
            }
            Some(QuietHours {
                start_min: start,
                end_min: end,
                timezone: q.timezone,
            })
        }
    };
    let c = CountryRules {
        country: cc,
        alphanumeric_allowed: b.alphanumeric_allowed.unwrap_or(base.alphanumeric_allowed),
        sender_registration_required: b
            .sender_registration_required
            .unwrap_or(base.sender_registration_required),
        dlt_required: b.dlt_required.unwrap_or(base.dlt_required),
        ten_dlc_required: b.ten_dlc_required.unwrap_or(base.ten_dlc_required),
        quiet_hours,
    };
    write(&st, ComplianceOp::PutCountry(c.clone())).await?;
    Ok(Json(country_view(&c, false)).into_response())
}

/// `GET /admin/v1/compliance/countries`: the rules in force that differ from nothing:
/// the configured countries, and the built-in rules (IN, US) no admin replaced
/// (`built_in: true`), by country code.
pub async fn list_countries(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let reg = st.consensus.store().compliance();
    let mut rows: Vec<(String, Value)> = reg
        .countries
        .values()
        .map(|c| (c.country.clone(), country_view(c, false)))
        .collect();
    for cc in BUILTIN_COUNTRIES {
        if !reg.countries.contains_key(*cc) {
            rows.push((
                (*cc).to_string(),
                country_view(&CountryRules::builtin(cc), true),
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(json!(rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>())).into_response())
}

/// A country path segment for reading or deleting: a known code, or one stored before
/// codes were checked against the region list (so such a row can still be seen and
/// removed).
fn stored_or_known_country(st: &AppState, cc: &str) -> Result<String, ApiError> {
    let up = cc.to_ascii_uppercase();
    if st
        .consensus
        .store()
        .compliance()
        .countries
        .contains_key(&up)
    {
        return Ok(up);
    }
    country_code("country", cc)
}

/// `GET /admin/v1/compliance/countries/{cc}`: the rules in force (configured or built in).
pub async fn get_country(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(cc): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let cc = stored_or_known_country(&st, &cc)?;
    let reg = st.consensus.store().compliance();
    let c = reg.country(&cc);
    Ok(Json(country_view(&c, !reg.countries.contains_key(&cc))).into_response())
}

/// `DELETE /admin/v1/compliance/countries/{cc}`: back to the built-in rules.
pub async fn delete_country(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(cc): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let country = stored_or_known_country(&st, &cc)?;
    deleted(
        write(&st, ComplianceOp::DeleteCountry { country }).await?,
        "country",
    )
}

// ---------- sender ids ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderBody {
    sender: String,
    #[serde(rename = "type")]
    kind: SenderKind,
    #[serde(default)]
    countries: Vec<String>,
}

fn sender_view(s: &SenderId) -> Value {
    json!({"sender": s.sender, "type": s.kind, "countries": s.countries, "created_at": rfc3339(s.created_at)})
}

/// `POST /admin/v1/tenants/{id}/senders`
pub async fn add_sender(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let b: SenderBody = parse_json(&body)?;
    let sender = crate::messages::intake::check_sender(&b.sender).map_err(|e| e.field("sender"))?;
    let (kind, canonical) = crate::compliance::check::classify(&sender);
    let fits = match b.kind {
        SenderKind::Alphanumeric => kind == SenderKind::Alphanumeric,
        SenderKind::ShortCode => kind == SenderKind::ShortCode,
        SenderKind::LongCode | SenderKind::TollFree => {
            matches!(kind, SenderKind::LongCode | SenderKind::TollFree)
        }
    };
    if !fits {
        return Err(ApiError::invalid(
            "type",
            format!(
                "{sender:?} is not of type {} (its form is {})",
                b.kind.as_str(),
                kind.as_str()
            ),
        ));
    }
    let sender = if kind == SenderKind::ShortCode || kind == SenderKind::Alphanumeric {
        sender
    } else {
        canonical
    };
    let mut countries = Vec::new();
    for (i, c) in b.countries.iter().enumerate() {
        countries.push(country_code(&format!("countries[{i}]"), c)?);
    }
    refuse_existing(
        &format!("sender {sender} is registered"),
        &tenant,
        st.consensus
            .store()
            .compliance()
            .senders
            .get(&tenant)
            .and_then(|m| m.get(&sender))
            .map(|row| row.created_at),
    )?;
    let s = SenderId {
        tenant: tenant.clone(),
        sender: sender.clone(),
        kind: b.kind,
        countries,
        created_at: now_ms(),
    };
    // A sender for every country is one of the tenant's `senders` too (see
    // `admin::sync_sender_registry`): both change in one Raft entry.
    let mut ops = vec![Op::Compliance(Box::new(ComplianceOp::PutSender(s.clone())))];
    let mut t = st
        .consensus
        .store()
        .config()
        .tenants
        .get(&tenant)
        .cloned()
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    if s.countries.is_empty() && !t.senders.contains(&sender) {
        t.senders.push(sender);
        ops.push(Op::PutTenant(Box::new(t)));
    }
    super::admin::write_all(&st, ops).await?;
    Ok((StatusCode::CREATED, Json(sender_view(&s))).into_response())
}

/// `GET /admin/v1/tenants/{id}/senders`
pub async fn list_senders(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let reg = st.consensus.store().compliance();
    let v: Vec<Value> = reg
        .senders
        .get(&tenant)
        .map(|m| m.values().map(sender_view).collect())
        .unwrap_or_default();
    Ok(Json(json!(v)).into_response())
}

/// `DELETE /admin/v1/tenants/{id}/senders/{sender}`
pub async fn delete_sender(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((tenant, sender)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let exists = st
        .consensus
        .store()
        .compliance()
        .senders
        .get(&tenant)
        .is_some_and(|m| m.contains_key(&sender));
    // A `+` may arrive decoded as a space, or missing.
    let sender = if exists {
        sender
    } else {
        let (_, canonical) = crate::compliance::check::classify(sender.trim());
        canonical
    };
    let mut ops = vec![Op::Compliance(Box::new(ComplianceOp::DeleteSender {
        tenant: tenant.clone(),
        sender: sender.clone(),
    }))];
    // And from the tenant's `senders`, which lists the same senders.
    if let Some(mut t) = st.consensus.store().config().tenants.get(&tenant).cloned()
        && t.senders.contains(&sender)
    {
        t.senders.retain(|s| *s != sender);
        ops.push(Op::PutTenant(Box::new(t)));
    }
    let results = super::admin::write_all(&st, ops).await?;
    // Found in either list: removed.
    let found = results.iter().any(|r| *r != OpResult::NotFound);
    deleted(
        if found {
            OpResult::Done
        } else {
            OpResult::NotFound
        },
        "sender",
    )
}

// ---------- DLT templates ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    template_id: String,
    entity_id: String,
    text: String,
}

fn template_view(t: &DltTemplate) -> Value {
    json!({"template_id": t.template_id, "entity_id": t.entity_id, "text": t.text,
           "variables": dlt::Template::parse(&t.text).vars(), "created_at": rfc3339(t.created_at)})
}

fn dlt_id(field: &str, v: &str) -> Result<(), ApiError> {
    if !dlt::valid_id(v) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{v:?} is not a DLT id: exactly {} digits, as the DLT portal issued it",
                dlt::ID_DIGITS
            ),
        ));
    }
    Ok(())
}

/// `POST /admin/v1/tenants/{id}/dlt_templates`
pub async fn add_template(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let b: TemplateBody = parse_json(&body)?;
    dlt_id("template_id", &b.template_id)?;
    dlt_id("entity_id", &b.entity_id)?;
    if b.text.is_empty() || b.text.chars().count() > 2000 {
        return Err(ApiError::invalid("text", "1 to 2000 characters"));
    }
    if let Some(bad) = dlt::near_miss(&b.text) {
        return Err(ApiError::invalid(
            "text",
            format!(
                "{bad:?} looks like a placeholder but is not one: DLT variables are written \
                 exactly {} (lower case, no spaces)",
                dlt::PLACEHOLDER
            ),
        ));
    }
    refuse_existing(
        &format!("DLT template {} exists", b.template_id),
        &tenant,
        st.consensus
            .store()
            .compliance()
            .templates
            .get(&tenant)
            .and_then(|m| m.get(&b.template_id))
            .map(|row| row.created_at),
    )?;
    let t = DltTemplate {
        tenant,
        template_id: b.template_id,
        entity_id: b.entity_id,
        text: b.text,
        created_at: now_ms(),
    };
    write(&st, ComplianceOp::PutTemplate(t.clone())).await?;
    Ok((StatusCode::CREATED, Json(template_view(&t))).into_response())
}

/// `GET /admin/v1/tenants/{id}/dlt_templates`
pub async fn list_templates(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let reg = st.consensus.store().compliance();
    let v: Vec<Value> = reg
        .templates
        .get(&tenant)
        .map(|m| m.values().map(template_view).collect())
        .unwrap_or_default();
    Ok(Json(json!(v)).into_response())
}

/// `DELETE /admin/v1/tenants/{id}/dlt_templates/{template_id}`
pub async fn delete_template(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((tenant, template_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    deleted(
        write(
            &st,
            ComplianceOp::DeleteTemplate {
                tenant,
                template_id,
            },
        )
        .await?,
        "template",
    )
}

// ---------- 10DLC campaigns ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignBody {
    id: String,
    use_case: String,
    numbers: Vec<String>,
    #[serde(default)]
    tps: Option<u32>,
}

fn campaign_view(c: &Campaign) -> Value {
    json!({"id": c.id, "use_case": c.use_case, "numbers": c.numbers, "tps": c.tps, "created_at": rfc3339(c.created_at)})
}

/// 422 unless `n` (E.164) is a NANP long code: `+1`, a 10-digit NXX-NXX-XXXX number, not
/// a toll-free area code (toll-free numbers are verified senders, not 10DLC).
fn ten_dlc_number(field: &str, n: &str) -> Result<(), ApiError> {
    let digits = n.strip_prefix("+1").unwrap_or("");
    let b = digits.as_bytes();
    let nanp = b.len() == 10 && b.iter().all(u8::is_ascii_digit) && b[0] >= b'2' && b[3] >= b'2';
    if !nanp {
        return Err(ApiError::invalid(
            field,
            format!("{n} is not a US/NANP long code (+1 and 10 digits, like +12025550100)"),
        ));
    }
    if crate::compliance::check::classify(n).0 == SenderKind::TollFree {
        return Err(ApiError::invalid(
            field,
            format!(
                "{n} is a toll-free number, not a 10DLC long code; register it with \
                 POST .../senders as type toll_free"
            ),
        ));
    }
    Ok(())
}

/// 409 naming `numbers[i]` when a number is in a campaign already (this tenant's or
/// another's): a 10DLC number belongs to exactly one campaign, whose id and `tps` apply.
fn campaign_numbers_free(st: &AppState, numbers: &[String]) -> Result<(), ApiError> {
    let reg = st.consensus.store().compliance();
    for (i, n) in numbers.iter().enumerate() {
        let owner = reg.campaigns.iter().find_map(|(tenant, m)| {
            m.values()
                .find(|c| c.numbers.contains(n))
                .map(|c| (tenant, &c.id))
        });
        if let Some((tenant, id)) = owner {
            return Err(ApiError::conflict(format!(
                "{n} is already in campaign {id} of tenant {tenant}; a 10DLC number belongs \
                 to one campaign (remove it there first)"
            ))
            .field(format!("numbers[{i}]")));
        }
    }
    Ok(())
}

/// `POST /admin/v1/tenants/{id}/campaigns` (US 10DLC; `tps` 0 = no cap, default 1).
pub async fn add_campaign(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let b: CampaignBody = parse_json(&body)?;
    check_id("id", &b.id)?;
    if b.use_case.is_empty() || b.use_case.len() > 64 {
        return Err(ApiError::invalid("use_case", "1 to 64 characters"));
    }
    if b.numbers.is_empty() || b.numbers.len() > 10_000 {
        return Err(ApiError::invalid("numbers", "1 to 10000 numbers"));
    }
    let mut numbers: Vec<String> = Vec::with_capacity(b.numbers.len());
    for (i, n) in b.numbers.iter().enumerate() {
        let field = format!("numbers[{i}]");
        let n = number(&field, n)?;
        ten_dlc_number(&field, &n)?;
        if let Some(j) = numbers.iter().position(|m| *m == n) {
            return Err(ApiError::invalid(
                &field,
                format!("{n} is listed twice (also numbers[{j}])"),
            ));
        }
        numbers.push(n);
    }
    let tps = b.tps.unwrap_or(1);
    if tps > 100_000 {
        return Err(ApiError::invalid("tps", "0 to 100000"));
    }
    refuse_existing(
        &format!("campaign {} exists", b.id),
        &tenant,
        st.consensus
            .store()
            .compliance()
            .campaigns
            .get(&tenant)
            .and_then(|m| m.get(&b.id))
            .map(|row| row.created_at),
    )?;
    campaign_numbers_free(&st, &numbers)?;
    let c = Campaign {
        tenant,
        id: b.id,
        use_case: b.use_case,
        numbers,
        tps,
        created_at: now_ms(),
    };
    if let OpResult::InUse { by } = write(&st, ComplianceOp::PutCampaign(c.clone())).await? {
        // Another registration of a number committed first: name it as the check does.
        campaign_numbers_free(&st, &c.numbers)?;
        return Err(
            ApiError::conflict(format!("already in another campaign: {}", by.join(", ")))
                .field("numbers"),
        );
    }
    Ok((StatusCode::CREATED, Json(campaign_view(&c))).into_response())
}

/// `GET /admin/v1/tenants/{id}/campaigns`
pub async fn list_campaigns(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let reg = st.consensus.store().compliance();
    let v: Vec<Value> = reg
        .campaigns
        .get(&tenant)
        .map(|m| m.values().map(campaign_view).collect())
        .unwrap_or_default();
    Ok(Json(json!(v)).into_response())
}

/// `DELETE /admin/v1/tenants/{id}/campaigns/{campaign}`
pub async fn delete_campaign(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    deleted(
        write(&st, ComplianceOp::DeleteCampaign { tenant, id }).await?,
        "campaign",
    )
}

// ---------- opt-outs ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOutBody {
    numbers: Vec<String>,
}

/// `POST /admin/v1/tenants/{id}/opt_outs` → `{"added": new numbers, "already_listed",
/// "numbers": the normalised numbers}`.
pub async fn add_opt_outs(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let b: OptOutBody = parse_json(&body)?;
    if b.numbers.is_empty() || b.numbers.len() > MAX_OPT_OUTS_PER_CALL {
        return Err(ApiError::invalid(
            "numbers",
            format!("1 to {MAX_OPT_OUTS_PER_CALL} numbers per call"),
        ));
    }
    let mut numbers = Vec::with_capacity(b.numbers.len());
    for (i, n) in b.numbers.iter().enumerate() {
        numbers.push(number(&format!("numbers[{i}]"), n)?);
    }
    let mut seen = std::collections::HashSet::new();
    numbers.retain(|n| seen.insert(n.clone()));
    // Counted before the write: an already-listed number is not "added" again.
    let added = {
        let reg = st.consensus.store().compliance();
        numbers
            .iter()
            .filter(|n| !reg.opted_out(&tenant, n))
            .count()
    };
    let already_listed = numbers.len() - added;
    let shown = numbers.clone();
    write(&st, ComplianceOp::AddOptOuts { tenant, numbers }).await?;
    Ok(
        Json(json!({"added": added, "already_listed": already_listed, "numbers": shown}))
            .into_response(),
    )
}

/// Query of `GET .../opt_outs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOutQuery {
    limit: Option<usize>,
}

/// `GET /admin/v1/tenants/{id}/opt_outs?limit=`: the count and the first numbers.
pub async fn list_opt_outs(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    query: Result<Query<OptOutQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    known_tenant(&st, &tenant)?;
    let Query(q) = query.map_err(|e| super::error::bad_query(&e))?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "1 to 100000"));
    }
    let reg = st.consensus.store().compliance();
    let total = reg.opt_outs.get(&tenant).map(|s| s.len()).unwrap_or(0);
    Ok(Json(json!({"total": total, "numbers": reg.opt_out_list(&tenant, limit)})).into_response())
}

/// `DELETE /admin/v1/tenants/{id}/opt_outs/{number}`
pub async fn delete_opt_out(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((tenant, raw)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let number = number("number", &raw)?;
    deleted(
        write(&st, ComplianceOp::RemoveOptOut { tenant, number }).await?,
        "opt-out",
    )
}
