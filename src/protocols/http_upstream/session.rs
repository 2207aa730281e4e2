//! One HTTP upstream "session": the client a bind actor uses to submit parts to a REST
//! provider, with the same shape as the SMPP session (connect, submit → outcome,
//! closed). "Connect" checks that the provider's host answers on TCP; a run of
//! transport failures closes the session so the bind reconnects with back-off and the
//! channel shows `connecting`/`down` instead of failing every message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use super::codec::{PartVars, ProviderAnswer, percent_encode};
use super::options::HttpChannelOptions;
use crate::protocols::smpp::session::{SessionError, SubmitOutcome, SubmitRequest};

/// Transport failures in a row (connect refused, reset, timeout) that close the session.
const FAILURES_TO_CLOSE: u32 = 5;
/// How long a request that passed its `timeout_ms` is still listened to, so that a
/// provider that took the part but answered late is counted
/// (`smsgw_late_submit_responses_total`) and logged, as SMPP's late submit_sm_resp.
const LATE_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// What an HTTP session needs.
#[derive(Debug, Clone)]
pub struct HttpSessionConfig {
    /// Channel id, for logs.
    pub channel: String,
    pub options: Arc<HttpChannelOptions>,
    /// The channel's system_id and password ({system_id}, {password}, basic auth).
    pub system_id: String,
    pub password: String,
    /// Requests in flight at once (the channel's `window`).
    pub window: usize,
    pub connect_timeout: Duration,
}

struct Inner {
    cfg: HttpSessionConfig,
    client: reqwest::Client,
    /// Bounds requests in flight to the channel's window.
    window: Semaphore,
    /// Transport failures since the last answer from the provider.
    failures: AtomicU32,
    closed: watch::Sender<bool>,
    /// Set when the provider refused the channel's credentials (401/403): the session is
    /// closed and the bind shows `down` with this reason, like a refused SMPP login.
    credentials_refused: std::sync::Mutex<Option<String>>,
}

/// A live HTTP upstream session (cheap to clone).
#[derive(Clone)]
pub struct HttpSession {
    inner: Arc<Inner>,
}

/// Splits an SMPP-shaped part into its UDH (hex) and text, and its number and count.
fn part_vars(req: &SubmitRequest, cfg: &HttpSessionConfig) -> PartVars {
    let (udh, payload) = if req.esm_class & 0x40 != 0 && !req.short_message.is_empty() {
        let len = (req.short_message[0] as usize + 1).min(req.short_message.len());
        req.short_message.split_at(len)
    } else {
        (&[][..], req.short_message.as_slice())
    };
    // Concatenation IE 0x00 (8-bit ref) or 0x08 (16-bit ref): total and sequence last.
    let (part, parts) = match udh {
        [_, 0x00, 0x03, _, total, seq, ..] => (u32::from(*seq), u32::from(*total)),
        [_, 0x08, 0x04, _, _, total, seq, ..] => (u32::from(*seq), u32::from(*total)),
        _ => (1, 1),
    };
    PartVars {
        to: req.dest_addr.clone(),
        from: req.source_addr.clone(),
        text: crate::encoding::decode(req.data_coding, payload),
        message_id: req.message_id.clone(),
        part,
        parts,
        data_coding: req.data_coding,
        udh_hex: hex::encode(udh),
        system_id: cfg.system_id.clone(),
        password: cfg.password.clone(),
    }
}

impl HttpSession {
    /// Builds the client and checks that the provider's host accepts TCP connections.
    pub async fn connect(cfg: HttpSessionConfig) -> Result<HttpSession, SessionError> {
        let req = &cfg.options.request;
        let addr = format!("{}:{}", req.host, req.port);
        match tokio::time::timeout(cfg.connect_timeout, tokio::net::TcpStream::connect(&addr)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(SessionError::Connect(e)),
            Err(_) => {
                return Err(SessionError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out"),
                )));
            }
        }
        let client = crate::http_client::builder()
            .connect_timeout(cfg.connect_timeout)
            // The request's own timeout is `req.timeout` (see `submit`); the client only
            // bounds how long a late answer is still awaited.
            .timeout(req.timeout + LATE_ANSWER_WAIT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(cfg.window.max(1))
            .build()
            .map_err(|e| SessionError::Protocol(format!("http client: {e}")))?;
        let (closed, _) = watch::channel(false);
        Ok(HttpSession {
            inner: Arc::new(Inner {
                window: Semaphore::new(cfg.window.max(1)),
                cfg,
                client,
                failures: AtomicU32::new(0),
                closed,
                credentials_refused: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Sends one part; the provider's answer becomes the same outcome an SMSC's
    /// submit_sm_resp would. A transport error or timeout is an error (outcome unknown).
    pub async fn submit(&self, req: SubmitRequest) -> Result<SubmitOutcome, SessionError> {
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        let _permit = self
            .inner
            .window
            .acquire()
            .await
            .map_err(|_| SessionError::Closed)?;
        let cfg = &self.inner.cfg;
        let t = &cfg.options.request;
        let vars = part_vars(&req, cfg);
        let url = t.url.render_with(&vars, percent_encode);
        let mut rb = self.inner.client.request(t.method.clone(), &url);
        for (name, value) in &t.headers {
            rb = rb.header(name.clone(), value.render(&vars).replace(['\r', '\n'], " "));
        }
        if t.basic_auth {
            rb = rb.basic_auth(&cfg.system_id, Some(&cfg.password));
        }
        let body = t.body.render(&vars);
        if let Some(ct) = body.content_type {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, ct)
                .body(body.bytes);
        }
        // Spawned, so a request that passes its timeout is not dropped: its late answer
        // is still read and counted (the part may then be sent twice).
        let mut request = tokio::spawn(async move {
            let resp = rb.send().await?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        });
        let result = match tokio::time::timeout(t.timeout, &mut request).await {
            Ok(Ok(r)) => r.map_err(|e| {
                if e.is_timeout() {
                    SessionError::ResponseTimeout
                } else {
                    SessionError::Io(std::io::Error::other(e.to_string()))
                }
            }),
            Ok(Err(join)) => Err(SessionError::Io(std::io::Error::other(join.to_string()))),
            Err(_) => {
                self.watch_late_answer(request, &req.message_id, vars.part);
                Err(SessionError::ResponseTimeout)
            }
        };
        let (status, bytes) = match result {
            Ok(r) => r,
            Err(e) => {
                let n = self.inner.failures.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(channel = %cfg.channel, message_id = %req.message_id, error = %e, failures = n, "provider request failed");
                if n >= FAILURES_TO_CLOSE {
                    self.close();
                }
                return Err(e);
            }
        };
        self.inner.failures.store(0, Ordering::Relaxed);
        if matches!(status, 401 | 403) {
            // The channel's credentials, not this message: the bind goes down with the
            // reason and reconnects with back-off, as after a refused SMPP login.
            let reason = format!(
                "provider answered {status} {}: check the channel's password/system_id",
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
            );
            warn!(channel = %cfg.channel, status, "provider refused the channel's credentials; bind down");
            *self
                .inner
                .credentials_refused
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(reason);
            self.close();
        }
        let fallback = format!("{}-{}", vars.message_id, vars.part);
        Ok(match cfg.options.response.read(status, &bytes, &fallback) {
            ProviderAnswer::Accepted { provider_id } => {
                debug!(channel = %cfg.channel, message_id = %req.message_id, provider_id = %provider_id, "provider accepted");
                SubmitOutcome::Accepted {
                    message_id: provider_id,
                }
            }
            ProviderAnswer::Refused {
                class,
                code,
                provider_code,
                message,
            } => SubmitOutcome::Refused {
                class,
                code,
                provider_code,
                message,
            },
        })
    }

    /// Keeps listening (at most `LATE_ANSWER_WAIT`) to a request that passed its
    /// timeout: a 2xx then means the provider took a part the gateway sends again.
    fn watch_late_answer(
        &self,
        request: tokio::task::JoinHandle<Result<(u16, bytes::Bytes), reqwest::Error>>,
        message_id: &str,
        part: u32,
    ) {
        let (channel, message_id) = (self.inner.cfg.channel.clone(), message_id.to_string());
        let options = self.inner.cfg.options.clone();
        tokio::spawn(async move {
            let Ok(Ok(Ok((status, bytes)))) = tokio::time::timeout(LATE_ANSWER_WAIT, request).await
            else {
                return;
            };
            let fallback = format!("{message_id}-{part}");
            if let ProviderAnswer::Accepted { provider_id } =
                options.response.read(status, &bytes, &fallback)
            {
                metrics::counter!("smsgw_late_submit_responses_total").increment(1);
                warn!(channel = %channel, message_id = %message_id, part, provider_id = %provider_id,
                    "provider accepted a part after the request's timeout_ms: the part is sent again, so the recipient may get it twice (raise options.request.timeout_ms for a slow provider)");
            }
        });
    }

    /// Why the provider refused the channel's credentials (401/403), if it did: the
    /// reason this closed session's bind shows while it is `down`.
    pub fn credentials_refused(&self) -> Option<String> {
        self.inner
            .credentials_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks the session closed (the bind actor reconnects).
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    /// Resolves when the session is closed.
    pub async fn closed(&self) {
        let mut rx = self.inner.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }
}
