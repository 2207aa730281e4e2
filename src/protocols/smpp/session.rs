//! One bound SMPP 3.4 ESME session: connect, bind, windowed pipelined
//! submit_sm, enquire_link keepalive, inbound deliver_sm with explicit acks,
//! unbind. Reconnecting is the caller's job: a session that closes stays
//! closed, and [`Session::closed`] tells the bind actor when to start a new one.
//!
//! Tasks: a reader (responses, deliver_sm, enquire_link, unbind from the SMSC),
//! a writer (feeds every queued PDU, flushes once the queue is empty) and a
//! keepalive. Pending requests live in a `seq → oneshot` map; the window is a
//! semaphore whose slot a timed-out submit keeps until its late response (the window
//! bounds the PDUs unanswered on the wire). A session whose submits go unanswered is
//! hung ([`Hung`]): it unbinds and closes itself, and the bind actor binds again.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::{Command, CommandId, Pdu};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, info, warn};

use super::codec::Outgoing as Out;
use super::codec::{
    self, BindKind, DeliverFields, Frame, SmppCodec, SubmitFields, command_id, status,
};
use super::receipt::{self, Receipt};

/// How long `unbind` waits for unbind_resp, and how long the writer may keep
/// draining after the session closed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// After a write error, how long the reader may still drain responses already received.
const DRAIN_AFTER_WRITE_ERROR: Duration = Duration::from_secs(1);
/// Most inbound deliver_sm waiting for room in the gateway's channel.
const INBOUND_OVERFLOW: usize = 1024;
/// How long a hung session (see [`Hung`]) waits for unbind_resp before it drops the line.
const HUNG_UNBIND_WAIT: Duration = Duration::from_secs(1);
/// A session whose oldest unanswered submit went out this many response timeouts ago,
/// with no submit answered since and none waiting in time, is hung.
const HUNG_SILENCE_TIMEOUTS: u32 = 2;

/// Why a session is considered hung: its SMSC keeps the line up (enquire_link answered)
/// but answers no submits. Decided whenever a submit gives up waiting; the session is
/// then unbound and closed so the bind actor binds again (Kannel drops a session whose
/// acks time out the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hung {
    /// Submits on the wire without a response.
    unanswered: usize,
    /// How long since the oldest of them went out.
    silent_for: Duration,
    /// Every window slot is held by one of them: nothing more can be sent.
    window_full: bool,
}

impl Hung {
    /// Hung when every window slot is held by a submit the SMSC never answered, or when
    /// nothing waits within its timeout and the oldest unanswered submit went out
    /// [`HUNG_SILENCE_TIMEOUTS`] response timeouts ago with no submit answered since.
    /// (A slow SMSC whose late answers keep coming is not hung: its late answers free
    /// their slots and count as answers.)
    fn check(p: &Pending, window: u32, response_timeout: Duration, now: Instant) -> Option<Hung> {
        let unanswered = p.timed_out.len();
        let oldest = p.timed_out.values().min().copied()?;
        let silent_for = now.saturating_duration_since(oldest);
        let window_full = unanswered >= window as usize;
        let waiting = p.map.values().any(|w| w.submit);
        let answered_since = p.last_submit_answer.is_some_and(|a| a >= oldest);
        let silent = !waiting
            && !answered_since
            && silent_for >= response_timeout.saturating_mul(HUNG_SILENCE_TIMEOUTS);
        (window_full || silent).then_some(Hung {
            unanswered,
            silent_for,
            window_full,
        })
    }
}

impl fmt::Display for Hung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.window_full {
            "every window slot is held by"
        } else {
            "nothing else in flight and"
        };
        write!(
            f,
            "{what} {} submit(s) without a response; no submit answered for {} ms",
            self.unanswered,
            self.silent_for.as_millis()
        )
    }
}

/// Which bind the gateway opens: transceiver (submit + receipts on one
/// connection) or transmitter (submit only; receipts arrive elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// bind_transceiver
    #[default]
    Transceiver,
    /// bind_transmitter
    Transmitter,
    /// bind_receiver: receipts and MO only (opened beside a transmitter bind)
    Receiver,
}

/// Everything needed to open one SMPP session.
#[derive(Clone)]
pub struct SessionConfig {
    /// SMSC host name or IP.
    pub host: String,
    /// SMSC port.
    pub port: u16,
    /// Bind system_id (≤ 15 chars).
    pub system_id: String,
    /// Bind password (≤ 8 chars).
    pub password: String,
    /// Bind system_type (≤ 12 chars, usually empty).
    pub system_type: String,
    /// Transceiver or transmitter.
    pub bind: BindMode,
    /// Most submit_sm awaiting a response at once (≥ 1).
    pub window: usize,
    /// Interval between our enquire_link PDUs (zero disables them).
    pub enquire_link_interval: Duration,
    /// How long to wait for any response (bind, submit, enquire_link).
    pub response_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// The channel's fixed service_type and TON/NPI for every submit_sm.
    pub addressing: super::addressing::Addressing,
}

impl SessionConfig {
    /// A transceiver config with common defaults: window 10, enquire_link every
    /// 30 s, 10 s response and connect timeouts.
    pub fn new(host: impl Into<String>, port: u16, system_id: &str, password: &str) -> Self {
        SessionConfig {
            host: host.into(),
            port,
            system_id: system_id.to_string(),
            password: password.to_string(),
            system_type: String::new(),
            bind: BindMode::Transceiver,
            window: 10,
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            addressing: Default::default(),
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .field("system_type", &self.system_type)
            .field("bind", &self.bind)
            .field("window", &self.window)
            .field("enquire_link_interval", &self.enquire_link_interval)
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("addressing", &self.addressing)
            .finish()
    }
}

/// One submit_sm to send; the caller has already encoded and split the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitRequest {
    /// Sender: alphanumeric, short code or MSISDN (`+` optional). TON/NPI are
    /// inferred from its form.
    pub source_addr: String,
    /// Recipient MSISDN (`+` optional).
    pub dest_addr: String,
    /// Raw esm_class; 0x40 when `short_message` starts with a UDH.
    pub esm_class: u8,
    /// Raw data_coding (0 GSM 7-bit, 8 UCS-2, ...).
    pub data_coding: u8,
    /// Raw registered_delivery (1 = receipt on final outcome).
    pub registered_delivery: u8,
    /// User data, UDH already prepended by the caller when esm_class has 0x40.
    /// More than 254 octets are sent in the message_payload TLV.
    pub short_message: Vec<u8>,
    /// "" or SMPP relative/absolute time (16 characters).
    pub validity_period: String,
    /// The gateway's message id: not sent over SMPP; protocols that carry the caller's
    /// reference (HTTP `{message_id}`) use it.
    pub message_id: String,
    /// Extra (vendor) TLVs as (tag, value), e.g. India DLT ids.
    pub tlvs: Vec<(u16, Vec<u8>)>,
    /// SAR TLVs (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum).
    pub sar: Option<(u16, u8, u8)>,
    /// Always put the user data in message_payload (the `payload` carrier).
    pub payload_tlv: bool,
}

/// The SMSC's answer to one submit_sm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// command_status 0; the id the SMSC will use in receipts.
    Accepted {
        /// message_id from submit_sm_resp, as sent.
        message_id: String,
    },
    /// Non-zero command_status in submit_sm_resp; see `status_map` for what it means.
    Rejected {
        /// The SMPP command_status.
        command_status: u32,
    },
    /// The SMSC answered generic_nack: it could not parse or process our submit_sm
    /// (a problem of the line or of the PDU, not the carrier refusing the message).
    Nacked {
        /// The generic_nack's command_status.
        command_status: u32,
    },
    /// A refusal from a protocol without SMPP command_status values (HTTP upstream),
    /// already classified, with the contract's error code and the provider's own code.
    Refused {
        /// Throttled, temporary or permanent.
        class: super::status_map::SubmitErrorClass,
        /// The contract's normalised error code (`rejected_by_carrier`, ...).
        code: String,
        /// The provider's own code (kept in `error.smsc_code`).
        provider_code: String,
        /// What the provider said, for `error.message`.
        message: String,
    },
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// TCP connect failed or timed out.
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    /// The SMSC answered the bind with a non-zero status.
    #[error(
        "SMPP bind rejected with command_status {command_status:#x} ({})",
        bind_status_meaning(*command_status)
    )]
    BindRejected {
        /// The bind response's command_status.
        command_status: u32,
    },
    /// A CMPP / SMGP / SGIP operator refused the login: `detail` names the
    /// protocol, the request, the status and its meaning, e.g. "CMPP 3.0
    /// CONNECT status 3 (authentication failed)".
    #[error("login rejected: {detail}")]
    LoginRejected {
        /// The login response's status / result as received.
        status: u32,
        /// Protocol, request, status and meaning.
        detail: String,
    },
    /// No response within `response_timeout`.
    #[error("no response within the response timeout")]
    ResponseTimeout,
    /// The session is closed (or closed while waiting).
    #[error("session closed")]
    Closed,
    /// The session is finishing its outstanding submits before it unbinds (drain,
    /// channel change, stop): this part was not sent, so sending it elsewhere is safe.
    #[error("session is unbinding; the part was not sent")]
    Unbinding,
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The request could not be encoded or the SMSC answered nonsense.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Something the SMSC sent us that the gateway must act on. `ack` MUST be
/// answered: the session sends deliver_sm_resp with the given command status
/// only when the ack is sent (so the gateway can commit the receipt durably
/// first). If the ack is dropped without sending, deliver_sm_resp goes out
/// with ESME_RX_T_APPN (0x64, temporary app error) so the SMSC redelivers.
#[derive(Debug)]
pub enum Inbound {
    /// A delivery receipt for an earlier submit.
    Receipt {
        /// The parsed receipt.
        receipt: Receipt,
        /// Answer after the receipt is stored.
        ack: DeliverAck,
    },
    /// A mobile-originated message.
    Mobile {
        /// Sender MSISDN.
        source: String,
        /// Our number / short code.
        dest: String,
        /// Raw data_coding.
        data_coding: u8,
        /// Raw esm_class (0x40 = payload starts with a UDH).
        esm_class: u8,
        /// short_message or message_payload.
        payload: Vec<u8>,
        /// SAR TLVs (reference, total, seq) when the SMSC sent them.
        sar: Option<(u16, u8, u8)>,
        /// Answer after the message is stored.
        ack: DeliverAck,
    },
}

/// The pending deliver_sm_resp for one inbound deliver_sm. Send it with
/// [`accept`](DeliverAck::accept) or [`reject`](DeliverAck::reject); dropping
/// it answers ESME_RX_T_APPN (0x64) so the SMSC redelivers.
pub struct DeliverAck {
    seq: u32,
    out: Option<AckSink>,
}

/// Where a [`DeliverAck`]'s answer goes: this SMPP session's writer, or a
/// callback of another protocol's session (CMPP, SMGP, SGIP) that writes its
/// own deliver response for the SMPP-style status.
enum AckSink {
    Smpp(mpsc::UnboundedSender<Out>),
    Other(Box<dyn FnOnce(u32) + Send>),
}

impl fmt::Debug for DeliverAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliverAck")
            .field("seq", &self.seq)
            .field("answered", &self.out.is_none())
            .finish()
    }
}

impl DeliverAck {
    fn new(seq: u32, out: mpsc::UnboundedSender<Out>) -> Self {
        DeliverAck {
            seq,
            out: Some(AckSink::Smpp(out)),
        }
    }

    /// An ack for another protocol's session: `answer` gets the SMPP-style
    /// status (0 accepted, else refused; 0x64 if dropped) exactly once.
    pub fn from_fn(seq: u32, answer: impl FnOnce(u32) + Send + 'static) -> Self {
        DeliverAck {
            seq,
            out: Some(AckSink::Other(Box::new(answer))),
        }
    }

    /// Answers deliver_sm_resp with ESME_ROK: the SMSC considers it delivered.
    pub fn accept(mut self) {
        self.send(status::ESME_ROK);
    }

    /// Answers deliver_sm_resp with `command_status` (e.g. 0x64 to have it
    /// redelivered later, 0x66 to refuse it for good).
    pub fn reject(mut self, command_status: u32) {
        self.send(command_status);
    }

    /// Sequence number of the deliver_sm being answered (for logs).
    pub fn sequence_number(&self) -> u32 {
        self.seq
    }

    fn send(&mut self, command_status: u32) {
        match self.out.take() {
            // A closed session cannot answer; the SMSC will redeliver.
            Some(AckSink::Smpp(out)) => {
                let _ = out.send(Out::Pdu(codec::deliver_sm_resp(self.seq, command_status)));
            }
            Some(AckSink::Other(answer)) => answer(command_status),
            None => {}
        }
    }
}

impl Drop for DeliverAck {
    fn drop(&mut self) {
        self.send(status::ESME_RX_T_APPN);
    }
}

/// A response routed to the request that is waiting for it.
struct Resp {
    command_id: u32,
    status: u32,
    message_id: String,
}

/// What an SMSC means by the command_status of a refused bind (SMPP 3.4 §5.1.3), for
/// the channel's `last_error`.
pub fn bind_status_meaning(command_status: u32) -> &'static str {
    match command_status {
        0x05 => "already bound",
        0x0D => "bind failed",
        0x0E => "invalid password",
        0x0F => "invalid system_id",
        0x53 => "invalid system_type",
        0x58 => "throttled",
        0x08 => "system error",
        _ => "refused by the SMSC",
    }
}

/// command_id of submit_sm_resp.
const SUBMIT_SM_RESP: u32 = 0x8000_0004;

/// Who waits for the response to one outstanding request.
struct Waiter {
    tx: oneshot::Sender<Resp>,
    /// A submit_sm (its answer proves the SMSC still takes submits), not an
    /// enquire_link or unbind.
    submit: bool,
}

#[derive(Default)]
struct Pending {
    map: HashMap<u32, Waiter>,
    /// Submits whose response timed out but never came, by sequence number, with when
    /// they were sent. Each still holds its window slot: the PDU is unanswered on the
    /// wire, and the window bounds those. A late response hands the slot back.
    timed_out: HashMap<u32, Instant>,
    /// The last submit response of this session (in time or late); the bind's moment
    /// until the first.
    last_submit_answer: Option<Instant>,
    closed: bool,
}

struct Inner {
    out: mpsc::UnboundedSender<Out>,
    pending: Mutex<Pending>,
    window: Semaphore,
    overflow: Arc<Semaphore>,
    seq: AtomicU32,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
    close_reason: Mutex<Option<String>>,
    rtt_nanos: AtomicU64,
    response_timeout: Duration,
    label: String,
    /// Slots of `window` (what `unbind` waits to hold again: nothing outstanding).
    window_size: u32,
    /// Set by `unbind`: new submits are refused (`Unbinding`) while the outstanding
    /// ones get their responses.
    draining: AtomicBool,
    /// Set once the session was found hung ([`Hung`]): it is being unbound and closed.
    recycling: AtomicBool,
    /// The channel's fixed service_type and TON/NPI.
    addressing: super::addressing::Addressing,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Sequence numbers 1..=0x7FFFFFFF, wrapping.
    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1
    }

    fn register(&self, seq: u32) -> Result<oneshot::Receiver<Resp>, SessionError> {
        self.register_waiter(seq, false)
    }

    fn register_waiter(
        &self,
        seq: u32,
        submit: bool,
    ) -> Result<oneshot::Receiver<Resp>, SessionError> {
        let (tx, rx) = oneshot::channel();
        let mut p = lock(&self.pending);
        if p.closed {
            return Err(SessionError::Closed);
        }
        p.map.insert(seq, Waiter { tx, submit });
        Ok(rx)
    }

    fn unregister(&self, seq: u32) {
        lock(&self.pending).map.remove(&seq);
    }

    /// A submit stopped waiting for its response (timeout or cancellation). If the
    /// response has not come, the submit joins `timed_out` and keeps its window slot
    /// (`permit` is forgotten; a late response adds it back), and the session is
    /// checked for being hung. `Err(permit)` if the response was routed meanwhile (it
    /// is in the submit's receiver).
    fn abandon<'a>(
        self: &Arc<Self>,
        seq: u32,
        sent_at: Instant,
        permit: Option<SemaphorePermit<'a>>,
    ) -> Result<(), Option<SemaphorePermit<'a>>> {
        let verdict = {
            let mut p = lock(&self.pending);
            if p.map.remove(&seq).is_none() {
                return Err(permit);
            }
            if p.closed {
                // Nothing left to hold a slot of: the window is closed.
                return Ok(());
            }
            p.timed_out.insert(seq, sent_at);
            if let Some(permit) = permit {
                permit.forget();
            }
            Hung::check(&p, self.window_size, self.response_timeout, Instant::now())
        };
        if let Some(hung) = verdict {
            self.recycle(hung);
        }
        Ok(())
    }

    /// The SMSC stopped answering submits (see [`Hung`]): refuse new submits, unbind
    /// (waiting at most [`HUNG_UNBIND_WAIT`]) and close, so the bind actor counts a
    /// session loss and binds again after its back-off. The timed-out submits were
    /// already handed back to be sent again.
    fn recycle(self: &Arc<Self>, hung: Hung) {
        if self.recycling.swap(true, Ordering::AcqRel) || self.is_closed() {
            return;
        }
        self.draining.store(true, Ordering::Release);
        let reason = format!("hung: {hung}");
        warn!(
            session = %self.label,
            unanswered = hung.unanswered,
            window = self.window_size,
            reason = %reason,
            "SMSC answers no submits: closing the session to bind again"
        );
        let inner = self.clone();
        let why = reason.clone();
        let work = async move {
            let seq = inner.next_seq();
            if let Ok(rx) = inner.register(seq) {
                if inner.send(codec::unbind(seq)).is_ok() {
                    let _ = timeout(HUNG_UNBIND_WAIT, rx).await;
                } else {
                    inner.unregister(seq);
                }
            }
            inner.close(&why);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(work);
            }
            // No runtime (dropped at shutdown): no unbind, just close.
            Err(_) => self.close(&reason),
        }
    }

    fn complete(&self, seq: u32, resp: Resp) {
        let (waiter, late_slot) = {
            let mut p = lock(&self.pending);
            let waiter = p.map.remove(&seq);
            let late_slot = waiter.is_none() && p.timed_out.remove(&seq).is_some();
            if late_slot || waiter.as_ref().is_some_and(|w| w.submit) {
                p.last_submit_answer = Some(Instant::now());
            }
            (waiter, late_slot)
        };
        if late_slot {
            // The timed-out submit is answered at last: its slot is free again.
            self.window.add_permits(1);
        }
        let resp = match waiter {
            Some(w) => match w.tx.send(resp) {
                Ok(()) => return,
                // Its submit gave up just now: the same as a late response.
                Err(resp) => resp,
            },
            None => resp,
        };
        if resp.command_id == SUBMIT_SM_RESP && resp.status == 0 {
            // A positive submit_sm_resp after its timeout: the SMSC took a part the
            // gateway already sent again (counted in smsgw_resubmits_total), so the
            // recipient may get it twice. Said loudly and counted, since only the
            // operator can tell.
            metrics::counter!("smsgw_late_submit_responses_total").increment(1);
            warn!(
                session = %self.label,
                seq,
                smsc_message_id = %resp.message_id,
                "submit_sm_resp after the response timeout: the SMSC accepted a part that was already resubmitted; the recipient may get it twice (raise options.response_timeout_seconds for a slow SMSC)"
            );
        } else {
            debug!(
                session = %self.label,
                seq,
                command_id = format_args!("{:#x}", resp.command_id),
                "response for no pending request (late or unsolicited)"
            );
        }
    }

    fn send(&self, cmd: Command) -> Result<(), SessionError> {
        self.out
            .send(Out::Pdu(cmd))
            .map_err(|_| SessionError::Closed)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Idempotent: fails pending requests, closes the window, tells the writer
    /// to flush and shut down, wakes `closed()` waiters.
    fn close(&self, reason: &str) {
        let drained = {
            let mut p = lock(&self.pending);
            if p.closed {
                return;
            }
            p.closed = true;
            p.timed_out.clear();
            std::mem::take(&mut p.map)
        };
        drop(drained);
        *lock(&self.close_reason) = Some(reason.to_string());
        self.closed.store(true, Ordering::Release);
        self.window.close();
        let _ = self.out.send(Out::Close);
        self.closed_tx.send_replace(true);
        info!(session = %self.label, reason, "SMPP session closed");
    }

    fn closed_future(&self) -> impl Future<Output = ()> + use<> {
        let mut rx = self.closed_tx.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }
}

/// Closes the session when the last [`Session`] clone is dropped.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.close("all session handles dropped");
    }
}

/// A bound SMPP session; a cheap-to-clone handle shared by the bind actor's
/// tasks. Dropping the last clone closes the connection (without unbind).
#[derive(Clone)]
pub struct Session {
    handle: Arc<Handle>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("label", &self.inner().label)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Session {
    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// TCP connect (TCP_NODELAY) + bind_transceiver/bind_transmitter;
    /// Err(BindRejected) on non-zero bind status. Inbound deliver_sm go to
    /// `inbound`; reading never blocks on it: when it is full up to 1024 more
    /// wait aside, and beyond that they are answered ESME_RX_T_APPN (0x64) so
    /// the SMSC redelivers later.
    pub async fn connect(
        cfg: SessionConfig,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Session, SessionError> {
        let label = format!("{}@{}:{}", cfg.system_id, cfg.host, cfg.port);
        let addr = (cfg.host.as_str(), cfg.port);
        let stream = match timeout(cfg.connect_timeout, TcpStream::connect(addr)).await {
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
        let (rd, wr) = stream.into_split();
        let mut reader = FramedRead::with_capacity(rd, SmppCodec::new(), 64 * 1024);
        let mut writer = FramedWrite::new(wr, SmppCodec::new());

        let kind = match cfg.bind {
            BindMode::Transceiver => BindKind::Transceiver,
            BindMode::Transmitter => BindKind::Transmitter,
            BindMode::Receiver => BindKind::Receiver,
        };
        let bind = codec::bind(1, kind, &cfg.system_id, &cfg.password, &cfg.system_type)
            .map_err(SessionError::Protocol)?;
        writer.send(bind).await?;
        let bind_status = timeout(
            cfg.response_timeout,
            wait_bind_resp(&mut reader, &mut writer),
        )
        .await
        .map_err(|_| SessionError::ResponseTimeout)??;
        if bind_status != status::ESME_ROK {
            return Err(SessionError::BindRejected {
                command_status: bind_status,
            });
        }
        info!(session = %label, bind = ?cfg.bind, "SMPP session bound");

        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (closed_tx, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            out: out_tx,
            pending: Mutex::new(Pending {
                last_submit_answer: Some(Instant::now()),
                ..Pending::default()
            }),
            window: Semaphore::new(cfg.window.max(1)),
            overflow: Arc::new(Semaphore::new(INBOUND_OVERFLOW)),
            seq: AtomicU32::new(1),
            closed: AtomicBool::new(false),
            closed_tx,
            close_reason: Mutex::new(None),
            rtt_nanos: AtomicU64::new(u64::MAX),
            response_timeout: cfg.response_timeout,
            label,
            window_size: u32::try_from(cfg.window.max(1)).unwrap_or(u32::MAX),
            draining: AtomicBool::new(false),
            recycling: AtomicBool::new(false),
            addressing: cfg.addressing.clone(),
        });
        tokio::spawn(writer_task(writer, out_rx, inner.clone()));
        tokio::spawn(reader_task(reader, inner.clone(), inbound));
        if !cfg.enquire_link_interval.is_zero() {
            tokio::spawn(keepalive_task(inner.clone(), cfg.enquire_link_interval));
        }
        Ok(Session {
            handle: Arc::new(Handle { inner }),
        })
    }

    /// Waits for a window slot (at most `window` submits unanswered on the wire), sends
    /// submit_sm, waits for the submit_sm_resp. A response timeout returns
    /// Err(ResponseTimeout) but the slot stays taken until a late response frees it or
    /// the session closes; a session whose submits keep timing out is closed as hung
    /// (see [`Hung`]), so the bind actor binds again. Closed session → Err(Closed).
    pub async fn submit(&self, req: SubmitRequest) -> Result<SubmitOutcome, SessionError> {
        let inner = self.inner();
        // Encode before taking a slot: a bad request must not consume window.
        let mut cmd = codec::submit_sm(
            0,
            &SubmitFields {
                source_addr: &req.source_addr,
                dest_addr: &req.dest_addr,
                esm_class: req.esm_class,
                data_coding: req.data_coding,
                registered_delivery: req.registered_delivery,
                short_message: &req.short_message,
                validity_period: &req.validity_period,
                tlvs: &req.tlvs,
                sar: req.sar,
                payload_tlv: req.payload_tlv,
                addressing: Some(&inner.addressing),
            },
        )
        .map_err(SessionError::Protocol)?;
        if inner.is_closed() {
            return Err(SessionError::Closed);
        }
        if inner.draining.load(Ordering::Acquire) {
            return Err(SessionError::Unbinding);
        }
        let permit = inner
            .window
            .acquire()
            .await
            .map_err(|_| SessionError::Closed)?;
        // Queued for a slot while `unbind` began (or the session was found hung): not sent.
        if inner.draining.load(Ordering::Acquire) {
            return Err(SessionError::Unbinding);
        }
        let seq = inner.next_seq();
        cmd.sequence_number = seq;
        let mut rx = inner.register_waiter(seq, true)?;
        let mut guard = PendingGuard {
            inner,
            seq,
            sent_at: Instant::now(),
            permit: Some(permit),
            armed: true,
        };
        inner.send(cmd)?;
        let resp = match timeout(inner.response_timeout, &mut rx).await {
            Err(_) => {
                guard.armed = false;
                match inner.abandon(seq, guard.sent_at, guard.permit.take()) {
                    Ok(()) => return Err(SessionError::ResponseTimeout),
                    // Answered just as the timeout fired: the answer is on its way.
                    Err(_) => rx.await.map_err(|_| SessionError::Closed)?,
                }
            }
            Ok(Err(_)) => {
                guard.armed = false;
                return Err(SessionError::Closed);
            }
            Ok(Ok(resp)) => {
                guard.armed = false;
                resp
            }
        };
        match (resp.command_id, resp.status) {
            (command_id::SUBMIT_SM_RESP, status::ESME_ROK) => Ok(SubmitOutcome::Accepted {
                message_id: resp.message_id,
            }),
            (command_id::SUBMIT_SM_RESP, s) if s != 0 => {
                Ok(SubmitOutcome::Rejected { command_status: s })
            }
            (command_id::GENERIC_NACK, s) if s != 0 => {
                Ok(SubmitOutcome::Nacked { command_status: s })
            }
            (id, s) => Err(SessionError::Protocol(format!(
                "unexpected response {id:#x} (status {s:#x}) to submit_sm"
            ))),
        }
    }

    /// Ends the session cleanly: refuses new submits (`Unbinding`), waits for the
    /// outstanding ones to be answered (at most the response timeout, after which
    /// each has timed out anyway; those that timed out before are not waited for),
    /// then sends unbind, waits (bounded, 2 s) for
    /// unbind_resp and closes. Unbinding with submits unanswered would make the
    /// gateway send them again elsewhere: duplicates on a drain or channel change.
    pub async fn unbind(&self) {
        let inner = self.inner();
        if inner.is_closed() {
            return;
        }
        inner.draining.store(true, Ordering::Release);
        let limit = inner.response_timeout + CLOSE_GRACE;
        // Submits that already timed out hold their slots until a late answer; they
        // were handed back to be sent again, so only the others are waited for.
        let held = u32::try_from(lock(&inner.pending).timed_out.len()).unwrap_or(u32::MAX);
        let in_time = inner.window_size.saturating_sub(held);
        if !crate::protocols::session::wait_window_idle(&inner.window, in_time, limit).await {
            warn!(session = %inner.label, "submits still outstanding after the response timeout; unbinding anyway");
        }
        let seq = inner.next_seq();
        if let Ok(rx) = inner.register(seq) {
            if inner.send(codec::unbind(seq)).is_ok() {
                let _ = timeout(CLOSE_GRACE, rx).await;
            } else {
                inner.unregister(seq);
            }
        }
        inner.close("unbound by us");
    }

    /// Resolves when the connection is gone (error, enquire_link timeout, SMSC
    /// unbind, peer close, unbind, last handle dropped).
    pub async fn closed(&self) {
        self.inner().closed_future().await
    }

    /// True once the session is closed; it never reopens.
    pub fn is_closed(&self) -> bool {
        self.inner().is_closed()
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        lock(&self.inner().close_reason).clone()
    }

    /// Window slots free right now (tests of the slots a timed-out submit holds).
    #[cfg(test)]
    pub(crate) fn free_window_slots(&self) -> usize {
        self.inner().window.available_permits()
    }

    /// Round-trip time of the last enquire_link, for channel health.
    pub fn last_enquire_link_rtt(&self) -> Option<Duration> {
        match self.inner().rtt_nanos.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}

/// Settles a submit's pending entry if the submit is cancelled while it waits: the
/// entry leaves the map (it never leaks) and, the PDU being on the wire unanswered, the
/// window slot stays held as after a timeout.
struct PendingGuard<'a> {
    inner: &'a Arc<Inner>,
    seq: u32,
    /// When the submit_sm was queued for the writer.
    sent_at: Instant,
    /// The submit's window slot.
    permit: Option<SemaphorePermit<'a>>,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self
                .inner
                .abandon(self.seq, self.sent_at, self.permit.take());
        }
    }
}

type Reader = FramedRead<OwnedReadHalf, SmppCodec>;
type Writer = FramedWrite<OwnedWriteHalf, SmppCodec>;

async fn wait_bind_resp(reader: &mut Reader, writer: &mut Writer) -> Result<u32, SessionError> {
    loop {
        match reader.next().await {
            None => {
                return Err(SessionError::Protocol(
                    "connection closed before bind response".into(),
                ));
            }
            Some(Err(e)) => return Err(SessionError::Io(e)),
            Some(Ok(Frame::Command(cmd))) => {
                let id = cmd.id();
                let seq = cmd.sequence_number;
                match id {
                    CommandId::BindTransceiverResp
                    | CommandId::BindTransmitterResp
                    | CommandId::BindReceiverResp
                    | CommandId::GenericNack
                        if seq == 1 =>
                    {
                        let s = u32::from(cmd.status);
                        if id == CommandId::GenericNack && s == 0 {
                            return Err(SessionError::Protocol(
                                "generic_nack with status 0 to bind".into(),
                            ));
                        }
                        return Ok(s);
                    }
                    CommandId::EnquireLink => writer.send(codec::enquire_link_resp(seq)).await?,
                    other => debug!(?other, seq, "ignoring PDU while binding"),
                }
            }
            Some(Ok(Frame::Malformed(m))) if m.sequence_number == 1 => {
                if m.command_status != 0 {
                    return Ok(m.command_status);
                }
                return Err(SessionError::Protocol(format!(
                    "malformed bind response: {}",
                    m.error
                )));
            }
            Some(Ok(Frame::Malformed(m))) => {
                warn!(seq = m.sequence_number, error = %m.error, "malformed PDU while binding");
            }
        }
    }
}

async fn writer_task(mut writer: Writer, mut rx: mpsc::UnboundedReceiver<Out>, inner: Arc<Inner>) {
    let closed = inner.closed_future();
    let grace = async move {
        closed.await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    let work = super::codec::write_pdus(&mut writer, &mut rx);
    tokio::select! {
        r = work => {
            if let Err(e) = r {
                // The SMSC may have answered submits before it went away: those
                // submit_sm_resp are still in the socket. Let the reader drain them (it
                // closes on EOF), and close for sure after a short grace period. Closing
                // here at once would fail acknowledged submits and send them again.
                tokio::time::sleep(DRAIN_AFTER_WRITE_ERROR).await;
                inner.close(&format!("write error: {e}"));
            }
        }
        _ = grace => {}
    }
}

/// What the reader does after handling one PDU (short-lived, on the stack).
#[allow(clippy::large_enum_variant)]
enum Action {
    Nothing,
    Forward(Inbound),
    Close(String),
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
        let action = match frame {
            None => break "peer closed the connection".to_string(),
            Some(Err(e)) => break format!("read error: {e}"),
            Some(Ok(Frame::Command(cmd))) => handle_command(&inner, cmd),
            Some(Ok(Frame::Malformed(m))) => handle_malformed(&inner, m),
        };
        match action {
            Action::Nothing => {}
            Action::Close(reason) => break reason,
            Action::Forward(item) => forward_inbound(&inner, &inbound, item),
        }
    };
    inner.close(&reason);
}

/// Hands a deliver_sm to the gateway without ever blocking the reader (a
/// blocked reader would hold up submit_sm_resp behind a slow consumer): if
/// the channel is full the item waits in a spawned task, at most
/// [`INBOUND_OVERFLOW`] of them; beyond that (or with nobody listening) the
/// dropped ack answers ESME_RX_T_APPN and the SMSC redelivers later.
fn forward_inbound(inner: &Inner, inbound: &mpsc::Sender<Inbound>, item: Inbound) {
    match inbound.try_send(item) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Closed(_)) => {
            debug!(session = %inner.label, "inbound receiver gone; deliver_sm deferred");
        }
        Err(mpsc::error::TrySendError::Full(item)) => {
            match inner.overflow.clone().try_acquire_owned() {
                Ok(permit) => {
                    let tx = inbound.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(item).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    warn!(session = %inner.label, "inbound queue full; deliver_sm deferred with 0x64");
                }
            }
        }
    }
}

fn handle_command(inner: &Inner, cmd: Command) -> Action {
    let id = u32::from(cmd.id());
    let seq = cmd.sequence_number;
    if id & command_id::RESPONSE_BIT != 0 {
        let message_id = match cmd.pdu() {
            Some(Pdu::SubmitSmResp(r)) => r.message_id().as_str().to_string(),
            _ => String::new(),
        };
        inner.complete(
            seq,
            Resp {
                command_id: id,
                status: u32::from(cmd.status),
                message_id,
            },
        );
        return Action::Nothing;
    }
    match cmd.id() {
        CommandId::EnquireLink => {
            let _ = inner.send(codec::enquire_link_resp(seq));
            Action::Nothing
        }
        CommandId::Unbind => {
            let _ = inner.send(codec::unbind_resp(seq));
            Action::Close("SMSC sent unbind".into())
        }
        CommandId::DeliverSm => match cmd.pdu() {
            Some(Pdu::DeliverSm(d)) => inbound_from(inner, seq, DeliverFields::from_pdu(d)),
            _ => {
                warn!(session = %inner.label, seq, "deliver_sm without body");
                let _ = inner.send(codec::generic_nack(seq, status::ESME_RINVCMDLEN));
                Action::Nothing
            }
        },
        // No response exists for these.
        CommandId::AlertNotification | CommandId::Outbind => Action::Nothing,
        other => {
            warn!(session = %inner.label, ?other, seq, "unsupported request from SMSC");
            let _ = inner.send(codec::generic_nack(seq, status::ESME_RINVCMDID));
            Action::Nothing
        }
    }
}

fn handle_malformed(inner: &Inner, m: codec::MalformedPdu) -> Action {
    warn!(
        session = %inner.label,
        command_id = format_args!("{:#x}", m.command_id),
        seq = m.sequence_number,
        error = %m.error,
        "malformed PDU from SMSC"
    );
    let seq = m.sequence_number;
    if m.command_id & command_id::RESPONSE_BIT != 0 {
        let message_id = if m.command_id == command_id::SUBMIT_SM_RESP {
            codec::parse_submit_sm_resp_lenient(&m.body)
        } else {
            String::new()
        };
        inner.complete(
            seq,
            Resp {
                command_id: m.command_id,
                status: m.command_status,
                message_id,
            },
        );
        return Action::Nothing;
    }
    match m.command_id {
        command_id::DELIVER_SM => match DeliverFields::parse_lenient(&m.body) {
            Some(fields) => inbound_from(inner, seq, fields),
            None => {
                let _ = inner.send(codec::generic_nack(seq, status::ESME_RINVCMDLEN));
                Action::Nothing
            }
        },
        command_id::ENQUIRE_LINK => {
            let _ = inner.send(codec::enquire_link_resp(seq));
            Action::Nothing
        }
        command_id::UNBIND => {
            let _ = inner.send(codec::unbind_resp(seq));
            Action::Close("SMSC sent unbind".into())
        }
        command_id::ALERT_NOTIFICATION => Action::Nothing,
        _ => {
            let _ = inner.send(codec::generic_nack(seq, status::ESME_RINVCMDLEN));
            Action::Nothing
        }
    }
}

fn inbound_from(inner: &Inner, seq: u32, f: DeliverFields) -> Action {
    let ack = DeliverAck::new(seq, inner.out.clone());
    if receipt::is_receipt_esm_class(f.esm_class) {
        match receipt::parse_receipt(
            f.esm_class,
            &f.payload,
            f.receipted_message_id.as_deref(),
            f.message_state,
            f.network_error_code,
        ) {
            Some(receipt) => Action::Forward(Inbound::Receipt { receipt, ack }),
            None => {
                // Cannot be matched to anything; accept so it is not redelivered forever.
                warn!(
                    session = %inner.label,
                    seq,
                    text = %String::from_utf8_lossy(&f.payload),
                    "unparseable delivery receipt accepted and dropped"
                );
                ack.accept();
                Action::Nothing
            }
        }
    } else {
        Action::Forward(Inbound::Mobile {
            source: f.source,
            dest: f.dest,
            data_coding: f.data_coding,
            esm_class: f.esm_class,
            payload: f.payload,
            sar: f.sar,
            ack,
        })
    }
}

async fn keepalive_task(inner: Arc<Inner>, interval: Duration) {
    let closed = inner.closed_future();
    tokio::pin!(closed);
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => return,
            _ = ticker.tick() => {}
        }
        let seq = inner.next_seq();
        let Ok(rx) = inner.register(seq) else { return };
        let started = Instant::now();
        if inner.send(codec::enquire_link(seq)).is_err() {
            return;
        }
        match timeout(inner.response_timeout, rx).await {
            Ok(Ok(_)) => {
                let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
                inner.rtt_nanos.store(nanos, Ordering::Relaxed);
            }
            Ok(Err(_)) => return,
            Err(_) => {
                inner.unregister(seq);
                inner.close("no enquire_link_resp within the response timeout");
                return;
            }
        }
    }
}
