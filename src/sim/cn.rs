//! `smsgw sim smsc --protocol cmpp|smgp|sgip`: the operator side of CMPP 2.0/3.0
//! (ISMG), SMGP 3.0 (SMGW) and SGIP 1.2 (SMG), with the SMPP simulator's knobs
//! (submit latency, receipt delay and outcome mix, throttling and error rates,
//! connection drops, the JSONL ledger and `GET /stats` in the same format)
//! plus `--malformed-after` to test the client's recovery.
//!
//! CMPP and SMGP send status reports on the client's own connection (or any
//! other live one of the same account); SGIP, whose SMG connects back to the
//! SP, sends its Reports over a connection to `--report-to`, bound with
//! LoginType 2 and `--report-login`/`--report-password`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::smsc::{
    DateCache, DlrMix, LedgerMsg, LedgerRecord, SimProtocol, SmscSimArgs, Stats, StatsSnapshot,
    inc, ledger_thread,
};
use crate::protocols::cmpp::codec as cm;
use crate::protocols::cn::session::{Out, frame_codec, write_frames};
use crate::protocols::cn::wire;
use crate::protocols::sgip::codec as sg;
use crate::protocols::smgp::codec as sm;
use crate::protocols::smpp::ReceiptState;

/// The ISMG's gateway code in CMPP Msg_Ids.
const CMPP_GATEWAY_CODE: u32 = 0x2A_5A5A;
/// The SMGW code in SMGP MsgIDs.
const SMGP_SMGW_CODE: u32 = 100_601;
/// The SMG's node id in SGIP sequence numbers (1AAAAX).
const SGIP_NODE_ID: u32 = 1_010_001;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A status report waiting to be sent (and possibly resent).
struct ReportJob {
    origin: Weak<Conn>,
    account: String,
    /// The submit's id: CMPP Msg_Id, SMGP MsgID, SGIP sequence number.
    id: ReportId,
    /// Submit source (SP number) and destination (handset).
    src: String,
    dest: String,
    state: ReceiptState,
    submit_date: String,
    retries: u32,
}

#[derive(Clone, Copy)]
enum ReportId {
    Cmpp(u64),
    Smgp([u8; 10]),
    Sgip(sg::Seq),
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Out>,
    seq: AtomicU32,
    account: OnceLock<String>,
    cmpp_version: OnceLock<cm::Version>,
    /// Reports awaiting their response, by sequence counter; None once closed.
    outstanding: Mutex<Option<HashMap<u32, ReportJob>>>,
}

impl Conn {
    fn next_n(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1
    }
    fn send(&self, f: Vec<u8>) {
        let _ = self.tx.send(Out::Frame(f));
    }
    fn version(&self) -> cm::Version {
        self.cmpp_version.get().copied().unwrap_or_default()
    }
}

struct Ctx {
    protocol: SimProtocol,
    account: String,
    password: String,
    submit_latency: Duration,
    dlr_delay: Duration,
    dlr_mix: Option<DlrMix>,
    throttle_rate: f64,
    /// The contracted rate (`--max-tps`): submits beyond it are throttled.
    contract: super::Contract,
    error_rate: f64,
    drop_after: Option<u64>,
    malformed_after: Option<u64>,
    seed: u64,
    stats: Stats,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    ledger: Option<std::sync::mpsc::Sender<LedgerMsg>>,
    /// SGIP: reports go to the gateway's listener through this queue.
    sgip_reports: Option<mpsc::UnboundedSender<ReportJob>>,
    shutdown: watch::Receiver<bool>,
}

impl Ctx {
    fn stopped(&self) -> impl Future<Output = ()> + use<> {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}

/// Serves the chosen protocol until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    args: SmscSimArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.throttle_rate) && (0.0..=1.0).contains(&args.error_rate),
        "throttle_rate and error_rate must be within 0.0..=1.0"
    );
    anyhow::ensure!(
        args.protocol != SimProtocol::Sgip || args.report_to.is_some() || args.dlr_mix == "none",
        "--protocol sgip needs --report-to (the gateway's SGIP listener) unless --dlr-mix none"
    );
    let dlr_mix = DlrMix::parse(&args.dlr_mix)?;
    let local: SocketAddr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ledger, ledger_handle) = match &args.ledger {
        Some(path) => {
            let file = super::open_ledger(path)?;
            let (tx, rx) = std::sync::mpsc::channel();
            let h = std::thread::Builder::new()
                .name("cn-sim-ledger".into())
                .spawn(move || ledger_thread(file, rx))?;
            (Some(tx), Some(h))
        }
        None => (None, None),
    };
    let (sgip_tx, sgip_rx) = mpsc::unbounded_channel();
    let sgip = args.protocol == SimProtocol::Sgip;
    let ctx = Arc::new(Ctx {
        protocol: args.protocol,
        account: args.system_id.clone(),
        password: args.password.clone(),
        submit_latency: Duration::from_millis(args.submit_latency_ms),
        dlr_delay: Duration::from_millis(args.dlr_delay_ms),
        dlr_mix,
        throttle_rate: args.throttle_rate,
        contract: super::Contract::new(args.max_tps),
        error_rate: args.error_rate,
        drop_after: args.drop_after,
        malformed_after: args.malformed_after,
        seed: args.seed,
        stats: Stats::default(),
        next_id: AtomicU64::new(u64::from(rand::random::<u16>())),
        next_conn: AtomicU64::new(1),
        conns: Mutex::new(HashMap::new()),
        ledger,
        sgip_reports: sgip.then_some(sgip_tx),
        shutdown: stop_rx,
    });
    if let Some(control) = &args.control {
        let l = super::bind_listener("control address ", control).await?;
        let c = ctx.clone();
        let app = axum::Router::new().route(
            "/stats",
            axum::routing::get(move || {
                let c = c.clone();
                async move { axum::Json::<StatsSnapshot>(c.stats.snapshot()) }
            }),
        );
        let stop = ctx.stopped();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).with_graceful_shutdown(stop).await;
        });
    }
    if sgip && let Some(to) = args.report_to.clone() {
        tokio::spawn(sgip_reporter(
            ctx.clone(),
            to,
            args.report_login.clone(),
            args.report_password.clone(),
            sgip_rx,
        ));
    }
    info!(addr = %local, protocol = ?args.protocol, "operator simulator listening");
    let accept = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let stop = ctx.stopped();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    r = listener.accept() => match r {
                        Ok((s, _)) => { tokio::spawn(connection(ctx.clone(), s)); }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        })
    };
    shutdown.await;
    info!(stats = ?ctx.stats.snapshot(), "operator simulator stopping");
    stop_tx.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), accept).await;
    if let Some(tx) = &ctx.ledger {
        let _ = tx.send(LedgerMsg::Stop);
    }
    if let Some(h) = ledger_handle {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    Ok(())
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

async fn connection(ctx: Arc<Ctx>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let id = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(async move { write_frames(&mut wr, &mut rx).await });
    let conn = Arc::new(Conn {
        id,
        tx,
        seq: AtomicU32::new(1),
        account: OnceLock::new(),
        cmpp_version: OnceLock::new(),
        outstanding: Mutex::new(Some(HashMap::new())),
    });
    let mut st = ConnState {
        rng: if ctx.seed != 0 {
            StdRng::seed_from_u64(ctx.seed.wrapping_add(id))
        } else {
            StdRng::from_os_rng()
        },
        submits: 0,
        dates: DateCache::default(),
    };
    let mut reader = FramedRead::with_capacity(rd, frame_codec(), 64 * 1024);
    let stop = ctx.stopped();
    tokio::pin!(stop);
    loop {
        let frame = tokio::select! {
            biased;
            _ = &mut stop => break,
            f = reader.next() => f,
        };
        let Some(Ok(frame)) = frame else { break };
        let flow = match ctx.protocol {
            SimProtocol::Smgp => on_smgp(&ctx, &conn, &mut st, &frame),
            SimProtocol::Sgip => on_sgip(&ctx, &conn, &mut st, &frame),
            _ => on_cmpp(&ctx, &conn, &mut st, &frame),
        };
        if let Flow::Close = flow {
            break;
        }
    }
    lock(&ctx.conns).remove(&id);
    let orphans = lock(&conn.outstanding).take().unwrap_or_default();
    for (_, job) in orphans {
        schedule_report(&ctx, job, Duration::ZERO);
    }
    let _ = conn.tx.send(Out::Close);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    debug!(conn = id, "simulator connection closed");
}

/// What every protocol's submit has in common, for the shared decision.
struct SubmitView {
    account: String,
    src: String,
    dest: String,
    msg_fmt: u8,
    udhi: bool,
    content: Vec<u8>,
    report: bool,
}

enum Decision {
    /// Answer later with this frame (or now if there is no latency).
    Answer(Vec<u8>),
    /// Close the connection without answering.
    Drop,
}

/// Draws the outcome, records the ledger line and schedules the report; the
/// caller's `answer(result, id)` builds the response (`id` None when refused).
fn decide(
    ctx: &Arc<Ctx>,
    conn: &Arc<Conn>,
    st: &mut ConnState,
    v: SubmitView,
    make_id: impl FnOnce(u64) -> (ReportId, String),
    answer: impl FnOnce(Outcome, Option<ReportId>) -> Vec<u8>,
) -> Decision {
    inc(&ctx.stats.submits);
    st.submits += 1;
    if ctx.drop_after.is_some_and(|n| st.submits >= n) {
        info!(conn = conn.id, "drop_after reached; dropping connection");
        return Decision::Drop;
    }
    if ctx
        .malformed_after
        .is_some_and(|n| st.submits.is_multiple_of(n.max(1)))
    {
        info!(
            conn = conn.id,
            "malformed_after reached; sending a malformed PDU"
        );
        // A frame whose length is fine but whose command id no protocol has.
        let mut f = wire::begin(0x0000_7E7E, 32);
        f.extend_from_slice(&[0xEE; 16]);
        return Decision::Answer(wire::finish(f));
    }
    let draw: f64 = st.rng.random();
    if ctx.contract.exceeded() || draw < ctx.throttle_rate {
        inc(&ctx.stats.throttled);
        return Decision::Answer(answer(Outcome::Throttled, None));
    }
    if draw < ctx.throttle_rate + ctx.error_rate {
        inc(&ctx.stats.errors);
        return Decision::Answer(answer(Outcome::Error, None));
    }
    let n = ctx.next_id.fetch_add(1, Ordering::Relaxed);
    let (rid, text_id) = make_id(n);
    inc(&ctx.stats.accepted);
    if let Some(mix) = &ctx.dlr_mix
        && v.report
    {
        let state = mix.pick(&mut st.rng);
        let job = ReportJob {
            origin: Arc::downgrade(conn),
            account: v.account.clone(),
            id: rid,
            src: v.src.clone(),
            dest: v.dest.clone(),
            state,
            submit_date: st.dates.get().to_string(),
            retries: 0,
        };
        schedule_report(ctx, job, ctx.dlr_delay);
    }
    if let Some(ledger) = &ctx.ledger {
        let _ = ledger.send(LedgerMsg::Record(Box::new(LedgerRecord {
            message_id: text_id,
            system_id: v.account,
            source: v.src,
            dest: v.dest,
            data_coding: v.msg_fmt,
            esm_class: if v.udhi { 0x40 } else { 0 },
            short_message: v.content,
            at_ms: chrono::Utc::now().timestamp_millis(),
            tlvs: Default::default(),
            message_payload: false,
            sar: None,
            response_lost: false,
            validity_period: String::new(),
            service_type: String::new(),
            ton_npi: None,
        })));
    }
    Decision::Answer(answer(Outcome::Ok, Some(rid)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Throttled,
    Error,
}

fn respond(ctx: &Arc<Ctx>, conn: &Arc<Conn>, d: Decision) -> Flow {
    match d {
        Decision::Drop => Flow::Close,
        Decision::Answer(f) if ctx.submit_latency.is_zero() => {
            conn.send(f);
            Flow::Continue
        }
        Decision::Answer(f) => {
            let (c, d) = (conn.clone(), ctx.submit_latency);
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                c.send(f);
            });
            Flow::Continue
        }
    }
}

fn now_mdhms() -> (u32, u32, u32, u32, u32) {
    use chrono::{Datelike, Timelike};
    let t = chrono::Local::now();
    (t.month(), t.day(), t.hour(), t.minute(), t.second())
}

fn on_cmpp(ctx: &Arc<Ctx>, conn: &Arc<Conn>, st: &mut ConnState, frame: &[u8]) -> Flow {
    let v = conn.version();
    let (seq, pdu) = match cm::Pdu::decode(frame, v) {
        Ok(x) => x,
        Err(e) => {
            warn!(conn = conn.id, error = %e, "malformed PDU from client; closing");
            return Flow::Close;
        }
    };
    match pdu {
        cm::Pdu::Connect(c) => {
            let v = cm::Version::from_octet(c.version);
            let expected = cm::authenticator_source(&ctx.account, &ctx.password, c.timestamp);
            let status = if c.source_addr != ctx.account {
                2
            } else if c.authenticator != expected {
                3
            } else {
                0
            };
            let _ = conn.cmpp_version.set(v);
            let resp = cm::Pdu::ConnectResp(cm::ConnectResp {
                status,
                authenticator: cm::authenticator_ismg(v, status, &c.authenticator, &ctx.password),
                version: v.octet(),
            });
            conn.send(resp.encode(seq, v));
            if status != 0 {
                info!(conn = conn.id, status, "CMPP connect refused");
                return Flow::Close;
            }
            let _ = conn.account.set(c.source_addr);
            lock(&ctx.conns).insert(conn.id, conn.clone());
            inc(&ctx.stats.binds);
            Flow::Continue
        }
        cm::Pdu::ActiveTest => {
            conn.send(cm::Pdu::ActiveTestResp.encode(seq, v));
            Flow::Continue
        }
        cm::Pdu::Terminate => {
            conn.send(cm::Pdu::TerminateResp.encode(seq, v));
            Flow::Close
        }
        cm::Pdu::Submit(s) => {
            let Some(account) = conn.account.get().cloned() else {
                return Flow::Close;
            };
            let view = SubmitView {
                account,
                src: s.src_id.clone(),
                dest: s.dest_terminal_ids.first().cloned().unwrap_or_default(),
                msg_fmt: s.msg_fmt,
                udhi: s.tp_udhi != 0,
                content: s.content.clone(),
                report: s.registered_delivery == 1,
            };
            let d = decide(
                ctx,
                conn,
                st,
                view,
                |n| {
                    let id = cm::make_msg_id(now_mdhms(), CMPP_GATEWAY_CODE, n as u16);
                    (ReportId::Cmpp(id), id.to_string())
                },
                |o, rid| {
                    let msg_id = match rid {
                        Some(ReportId::Cmpp(id)) => id,
                        _ => 0,
                    };
                    let result = match o {
                        Outcome::Ok => 0,
                        Outcome::Throttled => 8,
                        Outcome::Error => 9,
                    };
                    cm::Pdu::SubmitResp(cm::Resp { msg_id, result }).encode(seq, v)
                },
            );
            respond(ctx, conn, d)
        }
        cm::Pdu::DeliverResp(r) => {
            on_report_resp(ctx, conn, seq, r.result == 0);
            Flow::Continue
        }
        _ => Flow::Continue,
    }
}

fn on_smgp(ctx: &Arc<Ctx>, conn: &Arc<Conn>, st: &mut ConnState, frame: &[u8]) -> Flow {
    let (seq, pdu) = match sm::Pdu::decode(frame) {
        Ok(x) => x,
        Err(e) => {
            warn!(conn = conn.id, error = %e, "malformed PDU from client; closing");
            return Flow::Close;
        }
    };
    match pdu {
        sm::Pdu::Login(l) => {
            let expected = sm::authenticator_client(&ctx.account, &ctx.password, l.timestamp);
            let status = if l.client_id != ctx.account || l.authenticator != expected {
                21
            } else {
                0
            };
            conn.send(
                sm::Pdu::LoginResp(sm::LoginResp {
                    status,
                    authenticator: sm::authenticator_server(
                        status,
                        &l.authenticator,
                        &ctx.password,
                    ),
                    version: sm::VERSION,
                })
                .encode(seq),
            );
            if status != 0 {
                info!(conn = conn.id, status, "SMGP login refused");
                return Flow::Close;
            }
            let _ = conn.account.set(l.client_id);
            lock(&ctx.conns).insert(conn.id, conn.clone());
            inc(&ctx.stats.binds);
            Flow::Continue
        }
        sm::Pdu::ActiveTest => {
            conn.send(sm::Pdu::ActiveTestResp.encode(seq));
            Flow::Continue
        }
        sm::Pdu::Exit => {
            conn.send(sm::Pdu::ExitResp.encode(seq));
            Flow::Close
        }
        sm::Pdu::Submit(s) => {
            let Some(account) = conn.account.get().cloned() else {
                return Flow::Close;
            };
            let view = SubmitView {
                account,
                src: s.src_term_id.clone(),
                dest: s.dest_term_ids.first().cloned().unwrap_or_default(),
                msg_fmt: s.msg_format,
                udhi: sm::tlv_u8(&s.tlvs, sm::tag::TP_UDHI).unwrap_or(0) != 0,
                content: s.content.clone(),
                report: s.need_report == 1,
            };
            let d = decide(
                ctx,
                conn,
                st,
                view,
                |n| {
                    let stamp = chrono::Local::now().format("%m%d%H%M").to_string();
                    let id = sm::make_msg_id(SMGP_SMGW_CODE, &stamp, n as u32);
                    (ReportId::Smgp(id), sm::msg_id_text(&id))
                },
                |o, rid| {
                    let msg_id = match rid {
                        Some(ReportId::Smgp(id)) => id,
                        _ => [0; 10],
                    };
                    let status = match o {
                        Outcome::Ok => 0,
                        Outcome::Throttled => 1,
                        Outcome::Error => 53,
                    };
                    sm::Pdu::SubmitResp(sm::Resp { msg_id, status }).encode(seq)
                },
            );
            respond(ctx, conn, d)
        }
        sm::Pdu::DeliverResp(r) => {
            on_report_resp(ctx, conn, seq, r.status == 0);
            Flow::Continue
        }
        _ => Flow::Continue,
    }
}

fn on_sgip(ctx: &Arc<Ctx>, conn: &Arc<Conn>, st: &mut ConnState, frame: &[u8]) -> Flow {
    let (seq, pdu) = match sg::Pdu::decode(frame) {
        Ok(x) => x,
        Err(e) => {
            warn!(conn = conn.id, error = %e, "malformed PDU from client; closing");
            return Flow::Close;
        }
    };
    match pdu {
        sg::Pdu::Bind(b) => {
            let ok = b.login_type == 1
                && b.login_name == ctx.account
                && b.login_password == ctx.password;
            conn.send(sg::Pdu::BindResp(if ok { 0 } else { 1 }).encode(seq));
            if !ok {
                info!(conn = conn.id, "SGIP bind refused");
                return Flow::Close;
            }
            let _ = conn.account.set(b.login_name);
            inc(&ctx.stats.binds);
            Flow::Continue
        }
        sg::Pdu::Unbind => {
            conn.send(sg::Pdu::UnbindResp.encode(seq));
            Flow::Close
        }
        sg::Pdu::Submit(s) => {
            let Some(account) = conn.account.get().cloned() else {
                return Flow::Close;
            };
            let view = SubmitView {
                account,
                src: s.sp_number.clone(),
                dest: s.user_numbers.first().cloned().unwrap_or_default(),
                msg_fmt: s.message_coding,
                udhi: s.tp_udhi != 0,
                content: s.content.clone(),
                // ReportFlag 0 = only failures, 1 = always.
                report: s.report_flag <= 1,
            };
            let d = decide(
                ctx,
                conn,
                st,
                view,
                |_| (ReportId::Sgip(seq), seq.id_text()),
                |o, _| {
                    let result = match o {
                        Outcome::Ok => 0,
                        Outcome::Throttled => 11,
                        Outcome::Error => 21,
                    };
                    sg::Pdu::SubmitResp(result).encode(seq)
                },
            );
            respond(ctx, conn, d)
        }
        _ => Flow::Continue,
    }
}

fn on_report_resp(ctx: &Arc<Ctx>, conn: &Arc<Conn>, n: u32, ok: bool) {
    let job = lock(&conn.outstanding).as_mut().and_then(|m| m.remove(&n));
    let Some(mut job) = job else { return };
    if ok {
        inc(&ctx.stats.receipts_acked);
        return;
    }
    inc(&ctx.stats.deliver_sm_resp_errors);
    if job.retries < 5 {
        job.retries += 1;
        schedule_report(ctx, job, Duration::from_secs(1));
    }
}

fn schedule_report(ctx: &Arc<Ctx>, job: ReportJob, after: Duration) {
    if let Some(q) = &ctx.sgip_reports {
        if after.is_zero() {
            let _ = q.send(job);
        } else {
            let q = q.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = q.send(job);
            });
        }
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if !after.is_zero() {
            tokio::time::sleep(after).await;
        }
        dispatch_report(&ctx, job);
    });
}

fn target(ctx: &Ctx, job: &ReportJob) -> Option<Arc<Conn>> {
    if let Some(o) = job.origin.upgrade()
        && lock(&o.outstanding).is_some()
    {
        return Some(o);
    }
    lock(&ctx.conns)
        .values()
        .find(|c| c.account.get() == Some(&job.account))
        .cloned()
}

fn smgp_err(s: ReceiptState) -> &'static str {
    match s {
        ReceiptState::Delivered | ReceiptState::Accepted | ReceiptState::Enroute => "000",
        ReceiptState::Expired => "001",
        ReceiptState::Undeliverable => "003",
        ReceiptState::Deleted => "008",
        ReceiptState::Rejected => "009",
        ReceiptState::Unknown => "999",
    }
}

/// Sends a CMPP/SMGP report on a live connection of the account, or retries in 1 s.
fn dispatch_report(ctx: &Arc<Ctx>, job: ReportJob) {
    let Some(conn) = target(ctx, &job) else {
        let ctx2 = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            dispatch_report(&ctx2, job);
        });
        return;
    };
    let n = conn.next_n();
    let done = chrono::Local::now().format("%y%m%d%H%M").to_string();
    let deliver_id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
    let frame = match job.id {
        ReportId::Cmpp(msg_id) => {
            let v = conn.version();
            let content = cm::Report {
                msg_id,
                stat: job.state.stat_text().to_string(),
                submit_time: job.submit_date.clone(),
                done_time: done,
                dest_terminal_id: job.dest.clone(),
                smsc_sequence: n,
            }
            .encode(v);
            cm::Pdu::Deliver(Box::new(cm::Deliver {
                msg_id: cm::make_msg_id(now_mdhms(), CMPP_GATEWAY_CODE, deliver_id as u16),
                dest_id: job.src.clone(),
                src_terminal_id: job.dest.clone(),
                registered_delivery: 1,
                content,
                ..cm::Deliver::default()
            }))
            .encode(n, v)
        }
        ReportId::Smgp(msg_id) => {
            let content = sm::Report {
                msg_id,
                stat: job.state.stat_text().to_string(),
                err: smgp_err(job.state).to_string(),
                submit_date: job.submit_date.clone(),
                done_date: done,
            }
            .encode();
            let stamp = chrono::Local::now().format("%m%d%H%M").to_string();
            sm::Pdu::Deliver(Box::new(sm::Deliver {
                msg_id: sm::make_msg_id(SMGP_SMGW_CODE, &stamp, deliver_id as u32),
                is_report: 1,
                recv_time: chrono::Local::now().format("%Y%m%d%H%M%S").to_string(),
                src_term_id: job.dest.clone(),
                dest_term_id: job.src.clone(),
                content,
                ..sm::Deliver::default()
            }))
            .encode(n)
        }
        ReportId::Sgip(_) => return,
    };
    {
        let mut out = lock(&conn.outstanding);
        match out.as_mut() {
            Some(m) => {
                m.insert(n, job);
            }
            None => {
                drop(out);
                schedule_report(ctx, job, Duration::ZERO);
                return;
            }
        }
    }
    conn.send(frame);
    inc(&ctx.stats.receipts_sent);
}

fn sgip_state(s: ReceiptState) -> (u8, u8) {
    match s {
        ReceiptState::Delivered => (0, 0),
        ReceiptState::Accepted | ReceiptState::Enroute => (1, 0),
        ReceiptState::Expired => (2, 2),
        ReceiptState::Undeliverable => (2, 21),
        ReceiptState::Rejected | ReceiptState::Deleted => (2, 25),
        ReceiptState::Unknown => (2, 99),
    }
}

/// SGIP: keeps a connection to the gateway's listener (Bind with LoginType 2)
/// and sends each Report on it; unanswered or refused reports are resent.
async fn sgip_reporter(
    ctx: Arc<Ctx>,
    to: String,
    login: String,
    password: String,
    mut rx: mpsc::UnboundedReceiver<ReportJob>,
) {
    let stop = ctx.stopped();
    tokio::pin!(stop);
    let counter = AtomicU32::new(1);
    let seq = || sg::Seq {
        node: SGIP_NODE_ID,
        time: wire::timestamp_now().1,
        n: counter.fetch_add(1, Ordering::Relaxed),
    };
    let mut backlog: Vec<ReportJob> = Vec::new();
    loop {
        // Wait for work.
        if backlog.is_empty() {
            tokio::select! {
                _ = &mut stop => return,
                j = rx.recv() => match j { Some(j) => backlog.push(j), None => return },
            }
        }
        let stream = match TcpStream::connect(&to).await {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "SGIP report connection failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let mut reader = FramedRead::new(rd, frame_codec());
        use tokio::io::AsyncWriteExt;
        let bind = sg::Pdu::Bind(sg::Bind {
            login_type: 2,
            login_name: login.clone(),
            login_password: password.clone(),
        })
        .encode(seq());
        if wr.write_all(&bind).await.is_err() {
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
            Ok(Some(Ok(f))) if matches!(sg::Pdu::decode(&f), Ok((_, sg::Pdu::BindResp(0)))) => {}
            _ => {
                warn!("SGIP bind to the gateway's listener failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let mut pending: HashMap<u32, ReportJob> = HashMap::new();
        let broken = loop {
            // Send everything queued.
            let mut buf = Vec::new();
            for job in backlog.drain(..) {
                let ReportId::Sgip(submit_seq) = job.id else {
                    continue;
                };
                let (state, error_code) = sgip_state(job.state);
                let s = seq();
                buf.extend_from_slice(
                    &sg::Pdu::Report(Box::new(sg::Report {
                        submit_seq,
                        report_type: 0,
                        user_number: job.dest.clone(),
                        state,
                        error_code,
                    }))
                    .encode(s),
                );
                pending.insert(s.n, job);
                inc(&ctx.stats.receipts_sent);
            }
            if !buf.is_empty() && wr.write_all(&buf).await.is_err() {
                break true;
            }
            tokio::select! {
                _ = &mut stop => {
                    let _ = wr.write_all(&sg::Pdu::Unbind.encode(seq())).await;
                    return;
                }
                j = rx.recv() => match j {
                    Some(j) => backlog.push(j),
                    None => return,
                },
                f = reader.next() => match f {
                    Some(Ok(f)) => match sg::Pdu::decode(&f) {
                        Ok((s, sg::Pdu::ReportResp(r))) => {
                            if let Some(mut job) = pending.remove(&s.n) {
                                if r == 0 {
                                    inc(&ctx.stats.receipts_acked);
                                } else {
                                    inc(&ctx.stats.deliver_sm_resp_errors);
                                    if job.retries < 5 {
                                        job.retries += 1;
                                        schedule_report(&ctx, job, Duration::from_secs(1));
                                    }
                                }
                            }
                        }
                        Ok((s, sg::Pdu::Unbind)) => {
                            let _ = wr.write_all(&sg::Pdu::UnbindResp.encode(s)).await;
                            break true;
                        }
                        _ => {}
                    },
                    _ => break true,
                },
            }
        };
        if broken {
            // Unanswered reports go again on the next connection.
            backlog.extend(pending.into_values());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
