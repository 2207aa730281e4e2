//! `GET /openapi.json`: the OpenAPI 3.1 document, built with utoipa from the same route
//! table the router serves (`ROUTES`), so the two cannot drift apart.

use axum::Json;
use axum::response::IntoResponse;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder, ResponseBuilder};

/// (method, path, when) of the admin calls that answer 409 `conflict`.
const CONFLICTS: &[(&str, &str, &str)] = &[
    (
        "post",
        "/admin/v1/tenants",
        "the id exists, or a deleted tenant with this id still has retained messages",
    ),
    ("post", "/admin/v1/channels", "the id exists"),
    (
        "delete",
        "/admin/v1/channels/{id}",
        "a route still uses the channel; the message names the routes",
    ),
    (
        "post",
        "/admin/v1/routes",
        "the id exists, or another route has the same match or covers its prefixes at the \
         same specificity so one of them would never be chosen (named in the message)",
    ),
    (
        "post",
        "/v1/messages/{id}/cancel",
        "not_cancelable: a channel has taken the message, a part was sent, or it is final; the message names its status",
    ),
    (
        "delete",
        "/v1/messages/{id}",
        "not_cancelable: a channel has taken the message, a part was sent, or it is final; the message names its status",
    ),
    (
        "post",
        "/admin/v1/tenants/{id}/senders",
        "the sender is registered already; delete it first to change it",
    ),
];

/// (method, path, summary, tag, success status) of every endpoint.
pub const ROUTES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "post",
        "/v1/messages",
        "Send one message (202 once stored on a quorum)",
        "messages",
        "202",
    ),
    (
        "get",
        "/v1/messages",
        "List the tenant's messages, newest first",
        "messages",
        "200",
    ),
    (
        "post",
        "/v1/messages/batch",
        "Send up to 1000 messages: 200 with one result per input (with Retry-After when an item was refused with a 429 code such as queue_full); 429 queue_full with Retry-After when no item was accepted and every refusal is queue_full",
        "messages",
        "200",
    ),
    (
        "post",
        "/v1/messages/preview",
        "Encoding, parts, route and cost without sending",
        "messages",
        "200",
    ),
    (
        "get",
        "/v1/messages/{id}",
        "Status, events and part states of a message",
        "messages",
        "200",
    ),
    (
        "get",
        "/v1/inbound",
        "List the mobile-originated messages sent to the tenant's numbers, newest first",
        "inbound",
        "200",
    ),
    (
        "get",
        "/v1/inbound/{id}",
        "One mobile-originated message",
        "inbound",
        "200",
    ),
    (
        "post",
        "/v1/messages/{id}/cancel",
        "Cancel a scheduled message, or an accepted one no channel has taken yet (409 not_cancelable otherwise)",
        "messages",
        "200",
    ),
    (
        "delete",
        "/v1/messages/{id}",
        "Same as POST /v1/messages/{id}/cancel",
        "messages",
        "200",
    ),
    (
        "post",
        "/v1/receipts/{channel}",
        "Delivery receipts from an HTTP upstream provider (channel credentials)",
        "receipts",
        "200",
    ),
    (
        "post",
        "/v1/mo/{channel}",
        "Mobile-originated messages from an HTTP upstream provider (channel credentials)",
        "receipts",
        "200",
    ),
    (
        "post",
        "/admin/v1/tenants",
        "Create a tenant (API key and webhook secret shown once)",
        "admin",
        "201",
    ),
    ("get", "/admin/v1/tenants", "List tenants", "admin", "200"),
    (
        "get",
        "/admin/v1/tenants/{id}",
        "Show a tenant",
        "admin",
        "200",
    ),
    (
        "patch",
        "/admin/v1/tenants/{id}",
        "Change a tenant",
        "admin",
        "200",
    ),
    (
        "delete",
        "/admin/v1/tenants/{id}",
        "Delete a tenant",
        "admin",
        "204",
    ),
    (
        "post",
        "/admin/v1/tenants/{id}/keys",
        "Rotate a tenant's API key",
        "admin",
        "201",
    ),
    (
        "post",
        "/admin/v1/tenants/{id}/webhook_secret",
        "Rotate a tenant's webhook secret (answered once); the old one also signs for overlap_seconds (default 86400, at most 604800)",
        "admin",
        "201",
    ),
    (
        "post",
        "/admin/v1/channels",
        "Create a channel",
        "admin",
        "201",
    ),
    (
        "get",
        "/admin/v1/channels",
        "List channels with state, binds and stats",
        "admin",
        "200",
    ),
    (
        "get",
        "/admin/v1/channels/{id}",
        "Show a channel",
        "admin",
        "200",
    ),
    (
        "delete",
        "/admin/v1/channels/{id}",
        "Delete a channel",
        "admin",
        "204",
    ),
    (
        "patch",
        "/admin/v1/channels/{id}",
        "Change a channel in place (tps, window, credentials, host, options, sla) with a JSON merge patch, checked as on create; id and protocol cannot change",
        "admin",
        "200",
    ),
    (
        "post",
        "/admin/v1/channels/{id}/drain",
        "Stop taking new submits on a channel, wait for the outstanding responses (at most the response timeout), then unbind",
        "admin",
        "200",
    ),
    (
        "post",
        "/admin/v1/channels/{id}/undrain",
        "Bind a drained channel again",
        "admin",
        "200",
    ),
    ("post", "/admin/v1/routes", "Create a route", "admin", "201"),
    ("get", "/admin/v1/routes", "List routes", "admin", "200"),
    (
        "delete",
        "/admin/v1/routes/{id}",
        "Delete a route",
        "admin",
        "204",
    ),
    (
        "patch",
        "/admin/v1/routes/{id}",
        "Change a route's strategy, channels, min_success_rate or ab in place",
        "admin",
        "200",
    ),
    (
        "get",
        "/admin/v1/routes/{id}/ab",
        "A/B report of a route: per variant delivery, latency, cost; p-value",
        "admin",
        "200",
    ),
    (
        "get",
        "/admin/v1/routing/number-ranges",
        "The number-range table (CSV), or ?number= one number's operator",
        "admin",
        "200",
    ),
    (
        "put",
        "/admin/v1/routing/number-ranges",
        "Replace the number-range table (CSV prefix,country,mcc,mnc,operator)",
        "admin",
        "200",
    ),
    (
        "put",
        "/admin/v1/routing/price-list",
        "Replace the price list (CSV channel,prefix,price) used by least_cost",
        "admin",
        "200",
    ),
    (
        "get",
        "/admin/v1/routing/settings",
        "HLR hook and success-feedback window",
        "admin",
        "200",
    ),
    (
        "patch",
        "/admin/v1/routing/settings",
        "Set the HLR hook and success-feedback window",
        "admin",
        "200",
    ),
    (
        "get",
        "/admin/v1/cluster",
        "Leader, term, members (state up/draining/lagging/down and where it came from, replication lag on the leader, whether ever seen) and this node's Raft log positions",
        "admin",
        "200",
    ),
    (
        "post",
        "/admin/v1/cluster/nodes",
        "Add a member (learner, then voter)",
        "admin",
        "201",
    ),
    (
        "delete",
        "/admin/v1/cluster/nodes/{id}",
        "Remove a member",
        "admin",
        "204",
    ),
    (
        "put",
        "/admin/v1/compliance/rules/{id}",
        "Create or replace a content rule (keyword, regex, url_domain, url_allow, link_shortener)",
        "compliance",
        "200",
    ),
    (
        "get",
        "/admin/v1/compliance/rules",
        "List content rules",
        "compliance",
        "200",
    ),
    (
        "get",
        "/admin/v1/compliance/rules/{id}",
        "Show a content rule",
        "compliance",
        "200",
    ),
    (
        "delete",
        "/admin/v1/compliance/rules/{id}",
        "Delete a content rule",
        "compliance",
        "204",
    ),
    (
        "put",
        "/admin/v1/compliance/countries/{cc}",
        "Set a country's rules (senders, DLT, 10DLC, quiet hours)",
        "compliance",
        "200",
    ),
    (
        "get",
        "/admin/v1/compliance/countries",
        "List configured country rules",
        "compliance",
        "200",
    ),
    (
        "get",
        "/admin/v1/compliance/countries/{cc}",
        "The rules in force for a country",
        "compliance",
        "200",
    ),
    (
        "delete",
        "/admin/v1/compliance/countries/{cc}",
        "Back to the built-in country rules",
        "compliance",
        "204",
    ),
    (
        "post",
        "/admin/v1/cluster/transfer-leader",
        "Hand leadership to another voter",
        "admin",
        "200",
    ),
    (
        "post",
        "/admin/v1/tenants/{id}/senders",
        "Register a sender id for countries",
        "compliance",
        "201",
    ),
    (
        "get",
        "/admin/v1/tenants/{id}/senders",
        "List a tenant's registered sender ids",
        "compliance",
        "200",
    ),
    (
        "delete",
        "/admin/v1/tenants/{id}/senders/{sender}",
        "Remove a registered sender id",
        "compliance",
        "204",
    ),
    (
        "post",
        "/admin/v1/tenants/{id}/dlt_templates",
        "Register an India DLT template",
        "compliance",
        "201",
    ),
    (
        "get",
        "/admin/v1/tenants/{id}/dlt_templates",
        "List a tenant's DLT templates",
        "compliance",
        "200",
    ),
    (
        "delete",
        "/admin/v1/tenants/{id}/dlt_templates/{template_id}",
        "Remove a DLT template",
        "compliance",
        "204",
    ),
    (
        "post",
        "/admin/v1/tenants/{id}/campaigns",
        "Register a US 10DLC campaign",
        "compliance",
        "201",
    ),
    (
        "get",
        "/admin/v1/tenants/{id}/campaigns",
        "List a tenant's 10DLC campaigns",
        "compliance",
        "200",
    ),
    (
        "delete",
        "/admin/v1/tenants/{id}/campaigns/{campaign}",
        "Remove a 10DLC campaign",
        "compliance",
        "204",
    ),
    (
        "post",
        "/admin/v1/tenants/{id}/opt_outs",
        "Add numbers to a tenant's opt-out list",
        "compliance",
        "200",
    ),
    (
        "get",
        "/admin/v1/stats/history",
        "The last 15 minutes of this node's message rates and each channel's figures (from its owner), sampled every 2 s (dashboard charts)",
        "admin",
        "200",
    ),
    (
        "get",
        "/admin/v1/messages",
        "Find messages by client_ref or recipient (to) in one or every tenant",
        "admin",
        "200",
    ),
    (
        "get",
        "/admin/v1/messages/{id}",
        "Any tenant's message with events and part states",
        "admin",
        "200",
    ),
    (
        "get",
        "/dashboard",
        "The operations dashboard (embedded page; asks for the admin token)",
        "dashboard",
        "200",
    ),
    (
        "get",
        "/dashboard/{asset}",
        "The dashboard's script, styles and icon",
        "dashboard",
        "200",
    ),
    (
        "get",
        "/admin/v1/tenants/{id}/opt_outs",
        "Count and list a tenant's opt-outs",
        "compliance",
        "200",
    ),
    (
        "delete",
        "/admin/v1/tenants/{id}/opt_outs/{number}",
        "Remove a number from the opt-out list",
        "compliance",
        "204",
    ),
    (
        "get",
        "/healthz",
        "200 while the process runs",
        "health",
        "200",
    ),
    (
        "get",
        "/readyz",
        "200 once a leader is known",
        "health",
        "200",
    ),
    ("get", "/metrics", "Prometheus metrics", "health", "200"),
    ("get", "/openapi.json", "This document", "health", "200"),
];

fn method(m: &str) -> HttpMethod {
    match m {
        "post" => HttpMethod::Post,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        "put" => HttpMethod::Put,
        _ => HttpMethod::Get,
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut paths = PathsBuilder::new();
    for (m, path, summary, tag, ok) in ROUTES {
        let mut op = OperationBuilder::new()
            .summary(Some(*summary))
            .tag(*tag)
            .response(*ok, ResponseBuilder::new().description("success"));
        if path.starts_with("/v1") || path.starts_with("/admin") {
            op = op
                .response(
                    "401",
                    ResponseBuilder::new().description(
                        if path.starts_with("/v1/receipts") || path.starts_with("/v1/mo/") {
                            "missing or wrong provider credentials (the channel's token or HMAC)"
                        } else {
                            "missing or bad bearer token"
                        },
                    ),
                )
                .response(
                    "422",
                    ResponseBuilder::new()
                        .description("a field is invalid; `error.field` names it"),
                )
                .response(
                    "503",
                    ResponseBuilder::new().description("no leader / below quorum"),
                );
        }
        if let Some((_, _, why)) = CONFLICTS.iter().find(|(cm, cp, _)| cm == m && cp == path) {
            op = op.response("409", ResponseBuilder::new().description(*why));
        }
        if path.starts_with("/v1/messages") && *m == "post" && !path.ends_with("/cancel") {
            op = op
                .response("400", ResponseBuilder::new().description("malformed JSON"))
                .response(
                    "409",
                    ResponseBuilder::new().description("idempotency conflict"),
                )
                .response(
                    "413",
                    ResponseBuilder::new().description(
                        "body larger than max_body_bytes (the message states the limit); a Content-Length over it is refused before the body is sent",
                    ),
                )
                .response(
                    "415",
                    ResponseBuilder::new().description(
                        "a Content-Encoding other than identity: send the JSON uncompressed",
                    ),
                )
                .response(
                    "429",
                    ResponseBuilder::new()
                        .description("rate limited or queue full; see Retry-After"),
                );
        }
        paths = paths.path(*path, PathItem::new(method(m), op.build()));
    }
    let components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("smsgw")
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// Serves the document.
pub async fn serve() -> impl IntoResponse {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    doc["openapi"] = serde_json::Value::String("3.1.0".into());
    Json(doc)
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    /// (method, path) pairs the router registers, read from `router()`'s source so that
    /// a route added there without a `ROUTES` line (or the reverse) fails this test.
    fn served() -> Vec<(String, String)> {
        let src = include_str!("mod.rs");
        let body = &src[src.find("pub fn router(").unwrap_or(0)..];
        let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut out = Vec::new();
        for chunk in flat.split(".route(").skip(1) {
            let Some(path) = chunk.split('"').nth(1) else {
                continue;
            };
            let handlers = chunk.split(".layer(").next().unwrap_or(chunk);
            let handlers = handlers.split(".route(").next().unwrap_or(handlers);
            for m in ["get", "post", "patch", "delete", "put"] {
                if handlers.contains(&format!(" {m}("))
                    || handlers.contains(&format!(".{m}("))
                    || handlers.contains(&format!("({m}("))
                    || handlers.contains(&format!("routing::{m}("))
                {
                    out.push((m.to_string(), path.to_string()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn document_matches_router() {
        let mut documented: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p, ..)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        assert_eq!(served(), documented);
    }

    #[test]
    fn document_is_openapi_31() {
        let doc = serde_json::to_value(super::document()).unwrap_or_default();
        assert!(doc["paths"]["/v1/messages"]["post"].is_object());
        assert!(
            doc["paths"]["/v1/messages"]["get"].is_object(),
            "GET and POST of one path both kept"
        );
        let distinct: std::collections::BTreeSet<&str> = ROUTES.iter().map(|r| r.1).collect();
        assert_eq!(
            doc["paths"].as_object().map(|p| p.len()),
            Some(distinct.len()),
            "one path entry per distinct path of the route table"
        );
    }
}
