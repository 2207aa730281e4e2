//! The HTTP API (axum): `/v1/*` for tenants, `/admin/v1/*` for operators, health,
//! metrics and the OpenAPI document. Handlers validate, then write through
//! `Consensus::propose`; they never touch storage directly for writes.

pub mod admin;
pub mod body_guard;
pub mod channel_patch;
pub mod cluster;
pub mod compliance;
pub mod error;
pub mod inbound;
pub mod messages;
pub mod node_queue;
pub mod openapi;
pub mod provider_mo;
pub mod receipts;
pub mod routing_admin;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::channels::ChannelRegistry;
use crate::consensus::Consensus;
use crate::metric_handles::ByLabel;
use crate::state::Tenant;
use crate::tenants::Limiters;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub consensus: Arc<Consensus>,
    pub registry: Arc<ChannelRegistry>,
    pub limiters: Arc<Limiters>,
    /// Bearer token for /admin/*.
    pub admin_token: Arc<String>,
    /// `node_queue_limit` and the messages admitted against it not yet applied: sends
    /// above it get 429 `queue_full` (`node_queue`).
    pub node_queue: Arc<node_queue::NodeQueue>,
    /// Whether callback URLs may name internal hosts (`webhook_allow_private`; SSRF guard).
    pub webhook_allow_private: bool,
    /// Default queue limit of new tenants.
    pub tenant_queue_limit: u64,
    pub metrics: PrometheusHandle,
    /// The dashboard's 15-minute ring buffer of figures (filled by its sampler).
    pub history: Arc<crate::dashboard::history::History>,
    /// Route index, operator table, HLR hook and live routing feedback of this node.
    pub routing: Arc<crate::routing::RoutingEngine>,
    /// On the leader: each member's replication progress (the cluster view's `lagging`).
    pub replication: Arc<crate::cluster::replication_watch::ReplicationWatch>,
}

/// The credentials of `Authorization: Bearer <token>`. The scheme name is
/// case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are the same scheme.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| credentials.trim())
}

/// The tenant whose API key is in `Authorization: Bearer`.
pub fn tenant_of(st: &AppState, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    let key = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let hash = admin::key_hash(key);
    let cfg = st.consensus.store().config();
    let id = cfg.keys.get(&hash).ok_or_else(ApiError::unauthorized)?;
    cfg.tenants
        .get(id)
        .cloned()
        .ok_or_else(ApiError::unauthorized)
}

/// 503 when this node cannot serve although it may know a leader (removed from the
/// cluster, or no leader has reached it for long): its state is stale and its writes
/// would only reach the cluster by chance. Cheap on the leader (one metrics read).
pub fn serving(st: &AppState) -> Result<(), ApiError> {
    match st.consensus.not_serving_reason() {
        None => Ok(()),
        Some(why) => Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why)
        }),
    }
}

/// Like [`tenant_of`], but a follower that does not know the key yet first catches up
/// with the leader (a tenant created through another node a moment ago is then found).
pub async fn tenant_of_fresh(st: &AppState, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    serving(st)?;
    match tenant_of(st, headers) {
        Err(_) if bearer(headers).is_some() && !st.consensus.is_leader() => {
            // Not known here yet, or not known at all: only the leader can tell.
            st.consensus.read_barrier().await?;
            tenant_of(st, headers)
        }
        other => other,
    }
}

/// Refuses a callback URL whose host is literally internal (loopback, private,
/// link-local, `localhost`, ...) unless the node allows them (`webhook_allow_private`):
/// 422 naming `field`. Names that resolve inside are caught at delivery.
pub fn check_callback_target(st: &AppState, field: &str, url: &str) -> Result<(), ApiError> {
    if st.webhook_allow_private {
        return Ok(());
    }
    match crate::webhooks::target::literal_problem(url) {
        None => Ok(()),
        Some(why) => Err(ApiError::invalid(
            field,
            format!(
                "{:?} is not allowed as a callback URL: {why}; webhooks go to public \
                 addresses only (this node's webhook_allow_private is off)",
                crate::webhooks::target::redact(url)
            ),
        )),
    }
}

/// Refuses requests without the admin token.
pub fn require_admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(t) if constant_time_eq(t.as_bytes(), st.admin_token.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz() -> &'static str {
    "ok"
}

/// Why `/readyz` answers 503, or `None` when it answers 200: the one readiness rule, also
/// behind the node's `node ready` log line.
pub fn not_ready_reason(c: &Consensus) -> Option<String> {
    if let Some(why) = c.not_serving_reason() {
        return Some(why);
    }
    if let Some(silent) = c.leader_without_quorum() {
        return Some(format!(
            "this node leads but no quorum has answered for {} ms",
            silent.as_millis()
        ));
    }
    if c.leader().is_some()
        && let Some(why) = c.not_committing_reason()
    {
        return Some(why);
    }
    c.leader().is_none().then(|| "no known leader".to_string())
}

async fn readyz(State(st): State<AppState>) -> Response {
    if let Err(e) = serving(&st) {
        return e.into_response();
    }
    match (not_ready_reason(&st.consensus), st.consensus.leader()) {
        (None, Some(l)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"ready": true, "leader": l})),
        )
            .into_response(),
        (why, _) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            why.unwrap_or_else(|| "no known leader".into()),
        )
        .into_response(),
    }
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    metrics::gauge!("smsgw_raft_leader").set(if st.consensus.is_leader() { 1.0 } else { 0.0 });
    metrics::gauge!("smsgw_raft_term").set(st.consensus.term() as f64);
    metrics::gauge!("smsgw_active_cache_rows").set(st.consensus.store().active_count() as f64);
    {
        let work = st.consensus.store().work();
        metrics::gauge!("smsgw_waiting_messages").set(work.waiting_total as f64);
        metrics::gauge!("smsgw_scheduled_messages").set(work.scheduled_total as f64);
    }
    // Memtables of every keyspace (Raft log and state): the store's share of the RSS.
    metrics::gauge!("smsgw_store_write_buffer_bytes")
        .set(st.consensus.store().db().write_buffer_size() as f64);
    // Deleted channels' series and other owners' gauges are left out (`channel_series_view`).
    let (configured, owned) = {
        let cfg = st.consensus.store().config();
        let me = st.consensus.node_id();
        let configured: std::collections::HashSet<String> = cfg.channels.keys().cloned().collect();
        let owned = configured
            .iter()
            .filter(|c| cfg.placed_on(me, c))
            .cloned()
            .collect();
        (configured, owned)
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metric_handles::channel_series_view(&st.metrics.render(), &configured, &owned),
    )
        .into_response()
}

/// The one middleware: puts axum's own rejections into the contract's error shape and
/// counts every request by matched route and status code (one layer, not two: each
/// `from_fn` layer costs a boxed future per request).
async fn count_requests(req: Request, next: Next) -> Response {
    // The matched path is a shared string: cloning it copies no text.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let resp = contract_shape(next.run(req).await);
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    request_counter(route, resp.status()).increment(1);
    REQUEST_SECONDS.record(started.elapsed().as_secs_f64());
    resp
}

/// `smsgw_http_requests_total` handles, keyed by `"<route> <code>"`. Both labels come
/// from closed sets (the router's path templates plus `unmatched`, and HTTP status
/// codes), so there are only as many handles as series.
static REQUEST_COUNTERS: LazyLock<ByLabel<metrics::Counter>> = LazyLock::new(|| {
    ByLabel::new(|key| {
        let (route, code) = key.rsplit_once(' ').unwrap_or((key.as_str(), ""));
        metrics::counter!("smsgw_http_requests_total", "route" => route.to_string(), "code" => code.to_string())
    })
});

/// `smsgw_http_request_seconds`, registered on the first request (after the recorder).
static REQUEST_SECONDS: LazyLock<metrics::Histogram> =
    LazyLock::new(|| metrics::histogram!("smsgw_http_request_seconds"));

/// The counter of one route and status code, found without building a key per request
/// (the key is written into a per-thread buffer).
fn request_counter(route: &str, status: StatusCode) -> metrics::Counter {
    thread_local! {
        static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    KEY.with_borrow_mut(|key| {
        key.clear();
        key.push_str(route);
        key.push(' ');
        key.push_str(status.as_str());
        REQUEST_COUNTERS.get(key)
    })
}

/// Turns axum's own rejections (413, 405, 404 of unknown paths) into the contract's error shape.
fn contract_shape(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/plain; version"));
    if is_json || status.is_success() || status.is_redirection() {
        return resp;
    }
    let e = match status {
        StatusCode::PAYLOAD_TOO_LARGE => error::body_rejection(status, String::new()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this path does not take this method",
        ),
        StatusCode::NOT_FOUND => ApiError::new(status, "not_found", "no such path"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(status, "unsupported_media_type", "send application/json")
        }
        StatusCode::FORBIDDEN => ApiError::new(
            status,
            "origin_not_allowed",
            "cross-origin requests are answered only for the cluster's own dashboard origins",
        ),
        s if s.is_client_error() => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the request could not be read",
        ),
        _ => return resp,
    };
    let mut shaped = e.into_response();
    // Keep what the CORS layer said, so an allowed origin can read the error.
    for (name, value) in resp.headers() {
        if name.as_str().starts_with("access-control-") || name == header::VARY {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}

/// The public router.
pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route("/v1/messages", post(messages::send).get(messages::list))
        .route("/v1/messages/batch", post(messages::batch))
        .route("/v1/messages/preview", post(messages::preview))
        .route(
            "/v1/messages/{id}",
            get(messages::get).delete(messages::cancel),
        )
        .route("/v1/messages/{id}/cancel", post(messages::cancel))
        .route("/v1/inbound", get(inbound::list))
        .route("/v1/inbound/{id}", get(inbound::get))
        .route("/v1/receipts/{channel}", post(receipts::receive))
        .route("/v1/mo/{channel}", post(provider_mo::receive))
        .route(
            "/admin/v1/tenants",
            post(admin::create_tenant).get(admin::list_tenants),
        )
        .route(
            "/admin/v1/tenants/{id}",
            get(admin::get_tenant)
                .patch(admin::patch_tenant)
                .delete(admin::delete_tenant),
        )
        .route("/admin/v1/tenants/{id}/keys", post(admin::rotate_key))
        .route(
            "/admin/v1/tenants/{id}/webhook_secret",
            post(admin::rotate_webhook_secret),
        )
        .route(
            "/admin/v1/channels",
            post(admin::create_channel).get(admin::list_channels),
        )
        .route(
            "/admin/v1/channels/{id}",
            get(admin::get_channel)
                .delete(admin::delete_channel)
                .patch(admin::patch_channel),
        )
        .route("/admin/v1/channels/{id}/drain", post(admin::drain_channel))
        .route(
            "/admin/v1/channels/{id}/undrain",
            post(admin::undrain_channel),
        )
        .route(
            "/admin/v1/routes",
            post(admin::create_route).get(admin::list_routes),
        )
        .route(
            "/admin/v1/routes/{id}",
            axum::routing::delete(admin::delete_route).patch(admin::patch_route),
        )
        .route("/admin/v1/cluster", get(cluster::view))
        .route("/admin/v1/cluster/nodes", post(cluster::add_node))
        .route(
            "/admin/v1/cluster/nodes/{id}",
            axum::routing::delete(cluster::remove_node),
        )
        .route(
            "/admin/v1/cluster/transfer-leader",
            post(cluster::transfer_leader),
        )
        .route(
            "/admin/v1/stats/history",
            get(crate::dashboard::history::get_history),
        )
        .route(
            "/admin/v1/messages",
            get(crate::dashboard::lookup::find_messages),
        )
        .route(
            "/admin/v1/messages/{id}",
            get(crate::dashboard::lookup::get_message),
        )
        .route("/dashboard", get(crate::dashboard::page))
        .route("/dashboard/{asset}", get(crate::dashboard::asset))
        .route("/admin/v1/routes/{id}/ab", get(routing_admin::ab_report))
        .route(
            "/admin/v1/routing/number-ranges",
            get(routing_admin::get_number_ranges).put(routing_admin::put_number_ranges),
        )
        .route(
            "/admin/v1/routing/price-list",
            axum::routing::put(routing_admin::put_price_list),
        )
        .route(
            "/admin/v1/routing/settings",
            get(routing_admin::get_settings).patch(routing_admin::patch_settings),
        )
        .route("/admin/v1/compliance/rules", get(compliance::list_rules))
        .route(
            "/admin/v1/compliance/rules/{id}",
            axum::routing::put(compliance::put_rule)
                .get(compliance::get_rule)
                .delete(compliance::delete_rule),
        )
        .route(
            "/admin/v1/compliance/countries",
            get(compliance::list_countries),
        )
        .route(
            "/admin/v1/compliance/countries/{cc}",
            axum::routing::put(compliance::put_country)
                .get(compliance::get_country)
                .delete(compliance::delete_country),
        )
        .route(
            "/admin/v1/tenants/{id}/senders",
            post(compliance::add_sender).get(compliance::list_senders),
        )
        .route(
            "/admin/v1/tenants/{id}/senders/{sender}",
            axum::routing::delete(compliance::delete_sender),
        )
        .route(
            "/admin/v1/tenants/{id}/dlt_templates",
            post(compliance::add_template).get(compliance::list_templates),
        )
        .route(
            "/admin/v1/tenants/{id}/dlt_templates/{template_id}",
            axum::routing::delete(compliance::delete_template),
        )
        .route(
            "/admin/v1/tenants/{id}/campaigns",
            post(compliance::add_campaign).get(compliance::list_campaigns),
        )
        .route(
            "/admin/v1/tenants/{id}/campaigns/{campaign}",
            axum::routing::delete(compliance::delete_campaign),
        )
        .route(
            "/admin/v1/tenants/{id}/opt_outs",
            post(compliance::add_opt_outs).get(compliance::list_opt_outs),
        )
        .route(
            "/admin/v1/tenants/{id}/opt_outs/{number}",
            axum::routing::delete(compliance::delete_opt_out),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi::serve))
        // Innermost: size and encoding are refused from the headers before a handler
        // reads the body (no `100 Continue` for a body over the limit).
        .layer(middleware::from_fn_with_state(
            body_guard::BodyLimits { max_body },
            body_guard::layer,
        ))
        // CORS inside the counting layer, so that its refusals (a foreign origin's
        // preflight) get the contract's error shape too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::dashboard::cors::layer,
        ))
        .layer(middleware::from_fn(count_requests))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
