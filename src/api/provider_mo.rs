//! `POST /v1/mo/{channel}`: mobile-originated messages from HTTP upstream providers,
//! the REST counterpart of an SMPP `deliver_sm`. The channel's `options.inbound`
//! credentials (token or HMAC, as for receipts) authenticate the caller; each message
//! is stored for the tenants that own its number through the same path as an SMPP MO
//! (`inbound::receive::store`: committed, with its STOP/START effect, before the 200),
//! so a provider that gets no 200 posts it again and nothing is lost.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{Instrument, info_span};

use super::AppState;
use super::error::ApiError;
use super::receipts::{body_error, posted_form};
use crate::encoding::reassembly::Assembled;
use crate::protocols::http_upstream::HttpChannelOptions;
use crate::protocols::http_upstream::inbound::parse_inbound;
use crate::protocols::http_upstream::options::InboundSettings;
use crate::protocols::http_upstream::receipt::authenticate;

/// The compiled `options.inbound` of an HTTP channel, if it has one.
fn inbound_settings(st: &AppState, channel: &str) -> Option<InboundSettings> {
    let cfg = st.consensus.store().config();
    let ch = cfg.channels.get(channel).filter(|c| c.protocol == "http")?;
    let options: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&ch.options_json).ok()?;
    HttpChannelOptions::parse(&options).ok()?.inbound
}

/// `POST /v1/mo/{channel}`
pub async fn receive(
    State(st): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let span = info_span!("provider_mo", channel = %channel);
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
    // One answer for a channel that does not exist and one that takes no MO: an
    // unauthenticated caller learns no channel names.
    let settings = inbound_settings(&st, &channel).ok_or_else(|| ApiError::not_found("channel"))?;
    let header_of = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    authenticate(&settings.auth, header_of, &body).map_err(|_| {
        metrics::counter!("smsgw_mo_refused_total", "channel" => channel.clone()).increment(1);
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong MO credentials for this channel",
        )
    })?;
    let messages =
        parse_inbound(&settings, &body, posted_form(&headers, &body)).map_err(body_error)?;
    let received = messages.len();
    let stores = messages.into_iter().map(|m| {
        let whole = Assembled {
            source: m.from,
            dest: m.to,
            text: m.text,
            total: 1,
            complete: true,
            missing: Vec::new(),
            duplicates: 0,
            group: None,
        };
        let consensus = st.consensus.clone();
        let channel = channel.clone();
        async move { crate::inbound::receive::store(&consensus, &channel, &whole).await }
    });
    let mut stored = 0usize;
    for owned in futures::future::join_all(stores).await {
        if owned? {
            stored += 1;
        }
    }
    Ok((
        StatusCode::OK,
        Json(json!({"received": received, "stored": stored, "unowned": received - stored})),
    )
        .into_response())
}
