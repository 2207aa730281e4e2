//! `smsgw sim smsc`: an SMPP 3.4 SMSC simulator (server side over rusmpp).
//!
//! It exists so the gateway can be tested and load-tested end to end without a
//! carrier: it accepts any number of binds, answers submit_sm with unique ids
//! (optionally after a latency, throttled or failed at configurable rates),
//! sends delivery receipts with a configurable outcome mix, retries receipts
//! the ESME refuses, can drop connections mid-stream, records every accepted
//! message in a JSONL ledger and serves counters on `GET /stats`.
//!
//! Throughput design: per connection one reader (decode, decide, queue) and
//! one writer (feeds every queued PDU and flushes when the queue is empty);
//! all delayed work (latency-delayed responses, receipts, retries) goes
//! through one scheduler task with a binary heap and a single sleep, not a
//! task per message.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusmpp::{Command, CommandId, Pdu};
use serde::{Deserialize, Serialize};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, info, warn};

use crate::protocols::smpp::codec::Outgoing as Out;
use crate::protocols::smpp::codec::{
    self, BindKind, Frame, ReceiptPdu, SmppCodec, SubmitSmFields, command_id, status,
};
use crate::protocols::smpp::receipt::ReceiptState;

/// How message ids are written in submit_sm_resp.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdFormat {
    /// Uppercase hexadecimal, e.g. `18C2F3A9B01`.
    #[default]
    Hex,
    /// Decimal, e.g. `1702345678901`.
    Decimal,
}

impl IdFormat {
    fn format(self, n: u64) -> String {
        match self {
            IdFormat::Hex => format!("{n:X}"),
            IdFormat::Decimal => n.to_string(),
        }
    }

    fn other(self) -> Self {
        match self {
            IdFormat::Hex => IdFormat::Decimal,
            IdFormat::Decimal => IdFormat::Hex,
        }
    }
}

/// Command-line options of `smsgw sim smsc`.
#[derive(clap::Args, Debug, Clone)]
pub struct SmscSimArgs {
    /// SMPP listen address.
    #[arg(long, default_value = "127.0.0.1:2775", value_parser = socket_address)]
    pub listen: String,
    /// The only system_id allowed to bind (SMPP allows at most 15 characters).
    #[arg(long, default_value = "smppclient", value_parser = smpp_system_id)]
    pub system_id: String,
    /// Its password.
    #[arg(long, default_value = "password")]
    pub password: String,
    /// Delay before each submit_sm_resp (responses are delayed concurrently).
    #[arg(long, default_value_t = 0)]
    pub submit_latency_ms: u64,
    /// Delay between submit_sm and its delivery receipt.
    #[arg(long, default_value_t = 1000)]
    pub dlr_delay_ms: u64,
    /// Outcome mix of receipts, e.g. "delivered=90,undeliverable=5,expired=3,rejected=2"
    /// (also "none" = never send receipts).
    #[arg(long, default_value = "delivered=100", value_parser = dlr_mix)]
    pub dlr_mix: String,
    /// Share of submit_sm answered 0x58 (ESME_RTHROTTLED), 0.0..=1.0.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub throttle_rate: f64,
    /// The operator's contracted rate in submits per second over all binds: a
    /// submit above it is answered 0x58 (ESME_RTHROTTLED), as real SMSCs throttle a
    /// client that sends faster than its contract. Absent: no limit.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tps: Option<u32>,
    /// Share answered with a permanent error 0x45 (ESME_RSUBMITFAIL), 0.0..=1.0.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub error_rate: f64,
    /// Share answered with a temporary error 0x08 (ESME_RSYSERR), 0.0..=1.0.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub temp_error_rate: f64,
    /// Drop each connection after N submit_sm (without answering the Nth); N ≥ 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub drop_after: Option<u64>,
    /// Drop each connection this many ms after a successful bind (an SMSC that accepts
    /// the bind and then drops the line: tests of the gateway's reconnect back-off).
    #[arg(long)]
    pub drop_after_bind_ms: Option<u64>,
    /// Send the receipt deliver_sm before the submit_sm_resp (ignores dlr_delay_ms).
    #[arg(long)]
    pub receipts_before_responses: bool,
    /// Format of ids in submit_sm_resp.
    #[arg(long, value_enum, default_value = "hex")]
    pub id_format: IdFormat,
    /// Write the SAME number in the OTHER format in receipts (hex in resp,
    /// decimal in DLR, or the reverse); otherwise receipts repeat the string.
    #[arg(long)]
    pub mixed_id_format: bool,
    /// JSONL ledger, one line per accepted submit_sm (appended; flushed at
    /// least every 100 ms and on exit).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// HTTP address serving `GET /stats`, `POST /mo` (inject an MO: from, to, text,
    /// parts, order, data_coding, drop_parts, repeat_parts) and `POST /control` (runtime
    /// knobs: dlr_mix, error_rate, temp_error_rate, throttle_rate); see
    /// simulations/README.md.
    #[arg(long)]
    pub control: Option<String>,
    /// RNG seed for the outcome draws (0 = random).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Operator protocol to simulate: smpp (SMSC), cmpp (ISMG, 2.0 and 3.0 by
    /// the client's CONNECT version), smgp (SMGW) or sgip (SMG).
    #[arg(long, value_enum, default_value = "smpp")]
    pub protocol: SimProtocol,
    /// cmpp/smgp/sgip: answer the Nth submit of each connection with a
    /// malformed PDU instead of its response (the client must close and reconnect).
    #[arg(long)]
    pub malformed_after: Option<u64>,
    /// sgip: address of the gateway's SGIP listener to deliver Reports to.
    #[arg(long)]
    pub report_to: Option<String>,
    /// sgip: LoginName for binding to the gateway's listener.
    #[arg(long, default_value = "smg")]
    pub report_login: String,
    /// sgip: LoginPassword for binding to the gateway's listener.
    #[arg(long, default_value = "smgpw")]
    pub report_password: String,
}

/// Which operator protocol `smsgw sim smsc` speaks.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimProtocol {
    /// SMPP 3.4.
    #[default]
    Smpp,
    /// CMPP 2.0 / 3.0 (China Mobile).
    Cmpp,
    /// SMGP 3.0 (China Telecom).
    Smgp,
    /// SGIP 1.2 (China Unicom).
    Sgip,
}

/// A `--dlr-mix` the simulator can draw from (checked when the flags are parsed, so a
/// bad one exits 2 naming the flag).
fn dlr_mix(text: &str) -> Result<String, String> {
    DlrMix::parse(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// An SMPP system_id: 1 to 15 characters (the C-Octet String of 16 with its NUL).
fn smpp_system_id(text: &str) -> Result<String, String> {
    match text.chars().count() {
        1..=15 => Ok(text.to_string()),
        n => Err(format!("1 to 15 characters (SMPP 3.4), not {n}")),
    }
}

/// A share between 0 and 1 (a bad one is refused by the command-line parser: exit 2
/// naming the flag, as every bad flag is).
pub(super) fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("a share between 0.0 and 1.0".into()),
    }
}

/// `HOST:PORT` as an IP address and port.
fn socket_address(text: &str) -> Result<String, String> {
    text.parse::<std::net::SocketAddr>()
        .map(|_| text.to_string())
        .map_err(|_| "an address like 127.0.0.1:2775".into())
}

impl Default for SmscSimArgs {
    fn default() -> Self {
        SmscSimArgs {
            listen: "127.0.0.1:2775".into(),
            system_id: "smppclient".into(),
            password: "password".into(),
            submit_latency_ms: 0,
            dlr_delay_ms: 1000,
            dlr_mix: "delivered=100".into(),
            throttle_rate: 0.0,
            max_tps: None,
            error_rate: 0.0,
            temp_error_rate: 0.0,
            drop_after: None,
            drop_after_bind_ms: None,
            receipts_before_responses: false,
            id_format: IdFormat::Hex,
            mixed_id_format: false,
            ledger: None,
            control: None,
            seed: 0,
            protocol: SimProtocol::Smpp,
            malformed_after: None,
            report_to: None,
            report_login: "smg".into(),
            report_password: "smgpw".into(),
        }
    }
}

/// Counters served on `GET /stats` and by [`SmscSim::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Successful binds.
    pub binds: u64,
    /// submit_sm received (including the unanswered one of `drop_after`).
    pub submits: u64,
    /// submit_sm answered ESME_ROK.
    pub accepted: u64,
    /// submit_sm answered ESME_RTHROTTLED.
    pub throttled: u64,
    /// submit_sm answered with an error: `errors_permanent + errors_temporary`.
    pub errors: u64,
    /// submit_sm answered ESME_RSUBMITFAIL (0x45, `--error-rate`).
    pub errors_permanent: u64,
    /// submit_sm answered ESME_RSYSERR (0x08, `--temp-error-rate`).
    pub errors_temporary: u64,
    /// MO deliver_sm written by `POST /mo` (one per part sent, repeats included).
    pub mo_sent: u64,
    /// MO deliver_sm the gateway answered with deliver_sm_resp status 0.
    pub mo_acknowledged: u64,
    /// Receipt deliver_sm written (retries included).
    pub receipts_sent: u64,
    /// deliver_sm_resp with status 0.
    pub receipts_acked: u64,
    /// deliver_sm_resp (or generic_nack) with a non-zero status.
    pub deliver_sm_resp_errors: u64,
    /// The most submit_sm one connection had unanswered at once (received, response
    /// not yet written, lost responses included): what a client's window must bound.
    #[serde(default)]
    pub max_unanswered_submits: u64,
}

#[derive(Default)]
pub(super) struct Stats {
    pub(super) binds: AtomicU64,
    pub(super) submits: AtomicU64,
    pub(super) accepted: AtomicU64,
    pub(super) throttled: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) errors_permanent: AtomicU64,
    pub(super) errors_temporary: AtomicU64,
    pub(super) mo_sent: AtomicU64,
    pub(super) mo_acknowledged: AtomicU64,
    pub(super) receipts_sent: AtomicU64,
    pub(super) receipts_acked: AtomicU64,
    pub(super) deliver_sm_resp_errors: AtomicU64,
    pub(super) max_unanswered_submits: AtomicU64,
}

impl Stats {
    pub(super) fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            binds: g(&self.binds),
            submits: g(&self.submits),
            accepted: g(&self.accepted),
            throttled: g(&self.throttled),
            errors: g(&self.errors),
            errors_permanent: g(&self.errors_permanent),
            errors_temporary: g(&self.errors_temporary),
            mo_sent: g(&self.mo_sent),
            mo_acknowledged: g(&self.mo_acknowledged),
            receipts_sent: g(&self.receipts_sent),
            receipts_acked: g(&self.receipts_acked),
            deliver_sm_resp_errors: g(&self.deliver_sm_resp_errors),
            max_unanswered_submits: g(&self.max_unanswered_submits),
        }
    }
}

/// An f64 that the running simulator reads and a chaos run changes.
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> Self {
        AtomicF64(AtomicU64::new(v.clamp(0.0, 1.0).to_bits()))
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, v: f64) {
        let v = if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

pub(super) fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The simulator's quality, adjustable while it runs (tests of routing that must
/// see a line get worse or recover).
#[derive(Debug, Clone)]
struct Knobs {
    dlr_mix: Option<DlrMix>,
    dlr_mix_text: String,
    throttle_rate: f64,
    error_rate: f64,
    temp_error_rate: f64,
    /// Submits to destinations starting with this (as written in destination_addr) are
    /// answered 0x08 (system error) every time: a route the SMSC cannot serve for a while.
    temp_error_to: Option<String>,
}

/// Body of `POST /control`: any subset of the quality flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnobsBody {
    dlr_mix: Option<String>,
    throttle_rate: Option<f64>,
    error_rate: Option<f64>,
    temp_error_rate: Option<f64>,
    /// A destination prefix answered 0x08 every time; "" clears it.
    temp_error_to: Option<String>,
}

impl Knobs {
    fn apply(&mut self, b: KnobsBody) -> Result<(), String> {
        let rate = |v: Option<f64>, cur: f64| match v {
            Some(r) if !(0.0..=1.0).contains(&r) => Err("rates are within 0.0..=1.0".to_string()),
            Some(r) => Ok(r),
            None => Ok(cur),
        };
        let throttle_rate = rate(b.throttle_rate, self.throttle_rate)?;
        let error_rate = rate(b.error_rate, self.error_rate)?;
        let temp_error_rate = rate(b.temp_error_rate, self.temp_error_rate)?;
        if let Some(m) = b.dlr_mix {
            self.dlr_mix = DlrMix::parse(&m).map_err(|e| e.to_string())?;
            self.dlr_mix_text = m;
        }
        self.throttle_rate = throttle_rate;
        self.error_rate = error_rate;
        self.temp_error_rate = temp_error_rate;
        if let Some(prefix) = b.temp_error_to {
            self.temp_error_to = (!prefix.is_empty()).then_some(prefix);
        }
        Ok(())
    }

    fn view(&self) -> serde_json::Value {
        serde_json::json!({"dlr_mix": self.dlr_mix_text, "throttle_rate": self.throttle_rate,
            "error_rate": self.error_rate, "temp_error_rate": self.temp_error_rate,
            "temp_error_to": self.temp_error_to})
    }
}

/// Receipt outcome weights.
#[derive(Debug, Clone)]
pub(super) struct DlrMix {
    choices: Vec<(ReceiptState, u32)>,
    total: u32,
}

impl DlrMix {
    /// None = "none" (never send receipts).
    pub(super) fn parse(s: &str) -> anyhow::Result<Option<DlrMix>> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let mut choices = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .with_context(|| format!("dlr mix entry {part:?} is not name=weight"))?;
            let state = match k.trim().to_ascii_lowercase().as_str() {
                "delivered" | "delivrd" => ReceiptState::Delivered,
                "undeliverable" | "undeliv" => ReceiptState::Undeliverable,
                "expired" => ReceiptState::Expired,
                "rejected" | "rejectd" => ReceiptState::Rejected,
                "deleted" => ReceiptState::Deleted,
                "unknown" => ReceiptState::Unknown,
                "accepted" | "acceptd" => ReceiptState::Accepted,
                "enroute" => ReceiptState::Enroute,
                other => anyhow::bail!("unknown receipt outcome {other:?} in dlr mix"),
            };
            let w: u32 = v
                .trim()
                .parse()
                .with_context(|| format!("bad weight in dlr mix entry {part:?}"))?;
            if w > 0 {
                choices.push((state, w));
            }
        }
        let total = choices.iter().map(|c| c.1).sum::<u32>();
        anyhow::ensure!(total > 0, "dlr mix {s:?} has no positive weight");
        Ok(Some(DlrMix { choices, total }))
    }

    pub(super) fn pick(&self, rng: &mut StdRng) -> ReceiptState {
        let mut x = rng.random_range(0..self.total);
        for &(state, w) in &self.choices {
            if x < w {
                return state;
            }
            x -= w;
        }
        ReceiptState::Delivered
    }
}

/// One accepted message, for the ledger.
pub(super) struct LedgerRecord {
    pub(super) message_id: String,
    pub(super) system_id: String,
    pub(super) source: String,
    pub(super) dest: String,
    pub(super) data_coding: u8,
    pub(super) esm_class: u8,
    pub(super) short_message: Vec<u8>,
    pub(super) at_ms: i64,
    /// Vendor TLVs (e.g. DLT ids) as tag (hex) → value (text).
    pub(super) tlvs: std::collections::BTreeMap<String, String>,
    pub(super) message_payload: bool,
    pub(super) sar: Option<(u16, u8, u8)>,
    /// The simulator dropped this copy's response on purpose (`lose_response_rate`), so
    /// the gateway cannot know it was taken: a resend of it is expected, not a defect.
    pub(super) response_lost: bool,
    /// SMPP validity_period, service_type and (src TON, src NPI, dst TON, dst NPI) as
    /// received (SMPP only; empty / None for the other protocols).
    pub(super) validity_period: String,
    pub(super) service_type: String,
    pub(super) ton_npi: Option<(u8, u8, u8, u8)>,
}

#[derive(Serialize)]
struct LedgerLine<'a> {
    message_id: &'a str,
    system_id: &'a str,
    source: &'a str,
    dest: &'a str,
    data_coding: u8,
    esm_class: u8,
    short_message_hex: String,
    /// The data came in message_payload rather than short_message.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    message_payload: bool,
    /// SAR TLVs [reference, total, seq] when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    sar: Option<(u16, u8, u8)>,
    at_ms: i64,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    tlvs: &'a std::collections::BTreeMap<String, String>,
    /// No submit_sm_resp went back for this copy (see [`LedgerRecord::response_lost`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    response_lost: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    validity_period: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    service_type: &'a str,
    /// [source TON, source NPI, destination TON, destination NPI].
    #[serde(skip_serializing_if = "Option::is_none")]
    ton_npi: Option<(u8, u8, u8, u8)>,
}

pub(super) enum LedgerMsg {
    Record(Box<LedgerRecord>),
    Stop,
}

pub(super) fn ledger_thread(file: File, rx: std::sync::mpsc::Receiver<LedgerMsg>) {
    use std::sync::mpsc::RecvTimeoutError;
    const EVERY: Duration = Duration::from_millis(100);
    let mut w = BufWriter::with_capacity(256 * 1024, file);
    let mut dirty_since: Option<std::time::Instant> = None;
    loop {
        let msg = match dirty_since {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => rx.recv_timeout(EVERY.saturating_sub(t.elapsed())),
        };
        match msg {
            Ok(LedgerMsg::Record(r)) => {
                let line = LedgerLine {
                    message_id: &r.message_id,
                    system_id: &r.system_id,
                    source: &r.source,
                    dest: &r.dest,
                    data_coding: r.data_coding,
                    esm_class: r.esm_class,
                    short_message_hex: hex::encode(&r.short_message),
                    message_payload: r.message_payload,
                    sar: r.sar,
                    at_ms: r.at_ms,
                    tlvs: &r.tlvs,
                    response_lost: r.response_lost,
                    validity_period: &r.validity_period,
                    service_type: &r.service_type,
                    ton_npi: r.ton_npi,
                };
                if serde_json::to_writer(&mut w, &line).is_err() || w.write_all(b"\n").is_err() {
                    warn!("ledger write failed");
                }
                dirty_since.get_or_insert_with(std::time::Instant::now);
            }
            Ok(LedgerMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if dirty_since.is_some_and(|t| t.elapsed() >= EVERY) {
            if let Err(e) = w.flush() {
                warn!(error = %e, "ledger flush failed");
            }
            dirty_since = None;
        }
    }
    if let Err(e) = w.flush() {
        warn!(error = %e, "ledger flush failed");
    }
}

/// One client connection, shared by its reader, the scheduler and receipt
/// routing.
struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Out>,
    seq: AtomicU32,
    /// (system_id, bind kind), set once by a successful bind.
    bound: OnceLock<(String, BindKind)>,
    /// deliver_sm awaiting deliver_sm_resp, by sequence number. `None` once
    /// the connection is gone (a receipt must then be routed elsewhere).
    outstanding: Mutex<Option<HashMap<u32, ReceiptJob>>>,
    /// MO deliver_sm of `POST /mo` awaiting their deliver_sm_resp (its status goes to
    /// the waiting request), by sequence number.
    mo_waiters: Mutex<HashMap<u32, tokio::sync::oneshot::Sender<u32>>>,
    /// submit_sm received whose response is not written yet (delayed or lost).
    unanswered: AtomicU64,
}

impl Conn {
    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1
    }

    fn can_receive(&self, system_id: &str) -> bool {
        matches!(self.bound.get(), Some((sid, kind)) if sid == system_id && *kind != BindKind::Transmitter)
    }
}

/// A receipt to deliver (and possibly redeliver).
struct ReceiptJob {
    origin: Weak<Conn>,
    system_id: String,
    /// The id as written in the receipt.
    dlr_id: String,
    /// Original submit source/destination.
    source: String,
    dest: String,
    state: ReceiptState,
    submit_date: String,
    /// Retries after a non-zero deliver_sm_resp so far.
    retries: u32,
}

/// Delayed work for the scheduler.
#[allow(clippy::large_enum_variant)]
enum Job {
    Respond { conn: Arc<Conn>, cmd: Command },
    Receipt(Box<ReceiptJob>),
}

struct Scheduled {
    at: Instant,
    n: u64,
    job: Job,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.n == other.n
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the earliest deadline is the heap's maximum.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.n).cmp(&(self.at, self.n))
    }
}

/// Server-wide state.
struct Ctx {
    system_id: String,
    password: String,
    submit_latency: Duration,
    dlr_delay: Duration,
    /// Quality knobs, changeable at run time through `POST /control`.
    knobs: std::sync::RwLock<Knobs>,
    /// Share of accepted submits whose submit_sm_resp is never sent (lost responses).
    lose_response_rate: AtomicF64,
    drop_after: Option<u64>,
    /// `--drop-after-bind-ms`.
    drop_after_bind: Option<Duration>,
    /// The contracted rate (`--max-tps`): submits beyond it are throttled.
    contract: super::Contract,
    receipts_before_responses: bool,
    id_format: IdFormat,
    mixed_id_format: bool,
    seed: u64,
    stats: Stats,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    rr: AtomicUsize,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    sched: mpsc::UnboundedSender<(Instant, Job)>,
    ledger: Option<std::sync::mpsc::Sender<LedgerMsg>>,
    shutdown: watch::Receiver<bool>,
}

impl Ctx {
    fn schedule(&self, after: Duration, job: Job) {
        let _ = self.sched.send((Instant::now() + after, job));
    }

    fn shutdown_future(&self) -> impl Future<Output = ()> + use<> {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}

/// Caches a `YYMMDDhhmm` string per minute.
#[derive(Default)]
pub(super) struct DateCache {
    minute: i64,
    text: String,
}

impl DateCache {
    pub(super) fn get(&mut self) -> &str {
        let now = chrono::Utc::now();
        let minute = now.timestamp().div_euclid(60);
        if minute != self.minute || self.text.is_empty() {
            self.minute = minute;
            self.text = now.format("%y%m%d%H%M").to_string();
        }
        &self.text
    }
}

/// A running simulator. Dropping it signals shutdown; [`SmscSim::shutdown`]
/// also waits for connections to close and the ledger to be flushed.
pub struct SmscSim {
    local_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    ctx: Arc<Ctx>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ledger_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for SmscSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmscSim")
            .field("local_addr", &self.local_addr)
            .field("control_addr", &self.control_addr)
            .finish()
    }
}

impl SmscSim {
    /// Starts serving SMPP on `listener` (bind port 0 in tests) and, if
    /// `args.control` is set, HTTP `/stats`. `args.listen` is ignored.
    pub async fn start(listener: TcpListener, args: SmscSimArgs) -> anyhow::Result<SmscSim> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&args.throttle_rate)
                && (0.0..=1.0).contains(&args.error_rate)
                && (0.0..=1.0).contains(&args.temp_error_rate),
            "throttle_rate, error_rate and temp_error_rate must be within 0.0..=1.0"
        );
        let dlr_mix = DlrMix::parse(&args.dlr_mix)?;
        let local_addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (sched_tx, sched_rx) = mpsc::unbounded_channel();

        let (ledger, ledger_thread) = match &args.ledger {
            Some(path) => {
                let file = super::open_ledger(path)?;
                let (tx, rx) = std::sync::mpsc::channel();
                let handle = std::thread::Builder::new()
                    .name("smsc-sim-ledger".into())
                    .spawn(move || ledger_thread(file, rx))?;
                (Some(tx), Some(handle))
            }
            None => (None, None),
        };

        // Ids start at the current time in ms so a restarted simulator does not
        // reuse ids a gateway may still hold.
        let id_base = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(1);
        let ctx = Arc::new(Ctx {
            system_id: args.system_id.clone(),
            password: args.password.clone(),
            submit_latency: Duration::from_millis(args.submit_latency_ms),
            dlr_delay: Duration::from_millis(args.dlr_delay_ms),
            knobs: std::sync::RwLock::new(Knobs {
                dlr_mix,
                dlr_mix_text: args.dlr_mix.clone(),
                throttle_rate: args.throttle_rate,
                error_rate: args.error_rate,
                temp_error_rate: args.temp_error_rate,
                temp_error_to: None,
            }),
            lose_response_rate: AtomicF64::new(0.0),
            drop_after: args.drop_after,
            drop_after_bind: args.drop_after_bind_ms.map(Duration::from_millis),
            contract: super::Contract::new(args.max_tps),
            receipts_before_responses: args.receipts_before_responses,
            id_format: args.id_format,
            mixed_id_format: args.mixed_id_format,
            seed: args.seed,
            stats: Stats::default(),
            next_id: AtomicU64::new(id_base),
            next_conn: AtomicU64::new(1),
            rr: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            sched: sched_tx,
            ledger,
            shutdown: shutdown_rx,
        });

        let mut tasks = Vec::new();
        let control_addr = match &args.control {
            Some(addr) => {
                let l = super::bind_listener("control address ", addr).await?;
                let control_addr = l.local_addr()?;
                let c = ctx.clone();
                let k = ctx.clone();
                let mo_ctx = ctx.clone();
                let app = axum::Router::new()
                    .route(
                        "/stats",
                        axum::routing::get(move || {
                            let c = c.clone();
                            async move { axum::Json(c.stats.snapshot()) }
                        }),
                    )
                    .route(
                        "/control",
                        axum::routing::post(move |body: axum::body::Bytes| {
                            let k = k.clone();
                            async move { control(&k, &body) }
                        }),
                    )
                    .route(
                        "/mo",
                        axum::routing::post(move |body: axum::body::Bytes| {
                            let c = mo_ctx.clone();
                            async move { mo_endpoint(&c, &body).await }
                        }),
                    );
                let stop = ctx.shutdown_future();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = axum::serve(l, app).with_graceful_shutdown(stop).await {
                        warn!(error = %e, "control server failed");
                    }
                }));
                Some(control_addr)
            }
            None => None,
        };
        tasks.push(tokio::spawn(scheduler_task(ctx.clone(), sched_rx)));
        tasks.push(tokio::spawn(accept_task(ctx.clone(), listener)));
        info!(%local_addr, ?control_addr, "SMSC simulator listening");
        Ok(SmscSim {
            local_addr,
            control_addr,
            ctx,
            shutdown_tx,
            tasks,
            ledger_thread,
        })
    }

    /// The SMPP address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `/stats` HTTP address, if enabled.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// Current counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.ctx.stats.snapshot()
    }

    /// Changes the answer mix while running (chaos runs: throttling storms, lost
    /// responses): shares of submits answered 0x58, answered 0x45, and accepted but never
    /// answered. Each is clamped to 0.0..=1.0.
    pub fn set_rates(&self, throttle: f64, error: f64, lose_response: f64) {
        let clamp = |v: f64| {
            if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        {
            let mut k = self.ctx.knobs.write().unwrap_or_else(|e| e.into_inner());
            k.throttle_rate = clamp(throttle);
            k.error_rate = clamp(error);
        }
        self.ctx.lose_response_rate.set(lose_response);
    }

    /// Stops accepting, closes every connection (bounded), stops timers and
    /// flushes the ledger.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown_tx.send_replace(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(tx) = &self.ctx.ledger {
            let _ = tx.send(LedgerMsg::Stop);
        }
        if let Some(h) = self.ledger_thread.take() {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .context("joining ledger thread")?
                .map_err(|_| anyhow::anyhow!("ledger thread panicked"))?;
        }
        Ok(())
    }
}

impl Drop for SmscSim {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
        if let Some(tx) = &self.ctx.ledger {
            let _ = tx.send(LedgerMsg::Stop);
        }
    }
}

/// Serves until `shutdown` resolves, then shuts down cleanly.
pub async fn serve(
    listener: TcpListener,
    args: SmscSimArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let sim = SmscSim::start(listener, args).await?;
    shutdown.await;
    info!(stats = ?sim.stats(), "SMSC simulator stopping");
    sim.shutdown().await
}

/// Entry point of `smsgw sim smsc`: runs until SIGTERM/SIGINT, then flushes
/// the ledger and exits.
pub async fn run(args: SmscSimArgs) -> anyhow::Result<()> {
    let listener = super::bind_listener("", &args.listen).await?;
    if args.protocol != SimProtocol::Smpp {
        return super::cn::serve(listener, args, shutdown_signal()).await;
    }
    serve(listener, args, shutdown_signal()).await
}

/// Resolves on SIGTERM or Ctrl-C (shared by the simulators).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn accept_task(ctx: Arc<Ctx>, listener: TcpListener) {
    let stop = ctx.shutdown_future();
    tokio::pin!(stop);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    debug!(%peer, "SMPP connection accepted");
                    conns.spawn(connection(ctx.clone(), stream));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}

async fn writer_task(
    mut writer: FramedWrite<OwnedWriteHalf, SmppCodec>,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    let r = crate::protocols::smpp::codec::write_pdus(&mut writer, &mut rx).await;
    if let Err(e) = r {
        debug!(error = %e, "simulator write failed");
    }
}

async fn connection(ctx: Arc<Ctx>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let id = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer_task(FramedWrite::new(wr, SmppCodec::new()), rx));
    let conn = Arc::new(Conn {
        id,
        tx,
        seq: AtomicU32::new(1),
        bound: OnceLock::new(),
        outstanding: Mutex::new(Some(HashMap::new())),
        mo_waiters: Mutex::new(HashMap::new()),
        unanswered: AtomicU64::new(0),
    });
    let mut reader = FramedRead::with_capacity(rd, SmppCodec::new(), 64 * 1024);
    let mut state = ConnState {
        rng: if ctx.seed != 0 {
            StdRng::seed_from_u64(ctx.seed.wrapping_add(id))
        } else {
            StdRng::from_os_rng()
        },
        submits: 0,
        dates: DateCache::default(),
    };
    let stop = ctx.shutdown_future();
    tokio::pin!(stop);
    // When `--drop-after-bind-ms` drops this connection (set once it is bound).
    let mut drop_at: Option<Instant> = None;
    loop {
        let frame = tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = async {
                match drop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                info!(conn = id, "drop_after_bind_ms reached; dropping connection");
                break;
            }
            f = reader.next() => f,
        };
        let flow = match frame {
            None => break,
            Some(Err(e)) => {
                debug!(conn = id, error = %e, "unrecoverable framing error; dropping connection");
                break;
            }
            Some(Ok(Frame::Command(cmd))) => handle(&ctx, &conn, &mut state, cmd),
            Some(Ok(Frame::Malformed(m))) => {
                warn!(
                    conn = id,
                    command_id = format_args!("{:#x}", m.command_id),
                    seq = m.sequence_number,
                    error = %m.error,
                    "malformed PDU from client"
                );
                if m.command_id & command_id::RESPONSE_BIT != 0 {
                    if m.command_id == command_id::DELIVER_SM_RESP {
                        on_deliver_sm_resp(&ctx, &conn, m.sequence_number, m.command_status);
                    }
                } else {
                    send(
                        &conn,
                        codec::generic_nack(m.sequence_number, status::ESME_RINVCMDLEN),
                    );
                }
                Flow::Continue
            }
        };
        if let Flow::Close = flow {
            break;
        }
        if drop_at.is_none() && conn.bound.get().is_some() {
            drop_at = ctx.drop_after_bind.map(|d| Instant::now() + d);
        }
    }
    // Teardown: route unacknowledged receipts elsewhere, stop the writer.
    lock(&ctx.conns).remove(&id);
    let orphans = lock(&conn.outstanding).take().unwrap_or_default();
    for (_, job) in orphans {
        ctx.schedule(Duration::ZERO, Job::Receipt(Box::new(job)));
    }
    let _ = conn.tx.send(Out::Close);
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        debug!(conn = id, "writer did not finish in time");
    }
    debug!(conn = id, "SMPP connection closed");
}

struct ConnState {
    rng: StdRng,
    submits: u64,
    dates: DateCache,
}

enum Flow {
    Continue,
    Close,
}

fn send(conn: &Conn, cmd: Command) {
    let _ = conn.tx.send(Out::Pdu(cmd));
}

/// Writes the response to a submit_sm: one fewer unanswered on its connection.
fn answer_submit(conn: &Conn, cmd: Command) {
    conn.unanswered.fetch_sub(1, Ordering::Relaxed);
    send(conn, cmd);
}

fn handle(ctx: &Arc<Ctx>, conn: &Arc<Conn>, st: &mut ConnState, cmd: Command) -> Flow {
    let seq = cmd.sequence_number;
    match cmd.id() {
        CommandId::BindTransmitter | CommandId::BindReceiver | CommandId::BindTransceiver => {
            let (kind, sid, pw) = match cmd.pdu() {
                Some(Pdu::BindTransmitter(b)) => (
                    BindKind::Transmitter,
                    b.system_id.as_str(),
                    b.password.as_str(),
                ),
                Some(Pdu::BindReceiver(b)) => (
                    BindKind::Receiver,
                    b.system_id.as_str(),
                    b.password.as_str(),
                ),
                Some(Pdu::BindTransceiver(b)) => (
                    BindKind::Transceiver,
                    b.system_id.as_str(),
                    b.password.as_str(),
                ),
                _ => {
                    send(conn, codec::generic_nack(seq, status::ESME_RINVCMDLEN));
                    return Flow::Continue;
                }
            };
            if conn.bound.get().is_some() {
                send(
                    conn,
                    codec::bind_resp(seq, kind, status::ESME_RALYBND, "smsgwsim"),
                );
                return Flow::Continue;
            }
            let refuse = if sid != ctx.system_id {
                Some(status::ESME_RINVSYSID)
            } else if pw != ctx.password {
                Some(status::ESME_RINVPASWD)
            } else {
                None
            };
            if let Some(s) = refuse {
                info!(conn = conn.id, system_id = sid, status = s, "bind refused");
                send(conn, codec::bind_resp(seq, kind, s, "smsgwsim"));
                return Flow::Close;
            }
            let _ = conn.bound.set((sid.to_string(), kind));
            lock(&ctx.conns).insert(conn.id, conn.clone());
            inc(&ctx.stats.binds);
            info!(conn = conn.id, system_id = sid, ?kind, "bound");
            send(
                conn,
                codec::bind_resp(seq, kind, status::ESME_ROK, "smsgwsim"),
            );
            Flow::Continue
        }
        CommandId::EnquireLink => {
            send(conn, codec::enquire_link_resp(seq));
            Flow::Continue
        }
        CommandId::Unbind => {
            info!(conn = conn.id, "unbind");
            send(conn, codec::unbind_resp(seq));
            Flow::Close
        }
        CommandId::SubmitSm => on_submit(ctx, conn, st, seq, cmd.pdu()),
        CommandId::DeliverSmResp | CommandId::GenericNack => {
            on_deliver_sm_resp(ctx, conn, seq, u32::from(cmd.status));
            Flow::Continue
        }
        id if u32::from(id) & command_id::RESPONSE_BIT != 0 => Flow::Continue,
        CommandId::AlertNotification | CommandId::Outbind => Flow::Continue,
        other => {
            debug!(conn = conn.id, ?other, "unsupported command");
            send(conn, codec::generic_nack(seq, status::ESME_RINVCMDID));
            Flow::Continue
        }
    }
}

/// `POST /control`: changes the quality knobs; answers the knobs now in force.
fn control(ctx: &Ctx, body: &[u8]) -> axum::response::Response {
    use axum::response::IntoResponse;
    let parsed: Result<KnobsBody, String> = if body.is_empty() {
        Ok(KnobsBody::default())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    let mut k = ctx.knobs.write().unwrap_or_else(|e| e.into_inner());
    match parsed.and_then(|b| k.apply(b)) {
        Ok(()) => axum::Json(k.view()).into_response(),
        Err(e) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({"error": e})),
        )
            .into_response(),
    }
}

fn on_submit(
    ctx: &Arc<Ctx>,
    conn: &Arc<Conn>,
    st: &mut ConnState,
    seq: u32,
    pdu: Option<&Pdu>,
) -> Flow {
    inc(&ctx.stats.submits);
    let unanswered = conn.unanswered.fetch_add(1, Ordering::Relaxed) + 1;
    ctx.stats
        .max_unanswered_submits
        .fetch_max(unanswered, Ordering::Relaxed);
    st.submits += 1;
    if ctx.drop_after.is_some_and(|n| st.submits >= n) {
        info!(
            conn = conn.id,
            submits = st.submits,
            "drop_after reached; dropping connection"
        );
        return Flow::Close;
    }
    let system_id = match conn.bound.get() {
        Some((sid, kind)) if *kind != BindKind::Receiver => sid,
        _ => {
            answer_submit(
                conn,
                codec::submit_sm_resp(seq, status::ESME_RINVBNDSTS, ""),
            );
            return Flow::Continue;
        }
    };
    let Some(Pdu::SubmitSm(sm)) = pdu else {
        answer_submit(conn, codec::generic_nack(seq, status::ESME_RINVCMDLEN));
        return Flow::Continue;
    };
    let draw: f64 = st.rng.random();
    let knobs = ctx.knobs.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut lose = false;
    let resp = if ctx.contract.exceeded() || draw < knobs.throttle_rate {
        inc(&ctx.stats.throttled);
        debug!(conn = conn.id, seq, "submit_sm throttled (0x58)");
        codec::submit_sm_resp(seq, status::ESME_RTHROTTLED, "")
    } else if draw < knobs.throttle_rate + knobs.error_rate {
        inc(&ctx.stats.errors);
        inc(&ctx.stats.errors_permanent);
        codec::submit_sm_resp(seq, status::ESME_RSUBMITFAIL, "")
    } else if draw < knobs.throttle_rate + knobs.error_rate + knobs.temp_error_rate
        || knobs
            .temp_error_to
            .as_ref()
            .is_some_and(|p| sm.destination_addr.as_ref().starts_with(p.as_bytes()))
    {
        inc(&ctx.stats.errors);
        inc(&ctx.stats.errors_temporary);
        codec::submit_sm_resp(seq, status::ESME_RSYSERR, "")
    } else {
        let n = ctx.next_id.fetch_add(1, Ordering::Relaxed);
        let message_id = ctx.id_format.format(n);
        inc(&ctx.stats.accepted);
        let fields = SubmitSmFields::from_pdu(sm);
        let registered = fields.registered_delivery & 0x03;
        if let Some(mix) = &knobs.dlr_mix
            && registered != 0
        {
            let state = mix.pick(&mut st.rng);
            // registered_delivery 2 = receipt on failure only.
            if !(registered == 2 && state == ReceiptState::Delivered) {
                let dlr_id = if ctx.mixed_id_format {
                    ctx.id_format.other().format(n)
                } else {
                    message_id.clone()
                };
                let job = Box::new(ReceiptJob {
                    origin: Arc::downgrade(conn),
                    system_id: system_id.clone(),
                    dlr_id,
                    source: fields.source.clone(),
                    dest: fields.dest.clone(),
                    state,
                    submit_date: st.dates.get().to_string(),
                    retries: 0,
                });
                if ctx.receipts_before_responses {
                    dispatch_receipt(ctx, job, st.dates.get());
                } else {
                    ctx.schedule(ctx.dlr_delay, Job::Receipt(job));
                }
            }
        }
        lose = st.rng.random::<f64>() < ctx.lose_response_rate.get();
        if let Some(ledger) = &ctx.ledger {
            let _ = ledger.send(LedgerMsg::Record(Box::new(LedgerRecord {
                message_id: message_id.clone(),
                system_id: system_id.clone(),
                source: fields.source,
                dest: fields.dest,
                data_coding: fields.data_coding,
                esm_class: fields.esm_class,
                short_message: fields.short_message,
                message_payload: fields.message_payload,
                sar: fields.sar,
                response_lost: lose,
                validity_period: fields.validity_period,
                service_type: fields.service_type,
                ton_npi: Some(fields.ton_npi),
                at_ms: chrono::Utc::now().timestamp_millis(),
                tlvs: fields
                    .vendor_tlvs
                    .iter()
                    .map(|(t, v)| (format!("{t:04x}"), String::from_utf8_lossy(v).to_string()))
                    .collect(),
            })));
        }
        codec::submit_sm_resp(seq, status::ESME_ROK, &message_id)
    };
    if lose {
        debug!(conn = conn.id, seq, "losing this submit_sm_resp on purpose");
    } else if ctx.submit_latency.is_zero() {
        answer_submit(conn, resp);
    } else {
        ctx.schedule(
            ctx.submit_latency,
            Job::Respond {
                conn: conn.clone(),
                cmd: resp,
            },
        );
    }
    Flow::Continue
}

fn on_deliver_sm_resp(ctx: &Arc<Ctx>, conn: &Arc<Conn>, seq: u32, command_status: u32) {
    if let Some(waiter) = lock(&conn.mo_waiters).remove(&seq) {
        if command_status == status::ESME_ROK {
            inc(&ctx.stats.mo_acknowledged);
        }
        debug!(conn = conn.id, seq, command_status, "MO answered");
        let _ = waiter.send(command_status);
        return;
    }
    let job = lock(&conn.outstanding)
        .as_mut()
        .and_then(|m| m.remove(&seq));
    let Some(mut job) = job else {
        return;
    };
    if command_status == status::ESME_ROK {
        inc(&ctx.stats.receipts_acked);
        return;
    }
    inc(&ctx.stats.deliver_sm_resp_errors);
    if job.retries < 5 {
        job.retries += 1;
        debug!(conn = conn.id, id = %job.dlr_id, retry = job.retries, command_status, "receipt refused; retrying in 1 s");
        ctx.schedule(Duration::from_secs(1), Job::Receipt(Box::new(job)));
    } else {
        warn!(conn = conn.id, id = %job.dlr_id, command_status, "receipt refused 6 times; giving up");
    }
}

/// Picks the connection for a receipt: its own connection if that is a live
/// transceiver, else any live receiver/transceiver of the same system_id.
fn receipt_target(ctx: &Ctx, job: &ReceiptJob) -> Option<Arc<Conn>> {
    if let Some(origin) = job.origin.upgrade()
        && origin.can_receive(&job.system_id)
        && lock(&origin.outstanding).is_some()
    {
        return Some(origin);
    }
    let conns = lock(&ctx.conns);
    let candidates: Vec<&Arc<Conn>> = conns
        .values()
        .filter(|c| c.can_receive(&job.system_id))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let i = ctx.rr.fetch_add(1, Ordering::Relaxed) % candidates.len();
    Some(candidates[i].clone())
}

/// A mobile-originated message to inject (`POST /mo` on the control address).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoRequest {
    /// The handset's number.
    pub from: String,
    /// The gateway's number or short code.
    pub to: String,
    /// The text: GSM 03.38 (unpacked septets, extension characters escaped, data_coding
    /// 0) when every character has one, else UCS-2 (data_coding 8).
    pub text: String,
    /// Force the coding: `gsm7` (refused when the text has a character GSM lacks) or
    /// `ucs2`.
    #[serde(default)]
    pub data_coding: Option<MoCoding>,
    /// Split into this many parts (8-bit reference UDH, at most 153 septets or 67 UCS-2
    /// characters each); 0 or 1: one deliver_sm (at most 160 septets / 70 characters).
    #[serde(default)]
    pub parts: u8,
    /// The order the parts are sent in (default `forward`).
    #[serde(default)]
    pub order: MoOrder,
    /// Parts (1-based) never sent: a gap the gateway must wait out.
    #[serde(default)]
    pub drop_parts: Vec<u8>,
    /// Parts (1-based) sent twice: duplicates the gateway must not double.
    #[serde(default)]
    pub repeat_parts: Vec<u8>,
}

/// The data coding of an injected MO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoCoding {
    /// GSM 03.38 unpacked septets, data_coding 0.
    Gsm7,
    /// UTF-16BE, data_coding 8.
    Ucs2,
}

/// The order in which a long MO's parts go out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoOrder {
    /// Part 1 first.
    #[default]
    Forward,
    /// Last part first.
    Reverse,
    /// A random order.
    Shuffle,
}

/// How long `POST /mo` waits for the gateway's deliver_sm_resp(s) before answering
/// `"acknowledged": false`.
const MO_ACK_WAIT: Duration = Duration::from_secs(5);

/// The per-part user data (UDH excluded) and data_coding of an MO, or why it cannot be
/// sent (a 422 naming the reason). Pure.
pub fn mo_payloads(mo: &MoRequest) -> Result<(u8, Vec<Vec<u8>>), String> {
    let gsm = mo.text.chars().all(crate::encoding::is_gsm7);
    let coding = match mo.data_coding {
        Some(MoCoding::Gsm7) if !gsm => {
            return Err("text has characters GSM 03.38 lacks; use data_coding ucs2".into());
        }
        Some(c) => c,
        None if gsm => MoCoding::Gsm7,
        None => MoCoding::Ucs2,
    };
    let (encoding, data_coding, unit, single, per_part) = match coding {
        MoCoding::Gsm7 => (
            crate::encoding::TextEncoding::Gsm7,
            0u8,
            "septets",
            160,
            153,
        ),
        MoCoding::Ucs2 => (
            crate::encoding::TextEncoding::Ucs2,
            8u8,
            "UCS-2 characters",
            70,
            67,
        ),
    };
    // Units of a piece of text: GSM septets (unpacked, one octet each) or UTF-16 units.
    let encode = |t: &str| -> Result<(Vec<u8>, usize), String> {
        let mut parts = crate::encoding::encode_parts(t, encoding).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> = if parts.len() == 1 {
            parts.remove(0)
        } else {
            // Longer than one part: only its size matters (it is refused).
            parts.concat()
        };
        let units = if data_coding == 8 {
            bytes.len() / 2
        } else {
            bytes.len()
        };
        Ok((bytes, units))
    };
    if mo.parts <= 1 {
        let (bytes, units) = encode(&mo.text)?;
        if units > single {
            return Err(format!(
                "text is {units} {unit}; one part holds {single}: set \"parts\" (at most {per_part} {unit} each)"
            ));
        }
        return Ok((data_coding, vec![bytes]));
    }
    let chars: Vec<char> = mo.text.chars().collect();
    let total = usize::from(mo.parts);
    if total > chars.len() {
        return Err(format!(
            "\"parts\": {total} parts for {} characters; at most one part per character",
            chars.len()
        ));
    }
    let mut out = Vec::with_capacity(total);
    for i in 0..total {
        let piece: String = chars[i * chars.len() / total..(i + 1) * chars.len() / total]
            .iter()
            .collect();
        let (bytes, units) = encode(&piece)?;
        if units > per_part {
            return Err(format!(
                "\"parts\": {total} parts are too few; part {} would be {units} {unit} (at most {per_part})",
                i + 1
            ));
        }
        out.push(bytes);
    }
    Ok((data_coding, out))
}

/// `POST /mo`: parses the body (JSON, whatever its Content-Type), sends the MO and
/// answers `{"sent_parts", "acknowledged"}` once the gateway answered every part (or
/// after `MO_ACK_WAIT`); 422/503 with `{"error"}` saying why not.
async fn mo_endpoint(ctx: &Ctx, body: &[u8]) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let refuse = |status: StatusCode, why: String| {
        (status, axum::Json(serde_json::json!({"error": why}))).into_response()
    };
    let mo: MoRequest = match serde_json::from_slice(body) {
        Ok(mo) => mo,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, format!("body: {e}")),
    };
    match send_mo(ctx, &mo).await {
        Ok((sent_parts, acknowledged)) => {
            axum::Json(serde_json::json!({"sent_parts": sent_parts, "acknowledged": acknowledged}))
                .into_response()
        }
        Err((status, why)) => refuse(status, why),
    }
}

/// Sends an MO `deliver_sm` (or its parts) on a bound receiver/transceiver and waits for
/// the answers: (parts sent, all answered status 0).
async fn send_mo(
    ctx: &Ctx,
    mo: &MoRequest,
) -> Result<(usize, bool), (axum::http::StatusCode, String)> {
    use axum::http::StatusCode;
    let unprocessable = |why: String| (StatusCode::UNPROCESSABLE_ENTITY, why);
    let (data_coding, payloads) = mo_payloads(mo).map_err(unprocessable)?;
    let total = payloads.len();
    if let Some(n) = mo
        .drop_parts
        .iter()
        .chain(&mo.repeat_parts)
        .find(|n| **n == 0 || usize::from(**n) > total)
    {
        return Err(unprocessable(format!(
            "part {n} in drop_parts/repeat_parts: the message has parts 1 to {total}"
        )));
    }
    let conn = {
        let conns = lock(&ctx.conns);
        conns
            .values()
            .find(|c| c.bound.get().is_some_and(|(sys, _)| c.can_receive(sys)))
            .cloned()
    };
    let Some(conn) = conn else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "no receiver or transceiver bind to deliver on".into(),
        ));
    };
    // (part number, payload with its UDH) in sending order.
    let reference = (ctx.rr.fetch_add(1, Ordering::Relaxed) & 0xFF) as u8;
    let mut order: Vec<usize> = (1..=total)
        .filter(|n| !mo.drop_parts.iter().any(|d| usize::from(*d) == *n))
        .flat_map(|n| {
            let twice = mo.repeat_parts.iter().any(|r| usize::from(*r) == n);
            std::iter::repeat_n(n, if twice { 2 } else { 1 })
        })
        .collect();
    match mo.order {
        MoOrder::Forward => {}
        MoOrder::Reverse => order.reverse(),
        MoOrder::Shuffle => {
            use rand::seq::SliceRandom;
            order.shuffle(&mut rand::rng());
        }
    }
    let mut waiters = Vec::with_capacity(order.len());
    for n in &order {
        let seq = conn.next_seq();
        let data = &payloads[n - 1];
        let cmd = if total == 1 {
            codec::deliver_sm_mo(seq, &mo.from, &mo.to, data_coding, data)
        } else {
            let mut payload =
                crate::encoding::concat_udh_8bit(reference, total as u8, *n as u8).to_vec();
            payload.extend_from_slice(data);
            codec::deliver_sm_mo_part(seq, &mo.from, &mo.to, data_coding, &payload)
        };
        let cmd = cmd.map_err(|e| unprocessable(format!("cannot encode the MO: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        lock(&conn.mo_waiters).insert(seq, tx);
        send(&conn, cmd);
        inc(&ctx.stats.mo_sent);
        info!(conn = conn.id, seq, from = %mo.from, to = %mo.to, part = n, parts = total, data_coding, "MO sent");
        waiters.push((seq, rx));
    }
    let answered = tokio::time::timeout(MO_ACK_WAIT, async {
        let mut all_ok = true;
        for (_, rx) in &mut waiters {
            all_ok &= matches!(rx.await, Ok(status::ESME_ROK));
        }
        all_ok
    })
    .await;
    let acknowledged = match answered {
        Ok(ok) => ok,
        Err(_) => {
            let mut w = lock(&conn.mo_waiters);
            for (seq, _) in &waiters {
                w.remove(seq);
            }
            false
        }
    };
    info!(conn = conn.id, from = %mo.from, parts = order.len(), acknowledged, "MO answered by the gateway");
    Ok((order.len(), acknowledged))
}

/// Sends a receipt now, or parks it for 1 s if no connection can take it.
fn dispatch_receipt(ctx: &Ctx, job: Box<ReceiptJob>, done_date: &str) {
    let Some(conn) = receipt_target(ctx, &job) else {
        ctx.schedule(Duration::from_secs(1), Job::Receipt(job));
        return;
    };
    let seq = conn.next_seq();
    let delivered = job.state == ReceiptState::Delivered;
    let err = match job.state {
        ReceiptState::Delivered | ReceiptState::Accepted | ReceiptState::Enroute => "000",
        ReceiptState::Undeliverable => "001",
        ReceiptState::Rejected => "002",
        ReceiptState::Expired => "003",
        ReceiptState::Deleted => "004",
        ReceiptState::Unknown => "005",
    };
    let text = format!(
        "id:{} sub:001 dlvrd:{} submit date:{} done date:{} stat:{} err:{} text:",
        job.dlr_id,
        if delivered { "001" } else { "000" },
        job.submit_date,
        done_date,
        job.state.stat_text(),
        err,
    );
    let cmd = codec::deliver_sm_receipt(
        seq,
        &ReceiptPdu {
            source_addr: &job.dest,
            dest_addr: &job.source,
            text: &text,
            receipted_message_id: &job.dlr_id,
            message_state: job.state.message_state(),
        },
    );
    let cmd = match cmd {
        Ok(c) => c,
        Err(e) => {
            warn!(id = %job.dlr_id, error = %e, "cannot encode receipt; dropped");
            return;
        }
    };
    {
        let mut out = lock(&conn.outstanding);
        match out.as_mut() {
            Some(map) => {
                map.insert(seq, *job);
            }
            None => {
                // Connection went away between picking and sending.
                drop(out);
                ctx.schedule(Duration::ZERO, Job::Receipt(job));
                return;
            }
        }
    }
    send(&conn, cmd);
    inc(&ctx.stats.receipts_sent);
}

async fn scheduler_task(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<(Instant, Job)>) {
    let stop = ctx.shutdown_future();
    tokio::pin!(stop);
    let mut heap: BinaryHeap<Scheduled> = BinaryHeap::new();
    let mut n: u64 = 0;
    let far = || Instant::now() + Duration::from_secs(86_400);
    let sleep = tokio::time::sleep_until(far());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    let mut dates = DateCache::default();
    loop {
        let next = heap.peek().map(|s| s.at);
        if next != armed {
            sleep.as_mut().reset(next.unwrap_or_else(far));
            armed = next;
        }
        tokio::select! {
            biased;
            _ = &mut stop => return,
            msg = rx.recv() => {
                let Some((at, job)) = msg else { return };
                n += 1;
                heap.push(Scheduled { at, n, job });
                let mut extra = 0;
                while extra < 4096 {
                    let Ok((at, job)) = rx.try_recv() else { break };
                    n += 1;
                    heap.push(Scheduled { at, n, job });
                    extra += 1;
                }
            }
            _ = &mut sleep, if next.is_some() => {
                armed = None;
                let now = Instant::now();
                while heap.peek().is_some_and(|s| s.at <= now) {
                    let Some(item) = heap.pop() else { break };
                    match item.job {
                        Job::Respond { conn, cmd } => answer_submit(&conn, cmd),
                        Job::Receipt(job) => dispatch_receipt(&ctx, job, dates.get()),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SmscSimArgs,
    }

    #[test]
    fn clap_defaults_match_default_impl() {
        let parsed = Cli::try_parse_from(["sim"]).unwrap().args;
        let d = SmscSimArgs::default();
        assert_eq!(parsed.listen, d.listen);
        assert_eq!(parsed.system_id, d.system_id);
        assert_eq!(parsed.password, d.password);
        assert_eq!(parsed.dlr_delay_ms, d.dlr_delay_ms);
        assert_eq!(parsed.dlr_mix, d.dlr_mix);
        assert_eq!(parsed.id_format, IdFormat::Hex);
        assert_eq!(parsed.drop_after, None);
        assert!(!parsed.mixed_id_format && !parsed.receipts_before_responses);

        let parsed = Cli::try_parse_from([
            "sim",
            "--listen",
            "0.0.0.0:2776",
            "--dlr-mix",
            "delivered=90,undeliverable=10",
            "--throttle-rate",
            "0.25",
            "--drop-after",
            "100",
            "--id-format",
            "decimal",
            "--mixed-id-format",
            "--receipts-before-responses",
            "--ledger",
            "/tmp/l.jsonl",
            "--control",
            "127.0.0.1:8081",
            "--seed",
            "42",
            "--max-tps",
            "150",
        ])
        .unwrap()
        .args;
        assert_eq!(parsed.max_tps, Some(150));
        assert!(Cli::try_parse_from(["sim", "--max-tps", "0"]).is_err());
        assert_eq!(parsed.listen, "0.0.0.0:2776");
        assert_eq!(parsed.throttle_rate, 0.25);
        assert_eq!(parsed.drop_after, Some(100));
        assert_eq!(parsed.id_format, IdFormat::Decimal);
        assert!(parsed.mixed_id_format && parsed.receipts_before_responses);
        assert_eq!(parsed.seed, 42);
    }

    #[test]
    fn dlr_mix_parsing_and_weights() {
        assert!(DlrMix::parse("none").unwrap().is_none());
        assert!(DlrMix::parse("NONE").unwrap().is_none());
        assert!(DlrMix::parse("delivered=0").is_err());
        assert!(DlrMix::parse("delivered").is_err());
        assert!(DlrMix::parse("bogus=5").is_err());
        assert!(DlrMix::parse("delivered=x").is_err());
        let mix = DlrMix::parse(" delivered=90, undeliverable=5 ,expired=3,rejected=2")
            .unwrap()
            .unwrap();
        assert_eq!(mix.total, 100);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts: HashMap<ReceiptState, u32> = HashMap::new();
        for _ in 0..10_000 {
            *counts.entry(mix.pick(&mut rng)).or_default() += 1;
        }
        let delivered = counts[&ReceiptState::Delivered];
        assert!((8_700..9_300).contains(&delivered), "{delivered}");
        assert!(counts[&ReceiptState::Rejected] > 100);
        assert_eq!(counts.get(&ReceiptState::Deleted), None);
    }

    #[test]
    fn id_formats() {
        assert_eq!(IdFormat::Hex.format(2748), "ABC");
        assert_eq!(IdFormat::Decimal.format(2748), "2748");
        assert_eq!(IdFormat::Hex.other(), IdFormat::Decimal);
        let a = crate::protocols::smpp::id_keys(&IdFormat::Hex.format(123_456_789));
        let b = crate::protocols::smpp::id_keys(&IdFormat::Decimal.format(123_456_789));
        assert!(a.iter().any(|k| b.contains(k)));
    }

    #[test]
    fn scheduler_order_is_earliest_first() {
        let now = Instant::now();
        let mut heap = BinaryHeap::new();
        for (n, ms) in [(1u64, 30u64), (2, 10), (3, 20), (4, 10)] {
            heap.push(Scheduled {
                at: now + Duration::from_millis(ms),
                n,
                job: Job::Receipt(Box::new(ReceiptJob {
                    origin: Weak::new(),
                    system_id: String::new(),
                    dlr_id: n.to_string(),
                    source: String::new(),
                    dest: String::new(),
                    state: ReceiptState::Delivered,
                    submit_date: String::new(),
                    retries: 0,
                })),
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|s| s.n)).collect();
        assert_eq!(order, vec![2, 4, 3, 1]);
    }
}
