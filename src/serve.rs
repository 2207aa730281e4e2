//! Serving HTTP on the node's two listeners (public API and cluster port) with limits
//! that keep idle or slow clients from taking the node down: a cap on open connections
//! (more wait in the kernel's listen backlog, so they hold no file descriptor of ours),
//! a deadline for each request head, and an idle timeout on every connection.
//!
//! Before these, ~1,100 idle TCP connections under `ulimit -n 1024` used up the
//! descriptors, the Raft log write failed with EMFILE and the node exited.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

/// The cluster port's header timeout (also how long an idle kept-alive connection of a
/// peer stays open): above the 30 s peers keep idle pooled connections.
pub const CLUSTER_HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// The most connections `http_max_connections` defaults to.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Open connections of the cluster port at most: a few per member (Raft RPC pool, actor
/// mesh, forwarded writes); the rest of the descriptors stay with the API and the store.
pub const CLUSTER_MAX_CONNECTIONS: usize = 512;

/// The limits one listener serves under.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// How long a connection may take to deliver a whole request head (also how long a
    /// kept-alive connection may sit idle between requests).
    pub header_timeout: Duration,
    /// How long a connection may go without a byte read or written.
    pub idle_timeout: Duration,
    /// Open connections at most; the next ones wait in the listen backlog.
    pub max_connections: usize,
}

/// `http_max_connections` when unset: half the open-file limit (the other half is for
/// the store, Raft, operator binds and webhooks), at most [`DEFAULT_MAX_CONNECTIONS`].
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    match open_files {
        Some(n) => usize::try_from(n / 2)
            .unwrap_or(usize::MAX)
            .clamp(16, DEFAULT_MAX_CONNECTIONS),
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// Raises this process's soft open-file limit to its hard limit (a default soft limit of
/// 1024 is far below what a busy node holds) and returns the soft limit in force after
/// it, logging the change. None when the limit cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
            return None;
        }
        let before = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: setrlimit only reads the struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                info!(
                    before,
                    after = raised.rlim_cur,
                    "raised the open-file limit (soft) to the hard limit"
                );
                return Some(raised.rlim_cur);
            }
            warn!(
                soft = before, hard = lim.rlim_max, error = %std::io::Error::last_os_error(),
                "cannot raise the open-file limit; keeping the soft limit"
            );
        } else {
            info!(
                limit = before,
                "open-file limit (soft = hard) left as it is"
            );
        }
        Some(before)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves; then stops
/// accepting, lets each open connection finish its request (graceful), and returns
/// when every connection is closed. `name` labels the logs ("http", "cluster").
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ServeLimits,
    name: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_full_log: Option<Instant> = None;
    loop {
        // A permit first: over the cap, connections stay in the kernel's backlog and
        // take no descriptor here.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        if permits.available_permits() == 0
            && last_full_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            last_full_log = Some(Instant::now());
            warn!(
                listener = name,
                max_connections = max,
                "connection cap reached: new connections wait in the backlog until one closes"
            );
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning; the permit
                // goes back on drop.
                warn!(listener = name, error = %e, "accept failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, limits, stop).await;
            drop(permit);
        });
    }
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it closes.
    let _ = permits
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

/// One connection: HTTP/1.1 (with upgrades, for the actor mesh) under the header
/// timeout, closed when idle for longer than the idle timeout or, after a shutdown
/// signal, once its request is answered.
async fn serve_connection(
    stream: TcpStream,
    app: axum::Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        started,
        activity: activity.clone(),
    });
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let check_every =
        (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    debug!(error = %e, "connection closed with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = tick.tick() => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(last) > limits.idle_timeout {
                    debug!(idle_seconds = limits.idle_timeout.as_secs(), "idle connection closed");
                    return;
                }
            }
        }
    }
}

/// A TCP stream that records when a byte last moved (ms since `started`), for the idle
/// timeout.
struct Tracked {
    inner: TcpStream,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
