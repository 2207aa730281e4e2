//! The chaos run's webhook receiver: logs every delivery (event id, message id, status,
//! whether the signature checks out) and can be switched to fail (500) or answer slowly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::sync::watch;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// ms since the run started.
    pub t_ms: u64,
    /// `event_id` of the body.
    pub event_id: String,
    /// Message id.
    pub id: String,
    /// Status announced.
    pub status: String,
    /// The whole body, to check that a redelivery is the same event.
    pub body: String,
    /// `Smsgw-Signature` verified with the tenant's secret.
    pub signature_ok: bool,
    /// We answered 2xx.
    pub acked: bool,
}

/// Receiver behaviour.
pub const MODE_OK: u8 = 0;
/// Answer 500.
pub const MODE_FAIL: u8 = 1;
/// Answer 200 after `delay_ms`.
pub const MODE_SLOW: u8 = 2;

/// Shared state of the receiver.
pub struct Receiver {
    /// Every delivery.
    pub log: Mutex<Vec<Delivery>>,
    /// MODE_*.
    pub mode: AtomicU8,
    /// Delay in slow mode.
    pub delay_ms: AtomicU64,
    /// The tenant's webhook secret (set after the tenant is created).
    pub secret: Mutex<Vec<u8>>,
    started: std::time::Instant,
    stop: watch::Sender<bool>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Receiver {
    /// Serves on a free port until dropped.
    pub async fn start(started: std::time::Instant) -> std::io::Result<Arc<Receiver>> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let (stop, mut stop_rx) = watch::channel(false);
        let r = Arc::new(Receiver {
            log: Mutex::new(Vec::new()),
            mode: AtomicU8::new(MODE_OK),
            delay_ms: AtomicU64::new(0),
            secret: Mutex::new(Vec::new()),
            started,
            stop,
            addr,
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(r)
    }

    /// The callback URL to give the tenant.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// A copy of the log.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mode = r.mode.load(Ordering::Relaxed);
    if mode == MODE_SLOW {
        tokio::time::sleep(Duration::from_millis(r.delay_ms.load(Ordering::Relaxed))).await;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let sig = headers
        .get("smsgw-signature")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let secret = r.secret.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let now = chrono::Utc::now().timestamp();
    // Wide tolerance: a skewed node's timestamp is still a valid signature.
    let signature_ok = crate::webhooks::signature::verify(&secret, sig, &body, now, 24 * 3600);
    let acked = mode != MODE_FAIL;
    let d = Delivery {
        t_ms: r.started.elapsed().as_millis() as u64,
        event_id: v["event_id"].as_str().unwrap_or("").to_string(),
        id: v["id"].as_str().unwrap_or("").to_string(),
        status: v["status"].as_str().unwrap_or("").to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
        signature_ok,
        acked,
    };
    r.log.lock().unwrap_or_else(|e| e.into_inner()).push(d);
    if acked {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}
