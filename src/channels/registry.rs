//! Node-local runtime view of the channels: which binds are up, the channel's TPS
//! limiter, throttling back-off and live statistics. Not replicated: rebuilt as binds come up.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ractor::ActorRef;
use tokio::sync::Notify;

use super::bind_actor::BindMsg;
use super::tps_window::{GATEWAY_SPAN, TpsWindow};
use crate::protocols::smpp::ReceiptIdFormat;

/// State of one bind as shown by the admin API.
#[derive(Debug, Clone)]
pub struct BindStatus {
    pub state: &'static str,
    pub since: i64,
    /// Why the last connect or login failed (e.g. "CMPP 3.0 CONNECT status 3
    /// (authentication failed)"); None once bound or never tried.
    pub error: Option<String>,
}

/// The pause after 0x58/0x14 (doubling 50 ms .. 5 s while the line keeps throttling).
/// It grows once per congestion event, as the channel's health decides it: the throttled
/// answers to submits paced before the last one are that same event.
#[derive(Default)]
struct ThrottleCooldown {
    /// Nobody submits on the channel before this instant.
    until: Option<Instant>,
    /// Length of the current pause; 0 after an accepted submit.
    ms: u64,
}

/// Runtime of one channel on this node.
pub struct ChannelRuntime {
    /// Binds that are up right now: (bind index, actor, window).
    binds: RwLock<Vec<(usize, ActorRef<BindMsg>, usize)>>,
    rr: AtomicUsize,
    /// Parts per second for the whole channel (operator contract): never more than
    /// `tps` in any second.
    limiter: RwLock<(u32, Arc<TpsWindow>)>,
    /// After 0x58/0x14 nobody submits on this channel for a while.
    cooldown: Mutex<ThrottleCooldown>,
    pub bind_status: Mutex<BTreeMap<usize, BindStatus>>,
    /// The receiver bind beside each transmitter bind (by the bind's index): whether
    /// receipts and MO can arrive at all on a transmitter channel.
    pub receiver_status: Mutex<BTreeMap<usize, BindStatus>>,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub delivered: AtomicU64,
    pub undelivered: AtomicU64,
    pub queue_depth: AtomicU64,
    /// Messages being worked on this channel right now (the dashboard's window use).
    pub in_flight: AtomicU64,
    /// Times the SMSC answered 0x58/0x14 (the dashboard's throttling rate).
    pub throttled: AtomicU64,
    /// Sessions of this channel lost since the node started (peer closed, keepalive
    /// timeout...): shown apart from the submit figures, which a lost session is not.
    pub session_losses: AtomicU64,
    /// Message actors of this channel waiting out a temporary-error pause: their window
    /// slots are lent to the queue meanwhile ([`ChannelRegistry::lend_slot`]).
    pub paused: AtomicU64,
    /// Recent submit latencies (µs), for p50/p99.
    latencies: Mutex<VecDeque<u64>>,
    /// Health score, circuit breaker, AIMD rate/window and SLA windows (kept across
    /// reconnects, shared by all binds).
    pub health: super::health::ChannelHealth,
    /// Concatenated MO parts waiting for their siblings (any bind of the channel), with
    /// their unanswered acknowledgements.
    pub mo_reassembly: Mutex<crate::inbound::desk::InboundDesk<crate::protocols::smpp::DeliverAck>>,
    /// The channel's `dlr_id_format` (`ReceiptIdFormat::to_u8`), read on every submit
    /// response and receipt without parsing the options again.
    receipt_id_format: AtomicU8,
    /// The last line-level submit failure (no answer, temporary error, generic_nack,
    /// an HTTP provider's 5xx or 401) since the last accepted submit: what `last_error`
    /// shows while the channel is bound, so a line failing every submit says why.
    line_error: Mutex<Option<String>>,
}

fn limiter(tps: u32) -> Arc<TpsWindow> {
    Arc::new(TpsWindow::new(tps, GATEWAY_SPAN))
}

impl ChannelRuntime {
    /// How the channel's SMSC writes ids in its receipts (`dlr_id_format`).
    pub fn receipt_id_format(&self) -> ReceiptIdFormat {
        ReceiptIdFormat::from_u8(self.receipt_id_format.load(Ordering::Relaxed))
    }

    fn new(tps: u32) -> Self {
        ChannelRuntime {
            binds: RwLock::new(Vec::new()),
            rr: AtomicUsize::new(0),
            receipt_id_format: AtomicU8::new(ReceiptIdFormat::Auto.to_u8()),
            limiter: RwLock::new((tps, limiter(tps))),
            cooldown: Mutex::new(ThrottleCooldown::default()),
            bind_status: Mutex::new(BTreeMap::new()),
            receiver_status: Mutex::new(BTreeMap::new()),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            undelivered: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            session_losses: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            paused: AtomicU64::new(0),
            latencies: Mutex::new(VecDeque::with_capacity(1024)),
            health: super::health::ChannelHealth::new(tps),
            mo_reassembly: Mutex::new(Default::default()),
            line_error: Mutex::new(None),
        }
    }

    /// Picks an up bind, round robin.
    pub fn pick_bind(&self) -> Option<ActorRef<BindMsg>> {
        let binds = self.binds.read().unwrap_or_else(|e| e.into_inner());
        if binds.is_empty() {
            return None;
        }
        let i = self.rr.fetch_add(1, Ordering::Relaxed) % binds.len();
        Some(binds[i].1.clone())
    }

    /// Sum of the windows of the up binds: how many messages may be worked at once.
    pub fn capacity(&self) -> usize {
        self.binds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|b| b.2)
            .sum()
    }

    pub fn is_up(&self) -> bool {
        !self
            .binds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Waits for the channel's TPS budget and any throttling back-off. Returns when the
    /// send's pace was decided: a throttled answer to it is judged against that instant
    /// (a send paced before the last decrease is part of the same congestion event).
    pub async fn acquire_send_slot(&self) -> Instant {
        loop {
            let wait = {
                let c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
                c.until
                    .and_then(|until| until.checked_duration_since(Instant::now()))
            };
            match wait {
                Some(d) if !d.is_zero() => tokio::time::sleep(d).await,
                _ => break,
            }
        }
        let lim = self
            .limiter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone();
        lim.until_ready().await;
        // Below the TPS after throttling: the AIMD pacer spaces sends further.
        let paced_at = Instant::now();
        let pace = self.health.pace(paced_at);
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        paced_at
    }

    /// The SMSC said 0x58/0x14 to a submit paced at `paced_at`: cut the channel's AIMD
    /// rate and pause it (doubling, 50 ms .. 5 s), once per congestion event.
    pub fn throttled(&self, paced_at: Instant) {
        let now = Instant::now();
        self.throttled.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("smsgw_channel_throttled_total").increment(1);
        let new_event =
            self.health
                .throttled(self.capacity(), paced_at, now, crate::clock::now_ms());
        if new_event {
            let mut c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
            c.ms = if c.ms == 0 { 50 } else { (c.ms * 2).min(5000) };
            c.until = Some(now + Duration::from_millis(c.ms));
        }
    }

    /// A submit went through: throttling back-off resets.
    pub fn submit_ok(&self, latency: Duration) {
        self.cooldown.lock().unwrap_or_else(|e| e.into_inner()).ms = 0;
        self.sent.fetch_add(1, Ordering::Relaxed);
        *self.line_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.health
            .submit_ok(latency, Instant::now(), crate::clock::now_ms());
        let mut l = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() >= 1024 {
            l.pop_front();
        }
        l.push_back(latency.as_micros() as u64);
    }

    /// A submit failed because of the line (not the recipient): it counts against the
    /// channel's health and is shown as its `last_error` until a submit goes through.
    pub fn line_failed(&self, what: String) {
        self.health
            .submit_error(Instant::now(), crate::clock::now_ms());
        *self.line_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(what);
    }

    /// The last line-level submit failure since the last accepted submit.
    pub fn line_error(&self) -> Option<String> {
        self.line_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// (p50, p99) of recent submit latencies in ms; None before the first submit (the API
    /// shows null for "no data", as the SLA windows do).
    pub fn latency_ms(&self) -> (Option<f64>, Option<f64>) {
        let mut v: Vec<u64> = self
            .latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return (None, None);
        }
        v.sort_unstable();
        let at = |q: f64| {
            v.get(((v.len() - 1) as f64 * q).round() as usize)
                .map(|us| *us as f64 / 1000.0)
        };
        (at(0.5), at(0.99))
    }
}

/// All channels' runtimes on this node.
#[derive(Default)]
pub struct ChannelRegistry {
    channels: RwLock<HashMap<String, Arc<ChannelRuntime>>>,
    /// Woken when a bind goes up or down, so the dispatcher re-plans at once.
    pub changed: Notify,
    /// Woken when a bind's state changes, so the channel supervisor reports it into the
    /// replicated state at once (the admin API shows it) instead of at its next tick.
    pub bind_state_changed: Notify,
}

impl ChannelRegistry {
    /// The runtime of `channel`, created on first use.
    pub fn get(&self, channel: &str, tps: u32) -> Arc<ChannelRuntime> {
        if let Some(c) = self
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
        {
            return c.clone();
        }
        let mut w = self.channels.write().unwrap_or_else(|e| e.into_inner());
        w.entry(channel.to_string())
            .or_insert_with(|| Arc::new(ChannelRuntime::new(tps)))
            .clone()
    }

    /// Every channel runtime on this node.
    pub fn all(&self) -> Vec<(String, Arc<ChannelRuntime>)> {
        self.channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The runtime of `channel` if it exists.
    pub fn find(&self, channel: &str) -> Option<Arc<ChannelRuntime>> {
        self.channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
            .cloned()
    }

    /// Applies a new TPS to a channel's limiter.
    pub fn set_tps(&self, channel: &str, tps: u32) {
        let rt = self.get(channel, tps);
        let mut l = rt.limiter.write().unwrap_or_else(|e| e.into_inner());
        if l.0 != tps {
            *l = (tps, limiter(tps));
            rt.health.set_tps(tps);
        }
    }

    /// Applies a channel's `dlr_id_format` option.
    pub fn set_receipt_id_format(&self, channel: &str, tps: u32, format: ReceiptIdFormat) {
        self.get(channel, tps)
            .receipt_id_format
            .store(format.to_u8(), Ordering::Relaxed);
    }

    /// How `channel`'s SMSC writes ids in its receipts (`Auto` for an unknown channel).
    pub fn receipt_id_format(&self, channel: &str) -> ReceiptIdFormat {
        self.find(channel)
            .map(|rt| rt.receipt_id_format())
            .unwrap_or_default()
    }

    /// A bind came up.
    pub fn bind_up(
        &self,
        channel: &str,
        index: usize,
        actor: ActorRef<BindMsg>,
        window: usize,
        tps: u32,
    ) {
        let rt = self.get(channel, tps);
        {
            let mut b = rt.binds.write().unwrap_or_else(|e| e.into_inner());
            b.retain(|(i, _, _)| *i != index);
            b.push((index, actor, window));
        }
        rt.bind_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                index,
                BindStatus {
                    state: "bound",
                    since: crate::clock::now_ms(),
                    error: None,
                },
            );
        metrics::gauge!("smsgw_channel_up", "channel" => channel.to_string()).set(1.0);
        self.changed.notify_one();
        self.bind_state_changed.notify_one();
    }

    /// A bind went down (or is connecting again); the last failure stays shown.
    pub fn bind_down(&self, channel: &str, index: usize, state: &'static str) {
        let error = self.find(channel).and_then(|rt| {
            rt.bind_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&index)
                .and_then(|s| s.error.clone())
        });
        self.bind_failed(channel, index, state, error);
    }

    /// A bind's connect or login failed (`state` "down" when retrying cannot help
    /// without a change, such as a refused password; else "connecting"), with why.
    pub fn bind_failed(
        &self,
        channel: &str,
        index: usize,
        state: &'static str,
        error: Option<String>,
    ) {
        if let Some(rt) = self.find(channel) {
            let up = {
                let mut b = rt.binds.write().unwrap_or_else(|e| e.into_inner());
                b.retain(|(i, _, _)| *i != index);
                !b.is_empty()
            };
            rt.bind_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    index,
                    BindStatus {
                        state,
                        since: crate::clock::now_ms(),
                        error,
                    },
                );
            metrics::gauge!("smsgw_channel_up", "channel" => channel.to_string()).set(if up {
                1.0
            } else {
                0.0
            });
        }
        self.changed.notify_one();
        self.bind_state_changed.notify_one();
    }

    /// The receiver bind beside bind #`index` is `state` ("bound", "connecting"), or is
    /// gone (`None`: its bind stopped), with the last failure while it is not bound.
    pub fn receiver_state(
        &self,
        channel: &str,
        index: usize,
        state: Option<&'static str>,
        error: Option<String>,
    ) {
        if let Some(rt) = self.find(channel) {
            let mut status = rt.receiver_status.lock().unwrap_or_else(|e| e.into_inner());
            match state {
                Some(state) => {
                    status.insert(
                        index,
                        BindStatus {
                            state,
                            since: crate::clock::now_ms(),
                            error,
                        },
                    );
                }
                None => {
                    status.remove(&index);
                }
            }
        }
        self.bind_state_changed.notify_one();
    }

    /// The last connect or login failure of any of `channel`'s binds on this node.
    pub fn last_error(&self, channel: &str) -> Option<String> {
        let rt = self.find(channel)?;
        let status = rt.bind_status.lock().unwrap_or_else(|e| e.into_inner());
        status.values().find_map(|s| s.error.clone())
    }

    /// Lends the window slot of a message actor that pauses after a temporary error
    /// back to `rt`'s queue until the returned guard drops (the pause ended, or the actor
    /// stopped), and wakes the dispatcher to use it.
    pub fn lend_slot(&self, rt: &Arc<ChannelRuntime>) -> LentSlot {
        rt.paused.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
        LentSlot(rt.clone())
    }

    /// Forgets a removed channel.
    pub fn remove(&self, channel: &str) {
        self.channels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(channel);
        self.changed.notify_one();
    }
}

/// A window slot lent back while its message actor pauses after a temporary error: the
/// dispatcher counts the channel's room larger by the paused actors, so a few messages
/// the operator keeps refusing for minutes do not hold the line for the others (the
/// session's own window still bounds what is outstanding when they resume).
pub struct LentSlot(Arc<ChannelRuntime>);

impl Drop for LentSlot {
    fn drop(&mut self) {
        self.0.paused.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause_ms(rt: &ChannelRuntime) -> u64 {
        rt.cooldown.lock().map(|c| c.ms).unwrap_or_default()
    }

    #[test]
    fn throttling_pause_doubles_once_per_congestion_event() {
        let rt = ChannelRuntime::new(100);
        let before = Instant::now();
        rt.throttled(before);
        assert_eq!(pause_ms(&rt), 50);
        // The rest of the window that was in flight when the pause began: same event.
        for _ in 0..10 {
            rt.throttled(before);
        }
        assert_eq!(pause_ms(&rt), 50);
        assert_eq!(
            rt.throttled.load(Ordering::Relaxed),
            11,
            "every answer counted"
        );
        // A submit paced after the pause began was throttled too: the pause doubles.
        rt.throttled(Instant::now());
        assert_eq!(pause_ms(&rt), 100);
        rt.submit_ok(Duration::from_millis(1));
        assert_eq!(pause_ms(&rt), 0);
        rt.throttled(Instant::now());
        assert_eq!(
            pause_ms(&rt),
            50,
            "an accepted submit starts the doubling over"
        );
    }
}
