//! One CMPP / SMGP / SGIP session, SP side, with the same contract as the SMPP
//! session (`crate::protocols::smpp::Session`): connect + login, windowed
//! pipelined submits, the protocol's active test every C seconds (closing
//! after N unanswered ones, T = the response timeout), inbound reports and MO
//! messages handed over with an explicit [`DeliverAck`], terminate/exit/unbind.
//! A session that closes stays closed; the bind actor reconnects with back-off.
//! A frame that cannot be decoded closes the session: the peer is confused and
//! a fresh login is the clean way out (unanswered submits are resent by the
//! gateway, so nothing queued is lost).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use super::dialect::{Dialect, Event, RespKind};
use super::wire::{MAX_PDU, MIN_PDU};
use crate::protocols::sgip::codec::Seq;
use crate::protocols::smpp::status_map::{
    SubmitErrorClass, classify_submit_status, submit_error_code,
};
use crate::protocols::smpp::{DeliverAck, Inbound, SessionError, SubmitOutcome, SubmitRequest};

/// How long `unbind` waits for the exit response.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Most inbound reports waiting for room in the gateway's channel.
const INBOUND_OVERFLOW: usize = 1024;

/// Everything needed to open one session.
#[derive(Debug, Clone)]
pub struct CnConfig {
    /// Operator host.
    pub host: String,
    /// Operator port.
    pub port: u16,
    /// Protocol, options and credentials.
    pub dialect: Dialect,
    /// Most submits awaiting a response (the specs recommend 16).
    pub window: usize,
    /// Active test interval C (zero disables it).
    pub keepalive_interval: Duration,
    /// Response timeout T.
    pub response_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

/// A frame to write, or the order to shut the socket.
pub(crate) enum Out {
    Frame(Vec<u8>),
    Close,
}

/// Frames of any of the three protocols: a 4-octet total length (itself included).
pub fn frame_codec() -> FrameCodec {
    FrameCodec(
        LengthDelimitedCodec::builder()
            .length_field_offset(0)
            .length_field_length(4)
            .length_adjustment(0)
            .num_skip(0)
            .max_frame_length(MAX_PDU)
            .new_codec(),
    )
}

/// The frame decoder of the three protocols: `LengthDelimitedCodec` (which
/// refuses more than [`MAX_PDU`]) plus a floor of [`MIN_PDU`]. On its own it
/// hands out a frame of the declared length even when that is shorter than
/// the 4-octet prefix: a declared 0 gave an empty frame that consumed
/// nothing, again and again, and 1–3 cut the stream inside the prefix
/// (found by the `cmpp_frame` fuzz target). Such a length is a framing error.
#[derive(Debug)]
pub struct FrameCodec(LengthDelimitedCodec);

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        // With num_skip(0) the prefix stays in `src` until the whole frame is
        // taken, so these are always the current frame's first four octets.
        if let Some(&[a, b, c, d]) = src.get(..4) {
            let declared = u32::from_be_bytes([a, b, c, d]);
            if usize::try_from(declared).is_ok_and(|n| n < MIN_PDU) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame length {declared} is below the {MIN_PDU}-octet header"),
                ));
            }
        }
        self.0.decode(src)
    }
}

/// Largest request counter; the next one after it is 1 (SGIP and CMPP keep
/// it below 2^31 so that it never reads as negative).
const MAX_N: u32 = 0x7FFF_FFFF;

/// The request counter of every CMPP / SMGP / SGIP session of this process.
/// SGIP makes a submit's sequence number (node id, MMDDhhmmss, counter) the
/// message id the Report refers to, so the counter must not restart with a
/// connection: a reconnect within the same second, or two channels with the
/// same `node_id`, repeated ids and receipts went to the wrong messages.
/// Seeded from the clock so that a restarted process does not begin where the
/// previous one did.
static NEXT_N: LazyLock<AtomicU32> = LazyLock::new(|| {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    AtomicU32::new((ms % u128::from(MAX_N)) as u32)
});

/// The next request counter, 1..=[`MAX_N`], increasing by one per call across
/// every session of the process and wrapping from [`MAX_N`] to 1.
fn next_request_n() -> u32 {
    let step = |n: u32| if n >= MAX_N { 1 } else { n + 1 };
    match NEXT_N.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(step(n))) {
        Ok(prev) | Err(prev) => step(prev),
    }
}

struct Resp {
    kind: RespKind,
    status: u32,
    raw: u32,
    msg_id: String,
}

#[derive(Default)]
struct Pending {
    map: HashMap<u32, oneshot::Sender<Resp>>,
    closed: bool,
}

struct Inner {
    out: mpsc::UnboundedSender<Out>,
    pending: Mutex<Pending>,
    window: Semaphore,
    overflow: Arc<Semaphore>,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
    close_reason: Mutex<Option<String>>,
    dialect: Arc<Dialect>,
    response_timeout: Duration,
    label: String,
    /// Slots of `window` (what `unbind` waits to hold again: nothing outstanding).
    window_size: u32,
    /// Set by `unbind`: new submits are refused (`Unbinding`) while the outstanding
    /// ones get their responses.
    draining: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn next_n(&self) -> u32 {
        next_request_n()
    }

    fn register(&self, n: u32) -> Result<oneshot::Receiver<Resp>, SessionError> {
        let (tx, rx) = oneshot::channel();
        let mut p = lock(&self.pending);
        if p.closed {
            return Err(SessionError::Closed);
        }
        p.map.insert(n, tx);
        Ok(rx)
    }

    fn unregister(&self, n: u32) {
        lock(&self.pending).map.remove(&n);
    }

    fn complete(&self, n: u32, resp: Resp) {
        let waiter = lock(&self.pending).map.remove(&n);
        match waiter {
            Some(tx) => {
                let _ = tx.send(resp);
            }
            None => debug!(session = %self.label, n, "response for no pending request"),
        }
    }

    fn send(&self, frame: Vec<u8>) -> Result<(), SessionError> {
        self.out
            .send(Out::Frame(frame))
            .map_err(|_| SessionError::Closed)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self, reason: &str) {
        let drained = {
            let mut p = lock(&self.pending);
            if p.closed {
                return;
            }
            p.closed = true;
            std::mem::take(&mut p.map)
        };
        drop(drained);
        *lock(&self.close_reason) = Some(reason.to_string());
        self.closed.store(true, Ordering::Release);
        self.window.close();
        let _ = self.out.send(Out::Close);
        self.closed_tx.send_replace(true);
        info!(session = %self.label, protocol = self.dialect.protocol.name(), reason, "session closed");
    }

    fn closed_future(&self) -> impl Future<Output = ()> + use<> {
        let mut rx = self.closed_tx.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }
}

struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.close("all session handles dropped");
    }
}

/// A logged-in CMPP / SMGP / SGIP session; cheap to clone. Dropping the last
/// clone closes the connection.
#[derive(Clone)]
pub struct CnSession {
    handle: Arc<Handle>,
}

impl fmt::Debug for CnSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnSession")
            .field("label", &self.inner().label)
            .field("closed", &self.is_closed())
            .finish()
    }
}

type Reader = FramedRead<OwnedReadHalf, FrameCodec>;

impl CnSession {
    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// TCP connect + login (CMPP_CONNECT / SMGP Login / SGIP Bind with LoginType 1).
    /// A non-zero login status is Err(LoginRejected) naming the protocol and status.
    pub async fn connect(
        cfg: CnConfig,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<CnSession, SessionError> {
        let label = format!("{}@{}:{}", cfg.dialect.account, cfg.host, cfg.port);
        let stream = match timeout(
            cfg.connect_timeout,
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        {
            Err(_) => {
                return Err(SessionError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
            Ok(Err(e)) => return Err(SessionError::Connect(e)),
            Ok(Ok(s)) => s,
        };
        stream.set_nodelay(true)?;
        let (rd, mut wr) = stream.into_split();
        let mut reader = FramedRead::with_capacity(rd, frame_codec(), 64 * 1024);
        let dialect = Arc::new(cfg.dialect);
        let login_seq = dialect.seq(next_request_n());
        wr.write_all(&dialect.login(login_seq)).await?;
        let status = timeout(
            cfg.response_timeout,
            wait_login(&mut reader, &mut wr, &dialect),
        )
        .await
        .map_err(|_| SessionError::ResponseTimeout)??;
        if status != 0 {
            return Err(SessionError::LoginRejected {
                status,
                detail: dialect.protocol.login_rejection(status),
            });
        }
        info!(session = %label, protocol = dialect.protocol.name(), "session logged in");
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (closed_tx, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            out: out_tx,
            pending: Mutex::new(Pending::default()),
            window: Semaphore::new(cfg.window.max(1)),
            overflow: Arc::new(Semaphore::new(INBOUND_OVERFLOW)),
            closed: AtomicBool::new(false),
            closed_tx,
            close_reason: Mutex::new(None),
            dialect,
            response_timeout: cfg.response_timeout,
            label,
            window_size: u32::try_from(cfg.window.max(1)).unwrap_or(u32::MAX),
            draining: AtomicBool::new(false),
        });
        tokio::spawn(writer_task(wr, out_rx, inner.clone()));
        tokio::spawn(reader_task(reader, inner.clone(), inbound));
        if !cfg.keepalive_interval.is_zero() && inner.dialect.keepalive(Seq::default()).is_some() {
            let retries = inner.dialect.opts.keepalive_retries.max(1);
            tokio::spawn(keepalive_task(
                inner.clone(),
                cfg.keepalive_interval,
                retries,
            ));
        }
        Ok(CnSession {
            handle: Arc::new(Handle { inner }),
        })
    }

    /// Waits for a window slot, sends the submit, waits for its response. A
    /// part no Chinese encoding can carry is answered `Refused` with
    /// `channel_unavailable` and no operator code, without being sent; an
    /// operator's refusal is `Refused` with the retry class and contract code of
    /// its SMPP equivalent (see each `status_map`) and the protocol's own result
    /// as the provider code.
    pub async fn submit(&self, req: SubmitRequest) -> Result<SubmitOutcome, SessionError> {
        let inner = self.inner();
        if inner.is_closed() {
            return Err(SessionError::Closed);
        }
        if inner.draining.load(Ordering::Acquire) {
            return Err(SessionError::Unbinding);
        }
        let _permit = inner
            .window
            .acquire()
            .await
            .map_err(|_| SessionError::Closed)?;
        if inner.draining.load(Ordering::Acquire) {
            return Err(SessionError::Unbinding);
        }
        let n = inner.next_n();
        let seq = inner.dialect.seq(n);
        let (frame, own_id) = match inner.dialect.submit(seq, &req) {
            Ok(x) => x,
            Err(e) => {
                // The gateway's own limit, not the operator's refusal: nothing was sent.
                let protocol = inner.dialect.protocol.name();
                warn!(session = %inner.label, protocol, error = %e, "part cannot be carried by this protocol; not sent");
                return Ok(SubmitOutcome::Refused {
                    class: SubmitErrorClass::Permanent,
                    code: "channel_unavailable".into(),
                    provider_code: String::new(),
                    message: format!(
                        "this {protocol} channel cannot carry the part ({e}); nothing was sent to the operator"
                    ),
                });
            }
        };
        let rx = inner.register(n)?;
        let mut guard = PendingGuard {
            inner,
            n,
            armed: true,
        };
        inner.send(frame)?;
        let resp = match timeout(inner.response_timeout, rx).await {
            Err(_) => return Err(SessionError::ResponseTimeout),
            Ok(Err(_)) => {
                guard.armed = false;
                return Err(SessionError::Closed);
            }
            Ok(Ok(r)) => {
                guard.armed = false;
                r
            }
        };
        match (resp.kind, resp.status) {
            (RespKind::Submit, 0) => Ok(SubmitOutcome::Accepted {
                message_id: own_id.unwrap_or(resp.msg_id),
            }),
            (RespKind::Submit, s) => {
                let protocol = inner.dialect.protocol;
                warn!(session = %inner.label, protocol = protocol.name(), result = resp.raw, class = format_args!("{s:#x}"), "operator refused a submit");
                // The retry class and the contract's code come from the SMPP equivalent;
                // `smsc_code` keeps the operator's own result as it was received.
                Ok(SubmitOutcome::Refused {
                    class: classify_submit_status(s),
                    code: submit_error_code(s).into(),
                    provider_code: resp.raw.to_string(),
                    message: format!(
                        "the operator refused the message ({} {} {})",
                        protocol.name(),
                        protocol.submit_result_field(),
                        resp.raw
                    ),
                })
            }
            (k, s) => Err(SessionError::Protocol(format!(
                "unexpected {k:?} response (status {s}) to a submit"
            ))),
        }
    }

    /// Refuses new submits, waits for the outstanding ones to be answered (at most the
    /// response timeout), sends terminate / exit / unbind, waits (2 s at most) for its
    /// response, closes (as the SMPP session does: no duplicates on a drain).
    pub async fn unbind(&self) {
        let inner = self.inner();
        if inner.is_closed() {
            return;
        }
        inner.draining.store(true, Ordering::Release);
        let limit = inner.response_timeout + CLOSE_GRACE;
        if !crate::protocols::session::wait_window_idle(&inner.window, inner.window_size, limit)
            .await
        {
            warn!(session = %inner.label, "submits still outstanding after the response timeout; logging out anyway");
        }
        let n = inner.next_n();
        if let Ok(rx) = inner.register(n) {
            if inner.send(inner.dialect.exit(inner.dialect.seq(n))).is_ok() {
                let _ = timeout(CLOSE_GRACE, rx).await;
            } else {
                inner.unregister(n);
            }
        }
        inner.close("unbound by us");
    }

    /// Resolves when the connection is gone.
    pub async fn closed(&self) {
        self.inner().closed_future().await
    }

    /// True once closed; it never reopens.
    pub fn is_closed(&self) -> bool {
        self.inner().is_closed()
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        lock(&self.inner().close_reason).clone()
    }
}

struct PendingGuard<'a> {
    inner: &'a Inner,
    n: u32,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.unregister(self.n);
        }
    }
}

async fn wait_login(
    reader: &mut Reader,
    wr: &mut OwnedWriteHalf,
    dialect: &Dialect,
) -> Result<u32, SessionError> {
    loop {
        let frame = match reader.next().await {
            None => {
                return Err(SessionError::Protocol(
                    "connection closed before the login response".into(),
                ));
            }
            Some(Err(e)) => return Err(SessionError::Io(e)),
            Some(Ok(f)) => f,
        };
        match dialect.decode(&frame) {
            Ok(Event::Resp {
                kind: RespKind::Login,
                status,
                ..
            }) => return Ok(status),
            Ok(Event::KeepAlive(seq)) => {
                if let Some(f) = dialect.keepalive_resp(seq) {
                    wr.write_all(&f).await?;
                }
            }
            Ok(other) => debug!(?other, "ignoring PDU while logging in"),
            Err(e) => {
                return Err(SessionError::Protocol(format!(
                    "malformed login response: {e}"
                )));
            }
        }
    }
}

/// Writes every queued frame, batching what is already queued into one write.
pub(crate) async fn write_frames(
    wr: &mut OwnedWriteHalf,
    rx: &mut mpsc::UnboundedReceiver<Out>,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut close = false;
        match first {
            Out::Frame(f) => buf.extend_from_slice(&f),
            Out::Close => close = true,
        }
        let mut yielded = false;
        while !close && buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(Out::Frame(f)) => buf.extend_from_slice(&f),
                Ok(Out::Close) => close = true,
                // Once, let the tasks about to queue a frame run: one write for several.
                Err(_) if !yielded => {
                    yielded = true;
                    tokio::task::yield_now().await;
                }
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            wr.write_all(&buf).await?;
            buf.clear();
        }
        if close {
            let _ = wr.shutdown().await;
            return Ok(());
        }
    }
    Ok(())
}

async fn writer_task(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    inner: Arc<Inner>,
) {
    if let Err(e) = write_frames(&mut wr, &mut rx).await {
        // Responses already in the socket are read by the reader until EOF.
        tokio::time::sleep(Duration::from_secs(1)).await;
        inner.close(&format!("write error: {e}"));
    }
}

async fn reader_task(mut reader: Reader, inner: Arc<Inner>, inbound: mpsc::Sender<Inbound>) {
    let closed = inner.closed_future();
    tokio::pin!(closed);
    let reason = loop {
        let frame = tokio::select! {
            biased;
            _ = &mut closed => return,
            f = reader.next() => f,
        };
        let frame = match frame {
            None => break "peer closed the connection".to_string(),
            Some(Err(e)) => break format!("framing error: {e}"),
            Some(Ok(f)) => f,
        };
        match inner.dialect.decode(&frame) {
            Err(e) => {
                warn!(session = %inner.label, error = %e, frame_len = frame.len(), "malformed PDU from the operator; closing the session");
                break format!("malformed PDU: {e}");
            }
            Ok(Event::Resp {
                n,
                kind,
                status,
                raw,
                msg_id,
            }) => inner.complete(
                n,
                Resp {
                    kind,
                    status,
                    raw,
                    msg_id,
                },
            ),
            Ok(Event::KeepAlive(seq)) => {
                if let Some(f) = inner.dialect.keepalive_resp(seq) {
                    let _ = inner.send(f);
                }
            }
            Ok(Event::Exit(seq)) => {
                let _ = inner.send(inner.dialect.exit_resp(seq));
                break "operator ended the session".to_string();
            }
            Ok(Event::Report { seq, receipt, ctx }) => {
                let ack = ack_for(&inner, seq, ctx);
                forward_inbound(&inner, &inbound, Inbound::Receipt { receipt, ack });
            }
            Ok(Event::Mobile {
                seq,
                source,
                dest,
                msg_fmt,
                udhi,
                content,
                ctx,
            }) => {
                let ack = ack_for(&inner, seq, ctx);
                forward_inbound(
                    &inner,
                    &inbound,
                    Inbound::Mobile {
                        sar: None,
                        source,
                        dest,
                        data_coding: msg_fmt,
                        esm_class: if udhi { 0x40 } else { 0 },
                        payload: content,
                        ack,
                    },
                );
            }
            Ok(Event::Bind { .. }) => {
                warn!(session = %inner.label, "unexpected bind on a client session; closing");
                break "unexpected bind from the operator".to_string();
            }
        }
    };
    inner.close(&reason);
}

fn ack_for(inner: &Arc<Inner>, seq: Seq, ctx: super::dialect::AckCtx) -> DeliverAck {
    let out = inner.out.clone();
    let dialect = inner.dialect.clone();
    DeliverAck::from_fn(seq.n, move |status| {
        let _ = out.send(Out::Frame(dialect.deliver_resp(seq, ctx, status == 0)));
    })
}

/// Hands an inbound item to the gateway without blocking the reader; beyond
/// [`INBOUND_OVERFLOW`] waiting items the dropped ack asks for redelivery.
pub(crate) fn forward_inbound_with(
    label: &str,
    overflow: &Arc<Semaphore>,
    inbound: &mpsc::Sender<Inbound>,
    item: Inbound,
) {
    match inbound.try_send(item) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Closed(_)) => {
            debug!(session = %label, "inbound receiver gone; report deferred");
        }
        Err(mpsc::error::TrySendError::Full(item)) => match overflow.clone().try_acquire_owned() {
            Ok(permit) => {
                let tx = inbound.clone();
                tokio::spawn(async move {
                    let _ = tx.send(item).await;
                    drop(permit);
                });
            }
            Err(_) => warn!(session = %label, "inbound queue full; report deferred"),
        },
    }
}

fn forward_inbound(inner: &Inner, inbound: &mpsc::Sender<Inbound>, item: Inbound) {
    forward_inbound_with(&inner.label, &inner.overflow, inbound, item);
}

async fn keepalive_task(inner: Arc<Inner>, interval: Duration, retries: u32) {
    let closed = inner.closed_future();
    tokio::pin!(closed);
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut misses = 0;
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => return,
            _ = ticker.tick() => {}
        }
        // Send; after T without a response send again, at most N times (the specs' C/T/N).
        loop {
            let n = inner.next_n();
            let Some(frame) = inner.dialect.keepalive(inner.dialect.seq(n)) else {
                return;
            };
            let Ok(rx) = inner.register(n) else { return };
            if inner.send(frame).is_err() {
                return;
            }
            match timeout(inner.response_timeout, rx).await {
                Ok(Ok(_)) => {
                    misses = 0;
                    break;
                }
                Ok(Err(_)) => return,
                Err(_) => {
                    inner.unregister(n);
                    misses += 1;
                    warn!(session = %inner.label, misses, "active test unanswered");
                    if misses >= retries {
                        inner.close("active test unanswered N times");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn frames_keep_their_length_prefix() {
        let mut c = frame_codec();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 12, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0][..]);
        let f = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&f[..], &[0, 0, 0, 12, 0, 0, 0, 8, 0, 0, 0, 1]);
        assert_eq!(buf.len(), 3);
        // A length below the header is a framing error, not a short frame.
        let mut bad = BytesMut::from(&[0u8, 0, 0, 2, 0, 0][..]);
        assert!(c.decode(&mut bad).is_err());
        let mut huge = BytesMut::from(&[0x7Fu8, 0, 0, 0, 0, 0][..]);
        assert!(c.decode(&mut huge).is_err());
    }

    /// A fake SMG: answers every Bind and Submit with result 0, for `conns` connections.
    async fn sgip_smg(conns: usize) -> std::net::SocketAddr {
        use crate::protocols::sgip::codec as sg;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..conns {
                let Ok((s, _)) = l.accept().await else { return };
                tokio::spawn(async move {
                    let (rd, mut wr) = s.into_split();
                    let mut r = FramedRead::new(rd, frame_codec());
                    while let Some(Ok(f)) = r.next().await {
                        let answer = match sg::Pdu::decode(&f) {
                            Ok((seq, sg::Pdu::Bind(_))) => sg::Pdu::BindResp(0).encode(seq),
                            Ok((seq, sg::Pdu::Submit(_))) => sg::Pdu::SubmitResp(0).encode(seq),
                            Ok((seq, sg::Pdu::Unbind)) => sg::Pdu::UnbindResp.encode(seq),
                            _ => return,
                        };
                        if wr.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn sgip_config(addr: std::net::SocketAddr) -> CnConfig {
        let opts = super::super::options::parse("sgip", "sp", "pw", &serde_json::Map::new())
            .expect("default SGIP options");
        CnConfig {
            host: addr.ip().to_string(),
            port: addr.port(),
            dialect: Dialect {
                protocol: super::super::Protocol::Sgip,
                opts,
                account: "sp".into(),
                secret: "pw".into(),
            },
            window: 4,
            keepalive_interval: Duration::ZERO,
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Audit defect 1: the SGIP message id (node, MMDDhhmmss, counter) repeated
    /// when a session reconnected within a second, or when two channels shared a
    /// node id, because each session counted from 1.
    #[tokio::test]
    async fn sgip_message_ids_never_repeat_across_sessions() {
        let addr = sgip_smg(4).await;
        let (tx, _rx) = mpsc::channel(16);
        let mut ids = std::collections::HashSet::new();
        // Reconnects one after the other (same second), then two at once (same node id).
        let mut sessions = Vec::new();
        for _ in 0..2 {
            let s = CnSession::connect(sgip_config(addr), tx.clone())
                .await
                .unwrap();
            for i in 0..3 {
                let req = SubmitRequest {
                    dest_addr: format!("+861320000000{i}"),
                    short_message: b"hi".to_vec(),
                    registered_delivery: 1,
                    ..SubmitRequest::default()
                };
                match s.submit(req).await.unwrap() {
                    SubmitOutcome::Accepted { message_id } => {
                        assert!(ids.insert(message_id.clone()), "{message_id} repeated")
                    }
                    other => panic!("{other:?}"),
                }
            }
            s.unbind().await;
        }
        for _ in 0..2 {
            sessions.push(
                CnSession::connect(sgip_config(addr), tx.clone())
                    .await
                    .unwrap(),
            );
        }
        for s in &sessions {
            let req = SubmitRequest {
                dest_addr: "+8613200000009".into(),
                short_message: b"hi".to_vec(),
                ..SubmitRequest::default()
            };
            match s.submit(req).await.unwrap() {
                SubmitOutcome::Accepted { message_id } => {
                    assert!(ids.insert(message_id.clone()), "{message_id} repeated")
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ids.len(), 8);
    }

    #[test]
    fn request_counter_increases_and_wraps_to_one() {
        let a = next_request_n();
        let b = next_request_n();
        assert!(b > a || b == 1, "{a} then {b}");
        NEXT_N.store(MAX_N - 1, Ordering::Relaxed);
        let (x, y) = (next_request_n(), next_request_n());
        // Another test's session may take a number in between; never 0, never above MAX_N.
        assert!(
            (1..=MAX_N).contains(&x) && (1..=MAX_N).contains(&y),
            "{x} {y}"
        );
    }

    #[test]
    fn short_declared_lengths_are_framing_errors() {
        // Found by fuzz/fuzz_targets/cmpp_frame.rs: a declared length of 0
        // made the codec return an empty frame without consuming anything, so
        // a reader that skipped bad frames would spin on `00 00 00 00`.
        for declared in 0..MIN_PDU as u32 {
            let mut buf = BytesMut::from(&declared.to_be_bytes()[..]);
            buf.extend_from_slice(&[0; 16]);
            assert!(frame_codec().decode(&mut buf).is_err(), "{declared}");
        }
        // Only the prefix has arrived yet: refused already, nothing consumed.
        let mut prefix = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert!(frame_codec().decode(&mut prefix).is_err());
        assert_eq!(prefix.len(), 4);
        // The shortest header is a frame.
        let mut min = BytesMut::from(&[0u8, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 9][..]);
        let f = frame_codec().decode(&mut min).ok().flatten();
        assert_eq!(f.map(|f| f.len()), Some(MIN_PDU));
        assert!(min.is_empty());
    }
}
