//! `/admin/v1/*`: tenants, channels, routes and the cluster view.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::{ApiError, parse_json};
use super::{AppState, require_admin};
use crate::clock::{now_ms, rfc3339};
use crate::protocols::smpp::ReceiptIdFormat;
use crate::state::{
    BindKind, Category, Channel, ChannelText, Op, OpResult, RECEIVER_INDEX_BASE, RateLimit, Route,
    RouteChannel, Tenant, TextCoding, UdhMode,
};

fn secret(prefix: &str) -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// SHA-256 hex of an API key: what is stored and looked up.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
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

/// The channel with this id, or 404.
fn find_channel(st: &AppState, id: &str) -> Result<Channel, ApiError> {
    let cfg = st.consensus.store().config();
    cfg.channels
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("channel"))
}

/// The tenant with this id, or 404.
fn find_tenant(st: &AppState, id: &str) -> Result<Tenant, ApiError> {
    let cfg = st.consensus.store().config();
    cfg.tenants
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// Writes several admin changes in one Raft entry (all or nothing), then waits like
/// [`write`].
pub(super) async fn write_all(st: &AppState, ops: Vec<Op>) -> Result<Vec<OpResult>, ApiError> {
    super::serving(st)?;
    let r = st.consensus.propose_many(ops).await?;
    catch_up_after_write(st).await;
    Ok(r)
}

/// On a follower, waits until a write it forwarded is applied here too. The write is
/// committed whatever happens here: a node that cannot catch up logs it and answers
/// the write's result (a 503 would hide a done write and, for a tenant, its only copy of
/// the API key).
async fn catch_up_after_write(st: &AppState) {
    if !st.consensus.is_leader()
        && let Err(e) = st.consensus.read_barrier().await
    {
        tracing::warn!(error = %e, "admin write committed, but this node did not catch up with it");
    }
}

/// The compliance writes that make `tenant`'s sender registry agree with its `senders`.
///
/// A tenant's `senders` (POST/PATCH) are its senders for every country, in order (the
/// first is the default `from`); `/admin/v1/tenants/{id}/senders` holds every sender
/// registration with its type and countries. They agree when each of the tenant's
/// senders is registered and each registration for every country (no `countries`) is one
/// of the tenant's senders; registrations for some countries only are not tenant-wide
/// senders. So senders new to the registry are registered for every country with their
/// classified type, registered ones keep their countries, and registrations for every
/// country not in `senders` are removed (also rows a deleted tenant with the same id
/// left behind). Written in the same Raft entry as the tenant row.
fn sync_sender_registry(st: &AppState, tenant: &str, senders: &[String]) -> Vec<Op> {
    use crate::state::compliance::{ComplianceOp, SenderId};
    let reg = st.consensus.store().compliance();
    let registered = reg.senders.get(tenant);
    let mut ops = Vec::new();
    for s in senders {
        if registered.is_some_and(|m| m.contains_key(s)) {
            continue;
        }
        let (kind, _) = crate::compliance::check::classify(s);
        ops.push(Op::Compliance(Box::new(ComplianceOp::PutSender(
            SenderId {
                tenant: tenant.to_string(),
                sender: s.clone(),
                kind,
                countries: Vec::new(),
                created_at: now_ms(),
            },
        ))));
    }
    for (old, row) in registered.into_iter().flat_map(|m| m.iter()) {
        if row.countries.is_empty() && !senders.contains(old) {
            ops.push(Op::Compliance(Box::new(ComplianceOp::DeleteSender {
                tenant: tenant.to_string(),
                sender: old.clone(),
            })));
        }
    }
    ops
}

/// Writes one admin change. On a follower it then waits until the change is applied
/// here too, so the next admin call through this node sees it (a route naming a channel
/// just created through the same node).
async fn write(st: &AppState, op: Op) -> Result<OpResult, ApiError> {
    super::serving(st)?;
    let r = st.consensus.propose(op).await?;
    catch_up_after_write(st).await;
    Ok(r)
}

// ---------- tenants ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitBody {
    per_second: u32,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrequencyCap {
    category: Category,
    max: u32,
    per_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    id: Option<String>,
    name: Option<String>,
    rate_limit: Option<RateLimitBody>,
    /// Absent: unchanged; `null`: removed; a URL: set.
    #[serde(default, deserialize_with = "present")]
    callback_url: Option<Option<String>>,
    senders: Option<Vec<String>>,
    max_parts: Option<u32>,
    queue_limit: Option<u64>,
    smart_encoding: Option<bool>,
    frequency_caps: Option<Vec<FrequencyCap>>,
    sender_pool: Option<Vec<String>>,
    opt_out_categories: Option<Vec<Category>>,
}

/// A field that was given, `null` included (serde reads a `null` `Option<Option<T>>` as
/// absent, so a PATCH could not remove a value).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

fn tenant_view(t: &Tenant) -> Value {
    json!({
        "id": t.id, "name": t.name, "rate_limit": {"per_second": t.rate_limit.per_second, "burst": t.rate_limit.burst},
        "callback_url": t.callback_url, "senders": t.senders, "max_parts": t.max_parts, "queue_limit": t.queue_limit,
        "smart_encoding": t.smart_encoding, "created_at": rfc3339(t.created_at),
        "frequency_caps": t.frequency_caps.iter().map(|c| json!({"category": c.category, "max": c.max, "per_seconds": c.per_seconds})).collect::<Vec<_>>(),
        "sender_pool": t.sender_pool, "opt_out_categories": t.opt_out_categories,
    })
}

fn apply_tenant_body(t: &mut Tenant, b: TenantBody) -> Result<(), ApiError> {
    if let Some(n) = b.name {
        if n.is_empty() || n.len() > 200 {
            return Err(ApiError::invalid("name", "1 to 200 characters"));
        }
        t.name = n;
    }
    if let Some(r) = b.rate_limit {
        if r.per_second == 0 || r.per_second > 1_000_000 {
            return Err(ApiError::invalid("rate_limit.per_second", "1 to 1000000"));
        }
        if r.burst == 0 || r.burst > 10_000_000 {
            return Err(ApiError::invalid("rate_limit.burst", "1 to 10000000"));
        }
        t.rate_limit = RateLimit {
            per_second: r.per_second,
            burst: r.burst,
        };
    }
    if let Some(cb) = b.callback_url {
        if let Some(u) = &cb {
            crate::messages::intake::check_url("callback_url", u)?;
        }
        t.callback_url = cb;
    }
    if let Some(s) = b.senders {
        let mut senders: Vec<String> = Vec::new();
        for (i, x) in s.iter().enumerate() {
            let checked = crate::messages::intake::check_sender(x)
                .map_err(|e| e.field(format!("senders[{i}]")))?;
            // The registry's key: numbers with their `+`, as `.../senders` stores them.
            let (_, canonical) = crate::compliance::check::classify(&checked);
            if !senders.contains(&canonical) {
                senders.push(canonical);
            }
        }
        t.senders = senders;
    }
    if let Some(m) = b.max_parts {
        if !(1..=255).contains(&m) {
            return Err(ApiError::invalid("max_parts", "1 to 255"));
        }
        t.max_parts = m;
    }
    if let Some(q) = b.queue_limit {
        if q == 0 {
            return Err(ApiError::invalid("queue_limit", "at least 1"));
        }
        t.queue_limit = q;
    }
    if let Some(s) = b.smart_encoding {
        t.smart_encoding = s;
    }
    if let Some(caps) = b.frequency_caps {
        let mut out = Vec::new();
        for (i, c) in caps.into_iter().enumerate() {
            if !(1..=100_000).contains(&c.max) {
                return Err(ApiError::invalid(
                    &format!("frequency_caps[{i}].max"),
                    "1 to 100000",
                ));
            }
            if !(1..=31 * 86_400).contains(&c.per_seconds) {
                return Err(ApiError::invalid(
                    &format!("frequency_caps[{i}].per_seconds"),
                    "1 to 2678400",
                ));
            }
            out.push(crate::state::compliance::FrequencyCap {
                category: c.category,
                max: c.max,
                per_seconds: c.per_seconds,
            });
        }
        t.frequency_caps = out;
    }
    if let Some(pool) = b.sender_pool {
        let mut numbers = Vec::with_capacity(pool.len());
        for (i, n) in pool.iter().enumerate() {
            // Separators stripped as from any number (`check_sender` keeps the `+`).
            match crate::messages::intake::check_sender(n) {
                Ok(n)
                    if n.starts_with('+') && crate::state::compliance::number_key(&n).is_some() =>
                {
                    numbers.push(n)
                }
                _ => {
                    return Err(ApiError::invalid(
                        &format!("sender_pool[{i}]"),
                        "an E.164 number like \"+12025550100\"",
                    ));
                }
            }
        }
        t.sender_pool = numbers;
    }
    if let Some(c) = b.opt_out_categories {
        t.opt_out_categories = c;
    }
    Ok(())
}

/// `POST /admin/v1/tenants` → 201 with the API key and webhook secret (shown once).
pub async fn create_tenant(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: TenantBody = parse_json(&body)?;
    let id =
        b.id.clone()
            .ok_or_else(|| ApiError::invalid("id", "missing field `id`"))?;
    check_id("id", &id)?;
    if b.name.is_none() {
        return Err(ApiError::invalid("name", "missing field `name`"));
    }
    if b.rate_limit.is_none() {
        return Err(ApiError::invalid(
            "rate_limit",
            "missing field `rate_limit`",
        ));
    }
    if st.consensus.store().config().tenants.contains_key(&id) {
        return Err(ApiError::conflict(format!("tenant {id} exists")));
    }
    refuse_reused_tenant_id(&st, &id)?;
    let api_key = secret("sk_");
    let webhook_secret = secret("whsec_");
    let mut t = Tenant {
        id: id.clone(),
        name: String::new(),
        api_key_hash: key_hash(&api_key),
        webhook_secret: webhook_secret.clone(),
        rate_limit: RateLimit {
            per_second: 100,
            burst: 200,
        },
        callback_url: None,
        max_parts: 10,
        queue_limit: st.tenant_queue_limit,
        smart_encoding: false,
        senders: Vec::new(),
        created_at: now_ms(),
        frequency_caps: Vec::new(),
        sender_pool: Vec::new(),
        opt_out_categories: vec![crate::state::Category::Marketing],
    };
    if let Some(Some(u)) = &b.callback_url {
        super::check_callback_target(&st, "callback_url", u)?;
    }
    apply_tenant_body(&mut t, b)?;
    let mut ops = sync_sender_registry(&st, &id, &t.senders);
    ops.insert(0, Op::PutTenant(Box::new(t)));
    write_all(&st, ops).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "api_key": api_key, "webhook_secret": webhook_secret})),
    )
        .into_response())
}

/// Refuses (409) a new tenant whose id a deleted tenant used while that tenant's
/// messages are still stored.
///
/// Messages are keyed by tenant id: a new tenant with the same id would list them, read
/// their status, and receive their remaining webhooks (signed with its own secret, sent
/// to its own callback URL). A gateway user creating a tenant expects an empty account,
/// and an admin who re-creates an id by mistake must not hand one customer's traffic to
/// another. Scoping rows to a tenant "incarnation" would need a new field in every stored
/// message (and would guess for the rows written before it), so the id stays taken
/// until the retention purge has dropped the old rows; the answer says so, and any other
/// id works at once. Checked here, before the write: once deleted, a tenant's key is
/// refused, so no new rows of the old tenant appear in between.
fn refuse_reused_tenant_id(st: &AppState, id: &str) -> Result<(), ApiError> {
    if let Some(msg) = st.consensus.store().first_message_of(id)? {
        return Err(ApiError::conflict(format!(
            "tenant id {id} belonged to a deleted tenant whose messages (e.g. {msg}) are still \
             retained; a new tenant with this id would see them. Choose another id, or wait \
             until the retention purge (retention_hours) has dropped them"
        ))
        .field("id"));
    }
    Ok(())
}

/// `GET /admin/v1/tenants`
pub async fn list_tenants(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let cfg = st.consensus.store().config();
    let mut v: Vec<&Tenant> = cfg.tenants.values().collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(json!(v.into_iter().map(tenant_view).collect::<Vec<_>>())).into_response())
}

/// `GET /admin/v1/tenants/{id}`
pub async fn get_tenant(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let t = find_tenant(&st, &id)?;
    let (waiting, scheduled) = {
        let work = st.consensus.store().work();
        (
            work.waiting.get(id.as_str()).copied().unwrap_or(0),
            work.tenant_count(&id, crate::state::admission::Queue::Scheduled),
        )
    };
    let mut v = tenant_view(&t);
    // `waiting`: every message not yet sent; `scheduled` of them wait for their
    // `send_at`: the queue limit holds the two parts apart (`state::admission`).
    v["waiting"] = json!(waiting);
    v["scheduled"] = json!(scheduled);
    // While a rotated-out webhook secret still signs (never the secret itself).
    let now = now_ms();
    v["previous_webhook_secret_until"] = json!(
        st.consensus
            .store()
            .config()
            .previous_secrets
            .get(&id)
            .filter(|p| p.until > now)
            .map(|p| rfc3339(p.until))
    );
    Ok(Json(v).into_response())
}

/// `PATCH /admin/v1/tenants/{id}`
pub async fn patch_tenant(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: TenantBody = parse_json(&body)?;
    if b.id.as_ref().is_some_and(|x| x != &id) {
        return Err(ApiError::invalid("id", "the id cannot change"));
    }
    let mut t = find_tenant(&st, &id)?;
    let senders_given = b.senders.is_some();
    if let Some(Some(u)) = &b.callback_url {
        super::check_callback_target(&st, "callback_url", u)?;
    }
    apply_tenant_body(&mut t, b)?;
    let mut ops = if senders_given {
        sync_sender_registry(&st, &id, &t.senders)
    } else {
        Vec::new()
    };
    ops.insert(0, Op::PutTenant(Box::new(t.clone())));
    write_all(&st, ops).await?;
    Ok(Json(tenant_view(&t)).into_response())
}

/// `DELETE /admin/v1/tenants/{id}`
pub async fn delete_tenant(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let mut ops = vec![Op::DeleteTenant { id: id.clone() }];
    ops.extend(tenant_compliance_rows(&st, &id));
    match write_all(&st, ops).await?.first() {
        Some(OpResult::NotFound) => Err(ApiError::not_found("tenant")),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The compliance rows that belong to tenant `id` alone (sender registrations, DLT
/// templates, 10DLC campaigns, opt-outs, content rules scoped to it), removed in the same
/// Raft entry as the tenant: a tenant created later under the same id must start clean,
/// not inherit another customer's templates, campaigns or opt-out list.
fn tenant_compliance_rows(st: &AppState, id: &str) -> Vec<Op> {
    use crate::state::compliance::ComplianceOp;
    let reg = st.consensus.store().compliance();
    let op = |c: ComplianceOp| Op::Compliance(Box::new(c));
    let tenant = || id.to_string();
    let mut ops = Vec::new();
    if let Some(senders) = reg.senders.get(id) {
        ops.extend(senders.keys().map(|s| {
            op(ComplianceOp::DeleteSender {
                tenant: tenant(),
                sender: s.clone(),
            })
        }));
    }
    if let Some(templates) = reg.templates.get(id) {
        ops.extend(templates.keys().map(|t| {
            op(ComplianceOp::DeleteTemplate {
                tenant: tenant(),
                template_id: t.clone(),
            })
        }));
    }
    if let Some(campaigns) = reg.campaigns.get(id) {
        ops.extend(campaigns.keys().map(|c| {
            op(ComplianceOp::DeleteCampaign {
                tenant: tenant(),
                id: c.clone(),
            })
        }));
    }
    if let Some(numbers) = reg.opt_outs.get(id) {
        ops.extend(numbers.iter().map(|n| {
            op(ComplianceOp::RemoveOptOut {
                tenant: tenant(),
                number: format!("+{n}"),
            })
        }));
    }
    ops.extend(
        reg.rules
            .values()
            .filter(|r| r.scope.as_deref() == Some(id))
            .map(|r| op(ComplianceOp::DeleteRule { id: r.id.clone() })),
    );
    ops
}

/// `POST /admin/v1/tenants/{id}/keys`: a new API key; the old one stops working.
pub async fn rotate_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let mut t = find_tenant(&st, &id)?;
    let api_key = secret("sk_");
    t.api_key_hash = key_hash(&api_key);
    write(&st, Op::PutTenant(Box::new(t))).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "api_key": api_key})),
    )
        .into_response())
}

/// How long a rotated-out webhook secret keeps signing by default: a day for every
/// receiver to switch.
pub const WEBHOOK_SECRET_OVERLAP_S: u64 = 24 * 3600;
/// The longest overlap allowed (a week).
pub const WEBHOOK_SECRET_OVERLAP_MAX_S: u64 = 7 * 24 * 3600;

/// Body of `POST /admin/v1/tenants/{id}/webhook_secret` (optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    overlap_seconds: Option<u64>,
}

/// `POST /admin/v1/tenants/{id}/webhook_secret`: a new webhook secret, answered once.
/// For `overlap_seconds` (default 24 h, 0..=604800) webhooks carry a second `v1=` made
/// with the old secret, so receivers can switch without rejecting events; 0 drops the
/// old secret at once (a leaked one). Replicated through Raft (`Op::RotateWebhookSecret`).
pub async fn rotate_webhook_secret(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: RotateSecretBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateSecretBody::default()
    } else {
        parse_json(&body)?
    };
    let overlap = b.overlap_seconds.unwrap_or(WEBHOOK_SECRET_OVERLAP_S);
    if overlap > WEBHOOK_SECRET_OVERLAP_MAX_S {
        return Err(ApiError::invalid(
            "overlap_seconds",
            format!("0 to {WEBHOOK_SECRET_OVERLAP_MAX_S} (a week)"),
        ));
    }
    find_tenant(&st, &id)?;
    let webhook_secret = secret("whsec_");
    let previous_until = if overlap == 0 {
        0
    } else {
        now_ms() + overlap as i64 * 1000
    };
    let op = Op::RotateWebhookSecret {
        tenant: id.clone(),
        secret: webhook_secret.clone(),
        previous_until,
    };
    if write(&st, op).await? == OpResult::NotFound {
        return Err(ApiError::not_found("tenant"));
    }
    tracing::info!(tenant = %id, overlap_seconds = overlap, "webhook secret rotated");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "webhook_secret": webhook_secret,
            "previous_secret_valid_until": (previous_until > 0).then(|| rfc3339(previous_until)),
        })),
    )
        .into_response())
}

// ---------- channels ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    id: String,
    protocol: String,
    // Optional for `http` (the URL is in `options.request.url`); required for the others.
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    system_id: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    system_type: Option<String>,
    #[serde(default)]
    bind: Option<BindKind>,
    #[serde(default)]
    binds: Option<u32>,
    #[serde(default)]
    tps: Option<u32>,
    #[serde(default)]
    window: Option<u32>,
    #[serde(default)]
    enquire_link_seconds: Option<u32>,
    #[serde(default)]
    cost: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    options: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    sla: Option<SlaBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlaBody {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    min_availability: Option<f64>,
    #[serde(default)]
    min_success_rate: Option<f64>,
    #[serde(default)]
    max_submit_latency_ms_p99: Option<f64>,
    #[serde(default)]
    alert_url: Option<String>,
    #[serde(default)]
    alert_secret: Option<String>,
}

fn sla_from_body(b: SlaBody) -> Result<crate::state::SlaPolicy, ApiError> {
    let window = b.window.unwrap_or_else(|| "5m".into());
    if !["5m", "1h", "24h"].contains(&window.as_str()) {
        return Err(ApiError::invalid("sla.window", "one of 5m, 1h, 24h"));
    }
    for (f, v) in [
        ("sla.min_availability", b.min_availability),
        ("sla.min_success_rate", b.min_success_rate),
    ] {
        if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(ApiError::invalid(f, "a share 0..1"));
        }
    }
    if b.max_submit_latency_ms_p99
        .is_some_and(|v| !v.is_finite() || v <= 0.0)
    {
        return Err(ApiError::invalid(
            "sla.max_submit_latency_ms_p99",
            "milliseconds > 0",
        ));
    }
    if b.min_availability.is_none()
        && b.min_success_rate.is_none()
        && b.max_submit_latency_ms_p99.is_none()
    {
        return Err(ApiError::invalid(
            "sla",
            "at least one threshold: min_availability, min_success_rate or \
             max_submit_latency_ms_p99 (a policy without one never fires)",
        ));
    }
    // Without `alert_url` the policy feeds the gauges and the admin view only; a URL
    // that is given must be usable, and then alerts are signed with the secret.
    let alert_url = b.alert_url.unwrap_or_default();
    if !alert_url.is_empty() {
        crate::messages::intake::check_url("sla.alert_url", &alert_url)?;
    }
    let alert_secret = b.alert_secret.unwrap_or_default();
    if !alert_url.is_empty() && alert_secret.len() < 8 {
        return Err(ApiError::invalid(
            "sla.alert_secret",
            "at least 8 characters (HMAC key of the alert signature)",
        ));
    }
    Ok(crate::state::SlaPolicy {
        window,
        min_availability: b.min_availability,
        min_success_rate: b.min_success_rate,
        max_submit_latency_ms_p99: b.max_submit_latency_ms_p99,
        alert_url,
        alert_secret,
    })
}

fn channel_from_body(b: ChannelBody) -> Result<Channel, ApiError> {
    check_id("id", &b.id)?;
    if !["smpp", "cmpp", "sgip", "smgp", "http"].contains(&b.protocol.as_str()) {
        return Err(ApiError::invalid(
            "protocol",
            "one of smpp, cmpp, sgip, smgp, http",
        ));
    }
    if !matches!(
        b.protocol.as_str(),
        "smpp" | "http" | "cmpp" | "smgp" | "sgip"
    ) {
        return Err(ApiError::invalid(
            "protocol",
            format!(
                "protocol {:?} is not available in this build yet; use smpp, http, cmpp, smgp or sgip",
                b.protocol
            ),
        ));
    }
    let missing = |f: &str| ApiError::invalid(f, format!("missing field `{f}`"));
    let http = if b.protocol == "http" {
        let opts = b.options.clone().unwrap_or_default();
        let compiled = crate::protocols::http_upstream::HttpChannelOptions::parse(&opts)
            .map_err(|e| ApiError::invalid(&e.field, e.message))?;
        Some(compiled)
    } else {
        None
    };
    let (host, port, system_id, password) = match &http {
        Some(h) => {
            // Credentials are the provider's account id and API key ({system_id},
            // {password}, basic auth): no SMPP length limits.
            let system_id = b.system_id.clone().unwrap_or_default();
            let password = b.password.clone().unwrap_or_default();
            if system_id.len() > 256 {
                return Err(ApiError::invalid("system_id", "at most 256 characters"));
            }
            if password.len() > 1024 {
                return Err(ApiError::invalid("password", "at most 1024 characters"));
            }
            (h.request.host.clone(), h.request.port, system_id, password)
        }
        None => (
            b.host.clone().ok_or_else(|| missing("host"))?,
            b.port.ok_or_else(|| missing("port"))?,
            b.system_id.clone().ok_or_else(|| missing("system_id"))?,
            b.password.clone().ok_or_else(|| missing("password"))?,
        ),
    };
    if http.is_none() {
        if host.is_empty() || host.len() > 255 {
            return Err(ApiError::invalid("host", "a host name or address"));
        }
        if port == 0 {
            return Err(ApiError::invalid("port", "1 to 65535"));
        }
        if b.protocol == "smpp" && (system_id.is_empty() || system_id.len() > 15) {
            return Err(ApiError::invalid(
                "system_id",
                "1 to 15 characters (SMPP limit)",
            ));
        }
        if b.protocol == "smpp" && password.len() > 8 {
            return Err(ApiError::invalid(
                "password",
                "at most 8 characters (SMPP limit)",
            ));
        }
    }
    let binds = b.binds.unwrap_or(1);
    if !(1..=64).contains(&binds) {
        return Err(ApiError::invalid("binds", "1 to 64"));
    }
    let tps = b.tps.unwrap_or(100);
    if !(1..=1_000_000).contains(&tps) {
        return Err(ApiError::invalid("tps", "1 to 1000000"));
    }
    // The contract's default for every protocol (the Chinese specifications
    // recommend 16: set it per channel).
    let window = b.window.unwrap_or(10);
    if !(1..=1024).contains(&window) {
        return Err(ApiError::invalid("window", "1 to 1024"));
    }
    let enquire = b.enquire_link_seconds.unwrap_or(30);
    if !(1..=3600).contains(&enquire) {
        return Err(ApiError::invalid("enquire_link_seconds", "1 to 3600"));
    }
    let cost = b.cost.unwrap_or_default();
    for (k, v) in &cost {
        if k != "default" && !k.starts_with('+') {
            return Err(ApiError::invalid(
                &format!("cost.{k}"),
                "keys are \"default\" or E.164 prefixes like \"+49\"",
            ));
        }
        if !v.is_finite() || *v < 0.0 {
            return Err(ApiError::invalid(&format!("cost.{k}"), "a price ≥ 0"));
        }
    }
    let options = b.options.unwrap_or_default();
    if http.is_none() {
        check_option_keys(&b.protocol, &options)?;
    }
    let udh = match options.get("udh") {
        None => UdhMode::Udh8,
        Some(v) => match v.as_str() {
            Some("8bit") => UdhMode::Udh8,
            Some("16bit") => UdhMode::Udh16,
            Some("sar") => UdhMode::Sar,
            Some("payload") => UdhMode::Payload,
            _ => {
                return Err(ApiError::invalid(
                    "options.udh",
                    "one of \"8bit\", \"16bit\", \"sar\", \"payload\"",
                ));
            }
        },
    };
    if let Some(v) = options.get("dlr_id_format")
        && v.as_str().and_then(ReceiptIdFormat::parse).is_none()
    {
        return Err(ApiError::invalid(
            "options.dlr_id_format",
            "\"auto\" (default), \"hex\" or \"decimal\": how the SMSC writes message ids in receipts",
        ));
    }
    if let Some(t) = options.get("dlt_tlvs") {
        let Some(t) = t.as_object() else {
            return Err(ApiError::invalid(
                "options.dlt_tlvs",
                "an object {\"entity_id\": 5120, \"template_id\": 5121} of TLV tags",
            ));
        };
        if let Some(k) = t
            .keys()
            .find(|k| !["entity_id", "template_id"].contains(&k.as_str()))
        {
            return Err(ApiError::invalid(
                &format!("options.dlt_tlvs.{k}"),
                "unknown key; use entity_id and template_id",
            ));
        }
        for k in ["entity_id", "template_id"] {
            if let Some(v) = t.get(k)
                && v.as_u64().and_then(|n| u16::try_from(n).ok()).is_none()
            {
                return Err(ApiError::invalid(
                    &format!("options.dlt_tlvs.{k}"),
                    "a TLV tag 0..65535 (default 5120 = 0x1400 / 5121 = 0x1401)",
                ));
            }
        }
    }
    if b.protocol == "smpp" {
        crate::protocols::smpp::Addressing::parse(&options)
            .map_err(|e| ApiError::invalid(&e.field, e.message))?;
    }
    if crate::protocols::cn::is_cn_protocol(&b.protocol) {
        crate::protocols::cn::options::parse(&b.protocol, &system_id, &password, &options)
            .map_err(|e| ApiError::invalid(&e.field, e.message))?;
    }
    let text = channel_text(&options)?;
    // Read when a session starts (`protocols::session::response_timeout`); checked here.
    seconds_option(
        &options,
        "response_timeout_seconds",
        crate::protocols::session::MAX_RESPONSE_TIMEOUT_S,
        "1 to 300 (default 10): how long a submit waits for the operator's response before it is resubmitted elsewhere",
    )?;
    let dlr_timeout_seconds =
        seconds_option(&options, "dlr_timeout_seconds", 30 * 86400, "1 to 2592000")?
            .unwrap_or(72 * 3600);
    Ok(Channel {
        id: b.id,
        protocol: b.protocol,
        host,
        port,
        system_id,
        password,
        system_type: b.system_type.unwrap_or_default(),
        bind: b.bind.unwrap_or_default(),
        binds,
        tps,
        window,
        enquire_link_seconds: enquire,
        cost,
        udh,
        dlr_timeout_seconds,
        options_json: Value::Object(options).to_string(),
        drained: false,
        created_at: now_ms(),
        sla: b.sla.map(sla_from_body).transpose()?,
        text,
    })
}

/// A whole number of seconds in `1..=max` under `options.<key>`, if set; else 422 naming
/// the option with `hint`.
fn seconds_option(
    options: &serde_json::Map<String, Value>,
    key: &str,
    max: u64,
    hint: &str,
) -> Result<Option<u64>, ApiError> {
    options
        .get(key)
        .map(|v| {
            v.as_u64()
                .filter(|s| (1..=max).contains(s))
                .ok_or_else(|| ApiError::invalid(&format!("options.{key}"), hint))
        })
        .transpose()
}

/// Option keys of every non-HTTP channel.
const COMMON_OPTION_KEYS: &[&str] = &[
    "udh",
    "gsm_packing",
    "national_tables",
    "text_coding",
    "dlr_id_format",
    "dlr_timeout_seconds",
    "response_timeout_seconds",
];

/// Refuses an option the channel's protocol does not have (a typo such as
/// `dlr_timeout_second` would otherwise be stored and silently do nothing).
fn check_option_keys(
    protocol: &str,
    options: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    let own: &[&str] = match protocol {
        "smpp" => &[
            "dlt_tlvs",
            "service_type",
            "source_ton",
            "source_npi",
            "dest_ton",
            "dest_npi",
        ],
        _ => crate::protocols::cn::options::KEYS,
    };
    match options
        .keys()
        .find(|k| !COMMON_OPTION_KEYS.contains(&k.as_str()) && !own.contains(&k.as_str()))
    {
        None => Ok(()),
        Some(k) => {
            let mut known: Vec<&str> = COMMON_OPTION_KEYS.iter().chain(own).copied().collect();
            known.sort_unstable();
            Err(ApiError::invalid(
                &format!("options.{k}"),
                format!(
                    "not an option of a {protocol} channel; known: {}",
                    known.join(", ")
                ),
            ))
        }
    }
}

/// Parses the text options of a channel: `gsm_packing`, `national_tables`, `text_coding`.
fn channel_text(options: &serde_json::Map<String, Value>) -> Result<ChannelText, ApiError> {
    let packed = match options.get("gsm_packing") {
        None => false,
        Some(v) => match v.as_str() {
            Some("unpacked") => false,
            Some("packed") => true,
            _ => {
                return Err(ApiError::invalid(
                    "options.gsm_packing",
                    "\"unpacked\" or \"packed\"",
                ));
            }
        },
    };
    let mut national_tables = Vec::new();
    if let Some(v) = options.get("national_tables") {
        let bad = || {
            ApiError::invalid(
                "options.national_tables",
                "a list of \"tr\", \"es\", \"pt\", \"bn\", \"gu\", \"hi\", \"kn\", \"ml\", \"or\", \"pa\", \"ta\", \"te\", \"ur\"",
            )
        };
        for item in v.as_array().ok_or_else(bad)? {
            let lang = item
                .as_str()
                .and_then(crate::encoding::NationalLanguage::from_code)
                .ok_or_else(bad)?;
            if !national_tables.contains(&lang) {
                national_tables.push(lang);
            }
        }
    }
    let coding = match options.get("text_coding") {
        None => TextCoding::Gsm7,
        Some(v) => match v.as_str() {
            Some("gsm7") => TextCoding::Gsm7,
            Some("latin1") => TextCoding::Latin1,
            Some("ia5") => TextCoding::Ia5,
            _ => {
                return Err(ApiError::invalid(
                    "options.text_coding",
                    "\"gsm7\", \"latin1\" or \"ia5\"",
                ));
            }
        },
    };
    Ok(ChannelText {
        packed,
        national_tables,
        coding,
    })
}

/// Every channel as `GET /admin/v1/channels` shows it, with each owner's live figures
/// (sampled by the dashboard's history, so its sparklines carry the same figures on
/// every node).
pub async fn channel_views(st: &AppState) -> Vec<Value> {
    let chans = st.consensus.store().channel_list();
    let mut live = super::cluster::owners_stats(st, &chans).await;
    chans
        .iter()
        .map(|c| channel_view(st, c, live.remove(&c.id)))
        .collect()
}

/// A channel's live figures as this node measures them (its owner's are the real ones).
pub fn local_channel_stats(registry: &crate::channels::ChannelRegistry, id: &str) -> Value {
    let rt = registry.find(id);
    let throttled = rt.as_ref().map(|r| r.throttled.load(Ordering::Relaxed));
    let session_losses = rt
        .as_ref()
        .map_or(0, |r| r.session_losses.load(Ordering::Relaxed));
    let (in_flight, window_capacity) = rt
        .as_ref()
        .map(|r| (r.in_flight.load(Ordering::Relaxed), r.capacity()))
        .unwrap_or((0, 0));
    let (sent, failed, delivered, undelivered, depth, (p50, p99)) = match &rt {
        Some(r) => (
            r.sent.load(Ordering::Relaxed),
            r.failed.load(Ordering::Relaxed),
            r.delivered.load(Ordering::Relaxed),
            r.undelivered.load(Ordering::Relaxed),
            r.queue_depth.load(Ordering::Relaxed),
            r.latency_ms(),
        ),
        None => (0, 0, 0, 0, 0, (None, None)),
    };
    let finals = delivered + undelivered;
    let health = rt
        .as_ref()
        .map(|r| super::routing_admin::health_view(r))
        .unwrap_or(Value::Null);
    let sla_windows = rt
        .as_ref()
        .map(|r| super::routing_admin::sla_view(r))
        .unwrap_or(Value::Null);
    json!({
        "queue_depth": depth,
        "last_error": registry.last_error(id),
        "last_submit_error": rt.as_ref().and_then(|r| r.line_error()),
        "health": health,
        "stats": {"sent": sent, "failed": failed, "delivered": delivered,
                  "success_rate": if finals == 0 { Value::Null } else { json!(delivered as f64 / finals as f64) },
                  "submit_latency_ms_p50": p50, "submit_latency_ms_p99": p99, "throttled": throttled.unwrap_or(0),
                  "in_flight": in_flight, "window_capacity": window_capacity, "sla": sla_windows,
                  "session_losses": session_losses},
    })
}

/// Where a channel runtime keeps one kind of bind state (its binds, or their receivers).
type StatusesOf = fn(
    &crate::channels::registry::ChannelRuntime,
) -> &std::sync::Mutex<
    std::collections::BTreeMap<usize, crate::channels::registry::BindStatus>,
>;

/// The state shown for a bind (or its receiver): this node's own registry when it runs
/// it, else the replicated report of a node still heard from, else "down".
fn shown_state<'a>(
    local: Option<&'static str>,
    report: Option<&'a crate::state::BindReport>,
    live: bool,
) -> &'a str {
    match (local, report) {
        (Some(s), _) => s,
        (None, Some(r)) if live => r.state.as_str(),
        _ => "down",
    }
}

/// A channel as the admin API shows it: config, the owner and each bind's state from the
/// replicated state (the same on every node), and the figures of `live` (the owner's
/// `local_channel_stats`).
fn channel_view(st: &AppState, c: &Channel, live: Option<Value>) -> Value {
    let (owner, binds) = {
        let cfg = st.consensus.store().config();
        let owner = cfg.placement.get(&c.id).and_then(|p| p.owner);
        let binds: Vec<Value> = cfg
            .bind_states
            .range((c.id.clone(), 0)..=(c.id.clone(), u32::MAX))
            .filter(|((_, i), b)| *i < c.binds.max(1) && Some(b.node) == owner)
            .map(|((_, i), b)| {
                // This node's own binds: its registry is the truth (no report delay).
                let rt = (b.node == st.consensus.node_id())
                    .then(|| st.registry.find(&c.id))
                    .flatten();
                let local = |statuses: StatusesOf| {
                    rt.as_deref().and_then(|rt| {
                        statuses(rt)
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&(*i as usize))
                            .map(|s| s.state)
                    })
                };
                // A report of a node that stopped sending heartbeats is stale: shown down.
                let live = cfg.nodes.get(&b.node).is_some_and(|n| {
                    n.heard_within(now_ms(), crate::cluster::lease::DEAD_AFTER)
                });
                let state = shown_state(local(|rt| &rt.bind_status), Some(b), live);
                let mut view = json!({"node": b.node, "bind": format!("{}#{i}", c.id), "state": state, "since": rfc3339(b.since)});
                // A transmitter bind's receiver (receipts and MO arrive only there).
                if crate::channels::receiver_bind::needed(c) {
                    let reported = cfg
                        .bind_states
                        .get(&(c.id.clone(), RECEIVER_INDEX_BASE + *i))
                        .filter(|r| r.node == b.node);
                    let receiver = match state {
                        "down" => "down",
                        _ => shown_state(local(|rt| &rt.receiver_status), reported, live),
                    };
                    view["receiver"] = json!(receiver);
                }
                view
            })
            .collect();
        (owner, binds)
    };
    let state = if c.drained {
        "draining"
    } else if binds.iter().any(|b| b["state"] == "bound") {
        "bound"
    } else if binds.iter().any(|b| b["state"] == "connecting") {
        "connecting"
    } else {
        "down"
    };
    let live = live.unwrap_or_else(|| local_channel_stats(&st.registry, &c.id));
    let options: Value = serde_json::from_str(&c.options_json).unwrap_or(json!({}));
    let options = crate::protocols::http_upstream::options::redacted(options);
    let options = crate::protocols::cn::options::redacted(options);
    let sla_policy = c.sla.as_ref().map(|p| {
        json!({"window": p.window, "min_availability": p.min_availability, "min_success_rate": p.min_success_rate,
               "max_submit_latency_ms_p99": p.max_submit_latency_ms_p99,
               "alert_url": (!p.alert_url.is_empty()).then_some(&p.alert_url)})
    });
    json!({
        "id": c.id, "protocol": c.protocol, "host": c.host, "port": c.port, "system_id": c.system_id,
        "system_type": c.system_type, "bind": c.bind, "binds_configured": c.binds, "tps": c.tps, "window": c.window,
        "enquire_link_seconds": c.enquire_link_seconds, "cost": c.cost, "options": options, "drained": c.drained,
        "state": state, "owner": owner, "binds": binds, "queue_depth": live["queue_depth"],
        // A bound line shows its last submit failure (cleared by a submit that goes
        // through); one that is not bound, why its binds are down.
        "last_error": if state == "bound" { live["last_submit_error"].clone() } else { live["last_error"].clone() },
        "stats": live["stats"], "health": live["health"], "sla": sla_policy,
    })
}

/// An SGIP channel's report listener must not take an address another channel's
/// listener has: the second could never bind, and its Reports would never arrive.
fn sgip_listener_free(cfg: &crate::state::ConfigView, c: &Channel) -> Result<(), ApiError> {
    use crate::protocols::cn::options::{listen_addr, listeners_clash};
    if c.protocol != "sgip" {
        return Ok(());
    }
    let Some(mine) = listen_addr(&c.options_json) else {
        return Ok(());
    };
    let taken = cfg.channels.values().find(|o| {
        o.protocol == "sgip"
            && o.id != c.id
            && listen_addr(&o.options_json).is_some_and(|theirs| listeners_clash(mine, theirs))
    });
    match taken {
        Some(o) => Err(ApiError::conflict(format!(
            "channel {} already listens on {mine} for the SMG's reports; give this channel another options.listen",
            o.id
        ))
        .field("options.listen")),
        None => Ok(()),
    }
}

/// `POST /admin/v1/channels`
pub async fn create_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: ChannelBody = parse_json(&body)?;
    let c = channel_from_body(b)?;
    {
        let cfg = st.consensus.store().config();
        if cfg.channels.contains_key(&c.id) {
            return Err(ApiError::conflict(format!("channel {} exists", c.id)));
        }
        sgip_listener_free(&cfg, &c)?;
    }
    write(&st, Op::PutChannel(Box::new(c.clone()))).await?;
    Ok((StatusCode::CREATED, Json(channel_view(&st, &c, None))).into_response())
}

/// `PATCH /admin/v1/channels/{id}`: changes a channel in place (`tps`, `window`,
/// credentials, host, options, SLA...) with a JSON merge patch, checked as a create is;
/// 404 unknown. Routes keep naming it throughout; the channel supervisor keeps the running
/// binds when the session settings did not change and rebinds them when they did.
pub async fn patch_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let patch: serde_json::Map<String, Value> = parse_json(&body)?;
    let old = find_channel(&st, &id)?;
    let merged = super::channel_patch::patched_body(&old, patch)?;
    let mut c = channel_from_body(parse_json::<ChannelBody>(&merged)?)?;
    c.drained = old.drained;
    c.created_at = old.created_at;
    sgip_listener_free(&st.consensus.store().config(), &c)?;
    write(&st, Op::PutChannel(Box::new(c.clone()))).await?;
    let mut live = super::cluster::owners_stats(&st, std::slice::from_ref(&c)).await;
    Ok(Json(channel_view(&st, &c, live.remove(&c.id))).into_response())
}

/// `GET /admin/v1/channels`
pub async fn list_channels(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    Ok(Json(json!(channel_views(&st).await)).into_response())
}

/// `GET /admin/v1/channels/{id}`
pub async fn get_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let c = find_channel(&st, &id)?;
    let mut live = super::cluster::owners_stats(&st, std::slice::from_ref(&c)).await;
    Ok(Json(channel_view(&st, &c, live.remove(&c.id))).into_response())
}

/// The 409 for deleting a channel that `routes` still name (found by the check before the
/// write, or by the state machine when a route came in between).
fn channel_in_use(id: &str, routes: &[String]) -> ApiError {
    ApiError::conflict(format!(
        "channel {id} is used by route(s) {}: remove it from them (or delete them) first",
        routes.join(", ")
    ))
}

/// `DELETE /admin/v1/channels/{id}`: refused (409) while a route still uses the channel,
/// so no route is left naming a channel that does not exist.
pub async fn delete_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    find_channel(&st, &id)?;
    let users = st.consensus.store().config().routes_using(&id);
    if !users.is_empty() {
        return Err(channel_in_use(&id, &users));
    }
    match write(&st, Op::DeleteChannel { id: id.clone() }).await? {
        OpResult::NotFound => Err(ApiError::not_found("channel")),
        // A route naming it was committed after the check above.
        OpResult::InUse { by } => Err(channel_in_use(&id, &by)),
        _ => {
            st.registry.remove(&id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

async fn set_drained(
    st: AppState,
    headers: HeaderMap,
    id: String,
    drained: bool,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    match write(
        &st,
        Op::SetChannelDrained {
            id: id.clone(),
            drained,
        },
    )
    .await?
    {
        OpResult::NotFound => Err(ApiError::not_found("channel")),
        _ => {
            let c = find_channel(&st, &id)?;
            Ok(Json(channel_view(&st, &c, None)).into_response())
        }
    }
}

/// `POST /admin/v1/channels/{id}/drain`: stop sending on it and unbind cleanly (the binds
/// finish their outstanding submits first: `Session::unbind`).
pub async fn drain_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_drained(st, headers, id, true).await
}

/// `POST /admin/v1/channels/{id}/undrain`: bind again and resume.
pub async fn undrain_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_drained(st, headers, id, false).await
}

// ---------- routes ----------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MatchBody {
    #[serde(default)]
    prefix: Option<Vec<String>>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    sender_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbBody {
    split_percent: u32,
    variant_b: VariantBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantBody {
    #[serde(default)]
    strategy: Option<String>,
    channels: Vec<RouteChannelBody>,
    #[serde(default)]
    min_success_rate: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteChannelBody {
    id: String,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    priority: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    id: String,
    #[serde(default, rename = "match")]
    matcher: Option<MatchBody>,
    #[serde(default)]
    strategy: Option<String>,
    channels: Vec<RouteChannelBody>,
    #[serde(default)]
    min_success_rate: Option<f64>,
    #[serde(default)]
    ab: Option<AbBody>,
}

fn route_channels_view(c: &[RouteChannel]) -> Vec<Value> {
    c.iter()
        .map(|c| json!({"id": c.id, "weight": c.weight, "priority": c.priority}))
        .collect()
}

fn route_view(r: &Route) -> Value {
    json!({
        "id": r.id,
        "match": {"prefix": r.prefixes, "country": r.country, "tenant": r.tenant, "category": r.category,
                  "operator": r.operator, "sender_type": r.sender_type},
        "strategy": r.strategy,
        "min_success_rate": r.min_success_rate,
        "channels": route_channels_view(&r.channels),
        "ab": r.ab.as_ref().map(|ab| json!({"split_percent": ab.split_percent, "variant_b": {
            "strategy": ab.strategy, "channels": route_channels_view(&ab.channels), "min_success_rate": ab.min_success_rate}})),
        "created_at": rfc3339(r.created_at),
    })
}

/// Checks a strategy name and its `min_success_rate` (only with `least_cost`).
fn check_strategy(field: &str, strategy: &str, min: Option<f64>) -> Result<(), ApiError> {
    if crate::routing::Strategy::parse(strategy).is_none() {
        return Err(ApiError::invalid(
            field,
            format!("{strategy:?}: one of priority, weighted, least_cost, success_rate"),
        ));
    }
    if let Some(m) = min {
        if !(0.0..=1.0).contains(&m) {
            return Err(ApiError::invalid(
                "min_success_rate",
                "a share 0..1, e.g. 0.95",
            ));
        }
        if strategy != "least_cost" {
            return Err(ApiError::invalid(
                "min_success_rate",
                "only with strategy least_cost (cheapest channel at or above it)",
            ));
        }
    }
    Ok(())
}

/// Checks a route's (or variant's) channel list against the known channels: each known,
/// none twice, not every weight 0.
fn route_channels(
    field: &str,
    body: Vec<RouteChannelBody>,
    known: &std::collections::BTreeSet<String>,
) -> Result<Vec<RouteChannel>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid(field, "at least one channel"));
    }
    let mut channels: Vec<RouteChannel> = Vec::new();
    for (i, c) in body.into_iter().enumerate() {
        if !known.contains(&c.id) {
            return Err(ApiError::invalid(
                &format!("{field}[{i}].id"),
                format!("unknown channel {:?}", c.id),
            ));
        }
        if channels.iter().any(|o| o.id == c.id) {
            return Err(ApiError::invalid(
                &format!("{field}[{i}].id"),
                format!("channel {:?} is listed twice", c.id),
            ));
        }
        channels.push(RouteChannel {
            id: c.id,
            weight: c.weight.unwrap_or(1),
            priority: c.priority.unwrap_or(i as u32),
        });
    }
    // Weight 0 = failover only (never chosen first); some channel must carry traffic.
    if channels.iter().all(|c| c.weight == 0) {
        return Err(ApiError::invalid(
            field,
            "every weight is 0: weight 0 means failover only, so at least one channel \
             needs a weight ≥ 1",
        ));
    }
    Ok(channels)
}

/// The A/B part of a route body, checked.
fn ab_from_body(
    ab: AbBody,
    known: &std::collections::BTreeSet<String>,
) -> Result<crate::state::AbSplit, ApiError> {
    if ab.split_percent > 100 {
        return Err(ApiError::invalid("ab.split_percent", "0 to 100"));
    }
    let strategy = ab.variant_b.strategy.unwrap_or_else(|| "priority".into());
    check_strategy(
        "ab.variant_b.strategy",
        &strategy,
        ab.variant_b.min_success_rate,
    )?;
    Ok(crate::state::AbSplit {
        split_percent: ab.split_percent,
        strategy,
        channels: route_channels("ab.variant_b.channels", ab.variant_b.channels, known)?,
        min_success_rate: ab.variant_b.min_success_rate,
    })
}

/// The 409 for a route that would make itself or `other` unreachable.
fn shadow_conflict(new: &str, other: &str, kind: crate::routing::Shadow) -> ApiError {
    use crate::routing::Shadow;
    let why = match kind {
        Shadow::SameMatch => format!(
            "route {other} has the same match; a second one would never be chosen (ties go \
             to the smaller id)"
        ),
        Shadow::NewIsShadowed => format!(
            "route {other} matches every number route {new} would match, as specifically, \
             and wins ties (smaller id): {new} would never be chosen"
        ),
        Shadow::ShadowsExisting => format!(
            "route {new} would match every number route {other} matches, as specifically, \
             and win ties (smaller id): {other} would never be chosen again"
        ),
    };
    ApiError::conflict(format!(
        "{why}. Change route {other} in place with PATCH /admin/v1/routes/{other} \
         (channels, strategy, ab), or delete it first"
    ))
    .field("match")
}

/// `POST /admin/v1/routes`: 409 for an existing id, and for a route that would never be
/// chosen next to an existing one, or would make one never chosen (same match, or its
/// prefixes covered at the same specificity while ties go to the other; see
/// `routing::matcher::shadowing`).
pub async fn create_route(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: RouteBody = parse_json(&body)?;
    check_id("id", &b.id)?;
    let strategy = b.strategy.unwrap_or_else(|| "priority".into());
    check_strategy("strategy", &strategy, b.min_success_rate)?;
    let known = st.consensus.store().config().channel_ids();
    let channels = route_channels("channels", b.channels, &known)?;
    let ab = b.ab.map(|ab| ab_from_body(ab, &known)).transpose()?;
    let m = b.matcher.unwrap_or_default();
    if let Some(t) = &m.tenant {
        check_id("match.tenant", t)?;
    }
    if let Some(op) = &m.operator
        && !((5..=6).contains(&op.len()) && op.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::invalid(
            "match.operator",
            "MCC+MNC digits like \"26201\"",
        ));
    }
    if let Some(t) = &m.sender_type
        && !["alphanumeric", "short_code", "long_code"].contains(&t.as_str())
    {
        return Err(ApiError::invalid(
            "match.sender_type",
            "one of alphanumeric, short_code, long_code",
        ));
    }
    if let Some(c) = &m.country
        && !crate::messages::intake::is_known_country(c)
    {
        return Err(ApiError::invalid(
            "match.country",
            format!(
                "{c:?} is not an ISO 3166-1 alpha-2 country code with phone numbers, like \"DE\""
            ),
        ));
    }
    let prefixes = m.prefix.unwrap_or_default();
    for (i, p) in prefixes.iter().enumerate() {
        let field = format!("match.prefix[{i}]");
        let digits = p.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(&field, "an E.164 prefix like \"+49\""));
        }
        if digits.len() > 15 {
            return Err(ApiError::invalid(
                &field,
                "at most 15 digits (the longest E.164 number)",
            ));
        }
        if let Some(c) = &m.country
            && !crate::messages::intake::prefix_fits_country(digits, c)
        {
            return Err(ApiError::invalid(
                &field,
                format!(
                    "{p} is not a prefix of {c} numbers: with match.country {c} the route could never match"
                ),
            ));
        }
    }
    if st.consensus.store().config().routes.contains_key(&b.id) {
        return Err(ApiError::conflict(format!(
            "route {} exists; change it with PATCH /admin/v1/routes/{}",
            b.id, b.id
        )));
    }
    let r = Route {
        id: b.id,
        prefixes,
        country: m.country,
        tenant: m.tenant,
        category: m.category,
        strategy,
        channels,
        created_at: now_ms(),
        operator: m.operator,
        sender_type: m.sender_type,
        min_success_rate: b.min_success_rate,
        ab,
    };
    let conflict = {
        let cfg = st.consensus.store().config();
        crate::routing::matcher::shadowing(cfg.routes.values(), &r)
            .map(|(other, kind)| shadow_conflict(&r.id, &other.id, kind))
    };
    if let Some(e) = conflict {
        return Err(e);
    }
    put_route(&st, &r).await?;
    Ok((StatusCode::CREATED, Json(route_view(&r))).into_response())
}

/// Writes a checked route; a channel it names deleted meanwhile is 422.
async fn put_route(st: &AppState, r: &Route) -> Result<(), ApiError> {
    if let OpResult::MissingChannels { ids } = write(st, Op::PutRoute(Box::new(r.clone()))).await? {
        // A channel it names was deleted after the check above.
        return Err(ApiError::invalid(
            "channels",
            format!("unknown channel(s) {}", ids.join(", ")),
        ));
    }
    Ok(())
}

/// Body of `PATCH /admin/v1/routes/{id}`: what can change in place (the match and id
/// cannot: they decide which messages the route takes; delete and re-create for that).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutePatch {
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    channels: Option<Vec<RouteChannelBody>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "present")]
    min_success_rate: Option<Option<f64>>,
    /// `null` ends the A/B test.
    #[serde(default, deserialize_with = "present")]
    ab: Option<Option<AbBody>>,
}

/// `PATCH /admin/v1/routes/{id}`: changes a route's strategy, channels (weights,
/// priorities), `min_success_rate` or `ab` in place, checked as on create; 404 unknown.
/// Sends keep matching the route throughout (no gap as with delete + create).
pub async fn patch_route(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: RoutePatch = parse_json(&body)?;
    let (mut r, known) = {
        let cfg = st.consensus.store().config();
        let r = cfg
            .routes
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("route"))?;
        (r, cfg.channel_ids())
    };
    if let Some(s) = b.strategy {
        r.strategy = s;
    }
    if let Some(m) = b.min_success_rate {
        r.min_success_rate = m;
    }
    check_strategy("strategy", &r.strategy, r.min_success_rate)?;
    if let Some(c) = b.channels {
        r.channels = route_channels("channels", c, &known)?;
    }
    if let Some(ab) = b.ab {
        r.ab = ab.map(|ab| ab_from_body(ab, &known)).transpose()?;
    }
    put_route(&st, &r).await?;
    Ok(Json(route_view(&r)).into_response())
}

/// `GET /admin/v1/routes`
pub async fn list_routes(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let cfg = st.consensus.store().config();
    Ok(Json(json!(
        cfg.routes.values().map(route_view).collect::<Vec<_>>()
    ))
    .into_response())
}

/// `DELETE /admin/v1/routes/{id}`
pub async fn delete_route(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    match write(&st, Op::DeleteRoute { id }).await? {
        OpResult::NotFound => Err(ApiError::not_found("route")),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
