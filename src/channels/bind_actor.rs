//! One actor per channel bind: it owns the operator session, reconnects with capped
//! exponential back-off, submits on behalf of message actors, and commits receipts to
//! Raft before acknowledging them to the SMSC.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{info, warn};

use super::registry::ChannelRegistry;
use crate::consensus::Consensus;
use crate::metric_handles::ByLabel;
use crate::protocols::http_upstream::{HttpChannelOptions, HttpSession, HttpSessionConfig};
use crate::protocols::session::{ChannelSession, Sidecar, start_sidecar};
use crate::protocols::smpp::receipt::ReceiptState;
use crate::protocols::smpp::session::{Inbound, SessionError, SubmitOutcome, SubmitRequest};
use crate::protocols::smpp::status_map::receipt_error_code;
use crate::state::{Channel, ErrorInfo, Op, ReceiptOutcome};

/// Longest wait between reconnect attempts (a transmitter's receiver bind too).
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait before a reconnect, and the one a session that stayed up gets back.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// A session that lasted this long (or answered a submit) was healthy: its loss starts
/// the back-off over. One lost sooner without answering anything (an SMSC that accepts
/// the bind and then drops it) keeps doubling it, so such an SMSC sees a few binds a
/// minute, not several a second. The same for a transmitter's receiver bind.
pub(super) const HEALTHY_SESSION: Duration = Duration::from_secs(30);
/// Bind #k of a channel first connects k times this late, so a channel's binds do not
/// hit the SMSC in the same millisecond.
const BIND_STAGGER: Duration = Duration::from_millis(150);

/// `smsgw_receipts_total` by channel, for receipts matched to their message and for
/// receipts parked until their submit response is recorded.
static RECEIPTS_MATCHED: LazyLock<ByLabel<metrics::Counter>> = LazyLock::new(|| {
    ByLabel::new(
        |ch| metrics::counter!("smsgw_receipts_total", "channel" => ch, "matched" => "yes"),
    )
});
static RECEIPTS_PARKED: LazyLock<ByLabel<metrics::Counter>> = LazyLock::new(|| {
    ByLabel::new(
        |ch| metrics::counter!("smsgw_receipts_total", "channel" => ch, "matched" => "parked"),
    )
});

/// Messages a bind actor handles.
#[derive(ractor_cluster::RactorMessage)]
pub enum BindMsg {
    /// Try to (re)connect and bind.
    Connect,
    /// The session of this generation is gone.
    Disconnected(u64),
    /// Submit one part; the answer comes on the port.
    Submit(
        SubmitRequest,
        RpcReplyPort<Result<SubmitOutcome, SessionError>>,
    ),
}

/// The bind actor (stateless handler; state below).
pub struct BindActor;

/// What a bind needs to run.
pub struct BindArgs {
    pub channel: Channel,
    pub index: usize,
    pub consensus: Arc<Consensus>,
    pub registry: Arc<ChannelRegistry>,
}

/// A bind's live state.
pub struct BindState {
    args: BindArgs,
    /// The HTTP upstream session when the channel's protocol is `http` (then `session`
    /// stays `None`); see `connect_http`.
    http: Option<HttpSession>,
    session: Option<ChannelSession>,
    /// What the channel runs beside its sessions (SGIP's listener), on bind #0 only.
    sidecar: Option<Sidecar>,
    /// The receiver bind beside a transmitter bind (receipts and MO), SMPP only.
    receiver: Option<super::receiver_bind::ReceiverBind>,
    /// Bumped on every new session so stale "disconnected" notes are ignored.
    generation: u64,
    /// The wait before the next reconnect (doubling up to `MAX_BACKOFF`, jittered).
    backoff: Duration,
    /// When the current session was bound: its loss resets the back-off only if it
    /// lasted `HEALTHY_SESSION`.
    bound_at: Option<Instant>,
    /// The current session answered a submit (accepted or refused): it works.
    answered: Arc<std::sync::atomic::AtomicBool>,
    /// The operator refused our login last time: the bind shows `down` (with the
    /// reason) while it keeps retrying, not `connecting`.
    login_rejected: bool,
}

impl BindState {
    fn name(&self) -> String {
        format!("{}#{}", self.args.channel.id, self.args.index)
    }

    /// Schedules the next connect after the back-off (with jitter, so a channel's binds
    /// and channels of one SMSC drift apart) and doubles it.
    fn retry_later(&mut self, myself: &ActorRef<BindMsg>) {
        myself.send_after(jittered(self.backoff), || BindMsg::Connect);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// `d` scaled by a random factor in 0.5..1.5.
pub(super) fn jittered(d: Duration) -> Duration {
    use rand::Rng;
    d.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// Maps an SMPP receipt state to the common outcome.
fn outcome_of(state: ReceiptState) -> ReceiptOutcome {
    match state {
        ReceiptState::Delivered => ReceiptOutcome::Delivered,
        ReceiptState::Expired => ReceiptOutcome::Expired,
        ReceiptState::Accepted | ReceiptState::Enroute => ReceiptOutcome::Intermediate,
        ReceiptState::Deleted
        | ReceiptState::Undeliverable
        | ReceiptState::Unknown
        | ReceiptState::Rejected => ReceiptOutcome::Undelivered,
    }
}

/// Commits every receipt before answering deliver_sm_resp, so a crash makes the SMSC redeliver.
pub(super) async fn inbound_loop(
    channel: String,
    consensus: Arc<Consensus>,
    registry: Arc<ChannelRegistry>,
    mut rx: tokio::sync::mpsc::Receiver<Inbound>,
) {
    let mut sweep = tokio::time::interval(Duration::from_secs(15));
    loop {
        let inbound = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = sweep.tick() => {
                if let Some(rt) = registry.find(&channel) {
                    let done = rt.mo_reassembly.lock().unwrap_or_else(|e| e.into_inner()).expire(crate::clock::now_ms());
                    for ready in done {
                        store_mobile(&consensus, &channel, ready);
                    }
                }
                continue;
            }
        };
        match inbound {
            Inbound::Receipt { receipt, ack } => {
                let consensus = consensus.clone();
                let channel = channel.clone();
                let registry = registry.clone();
                tokio::spawn(async move {
                    let outcome = outcome_of(receipt.state);
                    let error = (outcome != ReceiptOutcome::Delivered
                        && outcome != ReceiptOutcome::Intermediate)
                        .then(|| ErrorInfo {
                            code: receipt_error_code(receipt.state).to_string(),
                            message: format!("operator receipt {:?}", receipt.state),
                            smsc_code: receipt.error_code.clone(),
                        });
                    let op = Op::Receipt {
                        channel: channel.clone(),
                        smsc_message_id: receipt.smsc_message_id.clone(),
                        keys: registry
                            .receipt_id_format(&channel)
                            .receipt_keys(&receipt.smsc_message_id),
                        outcome,
                        error,
                        at: crate::clock::now_ms(),
                    };
                    match consensus.propose_batched(op).await {
                        Ok(r) => {
                            let matched =
                                matches!(r, crate::state::OpResult::ReceiptMatched { .. });
                            if matched {
                                &RECEIPTS_MATCHED
                            } else {
                                &RECEIPTS_PARKED
                            }
                            .get(&channel)
                            .increment(1);
                            if let (crate::state::OpResult::ReceiptMatched { .. }, Some(rt)) =
                                (&r, registry.find(&channel))
                            {
                                match outcome {
                                    ReceiptOutcome::Delivered => rt
                                        .delivered
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                                    ReceiptOutcome::Intermediate => 0,
                                    _ => rt
                                        .undelivered
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                                };
                            }
                            ack.accept();
                        }
                        Err(e) => {
                            warn!(channel = %channel, smsc_id = %receipt.smsc_message_id, error = %e, "receipt not committed; SMSC will redeliver");
                            ack.reject(0x64);
                        }
                    }
                });
            }
            Inbound::Mobile {
                source,
                dest,
                data_coding,
                esm_class,
                payload,
                sar,
                ack,
            } => {
                metrics::counter!("smsgw_mo_total", "channel" => channel.clone()).increment(1);
                let packed = consensus
                    .store()
                    .config()
                    .channels
                    .get(&channel)
                    .is_some_and(|c| c.text.packed);
                match crate::encoding::inbound::read(esm_class, data_coding, &payload, sar, packed)
                {
                    Ok(part) => {
                        // A channel removed meanwhile: the part is not answered (dropping
                        // its ack asks the SMSC to send it again, to the line's next use).
                        if let Some(rt) = registry.find(&channel) {
                            let now = crate::clock::now_ms();
                            let mut desk =
                                rt.mo_reassembly.lock().unwrap_or_else(|e| e.into_inner());
                            let mut ready = desk.push(&source, &dest, part, ack, now);
                            ready.extend(desk.expire(now));
                            drop(desk);
                            for r in ready {
                                store_mobile(&consensus, &channel, r);
                            }
                        }
                    }
                    Err(e) => {
                        // Sending it again would not mend it: answered, logged, dropped.
                        warn!(channel = %channel, from = %source, to = %dest, error = %e, "MO with a malformed UDH accepted and dropped");
                        ack.accept();
                    }
                }
            }
        }
    }
}

/// Stores one whole (or timed-out partial) MO message for its tenants and then answers
/// every part's acknowledgement; if the write fails the parts stay unanswered (temporary
/// error), so the SMSC sends them again.
fn store_mobile(
    consensus: &Arc<Consensus>,
    channel: &str,
    (message, acks): crate::inbound::desk::Ready<crate::protocols::smpp::DeliverAck>,
) {
    let consensus = consensus.clone();
    let channel = channel.to_string();
    tokio::spawn(async move {
        match crate::inbound::receive::store(&consensus, &channel, &message).await {
            Ok(_) => acks
                .into_iter()
                .for_each(crate::protocols::smpp::DeliverAck::accept),
            Err(e) => {
                warn!(channel = %channel, error = %e, "MO not committed; the SMSC will deliver it again");
                for a in acks {
                    a.reject(0x64);
                }
            }
        }
    });
}

/// The `http` protocol's connect: compile the channel's options, check the provider's
/// host answers, and mark the bind up; on failure retry with the same back-off as SMPP.
/// (Kept apart from the SMPP path so it ports onto a protocol-neutral session trait.)
async fn connect_http(myself: &ActorRef<BindMsg>, state: &mut BindState) {
    if state.http.is_some() {
        return;
    }
    let channel = &state.args.channel;
    let (id, index) = (channel.id.clone(), state.args.index);
    if !state.login_rejected {
        state.args.registry.bind_down(&id, index, "connecting");
    }
    let options =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&channel.options_json)
            .map_err(|e| e.to_string())
            .and_then(|o| HttpChannelOptions::parse(&o).map_err(|e| e.to_string()));
    let result = match options {
        Ok(options) => {
            HttpSession::connect(HttpSessionConfig {
                channel: id.clone(),
                options: Arc::new(options),
                system_id: channel.system_id.clone(),
                password: channel.password.clone(),
                window: channel.window.max(1) as usize,
                connect_timeout: Duration::from_secs(5),
            })
            .await
        }
        Err(e) => Err(SessionError::Protocol(format!("channel options: {e}"))),
    };
    match result {
        Ok(session) => {
            state.generation += 1;
            // After refused credentials the provider's host answering proves nothing:
            // the back-off keeps growing until a submit goes through.
            if !state.login_rejected {
                state.backoff = FIRST_BACKOFF;
            }
            state.answered = Arc::default();
            let (generation, watcher, me) = (state.generation, session.clone(), myself.clone());
            tokio::spawn(async move {
                watcher.closed().await;
                let _ = me.send_message(BindMsg::Disconnected(generation));
            });
            state.http = Some(session);
            state.args.registry.bind_up(
                &id,
                index,
                myself.clone(),
                channel.window.max(1) as usize,
                channel.tps,
            );
            info!(bind = %state.name(), protocol = "http", "provider reachable; bound");
        }
        Err(e) => {
            warn!(bind = %state.name(), error = %e, retry_ms = state.backoff.as_millis() as u64, "http provider not reachable");
            // Still trying (the contract's `connecting`): `down` is a bind nobody runs,
            // or one whose credentials the provider refused.
            let shown = if state.login_rejected {
                "down"
            } else {
                "connecting"
            };
            state
                .args
                .registry
                .bind_failed(&id, index, shown, Some(e.to_string()));
            state.retry_later(myself);
        }
    }
}

impl Actor for BindActor {
    type Msg = BindMsg;
    type State = BindState;
    type Arguments = BindArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<BindMsg>,
        args: BindArgs,
    ) -> Result<BindState, ActorProcessingErr> {
        // Bind #0 at once, the others a little later each (see BIND_STAGGER).
        let stagger = BIND_STAGGER.saturating_mul(u32::try_from(args.index).unwrap_or(u32::MAX));
        if stagger.is_zero() {
            let _ = myself.send_message(BindMsg::Connect);
        } else {
            myself.send_after(jittered(stagger), || BindMsg::Connect);
        }
        Ok(BindState {
            args,
            session: None,
            http: None,
            sidecar: None,
            receiver: None,
            generation: 0,
            backoff: FIRST_BACKOFF,
            bound_at: None,
            answered: Arc::default(),
            login_rejected: false,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BindMsg>,
        state: &mut BindState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .args
            .registry
            .bind_down(&state.args.channel.id, state.args.index, "down");
        state.sidecar = None;
        if let Some(s) = state.session.take() {
            s.unbind().await;
            info!(bind = %state.name(), "unbound");
        }
        // After the transmitter: receipts for its last submits may still come.
        if let Some(r) = state.receiver.take() {
            r.stop().await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<BindMsg>,
        msg: BindMsg,
        state: &mut BindState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BindMsg::Connect if state.args.channel.protocol == "http" => {
                connect_http(&myself, state).await;
            }
            BindMsg::Connect => {
                if state.session.is_some() {
                    return Ok(());
                }
                let channel = &state.args.channel;
                if !state.login_rejected {
                    state
                        .args
                        .registry
                        .bind_down(&channel.id, state.args.index, "connecting");
                }
                if state.args.index == 0 && state.sidecar.is_none() {
                    let (tx, rx) = tokio::sync::mpsc::channel(4096);
                    match start_sidecar(channel, tx).await {
                        Ok(Some(sidecar)) => {
                            tokio::spawn(inbound_loop(
                                channel.id.clone(),
                                state.args.consensus.clone(),
                                state.args.registry.clone(),
                                rx,
                            ));
                            state.sidecar = Some(sidecar);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            // Without its listener an SGIP channel gets no Reports: it
                            // is not bound (nor sent on) until the listener runs.
                            warn!(bind = %state.name(), error = %e, retry_ms = state.backoff.as_millis() as u64, "channel listener not started; not binding, retrying after the back-off");
                            state.args.registry.bind_failed(
                                &channel.id,
                                state.args.index,
                                "connecting",
                                Some(format!("report listener not started: {e}")),
                            );
                            state.retry_later(&myself);
                            return Ok(());
                        }
                    }
                }
                let (tx, rx) = tokio::sync::mpsc::channel(4096);
                match ChannelSession::connect(channel, tx).await {
                    Ok(session) => {
                        state.generation += 1;
                        // The back-off starts over only once this session has proved
                        // healthy (see `Disconnected`).
                        state.bound_at = Some(Instant::now());
                        state.answered = Arc::default();
                        state.login_rejected = false;
                        let generation = state.generation;
                        let watcher = session.clone();
                        let me = myself.clone();
                        tokio::spawn(async move {
                            watcher.closed().await;
                            let _ = me.send_message(BindMsg::Disconnected(generation));
                        });
                        // Keepalive round trips feed the channel's health score.
                        let (probe, registry, ch, every) = (
                            session.clone(),
                            state.args.registry.clone(),
                            channel.id.clone(),
                            Duration::from_secs(u64::from(channel.enquire_link_seconds.max(1))),
                        );
                        tokio::spawn(async move {
                            while !probe.is_closed() {
                                tokio::time::sleep(every).await;
                                if let (Some(rtt), Some(rt)) =
                                    (probe.last_enquire_link_rtt(), registry.find(&ch))
                                {
                                    rt.health.rtt(rtt);
                                }
                            }
                        });
                        tokio::spawn(inbound_loop(
                            channel.id.clone(),
                            state.args.consensus.clone(),
                            state.args.registry.clone(),
                            rx,
                        ));
                        state.session = Some(session);
                        if state.receiver.is_none()
                            && super::receiver_bind::needed(&state.args.channel)
                        {
                            state.receiver = Some(super::receiver_bind::ReceiverBind::start(
                                &state.args.channel,
                                state.args.index,
                                state.args.consensus.clone(),
                                state.args.registry.clone(),
                            ));
                        }
                        state.args.registry.bind_up(
                            &channel.id,
                            state.args.index,
                            myself.clone(),
                            channel.window.max(1) as usize,
                            channel.tps,
                        );
                        info!(bind = %state.name(), host = %channel.host, port = channel.port, "bound");
                    }
                    Err(e) => {
                        warn!(bind = %state.name(), error = %e, retry_ms = state.backoff.as_millis() as u64, "bind failed");
                        // Retried after the back-off: `connecting` (the admin API shows the
                        // bind trying, not `down` with no bind at all), except after a
                        // refused login, which needs the operator or the channel's
                        // credentials to change: `down`. Either way with the reason.
                        state.login_rejected = matches!(
                            e,
                            SessionError::LoginRejected { .. } | SessionError::BindRejected { .. }
                        );
                        let shown = if state.login_rejected {
                            "down"
                        } else {
                            "connecting"
                        };
                        state.args.registry.bind_failed(
                            &channel.id,
                            state.args.index,
                            shown,
                            Some(e.to_string()),
                        );
                        state.retry_later(&myself);
                    }
                }
            }
            BindMsg::Disconnected(generation) => {
                let refused = state
                    .http
                    .as_ref()
                    .filter(|_| generation == state.generation)
                    .and_then(HttpSession::credentials_refused);
                let session = (generation == state.generation)
                    .then(|| state.session.take())
                    .flatten();
                let why = session.as_ref().and_then(ChannelSession::close_reason);
                if generation == state.generation
                    && (session.is_some() || state.http.take().is_some())
                {
                    let lasted = state.bound_at.take().map(|t| t.elapsed());
                    let answered = state.answered.load(std::sync::atomic::Ordering::Relaxed);
                    if answered || lasted.is_some_and(|d| d >= HEALTHY_SESSION) {
                        state.backoff = FIRST_BACKOFF;
                        state.login_rejected = false;
                    }
                    if let Some(reason) = refused {
                        // An HTTP provider refused the channel's credentials: `down` with
                        // the reason, retried with back-off, like a refused SMPP login.
                        warn!(bind = %state.name(), reason = %reason, retry_ms = state.backoff.as_millis() as u64, "provider refused the credentials; bind down");
                        state.login_rejected = true;
                        state.args.registry.bind_failed(
                            &state.args.channel.id,
                            state.args.index,
                            "down",
                            Some(reason),
                        );
                        state.retry_later(&myself);
                        return Ok(());
                    }
                    // A hung session (the SMSC answered no submits) was closed on purpose;
                    // it counts as a loss like any other, and its reason says so.
                    warn!(bind = %state.name(), reason = why.as_deref().unwrap_or("unknown"), lasted_ms = lasted.map(|d| d.as_millis() as u64), retry_ms = state.backoff.as_millis() as u64, "session lost; reconnecting");
                    // Not a failed submit: the line's health and success figures count
                    // submits; a lost session shows in the bind's state and here.
                    metrics::counter!("smsgw_session_losses_total", "channel" => state.args.channel.id.clone())
                        .increment(1);
                    if let Some(rt) = state.args.registry.find(&state.args.channel.id) {
                        rt.session_losses
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    state.args.registry.bind_down(
                        &state.args.channel.id,
                        state.args.index,
                        "connecting",
                    );
                    state.retry_later(&myself);
                }
            }
            BindMsg::Submit(_, _) if crate::failpoints::fire("bind_actor_crash") => {
                return Err(ActorProcessingErr::from("failpoint bind_actor_crash"));
            }
            BindMsg::Submit(req, reply) if state.args.channel.protocol == "http" => {
                match &state.http {
                    Some(h) if !h.is_closed() => {
                        let h = h.clone();
                        let answered = state.answered.clone();
                        tokio::spawn(async move {
                            let started = Instant::now();
                            let r = h.submit(req).await;
                            if matches!(r, Ok(SubmitOutcome::Accepted { .. })) {
                                answered.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            metrics::histogram!("smsgw_submit_latency_seconds")
                                .record(started.elapsed().as_secs_f64());
                            let _ = reply.send(r);
                        });
                    }
                    _ => {
                        let _ = reply.send(Err(SessionError::Closed));
                    }
                }
            }
            BindMsg::Submit(req, reply) => match &state.session {
                Some(session) if !session.is_closed() => {
                    let session = session.clone();
                    let answered = state.answered.clone();
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let r = session.submit(req).await;
                        if r.is_ok() {
                            answered.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        metrics::histogram!("smsgw_submit_latency_seconds")
                            .record(started.elapsed().as_secs_f64());
                        let _ = reply.send(r);
                    });
                }
                _ => {
                    let _ = reply.send(Err(SessionError::Closed));
                }
            },
        }
        Ok(())
    }
}
