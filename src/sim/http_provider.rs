//! `smsgw sim http-provider`: a REST SMS provider for tests, demos and load runs of the
//! HTTP upstream channel. It takes `POST /sms` (JSON or form: `to`, `from`, `text`,
//! `reference`), answers `201 {"message": {"id": "prov-N", "status": "queued"}}` (or 429,
//! 500, 400 with `{"error": {"code", "message"}}` as configured), and later POSTs a
//! receipt `{"data": {"id", "status", "error_code", "reference"}}` to the gateway's
//! `/v1/receipts/{channel}` (or a JSON list of those, with `--receipt-batch`), retrying
//! until it gets a 2xx. `GET /stats` counts everything, `GET /messages` lists what it
//! received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tracing::{info, warn};

/// Options of `smsgw sim http-provider`.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpProviderArgs {
    /// Listen address (API, /stats and /messages).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// If set, `POST /sms` needs `Authorization: Bearer <api-key>` (else 401).
    #[arg(long)]
    pub api_key: Option<String>,
    /// The gateway's receipt URL, e.g. http://127.0.0.1:8080/v1/receipts/prov (none: no receipts).
    #[arg(long, value_parser = http_url)]
    pub receipts_url: Option<String>,
    /// Sent as `Authorization: Bearer <token>` with each receipt (needs `--receipts-url`).
    #[arg(long, requires = "receipts_url")]
    pub receipt_token: Option<String>,
    /// Sign each receipt: hex HMAC-SHA256 of the body in `X-Signature`.
    #[arg(long)]
    pub receipt_hmac_secret: Option<String>,
    /// Delay between accepting a message and posting its receipt.
    #[arg(long, default_value_t = 200)]
    pub dlr_delay_ms: u64,
    /// Post up to N receipts that are due together in one request, as a JSON list of
    /// the single-receipt objects (what providers that batch their callbacks do; the
    /// gateway reads a list at the root when the channel sets no `items_path`). 1 posts
    /// each receipt on its own.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub receipt_batch: u16,
    /// Receipt outcomes, e.g. "delivered=90,failed=10" (words: delivered, failed, expired,
    /// rejected, sent).
    #[arg(long, default_value = "delivered=100", value_parser = checked_mix)]
    pub dlr_mix: String,
    /// Answer the first N requests with 429.
    #[arg(long, default_value_t = 0)]
    pub throttle_first: u64,
    /// Share of requests answered 429 (0.0..=1.0).
    #[arg(long, default_value_t = 0.0, value_parser = super::smsc::share)]
    pub throttle_rate: f64,
    /// Answer the N requests after the throttled ones with 500.
    #[arg(long, default_value_t = 0)]
    pub error_first: u64,
    /// Share of requests answered 500 (0.0..=1.0).
    #[arg(long, default_value_t = 0.0, value_parser = super::smsc::share)]
    pub error_rate: f64,
    /// Recipients starting with this are refused: 400 `{"error": {"code": "21211"}}`.
    #[arg(long)]
    pub reject_prefix: Option<String>,
    /// Delay before each answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

/// Counters shown on `GET /stats`.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    accepted: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    unauthorized: AtomicU64,
    receipts_sent: AtomicU64,
    receipts_refused: AtomicU64,
    /// Receipt POSTs answered 2xx (fewer than `receipts_sent` when batching).
    receipt_posts: AtomicU64,
}

struct Ctx {
    args: HttpProviderArgs,
    mix: Vec<(String, u32)>,
    stats: Stats,
    /// Last messages received (bounded), for tests.
    received: Mutex<VecDeque<Value>>,
    client: reqwest::Client,
    /// Receipt POSTs in flight at once.
    receipt_slots: Arc<Semaphore>,
    /// Receipts waiting for their due time, when they are posted in batches
    /// (`--receipt-batch` > 1); `None` posts each from its own task.
    batcher: Option<mpsc::UnboundedSender<(tokio::time::Instant, Value)>>,
}

/// Most messages kept for `GET /messages`.
const KEEP: usize = 10_000;

/// `--dlr-mix` checked when the flags are parsed (exit 2 naming the flag).
fn checked_mix(s: &str) -> Result<String, String> {
    parse_mix(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// `--receipts-url`: an http(s) URL with a host.
fn http_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s.to_string()),
        _ => Err("an http(s) URL such as http://127.0.0.1:8080/v1/receipts/prov".into()),
    }
}

fn parse_mix(s: &str) -> anyhow::Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (w, n) = item
            .split_once('=')
            .with_context(|| format!("--dlr-mix item {item:?}: want word=weight"))?;
        let w = w.trim().to_ascii_lowercase();
        if !["delivered", "failed", "expired", "rejected", "sent"].contains(&w.as_str()) {
            anyhow::bail!("--dlr-mix word {w:?}: use delivered, failed, expired, rejected or sent");
        }
        out.push((w, n.trim().parse().context("--dlr-mix weight")?));
    }
    if out.iter().map(|(_, n)| n).sum::<u32>() == 0 {
        anyhow::bail!("--dlr-mix needs a positive weight");
    }
    Ok(out)
}

fn pick(mix: &[(String, u32)]) -> &str {
    let total: u32 = mix.iter().map(|(_, n)| n).sum();
    let mut r = rand::random_range(0..total.max(1));
    for (w, n) in mix {
        if r < *n {
            return w;
        }
        r -= n;
    }
    "delivered"
}

fn field(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `POST /sms`. The work runs in its own task: a client that gives up (its timeout)
/// drops this future, not the work, so a slow answer still records and accepts the
/// message ("the provider took it but answered late", what a real provider does).
async fn sms(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: Bytes) -> Response {
    match tokio::spawn(take_sms(ctx, headers, body)).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "request handler failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn take_sms(ctx: Arc<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let n = ctx.stats.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if ctx.args.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(ctx.args.latency_ms)).await;
    }
    if let Some(key) = &ctx.args.api_key {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {key}"));
        if !ok {
            ctx.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"code": "20003", "message": "authenticate"}})),
            )
                .into_response();
        }
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let msg: Value = if form {
        Value::Object(
            form_urlencoded::parse(&body)
                .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.into_owned())))
                .collect(),
        )
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return (
                    StatusCode::BAD_REQUEST,
                    Json(
                        json!({"error": {"code": "10001", "message": "body is not a JSON object"}}),
                    ),
                )
                    .into_response();
            }
        }
    };
    if n <= ctx.args.throttle_first || rand::random::<f64>() < ctx.args.throttle_rate {
        ctx.stats.throttled.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"code": "20429", "message": "too many requests"}})),
        )
            .into_response();
    }
    if n <= ctx.args.throttle_first + ctx.args.error_first
        || rand::random::<f64>() < ctx.args.error_rate
    {
        ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"code": "20500", "message": "internal error"}})),
        )
            .into_response();
    }
    let to = field(&msg, "to");
    if to.is_empty()
        || ctx
            .args
            .reject_prefix
            .as_deref()
            .is_some_and(|p| to.starts_with(p))
    {
        ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"code": "21211", "message": format!("invalid 'To' number {to}")}}),
            ),
        )
            .into_response();
    }
    let seq = ctx.stats.accepted.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("prov-{seq}");
    let reference = field(&msg, "reference");
    {
        let mut r = ctx.received.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() >= KEEP {
            r.pop_front();
        }
        r.push_back(json!({"id": id, "to": to, "from": field(&msg, "from"), "text": field(&msg, "text"), "reference": reference}));
    }
    if ctx.args.receipts_url.is_some() {
        let due = tokio::time::Instant::now() + Duration::from_millis(ctx.args.dlr_delay_ms);
        match &ctx.batcher {
            Some(tx) => {
                let _ = tx.send((due, receipt_item(&ctx, &id, &reference)));
            }
            None => {
                let ctx2 = ctx.clone();
                let id2 = id.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(due).await;
                    let item = receipt_item(&ctx2, &id2, &reference);
                    post_receipts(ctx2, item.to_string(), 1, id2).await;
                });
            }
        }
    }
    (
        StatusCode::CREATED,
        Json(json!({"message": {"id": id, "status": "queued"}})),
    )
        .into_response()
}

/// One receipt as the simulator posts it: `{"event": "status", "data": {...}}`.
fn receipt_item(ctx: &Ctx, id: &str, reference: &str) -> Value {
    let status = pick(&ctx.mix);
    let error_code = match status {
        "failed" => json!("30003"),
        "rejected" => json!("30007"),
        "expired" => json!("30036"),
        _ => Value::Null,
    };
    json!({"event": "status", "data": {"id": id, "status": status, "error_code": error_code, "reference": reference}})
}

/// Collects receipts in due order (they are queued at accept time with the same
/// delay, so the queue is sorted) and posts those due together, up to
/// `--receipt-batch` per request.
async fn batch_receipts(
    ctx: std::sync::Weak<Ctx>,
    mut rx: mpsc::UnboundedReceiver<(tokio::time::Instant, Value)>,
    max: usize,
) {
    let mut next: Option<(tokio::time::Instant, Value)> = None;
    loop {
        let (due, first) = match next.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        tokio::time::sleep_until(due).await;
        let mut items = vec![first];
        let now = tokio::time::Instant::now();
        while items.len() < max {
            match rx.try_recv() {
                Ok((d, item)) if d <= now => items.push(item),
                Ok(later) => {
                    next = Some(later);
                    break;
                }
                Err(_) => break,
            }
        }
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        let n = items.len() as u64;
        let what = format!("{n} receipts");
        let body = Value::Array(items).to_string();
        tokio::spawn(post_receipts(ctx, body, n, what));
    }
}

/// POSTs one receipt body (`n` receipts) to the gateway, retrying with back-off until
/// it answers 2xx (at most 20 tries).
async fn post_receipts(ctx: Arc<Ctx>, body: String, n: u64, what: String) {
    let Some(url) = ctx.args.receipts_url.clone() else {
        return;
    };
    let Ok(_slot) = ctx.receipt_slots.clone().acquire_owned().await else {
        return;
    };
    let signature =
        ctx.args.receipt_hmac_secret.as_ref().map(|s| {
            crate::protocols::http_upstream::receipt::hmac_hex(s.as_bytes(), body.as_bytes())
        });
    let mut backoff = Duration::from_millis(100);
    for _ in 0..20 {
        let mut rb = ctx
            .client
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(t) = &ctx.args.receipt_token {
            rb = rb.bearer_auth(t);
        }
        if let Some(sig) = &signature {
            rb = rb.header("X-Signature", sig.as_str());
        }
        match rb.send().await {
            Ok(r) if r.status().is_success() => {
                ctx.stats.receipts_sent.fetch_add(n, Ordering::Relaxed);
                ctx.stats.receipt_posts.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => {
                ctx.stats.receipts_refused.fetch_add(n, Ordering::Relaxed);
                warn!(receipts = %what, status = r.status().as_u16(), "receipt refused by the gateway; retrying");
            }
            Err(e) => warn!(receipts = %what, error = %e, "receipt POST failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn stats(State(ctx): State<Arc<Ctx>>) -> Json<Value> {
    let s = &ctx.stats;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Json(json!({
        "requests": g(&s.requests), "accepted": g(&s.accepted), "throttled": g(&s.throttled),
        "errors": g(&s.errors), "rejected": g(&s.rejected), "unauthorized": g(&s.unauthorized),
        "receipts_sent": g(&s.receipts_sent), "receipts_refused": g(&s.receipts_refused),
        "receipt_posts": g(&s.receipt_posts),
    }))
}

async fn messages(State(ctx): State<Arc<Ctx>>) -> Json<Value> {
    let r = ctx.received.lock().unwrap_or_else(|e| e.into_inner());
    Json(Value::Array(r.iter().cloned().collect()))
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    args: HttpProviderArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (batcher, batch_rx) = if args.receipt_batch > 1 {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let batch_max = usize::from(args.receipt_batch.max(1));
    let ctx = Arc::new(Ctx {
        batcher,
        mix: parse_mix(&args.dlr_mix)?,
        args,
        stats: Stats::default(),
        received: Mutex::new(VecDeque::new()),
        client: crate::http_client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("http client")?,
        receipt_slots: Arc::new(Semaphore::new(64)),
    });
    if let Some(rx) = batch_rx {
        tokio::spawn(batch_receipts(Arc::downgrade(&ctx), rx, batch_max));
    }
    let app = axum::Router::new()
        .route("/sms", post(sms))
        .route("/stats", get(stats))
        .route("/messages", get(messages))
        .with_state(ctx);
    let addr: SocketAddr = listener.local_addr()?;
    info!(%addr, "HTTP provider simulator listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serve")
}

/// Entry point of `smsgw sim http-provider`: runs until SIGTERM/SIGINT.
pub async fn run(args: HttpProviderArgs) -> anyhow::Result<()> {
    let listener = super::bind_listener("", &args.listen).await?;
    serve(listener, args, super::smsc::shutdown_signal()).await
}
