//! The sweeper: every tick, the leader turns due timers of the replicated state into
//! operations: scheduled messages whose `send_at` came (release), messages whose
//! validity passed before sending (expire), and sent messages whose receipts never
//! came within the channel's `dlr_timeout` (settle as unknown). Every
//! `PURGE_EVERY` it also drops final messages older than the retention time, and every
//! minute expired compliance counters, receipts that never found their message and
//! inbound messages past the retention time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::warn;

use crate::consensus::Consensus;
use crate::state::{MessageKey, Op};

/// Timers handled per tick at most (the rest wait for the next tick).
const MAX_PER_TICK: usize = 2000;
/// How often final messages past the retention time are dropped.
const PURGE_EVERY: Duration = Duration::from_secs(10);
/// Messages dropped per purge at most.
const MAX_PURGE: usize = 5000;

/// Messages of the sweeper.
#[derive(ractor_cluster::RactorMessage)]
pub enum SweepMsg {
    Tick,
    Done(Vec<String>),
}

/// The sweeper actor.
pub struct Sweeper;

/// Operations proposed and not yet answered, so a slow commit is not proposed twice.
pub struct SweepState {
    consensus: Arc<Consensus>,
    in_flight: HashSet<String>,
    retention: Duration,
    last_purge: std::time::Instant,
    purging: Arc<std::sync::atomic::AtomicBool>,
    /// When expired compliance window counters (and unmatched parked receipts) were last
    /// dropped (ms).
    last_compliance_gc: i64,
}

/// How often the leader drops expired compliance window counters and receipts parked
/// longer than `state::parked::PARKED_RECEIPT_TTL_MS`.
const COMPLIANCE_GC_EVERY_MS: i64 = 60_000;

impl Actor for Sweeper {
    type Msg = SweepMsg;
    type State = SweepState;
    /// The consensus handle and how long final messages are kept.
    type Arguments = (Arc<Consensus>, Duration);

    async fn pre_start(
        &self,
        myself: ActorRef<SweepMsg>,
        (consensus, retention): (Arc<Consensus>, Duration),
    ) -> Result<SweepState, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(200), || SweepMsg::Tick);
        Ok(SweepState {
            consensus,
            in_flight: HashSet::new(),
            retention,
            last_purge: std::time::Instant::now(),
            purging: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            last_compliance_gc: crate::clock::now_ms(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SweepMsg>,
        msg: SweepMsg,
        st: &mut SweepState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SweepMsg::Done(ids) => {
                for id in ids {
                    st.in_flight.remove(&id);
                }
            }
            SweepMsg::Tick => {
                if crate::failpoints::fire("sweeper_crash") {
                    return Err(ActorProcessingErr::from("failpoint sweeper_crash"));
                }
                if !st.consensus.is_leader() {
                    return Ok(());
                }
                let now = crate::clock::now_ms();
                if st.last_purge.elapsed() >= PURGE_EVERY {
                    st.last_purge = std::time::Instant::now();
                    purge_old(st, now);
                }
                let mut ops = Vec::new();
                if now - st.last_compliance_gc >= COMPLIANCE_GC_EVERY_MS {
                    st.last_compliance_gc = now;
                    ops.push(Op::ComplianceGc { at: now });
                    let before = now - crate::state::parked::PARKED_RECEIPT_TTL_MS;
                    if st.consensus.store().unmatched_receipts_before(before) {
                        ops.push(Op::DropUnmatchedReceipts { before });
                    }
                    let retained_from =
                        now - i64::try_from(st.retention.as_millis()).unwrap_or(i64::MAX);
                    if st.consensus.store().inbound_before(retained_from) {
                        ops.push(Op::PurgeInbound {
                            before: retained_from,
                        });
                    }
                }
                let mut ids = Vec::new();
                let mut due_releases = Vec::new();
                {
                    let work = st.consensus.store().work();
                    let due = |set: &std::collections::BTreeSet<(i64, MessageKey)>| -> Vec<String> {
                        set.iter()
                            .take_while(|(t, _)| *t <= now)
                            .map(|(_, id)| id.to_string())
                            .take(MAX_PER_TICK)
                            .collect()
                    };
                    let expired: HashSet<String> = due(&work.expiry).into_iter().collect();
                    for id in &expired {
                        if !st.in_flight.contains(id) {
                            ops.push(Op::Expire {
                                id: id.clone(),
                                at: now,
                            });
                            ids.push(id.clone());
                        }
                    }
                    for id in due(&work.scheduled) {
                        if !expired.contains(&id) && !st.in_flight.contains(&id) {
                            due_releases.push(id);
                        }
                    }
                    for id in due(&work.dlr_deadline) {
                        if !st.in_flight.contains(&id) {
                            ops.push(Op::SettleUnknown {
                                id: id.clone(),
                                at: now,
                            });
                            ids.push(id);
                        }
                    }
                }
                for id in due_releases {
                    release(&st.consensus, &id, now, &mut ops);
                    ids.push(id);
                }
                if ops.is_empty() {
                    return Ok(());
                }
                st.in_flight.extend(ids.iter().cloned());
                let c = st.consensus.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    if let Err(e) = c.propose_many(ops).await {
                        warn!(error = %e, "sweeper proposal failed; will retry");
                    }
                    let _ = me.send_message(SweepMsg::Done(ids));
                });
            }
        }
        Ok(())
    }
}

/// The operations that release a due scheduled message: `Release`, followed in the same
/// entry by `Fail` when what changed while it waited (an opt-out, a new content rule)
/// now refuses it.
fn release(consensus: &Consensus, id: &str, now: i64, ops: &mut Vec<Op>) {
    ops.push(Op::Release {
        id: id.to_string(),
        at: now,
    });
    let message = match consensus.store().get_message(id) {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(e) => {
            warn!(message_id = %id, error = %e, "release: the row could not be read; released unchecked");
            return;
        }
    };
    if let Some(error) = crate::compliance::refusal_at_release(consensus.store(), &message) {
        tracing::info!(message_id = %id, tenant = %message.tenant, reason = %error.message, "due message refused at release");
        ops.push(Op::Fail {
            id: id.to_string(),
            error,
            at: now,
        });
    }
}

/// Drops final messages created before the retention time (one Raft entry per purge).
fn purge_old(st: &SweepState, now: i64) {
    use std::sync::atomic::Ordering;
    if st.purging.swap(true, Ordering::AcqRel) {
        return;
    }
    let cutoff = now - st.retention.as_millis() as i64;
    let c = st.consensus.clone();
    let purging = st.purging.clone();
    tokio::spawn(async move {
        let store = c.store().clone();
        let ids = tokio::task::spawn_blocking(move || store.purgeable(cutoff, MAX_PURGE)).await;
        if let Ok(Ok(ids)) = ids
            && !ids.is_empty()
        {
            let n = ids.len();
            match c.propose_batched(Op::Purge { ids }).await {
                Ok(_) => {
                    metrics::counter!("smsgw_messages_purged_total").increment(n as u64);
                    tracing::info!(messages = n, "final messages past retention dropped");
                }
                Err(e) => warn!(error = %e, "retention purge failed; will retry"),
            }
        }
        purging.store(false, Ordering::Release);
    });
}
