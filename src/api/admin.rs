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
use crate::state::{
    BindKind, Category, Channel, ChannelText, Op, OpResult, RateLimit, Route, RouteChannel, Tenant,
    TextCoding, UdhMode,
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

async fn write(st: &AppState, op: Op) -> Result<OpResult, ApiError> {
    Ok(st.consensus.propose(op).await?)
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
    #[allow(dead_code)]
    category: Category,
    #[allow(dead_code)]
    max: u32,
    #[allow(dead_code)]
    per_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    id: Option<String>,
    name: Option<String>,
    rate_limit: Option<RateLimitBody>,
    callback_url: Option<Option<String>>,
    senders: Option<Vec<String>>,
    max_parts: Option<u32>,
    queue_limit: Option<u64>,
    smart_encoding: Option<bool>,
    #[allow(dead_code)]
    frequency_caps: Option<Vec<FrequencyCap>>,
    #[allow(dead_code)]
    sender_pool: Option<Vec<String>>,
}

fn tenant_view(t: &Tenant) -> Value {
    json!({
        "id": t.id, "name": t.name, "rate_limit": {"per_second": t.rate_limit.per_second, "burst": t.rate_limit.burst},
        "callback_url": t.callback_url, "senders": t.senders, "max_parts": t.max_parts, "queue_limit": t.queue_limit,
        "smart_encoding": t.smart_encoding, "created_at": rfc3339(t.created_at),
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
        if let Some(u) = &cb
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ApiError::invalid("callback_url", "an http(s) URL"));
        }
        t.callback_url = cb;
    }
    if let Some(s) = b.senders {
        for (i, x) in s.iter().enumerate() {
            crate::messages::intake::check_sender(x)
                .map_err(|e| e.field(format!("senders[{i}]")))?;
        }
        t.senders = s;
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
    };
    apply_tenant_body(&mut t, b)?;
    write(&st, Op::PutTenant(Box::new(t))).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "api_key": api_key, "webhook_secret": webhook_secret})),
    )
        .into_response())
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
    let waiting = st
        .consensus
        .store()
        .work()
        .waiting
        .get(&id)
        .copied()
        .unwrap_or(0);
    let mut v = tenant_view(&t);
    v["waiting"] = json!(waiting);
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
    apply_tenant_body(&mut t, b)?;
    write(&st, Op::PutTenant(Box::new(t.clone()))).await?;
    Ok(Json(tenant_view(&t)).into_response())
}

/// `DELETE /admin/v1/tenants/{id}`
pub async fn delete_tenant(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    match write(&st, Op::DeleteTenant { id }).await? {
        OpResult::NotFound => Err(ApiError::not_found("tenant")),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
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

// ---------- channels ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    id: String,
    protocol: String,
    host: String,
    port: u16,
    system_id: String,
    password: String,
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
}

fn channel_from_body(b: ChannelBody) -> Result<Channel, ApiError> {
    check_id("id", &b.id)?;
    if !["smpp", "cmpp", "sgip", "smgp", "http"].contains(&b.protocol.as_str()) {
        return Err(ApiError::invalid(
            "protocol",
            "one of smpp, cmpp, sgip, smgp, http",
        ));
    }
    if b.protocol != "smpp" {
        return Err(ApiError::invalid(
            "protocol",
            format!(
                "protocol {:?} is not available in this build yet; use smpp",
                b.protocol
            ),
        ));
    }
    if b.host.is_empty() || b.host.len() > 255 {
        return Err(ApiError::invalid("host", "a host name or address"));
    }
    if b.port == 0 {
        return Err(ApiError::invalid("port", "1 to 65535"));
    }
    if b.system_id.is_empty() || b.system_id.len() > 15 {
        return Err(ApiError::invalid(
            "system_id",
            "1 to 15 characters (SMPP limit)",
        ));
    }
    if b.password.len() > 8 {
        return Err(ApiError::invalid(
            "password",
            "at most 8 characters (SMPP limit)",
        ));
    }
    let binds = b.binds.unwrap_or(1);
    if !(1..=64).contains(&binds) {
        return Err(ApiError::invalid("binds", "1 to 64"));
    }
    let tps = b.tps.unwrap_or(100);
    if !(1..=1_000_000).contains(&tps) {
        return Err(ApiError::invalid("tps", "1 to 1000000"));
    }
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
    let text = channel_text(&options)?;
    let dlr_timeout_seconds = match options.get("dlr_timeout_seconds") {
        None => 72 * 3600,
        Some(v) => v
            .as_u64()
            .filter(|s| (1..=30 * 86400).contains(s))
            .ok_or_else(|| ApiError::invalid("options.dlr_timeout_seconds", "1 to 2592000"))?,
    };
    Ok(Channel {
        id: b.id,
        protocol: b.protocol,
        host: b.host,
        port: b.port,
        system_id: b.system_id,
        password: b.password,
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
        text,
    })
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

fn channel_view(st: &AppState, c: &Channel) -> Value {
    let rt = st.registry.find(&c.id);
    let node = st.consensus.node_id();
    let mut binds = Vec::new();
    let mut any_bound = false;
    if let Some(rt) = &rt {
        for (i, b) in rt
            .bind_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            any_bound |= b.state == "bound";
            binds.push(json!({"node": node, "bind": format!("{}#{i}", c.id), "state": b.state, "since": rfc3339(b.since)}));
        }
    }
    let state = if c.drained {
        "draining"
    } else if any_bound {
        "bound"
    } else if binds.is_empty() {
        "down"
    } else if binds.iter().any(|b| b["state"] == "connecting") {
        "connecting"
    } else {
        "down"
    };
    let (sent, failed, delivered, undelivered, depth, (p50, p99)) = match &rt {
        Some(r) => (
            r.sent.load(Ordering::Relaxed),
            r.failed.load(Ordering::Relaxed),
            r.delivered.load(Ordering::Relaxed),
            r.undelivered.load(Ordering::Relaxed),
            r.queue_depth.load(Ordering::Relaxed),
            r.latency_ms(),
        ),
        None => (0, 0, 0, 0, 0, (0.0, 0.0)),
    };
    let finals = delivered + undelivered;
    let options: Value = serde_json::from_str(&c.options_json).unwrap_or(json!({}));
    json!({
        "id": c.id, "protocol": c.protocol, "host": c.host, "port": c.port, "system_id": c.system_id,
        "system_type": c.system_type, "bind": c.bind, "binds_configured": c.binds, "tps": c.tps, "window": c.window,
        "enquire_link_seconds": c.enquire_link_seconds, "cost": c.cost, "options": options, "drained": c.drained,
        "state": state, "binds": binds, "queue_depth": depth,
        "stats": {"sent": sent, "failed": failed, "delivered": delivered,
                  "success_rate": if finals == 0 { Value::Null } else { json!(delivered as f64 / finals as f64) },
                  "submit_latency_ms_p50": p50, "submit_latency_ms_p99": p99},
    })
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
    if st.consensus.store().config().channels.contains_key(&c.id) {
        return Err(ApiError::conflict(format!("channel {} exists", c.id)));
    }
    write(&st, Op::PutChannel(Box::new(c.clone()))).await?;
    Ok((StatusCode::CREATED, Json(channel_view(&st, &c))).into_response())
}

/// `GET /admin/v1/channels`
pub async fn list_channels(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let chans: Vec<Channel> = st
        .consensus
        .store()
        .config()
        .channels
        .values()
        .cloned()
        .collect();
    Ok(Json(json!(
        chans
            .iter()
            .map(|c| channel_view(&st, c))
            .collect::<Vec<_>>()
    ))
    .into_response())
}

/// `GET /admin/v1/channels/{id}`
pub async fn get_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let c = find_channel(&st, &id)?;
    Ok(Json(channel_view(&st, &c)).into_response())
}

/// `DELETE /admin/v1/channels/{id}`
pub async fn delete_channel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    match write(&st, Op::DeleteChannel { id: id.clone() }).await? {
        OpResult::NotFound => Err(ApiError::not_found("channel")),
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
            Ok(Json(channel_view(&st, &c)).into_response())
        }
    }
}

/// `POST /admin/v1/channels/{id}/drain`: stop sending on it and unbind cleanly.
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
}

fn route_view(r: &Route) -> Value {
    json!({
        "id": r.id,
        "match": {"prefix": r.prefixes, "country": r.country, "tenant": r.tenant, "category": r.category},
        "strategy": r.strategy,
        "channels": r.channels.iter().map(|c| json!({"id": c.id, "weight": c.weight, "priority": c.priority})).collect::<Vec<_>>(),
        "created_at": rfc3339(r.created_at),
    })
}

/// `POST /admin/v1/routes`
pub async fn create_route(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: RouteBody = parse_json(&body)?;
    check_id("id", &b.id)?;
    let strategy = b.strategy.unwrap_or_else(|| "priority".into());
    if strategy != "priority" {
        return Err(ApiError::invalid(
            "strategy",
            format!("{strategy:?} is not available in this build yet; use priority"),
        ));
    }
    if b.channels.is_empty() {
        return Err(ApiError::invalid("channels", "at least one channel"));
    }
    let known = st
        .consensus
        .store()
        .config()
        .channels
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    let mut channels = Vec::new();
    for (i, c) in b.channels.into_iter().enumerate() {
        if !known.contains(&c.id) {
            return Err(ApiError::invalid(
                &format!("channels[{i}].id"),
                format!("unknown channel {:?}", c.id),
            ));
        }
        channels.push(RouteChannel {
            id: c.id,
            weight: c.weight.unwrap_or(1),
            priority: c.priority.unwrap_or(i as u32),
        });
    }
    let m = b.matcher.unwrap_or_default();
    let prefixes = m.prefix.unwrap_or_default();
    for (i, p) in prefixes.iter().enumerate() {
        if !p.starts_with('+') || p.len() < 2 || !p[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(
                &format!("match.prefix[{i}]"),
                "an E.164 prefix like \"+49\"",
            ));
        }
    }
    if let Some(c) = &m.country
        && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(ApiError::invalid(
            "match.country",
            "an ISO 3166 alpha-2 code like \"DE\"",
        ));
    }
    if st.consensus.store().config().routes.contains_key(&b.id) {
        return Err(ApiError::conflict(format!("route {} exists", b.id)));
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
    };
    write(&st, Op::PutRoute(Box::new(r.clone()))).await?;
    Ok((StatusCode::CREATED, Json(route_view(&r))).into_response())
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

// ---------- cluster ----------

/// `GET /admin/v1/cluster`
pub async fn cluster(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let me = st.consensus.node_id();
    let channels: Vec<String> = st
        .consensus
        .store()
        .config()
        .channels
        .values()
        .flat_map(|c| (0..c.binds).map(move |i| format!("{}#{i}", c.id)))
        .collect();
    let nodes: Vec<Value> = st
        .consensus
        .members()
        .into_iter()
        .map(|(id, info, voter)| {
            json!({"id": id, "addr": info.cluster_addr, "http": info.http_addr,
                   "state": "up", "voter": voter, "channels": if id == me { channels.clone() } else { vec![] }})
        })
        .collect();
    Ok(
        Json(json!({"leader": st.consensus.leader(), "term": st.consensus.term(), "nodes": nodes}))
            .into_response(),
    )
}
