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
            .timeout(req.timeout)
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
        let result = async {
            let resp = rb.send().await?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let (status, bytes) = match result {
            Ok(r) => r,
            Err(e) => {
                let n = self.inner.failures.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(channel = %cfg.channel, message_id = %req.message_id, error = %e, failures = n, "provider request failed");
                if n >= FAILURES_TO_CLOSE {
                    self.close();
                }
                return Err(if e.is_timeout() {
                    SessionError::ResponseTimeout
                } else {
                    SessionError::Io(std::io::Error::other(e.to_string()))
                });
            }
        };
        self.inner.failures.store(0, Ordering::Relaxed);
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
