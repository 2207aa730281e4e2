//! `/admin/v1/routing/*` and `/admin/v1/routes/{id}/ab`: the number-range table, the
//! price list, the HLR hook and feedback window, and the A/B report; plus the health
//! and SLA parts of the channel view.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, parse_json};
use super::{AppState, require_admin};
use crate::channels::ChannelRuntime;
use crate::channels::health::SLA_WINDOWS;
use crate::routing::engine::PriceList;
use crate::routing::feedback::two_proportion_p_value;
use crate::routing::operators::OperatorTable;
use crate::state::{Op, RoutingSettings};

/// Largest CSV accepted (number ranges or price list).
const MAX_CSV_BYTES: usize = 16 * 1024 * 1024;

/// `health` of a channel in `GET /admin/v1/channels`.
pub fn health_view(rt: &ChannelRuntime) -> Value {
    let now = std::time::Instant::now();
    json!({
        "score": rt.health.score(now, crate::clock::now_ms()),
        "breaker": rt.health.breaker(now).as_str(),
        "send_rate": rt.health.rate(),
    })
}

/// `stats.sla` of a channel: the 5m / 1h / 24h windows.
pub fn sla_view(rt: &ChannelRuntime) -> Value {
    let now_ms = crate::clock::now_ms();
    let mut out = serde_json::Map::new();
    for (name, minutes) in SLA_WINDOWS {
        out.insert(
            name.to_string(),
            serde_json::to_value(rt.health.window(minutes, now_ms)).unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

fn settings(st: &AppState) -> RoutingSettings {
    st.consensus.store().config().routing.clone()
}

async fn put_settings(st: &AppState, s: RoutingSettings) -> Result<(), ApiError> {
    st.consensus
        .propose(Op::PutRoutingSettings(Box::new(s)))
        .await?;
    Ok(())
}

fn csv_text(body: &Bytes) -> Result<String, ApiError> {
    if body.len() > MAX_CSV_BYTES {
        return Err(ApiError::invalid("body", "at most 16 MiB of CSV"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::invalid("body", "CSV must be UTF-8"))
}

/// `PUT /admin/v1/routing/number-ranges`: replaces the number-range table (CSV
/// `prefix,country,mcc,mnc,operator`) on every node.
pub async fn put_number_ranges(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let csv = csv_text(&body)?;
    let table = OperatorTable::parse(&csv).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let mut s = settings(&st);
    s.number_ranges_csv = Some(csv);
    put_settings(&st, s).await?;
    Ok(Json(json!({"ranges": table.len()})).into_response())
}

/// `GET /admin/v1/routing/number-ranges`: the table in use (CSV), with `?number=` the
/// operator of one number.
pub async fn get_number_ranges(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let csv = settings(&st)
        .number_ranges_csv
        .unwrap_or_else(|| crate::routing::operators::DEFAULT_CSV.to_string());
    if let Some(n) = q.get("number") {
        let table = OperatorTable::parse(&csv).unwrap_or_default();
        let op = table.lookup(n).map(|o| {
            json!({"country": o.country, "mcc": o.mcc, "mnc": o.mnc, "mccmnc": o.mccmnc(), "operator": o.name})
        });
        return Ok(Json(json!({"number": n, "operator": op})).into_response());
    }
    Ok(([("content-type", "text/csv; charset=utf-8")], csv).into_response())
}

/// `PUT /admin/v1/routing/price-list`: per-channel prices per destination (CSV
/// `channel,prefix,price`) for `least_cost`; they override the channels' `cost` maps.
pub async fn put_price_list(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let csv = csv_text(&body)?;
    PriceList::parse(&csv).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let lines = csv
        .lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && !l.starts_with("channel,")
        })
        .count();
    let mut s = settings(&st);
    s.price_list_csv = (!csv.trim().is_empty()).then_some(csv);
    put_settings(&st, s).await?;
    Ok(Json(json!({"prices": lines})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    #[serde(default)]
    hlr_url: Option<Option<String>>,
    #[serde(default)]
    hlr_timeout_ms: Option<u64>,
    #[serde(default)]
    hlr_cache_seconds: Option<u64>,
    #[serde(default)]
    success_window_seconds: Option<u64>,
}

fn settings_view(s: &RoutingSettings) -> Value {
    use crate::routing::engine::*;
    let or = |v: u64, d: u64| if v == 0 { d } else { v };
    json!({
        "hlr_url": s.hlr_url,
        "hlr_timeout_ms": or(s.hlr_timeout_ms, DEFAULT_HLR_TIMEOUT_MS),
        "hlr_cache_seconds": or(s.hlr_cache_seconds, DEFAULT_HLR_CACHE_SECONDS),
        "success_window_seconds": or(s.success_window_seconds, DEFAULT_WINDOW_SECONDS),
        "number_ranges": if s.number_ranges_csv.is_some() { "custom" } else { "builtin" },
        "price_list": s.price_list_csv.is_some(),
    })
}

/// `GET /admin/v1/routing/settings`
pub async fn get_settings(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    Ok(Json(settings_view(&settings(&st))).into_response())
}

/// `PATCH /admin/v1/routing/settings`: the HLR hook (`hlr_url` null to remove, timeout,
/// cache lifetime) and the success feedback window.
pub async fn patch_settings(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let b: SettingsBody = parse_json(&body)?;
    let mut s = settings(&st);
    if let Some(url) = b.hlr_url {
        if let Some(u) = &url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ApiError::invalid("hlr_url", "an http(s) URL or null"));
        }
        s.hlr_url = url;
    }
    if let Some(t) = b.hlr_timeout_ms {
        if !(1..=10_000).contains(&t) {
            return Err(ApiError::invalid("hlr_timeout_ms", "1 to 10000"));
        }
        s.hlr_timeout_ms = t;
    }
    if let Some(t) = b.hlr_cache_seconds {
        if !(1..=30 * 86_400).contains(&t) {
            return Err(ApiError::invalid("hlr_cache_seconds", "1 to 2592000"));
        }
        s.hlr_cache_seconds = t;
    }
    if let Some(t) = b.success_window_seconds {
        if !(10..=86_400).contains(&t) {
            return Err(ApiError::invalid("success_window_seconds", "10 to 86400"));
        }
        s.success_window_seconds = t;
    }
    put_settings(&st, s.clone()).await?;
    Ok(Json(settings_view(&s)).into_response())
}

/// `GET /admin/v1/routes/{id}/ab`: per variant messages, delivery rate, receipt latency
/// and cost, and the two-proportion z-test p-value of the delivery rates (counted on
/// this node since it started, from the outcomes it applied). 404 for an unknown route
/// and for a route without `ab`.
pub async fn ab_report(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let route = st
        .consensus
        .store()
        .config()
        .routes
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("route"))?;
    // Zeros for a route without a test would look like measurements.
    let Some(ab) = route.ab.as_ref() else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "route {id} has no A/B test (no `ab`); add one with PATCH /admin/v1/routes/{id}"
            ),
        ));
    };
    let [a, b] = st.routing.ab.get(&id);
    let view = |v: &crate::routing::feedback::VariantStats| {
        json!({"messages": v.messages, "finals": v.finals, "delivered": v.delivered,
               "delivery_rate": v.delivery_rate(),
               "dlr_latency_ms_p50": v.latency_ms(0.5), "dlr_latency_ms_p99": v.latency_ms(0.99),
               "cost": (v.cost * 1e6).round() / 1e6})
    };
    let p = two_proportion_p_value(a.delivered, a.finals, b.delivered, b.finals);
    Ok(Json(json!({
        "route": id,
        "split_percent": ab.split_percent,
        "a": view(&a), "b": view(&b),
        "p_value": p,
        "significant": p.map(|p| p < 0.05),
    }))
    .into_response())
}
