//! Admin message lookup for the dashboard: an operator has the admin token, not the
//! tenant's API key, and often only a client_ref or the customer's phone number from a
//! ticket.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::api::messages::status_body;
use crate::api::{AppState, require_admin};

/// At most this many messages are answered for one client_ref.
const MAX_MATCHES: usize = 20;

fn with_tenant(m: &crate::state::Message) -> Value {
    let mut v = status_body(m);
    v["tenant"] = json!(m.tenant);
    v
}

/// `GET /admin/v1/messages/{id}`: any tenant's message, with its events and part states.
pub async fn get_message(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let id = crate::api::messages::normalise_id(&id);
    match st.consensus.store().get_message(&id)? {
        Some(m) => Ok(Json(with_tenant(&m)).into_response()),
        None => Err(ApiError::not_found("message")),
    }
}

/// Query of `GET /admin/v1/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    client_ref: Option<String>,
    to: Option<String>,
    tenant: Option<String>,
}

/// `GET /admin/v1/messages?client_ref=|to=&tenant=`: the newest messages carrying this
/// client_ref or sent to this number (in one tenant, or in every tenant), newest first;
/// with both, those that match both.
pub async fn find_messages(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LookupQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let client_ref = q.client_ref.filter(|c| !c.is_empty());
    let to = match q.to.filter(|t| !t.is_empty()) {
        // An unencoded '+' in a query string arrives as a space: put it back.
        Some(t) => Some(crate::messages::intake::normalize_lost_plus(&t)?),
        None => None,
    };
    if client_ref.is_none() && to.is_none() {
        return Err(ApiError::invalid(
            "client_ref",
            "missing query parameter `client_ref` or `to`",
        ));
    }
    let scope = crate::state::ListScope {
        client_ref: client_ref.as_deref(),
        to: to.as_deref(),
        since_ms: None,
    };
    let mut tenants: Vec<String> = match q.tenant {
        Some(t) => {
            if !st.consensus.store().config().tenants.contains_key(&t) {
                return Err(ApiError::not_found("tenant"));
            }
            vec![t]
        }
        None => st
            .consensus
            .store()
            .config()
            .tenants
            .keys()
            .cloned()
            .collect(),
    };
    tenants.sort();
    let mut found = Vec::new();
    for t in tenants {
        // Exact: the client_ref or recipient index reads only the messages carrying it.
        let budget = crate::state::ScanBudget {
            max_rows: MAX_MATCHES,
            until: std::time::Instant::now() + std::time::Duration::from_secs(1),
        };
        let page =
            st.consensus
                .store()
                .list_messages(&t, None, MAX_MATCHES, scope, budget, |_| true)?;
        found.extend(page.messages);
    }
    found.sort_by_key(|m| std::cmp::Reverse(m.created_at));
    found.truncate(MAX_MATCHES);
    Ok(
        Json(json!({"messages": found.iter().map(with_tenant).collect::<Vec<_>>()}))
            .into_response(),
    )
}
