//! `GET /v1/inbound` and `GET /v1/inbound/{id}`: the mobile-originated messages sent to a
//! tenant's numbers (`inbound`), for tenants that read them rather than (or besides)
//! taking the webhooks.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::messages::read_your_writes;
use super::{AppState, tenant_of_fresh};
use crate::compliance::mo;
use crate::inbound::{InboundMessage, KeywordAction};

/// Query of `GET /v1/inbound`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundQuery {
    limit: Option<usize>,
    /// The `next` of the previous page.
    next: Option<String>,
    /// Only messages from this handset (`+` optional, `00` read as `+`).
    from: Option<String>,
    /// Only messages sent to this number or short code of the tenant's.
    to: Option<String>,
    /// Only messages that were this keyword: `opt_out`, `opt_in` or `none`.
    keyword: Option<String>,
    /// Only messages received at or after this RFC 3339 time.
    since: Option<String>,
}

/// `GET /v1/inbound`: newest first, `next` is the cursor for the following page. With
/// filters the scan is bounded as the message list's is: a page cut short says
/// `"partial": true` and its `next` goes on from there.
pub async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<InboundQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    read_your_writes(&st).await?;
    let tenant = tenant_of_fresh(&st, &headers).await?;
    let Query(q) = query.map_err(|e| super::error::bad_query(&e))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "1 to 1000"));
    }
    let cursor = match &q.next {
        Some(c) => Some(super::messages::page_cursor("next", c)?),
        None => None,
    };
    let from = q.from.as_deref().map(mo::canonical);
    let to = q.to.as_deref().map(mo::canonical);
    let keyword = match q.keyword.as_deref() {
        None => None,
        Some("opt_out") => Some(Some(KeywordAction::OptOut)),
        Some("opt_in") => Some(Some(KeywordAction::OptIn)),
        Some("none") => Some(None),
        Some(other) => {
            return Err(ApiError::invalid(
                "keyword",
                format!("{other:?} is not one of opt_out, opt_in, none"),
            ));
        }
    };
    let since = match &q.since {
        Some(s) => Some(
            crate::clock::parse_rfc3339(s)
                .ok_or_else(|| ApiError::invalid("since", "not an RFC 3339 time"))?,
        ),
        None => None,
    };
    let filter = |m: &InboundMessage| {
        from.as_ref().is_none_or(|f| mo::canonical(&m.from) == *f)
            && to.as_ref().is_none_or(|t| mo::canonical(&m.to) == *t)
            && keyword.is_none_or(|k| m.keyword == k)
            && since.is_none_or(|s| m.received_at >= s)
    };
    // One row more than the page tells whether anything follows it.
    let mut page = st.consensus.store().list_inbound(
        &tenant.id,
        cursor.as_deref(),
        limit + 1,
        super::messages::list_scan_budget(),
        filter,
    )?;
    page.trim_to(limit, |m| &m.id);
    let data: Vec<Value> = page.messages.iter().map(|m| m.json(&tenant.id)).collect();
    let mut body = json!({"messages": data, "next": page.next});
    if page.partial {
        body["partial"] = json!(true);
    }
    Ok(Json(body).into_response())
}

/// `GET /v1/inbound/{id}`: another tenant's id is 404.
pub async fn get(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read_your_writes(&st).await?;
    let tenant = tenant_of_fresh(&st, &headers).await?;
    let id = super::messages::normalise_id(&id);
    match st.consensus.store().get_inbound(&tenant.id, &id)? {
        Some(m) => Ok(Json(m.json(&tenant.id)).into_response()),
        None => Err(ApiError::not_found("inbound message")),
    }
}
