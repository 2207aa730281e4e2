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

/// Query of `GET /v1/inbound`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundQuery {
    limit: Option<usize>,
    /// The `next` of the previous page.
    next: Option<String>,
}

/// `GET /v1/inbound`: newest first, `next` is the cursor for the following page.
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
    // One row more than the page tells whether anything follows it.
    let mut items = st
        .consensus
        .store()
        .list_inbound(&tenant.id, cursor.as_deref(), limit + 1)?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|m| m.id.clone())
    } else {
        None
    };
    let data: Vec<Value> = items
        .iter()
        .map(crate::inbound::InboundMessage::json)
        .collect();
    Ok(Json(json!({"messages": data, "next": next})).into_response())
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
        Some(m) => Ok(Json(m.json()).into_response()),
        None => Err(ApiError::not_found("inbound message")),
    }
}
