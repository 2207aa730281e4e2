//! The protocol-neutral operator session the bind actors drive. Every
//! protocol's session has the same contract as the SMPP one: `connect` logs in
//! (or fails with a typed [`SessionError`]), `submit` sends one part within the
//! window and returns the operator's id or its refusal (as an SMPP-equivalent
//! command_status, so one retry policy serves all), inbound receipts and MO
//! messages arrive on the [`Inbound`] channel with an explicit ack, `closed`
//! resolves when the connection is gone, `unbind` ends it cleanly.
//!
//! Adding a protocol = one variant in [`ChannelSession`] and one arm in each
//! method below (plus, if it needs something running beside its sessions,
//! a [`Sidecar`] variant).

use std::time::Duration;

use tokio::sync::mpsc;

use super::cn::{self, CnConfig, CnSession, Dialect, Protocol, SgipListener};
use super::smpp::{
    BindMode, Inbound, Session, SessionConfig, SessionError, SubmitOutcome, SubmitRequest,
};
use crate::state::{BindKind, Channel};

/// One live operator session of any protocol; cheap to clone.
#[derive(Debug, Clone)]
pub enum ChannelSession {
    /// SMPP 3.4.
    Smpp(Session),
    /// CMPP 2.0/3.0, SMGP 3.0 or SGIP 1.2 (submit direction).
    Cn(CnSession),
}

/// How long a request waits for its response: `options.response_timeout_seconds`
/// (validated 1..=300 when the channel is stored), else 10 s.
pub fn response_timeout(c: &Channel) -> Duration {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&c.options_json)
        .ok()
        .and_then(|o| o.get("response_timeout_seconds").and_then(|v| v.as_u64()))
        .filter(|s| (1..=MAX_RESPONSE_TIMEOUT_S).contains(s))
        .map_or(DEFAULT_RESPONSE_TIMEOUT, Duration::from_secs)
}

/// The response timeout of a channel that sets none.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `options.response_timeout_seconds`.
pub const MAX_RESPONSE_TIMEOUT_S: u64 = 300;

/// The SMPP session settings of a channel.
pub fn smpp_config(c: &Channel) -> SessionConfig {
    SessionConfig {
        host: c.host.clone(),
        port: c.port,
        system_id: c.system_id.clone(),
        password: c.password.clone(),
        system_type: c.system_type.clone(),
        bind: match c.bind {
            BindKind::Transceiver => BindMode::Transceiver,
            BindKind::Transmitter => BindMode::Transmitter,
        },
        window: c.window.max(1) as usize,
        enquire_link_interval: Duration::from_secs(u64::from(c.enquire_link_seconds.max(1))),
        response_timeout: response_timeout(c),
        connect_timeout: Duration::from_secs(5),
        addressing: super::smpp::Addressing::of_options_json(&c.options_json),
    }
}

fn cn_dialect(c: &Channel) -> Result<Dialect, SessionError> {
    let options: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&c.options_json).unwrap_or_default();
    let opts = cn::options::parse(&c.protocol, &c.system_id, &c.password, &options)
        .map_err(|e| SessionError::Protocol(format!("{}: {}", e.field, e.message)))?;
    let protocol = Protocol::from_channel(&c.protocol, &opts)
        .ok_or_else(|| SessionError::Protocol(format!("unknown protocol {:?}", c.protocol)))?;
    Ok(Dialect {
        protocol,
        opts,
        account: c.system_id.clone(),
        secret: c.password.clone(),
    })
}

/// The CMPP/SMGP/SGIP session settings of a channel: window, C =
/// `enquire_link_seconds`, T = 10 s, N = `options.keepalive_retries`.
pub fn cn_config(c: &Channel) -> Result<CnConfig, SessionError> {
    Ok(CnConfig {
        host: c.host.clone(),
        port: c.port,
        dialect: cn_dialect(c)?,
        window: c.window.max(1) as usize,
        keepalive_interval: Duration::from_secs(u64::from(c.enquire_link_seconds.max(1))),
        response_timeout: response_timeout(c),
        connect_timeout: Duration::from_secs(5),
    })
}

/// Waits until every slot of a session's window is free again (nothing outstanding),
/// at most `limit`; false if submits were still outstanding then. The slots are handed
/// back at once: a session that stopped taking submits just wanted to know.
pub(crate) async fn wait_window_idle(
    window: &tokio::sync::Semaphore,
    size: u32,
    limit: Duration,
) -> bool {
    matches!(
        tokio::time::timeout(limit, window.acquire_many(size)).await,
        Ok(Ok(_))
    )
}

/// True for the protocols whose channels run bind actors with a [`ChannelSession`].
pub fn runs_sessions(protocol: &str) -> bool {
    matches!(protocol, "smpp" | "cmpp" | "smgp" | "sgip")
}

impl ChannelSession {
    /// Connects and logs in with the channel's protocol and credentials.
    pub async fn connect(
        c: &Channel,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<ChannelSession, SessionError> {
        match c.protocol.as_str() {
            "cmpp" | "smgp" | "sgip" => Ok(ChannelSession::Cn(
                CnSession::connect(cn_config(c)?, inbound).await?,
            )),
            _ => Ok(ChannelSession::Smpp(
                Session::connect(smpp_config(c), inbound).await?,
            )),
        }
    }

    /// Submits one part (waits for a window slot and the response).
    pub async fn submit(&self, req: SubmitRequest) -> Result<SubmitOutcome, SessionError> {
        match self {
            ChannelSession::Smpp(s) => s.submit(req).await,
            ChannelSession::Cn(s) => s.submit(req).await,
        }
    }

    /// Ends the session cleanly (bounded wait).
    pub async fn unbind(&self) {
        match self {
            ChannelSession::Smpp(s) => s.unbind().await,
            ChannelSession::Cn(s) => s.unbind().await,
        }
    }

    /// Resolves when the connection is gone.
    pub async fn closed(&self) {
        match self {
            ChannelSession::Smpp(s) => s.closed().await,
            ChannelSession::Cn(s) => s.closed().await,
        }
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        match self {
            ChannelSession::Smpp(s) => s.is_closed(),
            ChannelSession::Cn(s) => s.is_closed(),
        }
    }

    /// Why the session closed (peer closed, keepalive timeout, hung: no submit
    /// answered...), once it has: what the bind actor logs when it binds again.
    pub fn close_reason(&self) -> Option<String> {
        match self {
            ChannelSession::Smpp(s) => s.close_reason(),
            ChannelSession::Cn(s) => s.close_reason(),
        }
    }

    /// The last keepalive round trip (SMPP enquire_link), for the channel's health score;
    /// none for protocols whose session does not measure it.
    pub fn last_enquire_link_rtt(&self) -> Option<std::time::Duration> {
        match self {
            ChannelSession::Smpp(s) => s.last_enquire_link_rtt(),
            ChannelSession::Cn(_) => None,
        }
    }
}

/// Something a channel runs beside its sessions, for as long as its first bind
/// actor lives.
#[derive(Debug)]
pub enum Sidecar {
    /// SGIP: the listener the SMG binds to for Deliver/Report.
    SgipListener(SgipListener),
}

/// Starts the channel's sidecar if its protocol has one (SGIP with
/// `options.listen`); None otherwise.
pub async fn start_sidecar(
    c: &Channel,
    inbound: mpsc::Sender<Inbound>,
) -> Result<Option<Sidecar>, SessionError> {
    if c.protocol != "sgip" {
        return Ok(None);
    }
    let dialect = cn_dialect(c)?;
    let Some(addr) = dialect.opts.listen.clone() else {
        return Ok(None);
    };
    let l = SgipListener::start(&addr, dialect, inbound)
        .await
        .map_err(SessionError::Io)?;
    Ok(Some(Sidecar::SgipListener(l)))
}
