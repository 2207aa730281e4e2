//! `/v1/messages`: send, batch, preview, status and list.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, parse_json};
use super::{AppState, tenant_of_fresh};
use crate::clock::rfc3339;
use crate::compliance;
use crate::consensus::WriteError;
use crate::messages::intake::{self, SendRequest};
use crate::routing::Ranking;
use crate::state::admission::{self, Queue, Scope};
use crate::state::compliance::CapKey;
use crate::state::{Category, Message, OpResult, Status, Tenant};
use crate::tenants::limiter::Refusal;

/// Batches carry at most this many messages.
pub const MAX_BATCH: usize = 1000;

/// Concatenation references of this node, rotating per destination.
static CONCAT_REFS: std::sync::LazyLock<crate::encoding::ConcatRefs> =
    std::sync::LazyLock::new(crate::encoding::ConcatRefs::default);

/// The 202 body for an accepted message (also each accepted item of a batch), written
/// straight from the row: a `serde_json::Value` tree per answer cost 2-3 % of the node's
/// CPU in batch runs (docs/benchmarks.md).
#[derive(Debug, serde::Serialize)]
pub struct AcceptedBody {
    id: String,
    status: &'static str,
    to: std::sync::Arc<str>,
    from: std::sync::Arc<str>,
    parts: u32,
    encoding: &'static str,
    client_ref: Option<std::sync::Arc<str>>,
    created_at: String,
}

impl AcceptedBody {
    /// The answer for `m` as it was accepted.
    pub fn of(m: &Message) -> AcceptedBody {
        AcceptedBody {
            id: m.id.clone(),
            status: m.status.as_str(),
            to: m.to.clone(),
            from: m.from.clone(),
            parts: m.parts,
            encoding: m.encoding.as_str(),
            client_ref: m.client_ref.clone(),
            created_at: rfc3339(m.created_at),
        }
    }
}

/// One slot of a batch answer: the accepted message, or the error of that item alone.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum BatchItem {
    Accepted(AcceptedBody),
    Refused(Value),
}

/// The answer of `POST /v1/messages/batch`, in the order of the request.
#[derive(Debug, serde::Serialize)]
struct BatchAnswer {
    results: Vec<BatchItem>,
}

use crate::state::views::error_json;

/// One event of the status body's `events`.
fn event_json(e: &crate::state::Event) -> Value {
    let mut v = json!({"status": e.status.as_str(), "at": rfc3339(e.at)});
    if let Some(c) = &e.channel {
        v["channel"] = json!(c);
    }
    if !e.smsc_message_ids.is_empty() {
        v["smsc_message_ids"] = json!(e.smsc_message_ids);
    }
    if let Some(n) = &e.note {
        v["note"] = json!(n);
    }
    v
}

/// The status body's `events`: one entry per status the message entered. A stored event
/// that repeats the status before it with a note (a requeue after a temporary error, a
/// failover: not a transition) is folded into that status's entry as `notes: [{"at",
/// "note", "channel"?}]`, so the history never shows `accepted → accepted` (audit) and
/// keeps what happened and when. Done here, not in the stored rows, so that rows written
/// before read the same and webhook event ids (an event's place in the row) stay put.
pub fn events_json(events: &[crate::state::Event]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(events.len());
    let mut prev: Option<crate::state::Status> = None;
    for e in events {
        let repeat = prev == Some(e.status) && e.note.is_some();
        match out.last_mut() {
            Some(last) if repeat => {
                let mut n = json!({"at": rfc3339(e.at), "note": e.note});
                if let Some(c) = &e.channel {
                    n["channel"] = json!(c);
                }
                match last["notes"].as_array_mut() {
                    Some(notes) => notes.push(n),
                    None => last["notes"] = json!([n]),
                }
            }
            _ => out.push(event_json(e)),
        }
        prev = Some(e.status);
    }
    out
}

/// The message id a client wrote, as stored: ULIDs are case-insensitive (Crockford
/// base32), stored in upper case. Anything that is not a ULID is kept as given (and
/// is then simply not found).
pub fn normalise_id(id: &str) -> String {
    ulid::Ulid::from_string(id)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| id.to_string())
}

/// A list page's cursor (the `next` of the previous page: the id of its last item, a
/// ULID) as given in query parameter `name`; 422 naming it otherwise.
pub(super) fn page_cursor(name: &str, given: &str) -> Result<String, ApiError> {
    ulid::Ulid::from_string(given)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::invalid(name, "not a cursor from a `next` field"))
}

/// The full status body of `GET /v1/messages/{id}`.
pub fn status_body(m: &Message) -> Value {
    let events = events_json(&m.events);
    let parts = crate::state::views::part_states_json(m);
    json!({
        "id": m.id, "status": m.status.as_str(), "to": m.to, "from": m.from, "parts": m.parts,
        "encoding": m.encoding.as_str(), "category": m.category.as_str(), "client_ref": m.client_ref,
        "channel": m.channel, "created_at": rfc3339(m.created_at), "updated_at": rfc3339(m.updated_at),
        "send_at": m.send_at.map(rfc3339), "expires_at": rfc3339(m.expires_at), "attempts": m.attempts,
        "error": m.error.as_ref().map(error_json), "events": events, "part_states": parts,
        "compliance": m.compliance.as_ref().map(|c| json!({
            "sender_choice": c.sender_choice, "flags": c.flags, "campaign_id": c.campaign_id,
            "dlt": c.dlt_template_id.as_ref().map(|t| json!({"entity_id": c.dlt_entity_id, "template_id": t})),
            "quiet_hours_until": c.quiet_hours_until.map(rfc3339),
        })),
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?;
            if s.is_empty() || s.len() > 128 {
                return Err(ApiError::invalid("Idempotency-Key", "1 to 128 characters"));
            }
            Ok(Some(s.to_string()))
        }
    }
}

/// The operator per the HLR / number-portability hook, when one is configured.
async fn hlr_operator(st: &AppState, req: &SendRequest) -> Option<String> {
    // Only the hook's fields (the settings also hold the number-range and price CSVs).
    let settings = {
        let cfg = st.consensus.store().config();
        cfg.routing.hlr_url.as_ref()?;
        crate::state::RoutingSettings {
            hlr_url: cfg.routing.hlr_url.clone(),
            hlr_timeout_ms: cfg.routing.hlr_timeout_ms,
            hlr_cache_seconds: cfg.routing.hlr_cache_seconds,
            ..Default::default()
        }
    };
    let to = intake::normalize_number(&req.to).ok()?;
    st.routing.hlr_operator(&settings, &to).await
}

/// Builds the row and runs the compliance checks (`sending` false for previews: no
/// metrics, and the candidates in their most likely order instead of a random draw);
/// returns the window counters the accept must fit into.
fn prepare(
    st: &AppState,
    tenant: &Tenant,
    req: &SendRequest,
    now: i64,
    operator: Option<String>,
    sending: bool,
) -> Result<(intake::Intake, Vec<CapKey>), ApiError> {
    if let Some(u) = &req.callback_url {
        super::check_callback_target(st, "callback_url", u)?;
    }
    let mut intake = {
        let cfg = st.consensus.store().config();
        let mut built = intake::build_routed(
            req,
            tenant,
            &cfg,
            ulid::Ulid::new().to_string(),
            now,
            &CONCAT_REFS,
            &st.routing,
            operator,
        )?;
        let ranking = if sending {
            Ranking::Sampled
        } else {
            Ranking::MostLikely
        };
        rank_candidates(st, &cfg, &mut built.message, ranking);
        built
    };
    let caps = compliance::screen(st.consensus.store(), req, tenant, &mut intake, sending)?;
    Ok((intake, caps))
}

/// Orders the message's candidate channels by its route's strategy, once, at accept
/// time: the order is stored in the row, so every node agrees on the channel the message
/// waits on (`state::store::waiting_channel`) and on the next one after a failover.
/// Health comes from this node's live figures for channels it runs, and from the
/// replicated bind states for the others; a drained channel counts as unusable (last).
/// The preview calls it too (`Ranking::MostLikely`), so it names what a send would take.
fn rank_candidates(
    st: &AppState,
    cfg: &crate::state::ConfigView,
    m: &mut Message,
    ranking: Ranking,
) {
    if m.route.len() <= 1 {
        return;
    }
    let now = std::time::Instant::now();
    let now_ms = crate::clock::now_ms();
    let registry = &st.registry;
    m.route = st
        .routing
        .order(
            cfg,
            m.route_id.as_deref(),
            m.ab_variant,
            &m.route,
            &m.to,
            m.operator.as_deref(),
            &m.avoid,
            ranking,
            |ch| match registry.find(ch) {
                Some(rt) if rt.is_up() => (
                    rt.health.score(now, now_ms),
                    rt.health.allows(now) && !cfg.channels.get(ch).is_some_and(|c| c.drained),
                ),
                _ => (
                    if cfg.channel_usable(ch) { 0.8 } else { 0.0 },
                    cfg.channel_usable(ch),
                ),
            },
        )
        .into();
}

async fn rate_limit(st: &AppState, tenant: &Tenant, n: u32) -> Result<(), ApiError> {
    st.limiters
        .check(&tenant.id, tenant.rate_limit, n)
        .await
        .map_err(|refusal| match refusal {
            Refusal::OverLimit { retry_after_s } => ApiError::too_many(
                "rate_limited",
                format!("over {} requests per second", tenant.rate_limit.per_second),
                retry_after_s,
            ),
            Refusal::NoLeader => {
                WriteError::Unavailable("the cluster is electing one; retry shortly".into()).into()
            }
        })
}

/// What the tenant's queue limit held a message against: enough to say, after the state
/// machine refused it, which count and which share was full.
#[derive(Debug, Clone, Copy)]
struct HeldAgainst {
    queue: Queue,
    category: Category,
}

impl HeldAgainst {
    fn of(m: &Message) -> HeldAgainst {
        HeldAgainst {
            queue: Queue::of_status(m.status),
            category: m.category,
        }
    }

    /// The 429 `queue_full` of a message the state machine refused for the tenant's
    /// `queue_limit` (the count as this node sees it now).
    fn tenant_refusal(self, st: &AppState, tenant: &Tenant) -> ApiError {
        let limit = st
            .consensus
            .store()
            .config()
            .tenants
            .get(&*tenant.id)
            .map_or(tenant.queue_limit, |t| t.queue_limit);
        let waiting = st
            .consensus
            .store()
            .work()
            .tenant_count(&tenant.id, self.queue);
        ApiError::too_many(
            "queue_full",
            admission::refusal_message(Scope::Tenant, self.queue, waiting, limit, self.category),
            self.queue.retry_after_s(),
        )
    }
}

/// Maps the state machine's answer to an Accept into the HTTP answer.
async fn accept_answer(
    st: &AppState,
    tenant: &Tenant,
    held: HeldAgainst,
    result: OpResult,
    accepted: AcceptedBody,
    caps: &[CapKey],
) -> Result<(StatusCode, AcceptedBody), ApiError> {
    match result {
        OpResult::Capped {
            key,
            retry_after_ms,
            ..
        } => Err(compliance::capped_answer(caps, &key, retry_after_ms)),
        OpResult::Accepted { .. } => {
            metrics::counter!("smsgw_accepted_total").increment(1);
            Ok((StatusCode::ACCEPTED, accepted))
        }
        // Our own accept, proposed again after its first outcome was lost: it committed.
        OpResult::Duplicate { id } if id == accepted.id => {
            metrics::counter!("smsgw_accepted_total").increment(1);
            Ok((StatusCode::ACCEPTED, accepted))
        }
        OpResult::Duplicate { id } => replay(st, &id).await,
        OpResult::IdempotencyConflict { id } => Err(idempotency_conflict(&id)),
        OpResult::QueueFull => Err(held.tenant_refusal(st, tenant)),
        other => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

/// The answer to a replayed idempotent request: the original message, 200. A follower
/// learns of a duplicate from the leader, whose state has the original, before its own
/// state may have applied it (two requests with one key at the same moment): it waits
/// until it has applied what the leader has committed, once, before saying 404.
async fn replay(st: &AppState, id: &str) -> Result<(StatusCode, AcceptedBody), ApiError> {
    if let Some(orig) = st.consensus.store().get_message(id)? {
        return Ok((StatusCode::OK, AcceptedBody::of(&orig)));
    }
    st.consensus.read_barrier().await?;
    match st.consensus.store().get_message(id)? {
        Some(orig) => Ok((StatusCode::OK, AcceptedBody::of(&orig))),
        None => Err(ApiError::not_found("message")),
    }
}

/// `POST /v1/messages`
pub async fn send(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant_of_fresh(&st, &headers).await?;
    rate_limit(&st, &tenant, 1).await?;
    let req: SendRequest = parse_json(&body)?;
    let key = idempotency_key(&headers)?;
    let body_hash = key.as_ref().map(|_| intake::request_hash(&req));
    let now = crate::clock::now_ms();
    // Fast path for a replay: answer from the stored record without a Raft write (the
    // state machine checks the key again, authoritatively, on Accept).
    if let (Some(k), Some(hash)) = (&key, &body_hash)
        && let Some((id, stored)) = st.consensus.store().idempotent_lookup(&tenant.id, k, now)?
    {
        if !intake::same_request(&stored, hash, &body) {
            return Err(idempotency_conflict(&id));
        }
        let (status, v) = replay(&st, &id).await?;
        return Ok((status, Json(v)).into_response());
    }
    let operator = hlr_operator(&st, &req).await;
    let (mut intake, caps) = prepare(&st, &tenant, &req, now, operator, true)?;
    // Counted against the node's limit until the accept is answered.
    let mut node_hold = st.node_queue.hold();
    st.node_queue
        .admit(&mut node_hold, st.consensus.store(), &intake.message)?;
    intake.message.idempotency_key = key;
    intake.message.body_hash = body_hash;
    let accepted = AcceptedBody::of(&intake.message);
    let held = HeldAgainst::of(&intake.message);
    let result = st
        .consensus
        .propose(compliance::accept_op(intake.message, caps.clone()))
        .await?;
    let (status, v) = accept_answer(&st, &tenant, held, result, accepted, &caps).await?;
    drop(node_hold);
    Ok((status, Json(v)).into_response())
}

fn idempotency_conflict(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        format!("Idempotency-Key was used for message {id} with a different body"),
    )
    .field("Idempotency-Key")
}

/// A batch body: each item is kept as its raw text and parsed on its own, so that one
/// bad item fails only itself and no `serde_json::Value` tree is built for the good ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest<'a> {
    #[serde(borrow)]
    messages: Vec<&'a serde_json::value::RawValue>,
}

/// One batch item as a send request; errors name fields relative to the item, and an
/// item that is not an object at all is named by its place in the list.
fn batch_item(i: usize, raw: &serde_json::value::RawValue) -> Result<SendRequest, ApiError> {
    let text = raw.get();
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::not_an_object(&format!("messages[{i}]")));
    }
    // The plain parse first; parse_json again only for a refusal's field name and wording.
    serde_json::from_str(text).or_else(|_| parse_json(text.as_bytes()))
}

/// `POST /v1/messages/batch`: one bad item fails only itself.
pub async fn batch(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant_of_fresh(&st, &headers).await?;
    let req: BatchRequest = parse_json(&body)?;
    if req.messages.is_empty() || req.messages.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "messages",
            format!("1 to {MAX_BATCH} messages per batch"),
        ));
    }
    let key = idempotency_key(&headers)?;
    rate_limit(&st, &tenant, 1).await?;
    // A node with no room in either count refuses the batch before building any item.
    if let Some(e) = st.node_queue.full(st.consensus.store()) {
        return Err(e);
    }
    // The items admitted against the node's limit, counted until the batch is answered.
    let mut node_hold = st.node_queue.hold();
    let mut tally = BatchTally::default();
    let now = crate::clock::now_ms();
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(req.messages.len());
    results.resize_with(req.messages.len(), || None);
    let mut ops = Vec::new();
    let mut pending = Vec::new();
    for (i, item) in req.messages.iter().enumerate() {
        let parsed = batch_item(i, item);
        // With an Idempotency-Key each item is idempotent on its own (the key and its
        // place in the batch), so a retried batch answers the messages it already
        // accepted (200 items) and accepts only the rest.
        let item_key = key.as_ref().map(|k| format!("{k}#{i}"));
        let item_hash = match (&item_key, &parsed) {
            (Some(_), Ok(r)) => Some(intake::request_hash(r)),
            _ => None,
        };
        if let (Some(k), Some(hash)) = (&item_key, &item_hash)
            && let Some((id, stored)) =
                st.consensus.store().idempotent_lookup(&tenant.id, k, now)?
        {
            results[i] = Some(
                if intake::same_request(&stored, hash, item.get().as_bytes()) {
                    match replay(&st, &id).await {
                        Ok((_, v)) => tally.answered(v),
                        Err(e) => tally.refused(e),
                    }
                } else {
                    tally.refused(idempotency_conflict(&id))
                },
            );
            continue;
        }
        let operator = match &parsed {
            Ok(r) => hlr_operator(&st, r).await,
            Err(_) => None,
        };
        let prepared = parsed
            .and_then(|r| prepare(&st, &tenant, &r, now, operator, true))
            .and_then(|(intake, caps)| {
                st.node_queue
                    .admit(&mut node_hold, st.consensus.store(), &intake.message)?;
                Ok((intake, caps))
            });
        match prepared {
            Ok((mut intake, caps)) => {
                intake.message.idempotency_key = item_key;
                intake.message.body_hash = item_hash;
                pending.push((
                    i,
                    AcceptedBody::of(&intake.message),
                    HeldAgainst::of(&intake.message),
                    caps.clone(),
                ));
                ops.push(compliance::accept_op(intake.message, caps));
            }
            Err(e) => results[i] = Some(tally.refused(e)),
        }
    }
    if !ops.is_empty() {
        let answers = st.consensus.propose_many(ops).await?;
        for ((i, accepted, held, caps), r) in pending.into_iter().zip(answers) {
            results[i] = Some(
                match accept_answer(&st, &tenant, held, r, accepted, &caps).await {
                    Ok((_, v)) => tally.answered(v),
                    Err(e) => tally.refused(e),
                },
            );
        }
    }
    drop(node_hold);
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or(BatchItem::Refused(Value::Null)))
        .collect();
    tally.answer(BatchAnswer { results })
}

/// How the items of one batch were answered, for the status and `Retry-After` of the
/// whole answer (README, "Batches and queue limits"): a client that sees 200 must still
/// learn when to retry the items refused for a full queue or a rate, and a batch of
/// which nothing got in because the queue is full is a 429 like a single send.
#[derive(Debug, Default)]
struct BatchTally {
    /// Items answered with a message (accepted, or an idempotent replay).
    answered: usize,
    /// Items refused `queue_full`.
    queue_full: usize,
    /// Items refused for any other reason.
    other: usize,
    /// The smallest `Retry-After` among the refused items that carry one (their 429s:
    /// `queue_full`, `frequency_capped`, ...): the earliest a retry may get further.
    retry_after: Option<u64>,
    /// The first `queue_full` refusal, whose message an all-refused 429 repeats.
    first_queue_full: Option<ApiError>,
}

impl BatchTally {
    fn answered(&mut self, v: AcceptedBody) -> BatchItem {
        self.answered += 1;
        BatchItem::Accepted(v)
    }

    fn refused(&mut self, e: ApiError) -> BatchItem {
        if e.status == StatusCode::TOO_MANY_REQUESTS
            && let Some(s) = e.retry_after
        {
            self.retry_after = Some(self.retry_after.map_or(s, |r| r.min(s)));
        }
        let item = BatchItem::Refused(e.body());
        if e.code == "queue_full" {
            self.queue_full += 1;
            self.first_queue_full.get_or_insert(e);
        } else {
            self.other += 1;
        }
        item
    }

    /// 429 `queue_full` when every item was refused `queue_full`; else 200 with the
    /// results, and `Retry-After` when some item was refused with one.
    fn answer(self, body: BatchAnswer) -> Result<Response, ApiError> {
        if self.answered == 0
            && self.other == 0
            && let Some(first) = self.first_queue_full
        {
            return Err(ApiError::too_many(
                "queue_full",
                format!(
                    "no message of the batch was accepted: all {} were refused queue_full \
                     (the first: {})",
                    self.queue_full, first.message
                ),
                self.retry_after.unwrap_or(Queue::DueNow.retry_after_s()),
            ));
        }
        let mut resp = (StatusCode::OK, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            super::error::set_retry_after(&mut resp, s);
        }
        Ok(resp)
    }
}

/// `route` of a preview: always the contract's `{"channel", "strategy"}` object, plus
/// `id`, `candidates` (the failover order a send would get now) and `most_likely` (true
/// when the strategy draws per message: `channel` is then the likeliest first choice).
/// `channel` is the first of the order the send would store: the route's strategy over
/// live health, breakers, drains, receipt feedback and prices (`rank_candidates`). A
/// send without a route (or whose route has no existing channel left) is not refused:
/// it is accepted and then fails with `no_route` (contract sections 3 and 4). The
/// preview says so in the same object, with that error, instead of `null`.
fn preview_route(
    route: Option<&crate::routing::RouteChoice>,
    ranked: &[String],
    random: bool,
) -> Value {
    match route {
        Some(r) if !ranked.is_empty() => {
            json!({"id": r.route_id, "channel": ranked.first(), "strategy": r.strategy,
                   "candidates": ranked, "most_likely": random && ranked.len() > 1, "error": null})
        }
        Some(r) => json!({"id": r.route_id, "channel": null, "strategy": r.strategy, "error": {
            "code": "no_route",
            "message": format!("route {} has no existing channel: a send would be accepted and then fail with no_route", r.route_id),
        }}),
        None => json!({"id": null, "channel": null, "strategy": null, "error": {
            "code": "no_route",
            "message": "no route matches this destination: a send would be accepted and then fail with no_route",
        }}),
    }
}

/// `POST /v1/messages/preview`: what sending would cost, without sending.
pub async fn preview(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant_of_fresh(&st, &headers).await?;
    let req: SendRequest = parse_json(&body)?;
    let operator = hlr_operator(&st, &req).await;
    let (intake, _) = prepare(&st, &tenant, &req, crate::clock::now_ms(), operator, false)?;
    let cfg = st.consensus.store().config();
    let random = intake
        .route
        .as_ref()
        .is_some_and(|r| crate::routing::engine::draws_per_message(&cfg, &r.route_id, r.variant));
    let route = preview_route(intake.route.as_ref(), &intake.message.route, random);
    // The price routing uses (price list, else the channel's cost map) of the channel
    // the send would take.
    let cost_per_part = intake
        .message
        .route
        .first()
        .and_then(|ch| st.routing.price(&cfg, ch, &intake.message.to));
    let cost = cost_per_part.map(|p| p * intake.plan.parts as f64);
    let m = &intake.message;
    let plan = &intake.plan;
    let split = crate::encoding::part_breakdown(&m.text, plan, &m.layout);
    let national = |l: Option<crate::encoding::NationalLanguage>| l.map(|l| l.code());
    let carrier = serde_json::to_value(m.layout.carrier).unwrap_or(Value::Null);
    let replacements: Vec<Value> = intake
        .replacements
        .iter()
        .map(|r| json!({"from": r.from.to_string(), "to": r.to, "count": r.count}))
        .collect();
    Ok(Json(json!({
        "encoding": plan.encoding.as_str(), "data_coding": plan.encoding.data_coding(),
        "national_tables": {"locking": national(plan.shift.locking), "single": national(plan.shift.single)},
        "parts": plan.parts, "submits": plan.submits, "carrier": carrier,
        "packed": m.layout.packed && plan.encoding == crate::encoding::TextEncoding::Gsm7,
        "characters": plan.characters, "units": plan.units, "split": split,
        "text": m.text, "replacements": replacements,
        "route": route, "cost": cost, "cost_per_part": cost_per_part, "to": m.to, "from": m.from,
    }))
    .into_response())
}

/// `GET /v1/messages/{id}`: another tenant's id is 404.
pub async fn get(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read_your_writes(&st).await?;
    let tenant = tenant_of_fresh(&st, &headers).await?;
    match st.consensus.store().get_message(&normalise_id(&id))? {
        Some(m) if *m.tenant == *tenant.id => Ok(Json(status_body(&m)).into_response()),
        _ => Err(ApiError::not_found("message")),
    }
}

/// `POST /v1/messages/{id}/cancel` (and `DELETE /v1/messages/{id}`): withdraws a
/// message while it is `scheduled`, or `accepted` and not yet taken by a channel; it
/// becomes `canceled` (final, webhook sent). Decided in the state machine
/// (`Op::Cancel`), so one that a channel claimed or sent meanwhile answers 409
/// `not_cancelable` naming its status. Another tenant's id is 404. Cancelling a canceled
/// message answers it again (200).
pub async fn cancel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of_fresh(&st, &headers).await?;
    let id = normalise_id(&id);
    let span = tracing::info_span!("cancel", message_id = %id, tenant = %tenant.id);
    let _guard = span.enter();
    let op = crate::state::Op::Cancel {
        id: id.clone(),
        tenant: tenant.id.clone(),
        at: crate::clock::now_ms(),
    };
    drop(_guard);
    let result = st.consensus.propose(op).await?;
    let current = || -> Result<Response, ApiError> {
        match st.consensus.store().get_message(&id)? {
            Some(m) if *m.tenant == *tenant.id => Ok(Json(status_body(&m)).into_response()),
            _ => Err(ApiError::not_found("message")),
        }
    };
    match result {
        OpResult::Done => {
            tracing::info!(message_id = %id, tenant = %tenant.id, "message canceled");
            current()
        }
        OpResult::NotCancelable {
            status: Status::Canceled,
        } => current(),
        OpResult::NotCancelable { status } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_cancelable",
            format!(
                "message {id} is {}: only a scheduled message, or an accepted one no channel \
                 has taken yet, can be canceled",
                status.as_str()
            ),
        )),
        OpResult::NotFound => Err(ApiError::not_found("message")),
        other => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

/// On a follower, waits until it has applied everything the leader had committed when
/// the read came in: a message is visible on every node right after its 202. The leader
/// applies before it answers a write, so it needs no wait.
pub(super) async fn read_your_writes(st: &AppState) -> Result<(), ApiError> {
    if st.consensus.is_leader() {
        return Ok(());
    }
    Ok(st.consensus.read_barrier().await?)
}

/// How long one `GET /v1/messages` may scan a tenant's rows for filter matches before
/// it answers what it found with `"partial": true` (`client_ref` and `to` have indexes
/// and `since` bounds the scan; `status` alone reads the rows newest first).
const LIST_SCAN_BUDGET: std::time::Duration = std::time::Duration::from_millis(250);
/// At most this many rows are read for one page, whatever the time.
const LIST_SCAN_MAX_ROWS: usize = 200_000;

/// What one filtered list request (messages or inbound) may read before it answers a
/// partial page.
pub(super) fn list_scan_budget() -> crate::state::ScanBudget {
    crate::state::ScanBudget {
        max_rows: LIST_SCAN_MAX_ROWS,
        until: std::time::Instant::now() + LIST_SCAN_BUDGET,
    }
}

/// Query of `GET /v1/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    to: Option<String>,
    client_ref: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    /// The `next` of the previous page, as the contract names it.
    next: Option<String>,
    /// The same, under the name earlier versions documented.
    cursor: Option<String>,
}

/// `GET /v1/messages`: newest first, `next` is the cursor for the following page.
pub async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    read_your_writes(&st).await?;
    let tenant = tenant_of_fresh(&st, &headers).await?;
    let Query(q) = query.map_err(|e| super::error::bad_query(&e))?;
    let status = match &q.status {
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| ApiError::invalid("status", format!("unknown status {s:?}")))?,
        ),
        None => None,
    };
    let to = match &q.to {
        // An unencoded '+' in a query string arrives as a space: put it back.
        Some(t) => Some(intake::normalize_lost_plus(t)?),
        None => None,
    };
    let since = match &q.since {
        Some(s) => Some(
            crate::clock::parse_rfc3339(s)
                .ok_or_else(|| ApiError::invalid("since", "not an RFC 3339 time"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "1 to 1000"));
    }
    // client_ref and to are read through their indexes and since ends the scan
    // (`ListScope`); status is checked row by row.
    let scope = crate::state::ListScope {
        client_ref: q.client_ref.as_deref(),
        to: to.as_deref(),
        since_ms: since,
    };
    let filter = |m: &Message| status.is_none_or(|s| m.status == s);
    // The cursor is the id of the last message of the previous page (a ULID).
    // Errors name the parameter the client sent.
    let given = match (&q.next, &q.cursor) {
        (Some(n), _) => Some(("next", n)),
        (None, Some(c)) => Some(("cursor", c)),
        (None, None) => None,
    };
    let cursor = match given {
        Some((name, c)) => Some(page_cursor(name, c)?),
        None => None,
    };
    // One row more than the page tells whether anything follows it.
    let mut page = st.consensus.store().list_messages(
        &tenant.id,
        cursor.as_deref(),
        limit + 1,
        scope,
        list_scan_budget(),
        filter,
    )?;
    page.trim_to(limit, |m| &m.id);
    let data: Vec<Value> = page.messages.iter().map(status_body).collect();
    Ok(Json(json!({"messages": data, "next": page.next, "partial": page.partial})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requeue_note_is_folded_into_its_status_not_repeated() {
        use crate::state::transitions::event;
        let mut requeue = event(Status::Accepted, 2_000);
        requeue.note = Some("temporary error 0x00000008 on smsc-k".into());
        requeue.channel = Some("smsc-k".into());
        let mut sent = event(Status::Sent, 3_000);
        sent.channel = Some("smsc-k".into());
        // A repeat without a note is not folded (it would be a real, illegal repeat).
        let events = events_json(&[event(Status::Accepted, 1_000), requeue, sent]);
        let statuses: Vec<&str> = events.iter().filter_map(|e| e["status"].as_str()).collect();
        assert_eq!(statuses, ["accepted", "sent"]);
        assert_eq!(events[0]["at"], rfc3339(1_000));
        assert_eq!(events[0]["notes"][0]["at"], rfc3339(2_000));
        assert_eq!(events[0]["notes"][0]["channel"], "smsc-k");
        assert!(
            events[0]["notes"][0]["note"]
                .as_str()
                .is_some_and(|n| n.contains("0x00000008"))
        );
        assert!(events[1].get("notes").is_none());
        let plain = events_json(&[event(Status::Accepted, 1), event(Status::Accepted, 2)]);
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn ids_are_looked_up_in_upper_case() {
        let id = ulid::Ulid::new().to_string();
        assert_eq!(normalise_id(&id.to_ascii_lowercase()), id);
        assert_eq!(normalise_id(&id), id);
        assert_eq!(normalise_id("not-an-id"), "not-an-id");
    }

    #[test]
    fn batch_items_parse_on_their_own_and_name_their_fields() {
        let body = br#"{"messages": [
            {"to": "+4915112345678", "text": "caf\u00e9 \"quoted\""},
            7,
            {"to": 5, "text": "x"},
            {"to": "+4915112345678", "text": "x", "bogus": 1}
        ]}"#;
        let req: BatchRequest = parse_json(body).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(req.messages.len(), 4);
        let first = batch_item(0, req.messages[0]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(first.text, "café \"quoted\"");
        let not_object = batch_item(1, req.messages[1]).err().map(|e| e.body());
        assert_eq!(
            not_object
                .as_ref()
                .and_then(|b| b["error"]["field"].as_str()),
            Some("messages[1]")
        );
        let wrong_type = batch_item(2, req.messages[2]).err().map(|e| e.body());
        assert_eq!(
            wrong_type
                .as_ref()
                .and_then(|b| b["error"]["field"].as_str()),
            Some("to")
        );
        assert!(batch_item(3, req.messages[3]).is_err());
    }

    #[test]
    fn a_batch_that_is_not_an_object_or_has_other_keys_is_refused() {
        assert!(parse_json::<BatchRequest>(br#"[1, 2]"#).is_err());
        assert!(parse_json::<BatchRequest>(br#"{"messages": [], "x": 1}"#).is_err());
        assert!(parse_json::<BatchRequest>(br#"{"messages": [1, }"#).is_err());
    }
}
