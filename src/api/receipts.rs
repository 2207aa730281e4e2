//! `POST /v1/receipts/{channel}`: delivery receipts from HTTP upstream providers. The
//! channel's own credentials (token or HMAC, see `protocols::http_upstream::options`)
//! authenticate the caller; each receipt is mapped to the common status with the
//! channel's table and committed to Raft (`Op::Receipt`) before the 200, so a provider
//! that gets no 200 posts it again and nothing is lost.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::Instrument;
use tracing::{info_span, warn};

use super::AppState;
use super::error::ApiError;
use crate::protocols::http_upstream::HttpChannelOptions;
use crate::protocols::http_upstream::options::ReceiptSettings;
use crate::protocols::http_upstream::receipt::{
    ReceiptError, authenticate, is_form_body, parse_receipts,
};
use crate::protocols::http_upstream::status_map::CommonStatus;
use crate::protocols::smpp::receipt::id_keys;
use crate::state::{ErrorInfo, Op, OpResult, ReceiptOutcome};

/// The stored receipt outcome of a common status (`None`: not final, nothing to store
/// beyond "intermediate").
fn outcome_of(s: CommonStatus) -> ReceiptOutcome {
    match s {
        CommonStatus::Accepted | CommonStatus::Sent => ReceiptOutcome::Intermediate,
        CommonStatus::Delivered => ReceiptOutcome::Delivered,
        CommonStatus::Expired => ReceiptOutcome::Expired,
        CommonStatus::Undeliverable | CommonStatus::Rejected | CommonStatus::Unknown => {
            ReceiptOutcome::Undelivered
        }
    }
}

/// Compiled receipt settings per channel, with the options text they came from: a
/// receipt costs a string compare instead of compiling the channel's options again.
type SettingsCache = Mutex<HashMap<String, (String, Option<Arc<ReceiptSettings>>)>>;

fn settings_of(channel: &str, options_json: &str) -> Option<Arc<ReceiptSettings>> {
    static CACHE: OnceLock<SettingsCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((text, s)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(channel)
        && text == options_json
    {
        return s.clone();
    }
    let compiled = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(options_json)
        .ok()
        .and_then(|o| HttpChannelOptions::parse(&o).ok())
        .and_then(|o| o.receipts)
        .map(Arc::new);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() > 10_000 {
        c.clear();
    }
    c.insert(
        channel.to_string(),
        (options_json.to_string(), compiled.clone()),
    );
    compiled
}

/// Whether a provider's POST (receipts or MO) is form fields rather than JSON.
pub(super) fn posted_form(headers: &HeaderMap, body: &[u8]) -> bool {
    is_form_body(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        body,
    )
}

/// A provider's POST body that cannot be read, as the API answers it: 400 when it is not
/// JSON (or form fields) at all, else 422 naming the missing or wrong field.
pub(super) fn body_error(e: ReceiptError) -> ApiError {
    match e {
        ReceiptError::Invalid { field, message } if field == "body" => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
        }
        ReceiptError::Invalid { field, message } => ApiError::invalid(&field, message),
        ReceiptError::Unauthorized => ApiError::unauthorized(),
    }
}

/// Receipts of one POST proposed together in one write.
const RECEIPTS_PER_WRITE: usize = 500;

/// `POST /v1/receipts/{channel}`
pub async fn receive(
    State(st): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let span = info_span!("receipts", channel = %channel);
    receive_inner(st, channel, headers, body)
        .instrument(span)
        .await
}

async fn receive_inner(
    st: AppState,
    channel: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Only the compiled receipt settings are needed: read them under the config guard
    // instead of cloning the channel row for every receipt POST.
    let settings = {
        let cfg = st.consensus.store().config();
        let Some(ch) = cfg.channels.get(&channel) else {
            return Err(ApiError::not_found("channel"));
        };
        (ch.protocol == "http")
            .then(|| settings_of(&channel, &ch.options_json))
            .flatten()
    }
    // The same answer as for a channel that does not exist: this endpoint takes no
    // credentials, so it must not tell which channel names exist.
    .ok_or_else(|| ApiError::not_found("channel"))?;
    let header_of = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    authenticate(&settings.auth, header_of, &body).map_err(|_| {
        metrics::counter!("smsgw_receipts_refused_total", "channel" => channel.clone())
            .increment(1);
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong receipt credentials for this channel",
        )
    })?;
    let receipts =
        parse_receipts(&settings, &body, posted_form(&headers, &body)).map_err(body_error)?;
    let at = crate::clock::now_ms();
    let mut ignored = 0u64;
    let mut outcomes = Vec::new();
    let mut ops = Vec::new();
    for r in receipts {
        let Some(status) = r.status else {
            ignored += 1;
            warn!(channel = %channel, provider_id = %r.provider_id, status = %r.raw_status, "receipt status not in the channel's status_map; not final");
            continue;
        };
        let outcome = outcome_of(status);
        let error = status.error_code().map(|code| ErrorInfo {
            code: code.to_string(),
            message: format!("provider receipt {}", r.raw_status),
            smsc_code: r.error_code.clone(),
        });
        outcomes.push(outcome);
        ops.push(Op::Receipt {
            channel: channel.clone(),
            keys: id_keys(&r.provider_id),
            smsc_message_id: r.provider_id,
            outcome,
            error,
            at,
        });
    }
    // A list of receipts goes to the proposer as a few multi-op writes (one queue
    // message each) rather than one write per receipt.
    let mut chunks = Vec::new();
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(RECEIPTS_PER_WRITE));
        chunks.push(std::mem::replace(&mut ops, rest));
    }
    let consensus = &st.consensus;
    let written =
        futures::future::join_all(chunks.into_iter().map(|ops| consensus.propose_many(ops))).await;
    let mut results = Vec::with_capacity(outcomes.len());
    for w in written {
        results.extend(w?);
    }
    let (mut matched, mut parked) = (0u64, 0u64);
    let rt = st.registry.find(&channel);
    for (outcome, r) in outcomes.into_iter().zip(results) {
        match r {
            OpResult::ReceiptMatched { .. } => {
                matched += 1;
                if let Some(rt) = &rt {
                    match outcome {
                        ReceiptOutcome::Delivered => rt.delivered.fetch_add(1, Ordering::Relaxed),
                        ReceiptOutcome::Intermediate => 0,
                        _ => rt.undelivered.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
            _ => parked += 1,
        }
    }
    metrics::counter!("smsgw_receipts_total", "channel" => channel.clone(), "matched" => "yes")
        .increment(matched);
    metrics::counter!("smsgw_receipts_total", "channel" => channel.clone(), "matched" => "parked")
        .increment(parked);
    Ok((
        StatusCode::OK,
        Json(json!({"received": matched + parked + ignored, "matched": matched, "parked": parked, "ignored": ignored})),
    )
        .into_response())
}
