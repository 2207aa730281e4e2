//! The deterministic layer: a seeded simulation of nodes, network, SMSC and time (no
//! threads, no sockets, no clock) that drives the real message lifecycle functions
//! (`state::transitions::{part_submitted, receipt}` on `state::Message`) through a model
//! of smsgw's replicated write path: a Raft-like log (terms, majority commit, log
//! matching), a leader that owns the bind and dispatches, a client that sends with
//! unique references, and an SMSC that keeps a ledger and redelivers unacknowledged
//! receipts. Crashes, graceful stops, restarts and partitions come from the seed.
//!
//! Every step is a function of the seed alone (one `StdRng`, ordered maps, an event
//! queue ordered by (time, sequence)), so a failing seed reproduces exactly:
//! `SMSGW_DST_SEED=<seed> cargo test --lib chaos::deterministic -- --nocapture`.
//!
//! Checked every step: committed entries never change (state machine safety) and every
//! node's applied state equals the committed prefix. Checked after a fault-free liveness
//! phase: I1 no loss, I2 duplicates ≤ crashes (0 with only graceful stops), I3 legal
//! histories, I4 every receipt ends in a final status.
//!
//! [`Bug`] reintroduces known bugs on purpose (a 202 before quorum; `deliver_sm_resp`
//! before the receipt is committed; track record #2, a drain that abandons in-flight
//! submits); the tests show the simulation catches each within a few seeds.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::encoding::TextEncoding;
use crate::state::model::{Category, Message, PartState, PartStatus, Status};
use crate::state::ops::ReceiptOutcome;
use crate::state::transitions;

/// A bug to reintroduce (test-only switch; `None` is the correct protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Answer 202 when the leader has the entry, before a majority does.
    AckBeforeQuorum,
    /// Acknowledge a receipt (`deliver_sm_resp`) before its commit.
    ReceiptAckBeforeCommit,
    /// Track record #2: a graceful stop abandons in-flight submits instead of waiting for
    /// their responses to be committed.
    DrainAbandonsInFlight,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed; everything follows from it.
    pub seed: u64,
    /// Nodes (3 or 5).
    pub nodes: usize,
    /// Client messages.
    pub messages: u32,
    /// Simulated ms with faults.
    pub fault_ms: u64,
    /// Simulated ms of the fault-free liveness phase, at most.
    pub settle_ms: u64,
    /// The bug switched on, if any.
    pub bug: Option<Bug>,
}

impl SimConfig {
    /// The default shape for `seed`.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            nodes: 3,
            messages: 60,
            fault_ms: 6_000,
            settle_ms: 20_000,
            bug: None,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResult {
    /// Invariant violations (empty = pass).
    pub violations: Vec<String>,
    /// Hash of every event in order: equal for equal seeds.
    pub trace_hash: u64,
    /// 202s the client got.
    pub acknowledged: usize,
    /// Extra copies at the SMSC.
    pub duplicates: u64,
    /// kill -9s.
    pub crashes: u32,
    /// Graceful stops.
    pub graceful_stops: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    /// A new leader's first entry, so earlier terms' entries can commit.
    Noop,
    Accept {
        id: u32,
    },
    Submitted {
        id: u32,
        smsc_id: u64,
    },
    Receipt {
        smsc_id: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    term: u64,
    op: Op,
}

#[derive(Debug)]
enum Ev {
    /// The client sends message `id` to node `to`.
    ClientSend {
        id: u32,
        to: usize,
    },
    /// Leader → follower: entries from `prefix` on, and the leader's commit index.
    Append {
        from: usize,
        to: usize,
        term: u64,
        prefix: usize,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: usize,
    },
    /// Follower → leader.
    AppendResp {
        from: usize,
        to: usize,
        term: u64,
        ok: bool,
        matched: usize,
    },
    /// Leader heartbeat/replication tick.
    Tick {
        node: usize,
    },
    /// SMSC answers a submit (to whichever node submitted it, if still the same life).
    SubmitResp {
        node: usize,
        life: u32,
        id: u32,
        smsc_id: u64,
    },
    /// SMSC delivers (or redelivers) a receipt to the current bind owner.
    Receipt {
        smsc_id: u64,
    },
    /// Faults.
    Crash {
        node: usize,
    },
    GracefulStop {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Partition {
        node: usize,
        until: u64,
    },
    /// Leader election when no leader is known.
    Elect,
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Node {
    up: bool,
    /// Incremented at every start: answers to an earlier life are dropped.
    life: u32,
    term: u64,
    log: Vec<Entry>,
    commit: usize,
    applied: usize,
    state: BTreeMap<u32, Message>,
    smsc_index: BTreeMap<u64, u32>,
    leader: bool,
    /// Leader only: follower → matched length.
    matched: BTreeMap<usize, usize>,
    /// Leader only: client requests waiting for commit: log index → message id.
    waiting: BTreeMap<usize, u32>,
    /// Receipts waiting for commit before deliver_sm_resp: log index → smsc id.
    receipt_waiting: BTreeMap<usize, u64>,
    /// Submits written to the SMSC and not answered (message ids).
    in_flight: BTreeSet<u32>,
    /// Draining: no new submits.
    draining: bool,
    partitioned_until: u64,
}

struct Smsc {
    next_id: u64,
    /// client ref (message id) → copies.
    ledger: BTreeMap<u32, u64>,
    /// smsc id → message id.
    ids: BTreeMap<u64, u32>,
    /// Receipts not yet acknowledged.
    unacked: BTreeSet<u64>,
}

struct Sim {
    cfg: SimConfig,
    rng: StdRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<Node>,
    smsc: Smsc,
    /// Committed entries as first seen: index → entry (state machine safety).
    committed: Vec<Entry>,
    acked: BTreeSet<u32>,
    violations: Vec<String>,
    hash: u64,
    crashes: u32,
    partitions: u32,
    graceful: u32,
    faults_on: bool,
    /// `SMSGW_DST_TRACE=1`: print every traced event (to read a failing seed).
    print_trace: bool,
}

fn new_message(id: u32, at: i64) -> Message {
    Message {
        id: format!("m{id}"),
        tenant: "t".into(),
        to: "+4915112345678".into(),
        from: "SIM".into(),
        text: format!("dst {id}").into(),
        encoding: TextEncoding::Gsm7,
        parts: 1,
        category: Category::Transactional,
        client_ref: Some(format!("r{id}").into()),
        callback_url: None,
        created_at: at,
        updated_at: at,
        expires_at: at + 86_400_000,
        send_at: None,
        status: Status::Accepted,
        route: vec!["smsc".into()].into(),
        route_id: None,
        ab_variant: None,
        avoid: Vec::new(),
        operator: None,
        compliance: None,
        layout: Default::default(),
        channel: None,
        part_states: vec![PartState {
            smsc_message_id: None,
            status: PartStatus::Pending,
            error: None,
        }],
        events: vec![transitions::event(Status::Accepted, at)],
        error: None,
        attempts: 0,
        concat_ref: 0,
        idempotency_key: None,
        body_hash: None,
    }
}

impl Sim {
    fn new(cfg: SimConfig) -> Sim {
        let nodes = (0..cfg.nodes)
            .map(|_| Node {
                up: true,
                life: 1,
                ..Node::default()
            })
            .collect();
        Sim {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            smsc: Smsc {
                next_id: 1000,
                ledger: BTreeMap::new(),
                ids: BTreeMap::new(),
                unacked: BTreeSet::new(),
            },
            committed: Vec::new(),
            acked: BTreeSet::new(),
            violations: Vec::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            crashes: 0,
            partitions: 0,
            graceful: 0,
            faults_on: true,
            print_trace: std::env::var_os("SMSGW_DST_TRACE").is_some(),
        }
    }

    fn trace(&mut self, what: &str) {
        if self.print_trace {
            println!("t={:>6} {what}", self.now);
        }
        for b in self.now.to_le_bytes().iter().chain(what.as_bytes()) {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn at(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + delay,
            seq: self.seq,
            ev,
        });
    }

    fn net_delay(&mut self) -> u64 {
        self.rng.random_range(1..15)
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.nodes[a].up
            && self.nodes[b].up
            && self.nodes[a].partitioned_until <= self.now
            && self.nodes[b].partitioned_until <= self.now
    }

    fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.up && n.leader)
    }

    fn majority(&self) -> usize {
        self.cfg.nodes / 2 + 1
    }

    fn run(mut self) -> SimResult {
        // Node 0 starts as leader of term 1 (as a fresh cluster's lowest id does).
        self.nodes[0].leader = true;
        for n in &mut self.nodes {
            n.term = 1;
        }
        self.at(1, Ev::Tick { node: 0 });
        // Client load over the fault window.
        for id in 0..self.cfg.messages {
            let t = self.rng.random_range(0..self.cfg.fault_ms);
            let to = self.rng.random_range(0..self.cfg.nodes);
            self.at(t, Ev::ClientSend { id, to });
        }
        // Faults: even seeds only graceful stops, odd seeds crashes and partitions too.
        let graceful_only = self.cfg.seed.is_multiple_of(2);
        let mut t = 300;
        while t < self.cfg.fault_ms {
            let node = self.rng.random_range(0..self.cfg.nodes);
            let kind = self.rng.random_range(0..4u8);
            match (graceful_only, kind) {
                (true, _) | (false, 0) => self.at(t, Ev::GracefulStop { node }),
                (false, 1) | (false, 2) => self.at(t, Ev::Crash { node }),
                _ => {
                    let until = t + self.rng.random_range(200..1500);
                    self.at(t, Ev::Partition { node, until })
                }
            }
            t += self.rng.random_range(400..1500);
        }
        let end = self.cfg.fault_ms + self.cfg.settle_ms;
        while let Some(s) = self.queue.pop() {
            if s.at > end {
                break;
            }
            self.now = s.at;
            if self.faults_on && self.now >= self.cfg.fault_ms {
                self.heal();
            }
            self.step(s.ev);
            self.check_safety();
            if !self.faults_on && self.quiescent() {
                break;
            }
        }
        self.check_final();
        let duplicates = self.smsc.ledger.values().map(|c| c - 1).sum();
        SimResult {
            violations: self.violations,
            trace_hash: self.hash,
            acknowledged: self.acked.len(),
            duplicates,
            crashes: self.crashes,
            graceful_stops: self.graceful,
        }
    }

    /// End of the fault window: everyone up, no partitions.
    fn heal(&mut self) {
        self.faults_on = false;
        self.trace("heal");
        for i in 0..self.nodes.len() {
            self.nodes[i].partitioned_until = 0;
            if !self.nodes[i].up {
                self.start(i);
            }
        }
        if self.leader().is_none() {
            self.at(1, Ev::Elect);
        }
    }

    fn quiescent(&self) -> bool {
        let Some(l) = self.leader() else {
            return false;
        };
        let n = &self.nodes[l];
        self.smsc.unacked.is_empty()
            && n.applied == n.log.len()
            && n.state.values().all(|m| m.status.is_final())
            && self.acked.iter().all(|id| n.state.contains_key(id))
    }

    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.up = true;
        n.life += 1;
        n.leader = false;
        n.draining = false;
        // Volatile state is rebuilt from the durable log: apply again from scratch.
        n.commit = 0;
        n.applied = 0;
        n.state.clear();
        n.smsc_index.clear();
        n.matched.clear();
        n.waiting.clear();
        n.receipt_waiting.clear();
        n.in_flight.clear();
        self.trace(&format!("start {i}"));
        if self.leader().is_none() {
            self.at(50, Ev::Elect);
        }
    }

    fn stop(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.up = false;
        n.leader = false;
        n.waiting.clear();
        n.receipt_waiting.clear();
        n.in_flight.clear();
        if self.leader().is_none() {
            let d = self.rng.random_range(150..400); // election timeout
            self.at(d, Ev::Elect);
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::ClientSend { id, to } => {
                self.trace(&format!("send {id} via {to}"));
                // Forwarded to the leader, as a follower does.
                if !self.nodes[to].up {
                    return;
                }
                let Some(l) = self.leader() else { return };
                if !self.reachable(to, l) {
                    return;
                }
                if self.nodes[l].draining {
                    return; // 503 while draining
                }
                let term = self.nodes[l].term;
                self.nodes[l].log.push(Entry {
                    term,
                    op: Op::Accept { id },
                });
                let idx = self.nodes[l].log.len();
                if self.cfg.bug == Some(Bug::AckBeforeQuorum) {
                    self.acked.insert(id);
                } else {
                    self.nodes[l].waiting.insert(idx, id);
                }
            }
            Ev::Tick { node } => {
                if !self.nodes[node].up || !self.nodes[node].leader {
                    return;
                }
                self.replicate(node);
                self.dispatch(node);
                self.at(20, Ev::Tick { node });
            }
            Ev::Append {
                from,
                to,
                term,
                prefix,
                prev_term,
                entries,
                commit,
            } => {
                if !self.reachable(from, to) {
                    return;
                }
                let n = &mut self.nodes[to];
                if term < n.term {
                    let t = n.term;
                    let d = self.net_delay();
                    self.at(
                        d,
                        Ev::AppendResp {
                            from: to,
                            to: from,
                            term: t,
                            ok: false,
                            matched: 0,
                        },
                    );
                    return;
                }
                if term > n.term || n.leader {
                    n.term = term;
                    n.leader = false;
                }
                let ok =
                    n.log.len() >= prefix && (prefix == 0 || n.log[prefix - 1].term == prev_term);
                let mut matched = 0;
                if ok {
                    matched = prefix + entries.len();
                    // Keep what agrees, replace from the first conflict.
                    for (k, e) in entries.into_iter().enumerate() {
                        let i = prefix + k;
                        if i < n.log.len() {
                            if n.log[i] != e {
                                n.log.truncate(i);
                                n.log.push(e);
                            }
                        } else {
                            n.log.push(e);
                        }
                    }
                    n.commit = n.commit.max(commit.min(matched));
                }
                let t = n.term;
                self.apply(to);
                let d = self.net_delay();
                self.at(
                    d,
                    Ev::AppendResp {
                        from: to,
                        to: from,
                        term: t,
                        ok,
                        matched,
                    },
                );
            }
            Ev::AppendResp {
                from,
                to,
                term,
                ok,
                matched,
            } => {
                if !self.reachable(from, to) || !self.nodes[to].leader {
                    return;
                }
                if term > self.nodes[to].term {
                    self.nodes[to].leader = false;
                    self.nodes[to].term = term;
                    self.at(200, Ev::Elect);
                    return;
                }
                let m = if ok { matched } else { 0 };
                self.nodes[to].matched.insert(from, m);
                self.advance_commit(to);
            }
            Ev::SubmitResp {
                node,
                life,
                id,
                smsc_id,
            } => {
                let n = &mut self.nodes[node];
                if !n.up || n.life != life {
                    return; // the answer went to a dead connection
                }
                n.in_flight.remove(&id);
                if !n.leader {
                    return;
                }
                let term = n.term;
                n.log.push(Entry {
                    term,
                    op: Op::Submitted { id, smsc_id },
                });
                self.trace(&format!("resp {id} {smsc_id}"));
                // The SMSC sends the receipt later.
                let d = self.rng.random_range(20..300);
                self.smsc.unacked.insert(smsc_id);
                self.at(d, Ev::Receipt { smsc_id });
            }
            Ev::Receipt { smsc_id } => {
                if !self.smsc.unacked.contains(&smsc_id) {
                    return;
                }
                // Redelivered until acknowledged.
                self.at(500, Ev::Receipt { smsc_id });
                let Some(l) = self.leader() else { return };
                if self.nodes[l].partitioned_until > self.now {
                    return;
                }
                self.trace(&format!("receipt {smsc_id} at {l}"));
                let term = self.nodes[l].term;
                self.nodes[l].log.push(Entry {
                    term,
                    op: Op::Receipt { smsc_id },
                });
                let idx = self.nodes[l].log.len();
                if self.cfg.bug == Some(Bug::ReceiptAckBeforeCommit) {
                    self.smsc.unacked.remove(&smsc_id);
                } else {
                    self.nodes[l].receipt_waiting.insert(idx, smsc_id);
                }
            }
            Ev::Crash { node } => {
                if !self.faults_on || !self.nodes[node].up {
                    return;
                }
                self.crashes += 1;
                self.trace(&format!("crash {node}"));
                self.stop(node);
                let d = self.rng.random_range(200..1200);
                self.at(d, Ev::Restart { node });
            }
            Ev::GracefulStop { node } => {
                if !self.faults_on || !self.nodes[node].up {
                    return;
                }
                self.graceful += 1;
                self.trace(&format!("drain {node}"));
                self.nodes[node].draining = true;
                let n = &self.nodes[node];
                let idle = n.in_flight.is_empty() && n.applied == n.log.len();
                if self.cfg.bug == Some(Bug::DrainAbandonsInFlight) || idle {
                    self.finish_drain(node);
                }
                // Otherwise the node stops when its in-flight responses are committed.
            }
            Ev::Restart { node } => {
                if !self.nodes[node].up {
                    self.start(node);
                }
            }
            Ev::Partition { node, until } => {
                if !self.faults_on || !self.nodes[node].up {
                    return;
                }
                self.trace(&format!("partition {node}"));
                self.partitions += 1;
                self.nodes[node].partitioned_until = until.min(self.cfg.fault_ms);
                if self.nodes[node].leader {
                    // It stops leading once it cannot reach a majority (leader lease).
                    self.nodes[node].leader = false;
                    self.nodes[node].waiting.clear();
                    self.nodes[node].receipt_waiting.clear();
                    let d = self.rng.random_range(150..400);
                    self.at(d, Ev::Elect);
                }
            }
            Ev::Elect => self.elect(),
        }
    }

    /// A node drained: leaves (graceful), restarted a little later.
    fn finish_drain(&mut self, node: usize) {
        self.stop(node);
        let d = self.rng.random_range(100..600);
        self.at(d, Ev::Restart { node });
    }

    /// The up, reachable node with the most up-to-date log wins if a majority is reachable.
    fn elect(&mut self) {
        if self.leader().is_some() {
            return;
        }
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i].up
                    && self.nodes[*i].partitioned_until <= self.now
                    && !self.nodes[*i].draining
            })
            .collect();
        if candidates.len() < self.majority() {
            self.at(200, Ev::Elect);
            return;
        }
        let key = |n: &Node| (n.log.last().map(|e| e.term).unwrap_or(0), n.log.len());
        let Some(&best) = candidates
            .iter()
            .max_by_key(|i| (key(&self.nodes[**i]), std::cmp::Reverse(**i)))
        else {
            return;
        };
        let term = self.nodes.iter().map(|n| n.term).max().unwrap_or(0) + 1;
        for i in &candidates {
            self.nodes[*i].term = term;
            self.nodes[*i].leader = false;
        }
        let n = &mut self.nodes[best];
        n.leader = true;
        n.matched.clear();
        n.in_flight.clear();
        n.log.push(Entry { term, op: Op::Noop });
        // A new leader commits an entry of its own term (a no-op in Raft; here nothing
        // else is needed because commit requires a current-term entry below).
        let logs: Vec<(usize, usize, u64, usize)> = self
            .nodes
            .iter()
            .map(|n| {
                (
                    n.log.len(),
                    n.commit,
                    n.log.last().map(|e| e.term).unwrap_or(0),
                    n.applied,
                )
            })
            .collect();
        self.trace(&format!(
            "leader {best} term {term} candidates {candidates:?} logs {logs:?}"
        ));
        self.at(1, Ev::Tick { node: best });
    }

    fn replicate(&mut self, l: usize) {
        let (term, commit) = (self.nodes[l].term, self.nodes[l].commit);
        for f in 0..self.nodes.len() {
            if f == l {
                continue;
            }
            let prefix = self.nodes[l].matched.get(&f).copied().unwrap_or(0);
            let prev_term = if prefix == 0 {
                0
            } else {
                self.nodes[l].log[prefix - 1].term
            };
            let entries = self.nodes[l].log[prefix..].to_vec();
            let d = self.net_delay();
            self.at(
                d,
                Ev::Append {
                    from: l,
                    to: f,
                    term,
                    prefix,
                    prev_term,
                    entries,
                    commit,
                },
            );
        }
        self.advance_commit(l);
    }

    fn advance_commit(&mut self, l: usize) {
        let n = &self.nodes[l];
        let mut lens: Vec<usize> = n.matched.values().copied().collect();
        lens.push(n.log.len());
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let quorum = lens.get(self.majority() - 1).copied().unwrap_or(0);
        // Only an entry of the current term commits by counting (Raft §5.4.2).
        if quorum > n.commit && n.log[quorum - 1].term == n.term {
            self.nodes[l].commit = quorum;
            self.apply(l);
        }
    }

    fn apply(&mut self, i: usize) {
        while self.nodes[i].applied < self.nodes[i].commit {
            let idx = self.nodes[i].applied;
            let e = self.nodes[i].log[idx].clone();
            let at = self.now as i64;
            let n = &mut self.nodes[i];
            match &e.op {
                Op::Noop => {}
                Op::Accept { id } => {
                    n.state.entry(*id).or_insert_with(|| new_message(*id, at));
                }
                Op::Submitted { id, smsc_id } => {
                    if let Some(m) = n.state.get_mut(id) {
                        let sid = smsc_id.to_string();
                        transitions::part_submitted(m, 0, "smsc", &sid, at);
                        n.smsc_index.insert(*smsc_id, *id);
                    }
                }
                Op::Receipt { smsc_id } => {
                    if let Some(id) = n.smsc_index.get(smsc_id)
                        && let Some(m) = n.state.get_mut(id)
                    {
                        transitions::receipt(m, 0, ReceiptOutcome::Delivered, None, at);
                    }
                }
            }
            n.applied += 1;
            let index = n.applied;
            // Answer only if the committed entry is the one proposed (a replaced entry
            // is an error to the proposer, as in openraft).
            if let Some(id) = n.waiting.remove(&index)
                && e.op == (Op::Accept { id })
            {
                self.acked.insert(id);
                self.trace(&format!("202 {id}"));
            }
            if let Some(sid) = self.nodes[i].receipt_waiting.remove(&index)
                && e.op == (Op::Receipt { smsc_id: sid })
            {
                self.smsc.unacked.remove(&sid);
            }
            // Safety: the committed entry at this index is the same everywhere, always.
            if idx < self.committed.len() {
                if self.committed[idx] != e {
                    self.violations.push(format!(
                        "t={} node {i}: committed entry {} changed from {:?} to {:?}",
                        self.now,
                        idx + 1,
                        self.committed[idx],
                        e
                    ));
                }
            } else {
                self.committed.push(e);
            }
        }
        // A draining node leaves once its in-flight work is answered and committed.
        let n = &self.nodes[i];
        if n.draining && n.up && n.in_flight.is_empty() && n.applied == n.log.len() {
            self.finish_drain(i);
        }
    }

    /// The bind owner (the leader) submits every accepted message it has not submitted.
    fn dispatch(&mut self, l: usize) {
        if self.nodes[l].draining || self.nodes[l].partitioned_until > self.now {
            return;
        }
        let todo: Vec<u32> = self.nodes[l]
            .state
            .values()
            .filter(|m| m.status == Status::Accepted)
            .filter_map(|m| m.id[1..].parse().ok())
            .filter(|id| !self.nodes[l].in_flight.contains(id))
            .collect();
        // Also skip ones whose response is already in the log but not yet applied.
        let pending: BTreeSet<u32> = self.nodes[l].log[self.nodes[l].applied..]
            .iter()
            .filter_map(|e| match e.op {
                Op::Submitted { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        for id in todo.into_iter().filter(|id| !pending.contains(id)) {
            self.nodes[l].in_flight.insert(id);
            let smsc_id = self.smsc.next_id;
            self.smsc.next_id += 1;
            *self.smsc.ledger.entry(id).or_default() += 1;
            self.smsc.ids.insert(smsc_id, id);
            self.trace(&format!("submit {id} as {smsc_id} by {l}"));
            let d = self.rng.random_range(2..60);
            let life = self.nodes[l].life;
            self.at(
                d,
                Ev::SubmitResp {
                    node: l,
                    life,
                    id,
                    smsc_id,
                },
            );
        }
    }

    fn check_safety(&mut self) {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.applied > n.commit {
                self.violations
                    .push(format!("t={} node {i} applied beyond commit", self.now));
            }
        }
    }

    fn check_final(&mut self) {
        let Some(l) = self.leader() else {
            self.violations
                .push("liveness: no leader after the faults stopped".into());
            return;
        };
        let state = self.nodes[l].state.clone();
        for id in &self.acked {
            // I1: every 202 reached the SMSC.
            if !self.smsc.ledger.contains_key(id) {
                self.violations.push(format!(
                    "I1 lost: message {id} got a 202 but never reached the SMSC"
                ));
            }
            if !state.contains_key(id) {
                self.violations.push(format!(
                    "I1 lost: message {id} got a 202 but is not in the state"
                ));
            }
        }
        // I2: duplicates bounded by crashes (0 when every stop was graceful).
        let bound = u64::from(self.crashes + self.partitions);
        for (id, copies) in &self.smsc.ledger {
            if copies - 1 > bound {
                self.violations.push(format!(
                    "I2 duplicates: message {id} sent {copies} times with {} crashes, {} partitions ({} graceful stops)",
                    self.crashes, self.partitions, self.graceful
                ));
            }
        }
        // I3 + I4.
        for (id, m) in &state {
            let mut prev: Option<Status> = None;
            for e in &m.events {
                if let Some(p) = prev
                    && !p.may_become(e.status)
                {
                    self.violations
                        .push(format!("I3 illegal: message {id} {p:?} -> {:?}", e.status));
                }
                prev = Some(e.status);
            }
            if self.smsc.ledger.contains_key(id) && m.status != Status::Delivered {
                self.violations.push(format!(
                    "I4 receipt: message {id} at the SMSC ends {:?}",
                    m.status
                ));
            }
        }
        if !self.smsc.unacked.is_empty() {
            self.violations.push(format!(
                "liveness: {} receipts never acknowledged",
                self.smsc.unacked.len()
            ));
        }
    }
}

/// Runs one seeded simulation.
pub fn simulate(cfg: SimConfig) -> SimResult {
    Sim::new(cfg).run()
}

/// Runs seeds `from..from+count` and returns the first failing seed and its result.
pub fn first_failure(from: u64, count: u64, bug: Option<Bug>) -> Option<(u64, SimResult)> {
    (from..from + count).find_map(|seed| {
        let mut cfg = SimConfig::new(seed);
        cfg.bug = bug;
        let r = simulate(cfg);
        (!r.violations.is_empty()).then_some((seed, r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One seed from `SMSGW_DST_SEED` reproduces a reported failure exactly.
    #[test]
    fn replay_seed_from_env() {
        let Some(seed) = std::env::var("SMSGW_DST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
        else {
            return;
        };
        let r = simulate(SimConfig::new(seed));
        println!("seed {seed}: {r:#?}");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }

    #[test]
    fn the_correct_protocol_holds_on_many_seeds() {
        let mut acked = 0;
        let mut crashes = 0;
        let mut dups = 0;
        for seed in 0..200 {
            let r = simulate(SimConfig::new(seed));
            assert!(
                r.violations.is_empty(),
                "seed {seed} (reproduce with SMSGW_DST_SEED={seed}): {:?}",
                r.violations
            );
            acked += r.acknowledged;
            crashes += r.crashes;
            dups += r.duplicates;
        }
        // The runs did real work and real faults happened.
        assert!(acked > 200 * 20, "only {acked} acknowledged");
        assert!(crashes > 100, "only {crashes} crashes");
        println!(
            "200 seeds: {acked} acknowledged, {crashes} crashes, {dups} duplicates (all within bounds)"
        );
    }

    #[test]
    fn a_seed_reproduces_exactly() {
        for seed in [1, 2, 77] {
            let a = simulate(SimConfig::new(seed));
            let b = simulate(SimConfig::new(seed));
            assert_eq!(a, b);
        }
        assert_ne!(
            simulate(SimConfig::new(1)).trace_hash,
            simulate(SimConfig::new(3)).trace_hash
        );
        // The same holds for a failing seed.
        let (seed, r) = first_failure(0, 200, Some(Bug::AckBeforeQuorum)).expect("caught");
        let mut cfg = SimConfig::new(seed);
        cfg.bug = Some(Bug::AckBeforeQuorum);
        assert_eq!(simulate(cfg), r);
    }

    /// Prints the first failing seed per bug (for simulations/README.md).
    #[test]
    fn first_failing_seed_per_bug() {
        for bug in [
            Bug::AckBeforeQuorum,
            Bug::ReceiptAckBeforeCommit,
            Bug::DrainAbandonsInFlight,
        ] {
            let f = first_failure(0, 200, Some(bug)).map(|(s, r)| (s, r.violations.len()));
            let failing = (0..200)
                .filter(|seed| {
                    let mut c = SimConfig::new(*seed);
                    c.bug = Some(bug);
                    !simulate(c).violations.is_empty()
                })
                .count();
            println!(
                "{bug:?}: first failing seed and violations {f:?}; {failing} of 200 seeds fail"
            );
        }
    }

    #[test]
    fn ack_before_quorum_is_caught() {
        let (seed, r) =
            first_failure(0, 200, Some(Bug::AckBeforeQuorum)).expect("the bug must be caught");
        assert!(
            r.violations.iter().any(|v| v.starts_with("I1")),
            "seed {seed}: {:?}",
            r.violations
        );
    }

    #[test]
    fn receipt_ack_before_commit_is_caught() {
        let (seed, r) = first_failure(0, 200, Some(Bug::ReceiptAckBeforeCommit))
            .expect("the bug must be caught");
        assert!(
            r.violations.iter().any(|v| v.starts_with("I4")),
            "seed {seed}: {:?}",
            r.violations
        );
    }

    #[test]
    fn drain_abandoning_in_flight_submits_is_caught() {
        let (seed, r) = first_failure(0, 200, Some(Bug::DrainAbandonsInFlight))
            .expect("the bug must be caught");
        assert!(
            r.violations.iter().any(|v| v.starts_with("I2")),
            "seed {seed}: {:?}",
            r.violations
        );
    }
}
