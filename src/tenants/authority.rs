//! The cluster-wide budget of each tenant: one token-bucket actor per tenant
//! (`TenantBucket`), placed on the Raft leader under that node's `RateHome`. Nodes do not
//! ask it per message: each node's limiter actor leases a batch of tokens (about 50 ms of
//! the tenant's rate) and spends it locally; a lease not spent within `LEASE_TTL` lapses.
//! The cluster therefore never admits more than the limit, and a send costs no remote
//! call per message. A follower's limiter reaches the leader's rate home over the actor
//! mesh (`cluster::mesh`), found by process group on every lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::consensus::Consensus;
use crate::state::RateLimit;

/// How long leased tokens may be spent before they lapse.
pub const LEASE_TTL: Duration = Duration::from_millis(1000);
/// For how long after the leader was lost lease requests wait for a new one (an election
/// takes about a second): they are held, not refused. Counted from the loss, not per
/// request, so a node cut off from the majority for longer refuses at once. Shorter than
/// the limiter call's timeout (`Limiters::check`).
const LEADER_WAIT: Duration = Duration::from_millis(2000);
/// Once `LEADER_WAIT` has passed, one try at the leader takes at most this long, and tries
/// are this far apart: a partitioned leader (packets dropped) cannot hold requests longer.
const LONG_GAP_TRY: Duration = Duration::from_millis(250);
/// A lease covers this share of a second of the tenant's rate.
const LEASE_FRACTION: f64 = 0.05;

/// One tenant's bucket (a `TenantBucket` actor's state).
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    fn new(limit: RateLimit) -> Self {
        Bucket {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            at: Instant::now(),
        }
    }

    /// Leases up to `want` tokens (at least `min`, or none).
    fn take(&mut self, limit: RateLimit, want: u32, min: u32) -> Grant {
        let rate = f64::from(limit.per_second.max(1));
        let burst = f64::from(limit.burst.max(1));
        let now = Instant::now();
        if self.limit != limit {
            self.limit = limit;
            self.tokens = self.tokens.min(burst);
        }
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
        let min = f64::from(min.max(1));
        if min > burst {
            return Grant {
                granted: 0,
                retry_after_s: 1,
            };
        }
        if self.tokens < min {
            let wait = ((min - self.tokens) / rate).ceil().max(1.0);
            return Grant {
                granted: 0,
                retry_after_s: wait as u64,
            };
        }
        let granted = self.tokens.min(f64::from(want.max(1))).floor();
        self.tokens -= granted;
        Grant {
            granted: granted as u32,
            retry_after_s: 0,
        }
    }
}

/// A grant: tokens leased now, and when to ask again if that is not enough.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Grant {
    pub granted: u32,
    pub retry_after_s: u64,
}

/// A node's request for tokens of one tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantRequest {
    pub tenant: String,
    pub per_second: u32,
    pub burst: u32,
    pub want: u32,
    /// At least this many, or none (a batch request cannot be split).
    pub min: u32,
}

/// What a rate home answers a lease request with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum LeaseAnswer {
    Granted(Grant),
    /// This node does not lead (any more): ask the leader's rate home.
    NotLeader,
    /// The request did not decode (a peer of another version).
    BadRequest(String),
}

/// The mesh service name of the rate home (`cluster::mesh::group`).
const HOME_SERVICE: &str = "rate-home";

/// Messages of a rate home. Bytes on the wire (bincode `GrantRequest` in, `LeaseAnswer`
/// out), so a malformed request from a peer is an answer, never a panic in a decoder.
#[derive(ractor_cluster::RactorClusterMessage)]
pub enum RateHomeMsg {
    #[rpc]
    Lease(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// Every node runs one; it answers only while its node leads. It starts a `TenantBucket`
/// for a tenant on the first lease request and supervises it; losing the leadership
/// stops them all (the next leader starts full buckets, as after an election).
pub struct RateHome;

/// A rate home's state: its node's Raft handle and the tenant buckets it holds.
pub struct RateHomeState {
    consensus: Arc<Consensus>,
    buckets: HashMap<String, ActorRef<BucketMsg>>,
    tenants: HashMap<ActorId, String>,
}

impl RateHomeState {
    fn stop_buckets(&mut self) {
        for b in self.buckets.values() {
            b.stop(Some("no longer the leader".into()));
        }
        self.buckets.clear();
        self.tenants.clear();
    }
}

fn answer(reply: RpcReplyPort<Vec<u8>>, a: &LeaseAnswer) {
    if let Ok(bytes) = crate::wire::encode(a) {
        let _ = reply.send(bytes);
    }
}

impl Actor for RateHome {
    type Msg = RateHomeMsg;
    type State = RateHomeState;
    type Arguments = Arc<Consensus>;

    async fn pre_start(
        &self,
        myself: ActorRef<RateHomeMsg>,
        consensus: Arc<Consensus>,
    ) -> Result<RateHomeState, ActorProcessingErr> {
        crate::cluster::mesh::publish(HOME_SERVICE, consensus.node_id(), myself.get_cell());
        Ok(RateHomeState {
            consensus,
            buckets: HashMap::new(),
            tenants: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RateHomeMsg>,
        msg: RateHomeMsg,
        st: &mut RateHomeState,
    ) -> Result<(), ActorProcessingErr> {
        let RateHomeMsg::Lease(bytes, reply) = msg;
        let req: GrantRequest = match crate::wire::decode(&bytes) {
            Ok(r) => r,
            Err(e) => {
                answer(reply, &LeaseAnswer::BadRequest(e.to_string()));
                return Ok(());
            }
        };
        if !st.consensus.is_leader() {
            st.stop_buckets();
            answer(reply, &LeaseAnswer::NotLeader);
            return Ok(());
        }
        let limit = RateLimit {
            per_second: req.per_second,
            burst: req.burst,
        };
        let bucket = match st.buckets.get(&req.tenant) {
            Some(b) => b.clone(),
            None => {
                let (b, _) =
                    Actor::spawn_linked(None, TenantBucket, limit, myself.get_cell()).await?;
                st.tenants.insert(b.get_id(), req.tenant.clone());
                st.buckets.insert(req.tenant.clone(), b.clone());
                b
            }
        };
        let take = BucketMsg::Take {
            limit,
            want: req.want,
            min: req.min,
            reply,
        };
        if let Err(e) = bucket.cast(take) {
            warn!(tenant = %req.tenant, error = %e, "tenant bucket gone; the next lease starts a new one");
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<RateHomeMsg>,
        evt: SupervisionEvent,
        st: &mut RateHomeState,
    ) -> Result<(), ActorProcessingErr> {
        let gone = |cell: &ActorCell| cell.get_id();
        let id = match &evt {
            SupervisionEvent::ActorTerminated(cell, ..) => Some(gone(cell)),
            SupervisionEvent::ActorFailed(cell, e) => {
                warn!(error = %e, "tenant bucket crashed; the next lease starts a new one");
                Some(gone(cell))
            }
            _ => None,
        };
        if let Some(tenant) = id.and_then(|id| st.tenants.remove(&id)) {
            st.buckets.remove(&tenant);
        }
        Ok(())
    }
}

/// Messages of a tenant bucket.
#[derive(ractor_cluster::RactorMessage)]
pub enum BucketMsg {
    /// Lease up to `want` tokens (at least `min`); the answer is an encoded `LeaseAnswer`.
    Take {
        limit: RateLimit,
        want: u32,
        min: u32,
        reply: RpcReplyPort<Vec<u8>>,
    },
}

/// One tenant's cluster-wide token bucket, on the leader.
pub struct TenantBucket;

impl Actor for TenantBucket {
    type Msg = BucketMsg;
    type State = Bucket;
    type Arguments = RateLimit;

    async fn pre_start(
        &self,
        _myself: ActorRef<BucketMsg>,
        limit: RateLimit,
    ) -> Result<Bucket, ActorProcessingErr> {
        Ok(Bucket::new(limit))
    }

    async fn handle(
        &self,
        _myself: ActorRef<BucketMsg>,
        msg: BucketMsg,
        bucket: &mut Bucket,
    ) -> Result<(), ActorProcessingErr> {
        let BucketMsg::Take {
            limit,
            want,
            min,
            reply,
        } = msg;
        answer(reply, &LeaseAnswer::Granted(bucket.take(limit, want, min)));
        Ok(())
    }
}

/// How big a lease to ask for: about 50 ms of the tenant's rate, at least what is needed.
pub fn lease_size(limit: RateLimit, need: u32) -> u32 {
    let share = (f64::from(limit.per_second) * LEASE_FRACTION).ceil() as u32;
    share.max(need).max(1)
}

/// No leader could be reached to lease tokens from, within `LEADER_WAIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no leader to lease rate tokens from")]
pub struct NoLeader;

/// A time without a reachable leader.
#[derive(Debug, Clone, Copy)]
struct LeaderGap {
    since: Instant,
    last_try: Instant,
}

/// Where a node's limiters get their tokens: the rate home of the node that leads, this
/// one's when this node leads, else the leader's over the actor mesh.
pub struct TokenSource {
    pub consensus: Arc<Consensus>,
    /// This node's rate home (set once the node's actors are up).
    home: OnceLock<ActorRef<RateHomeMsg>>,
    /// Since when no leader could be reached (None: the last lease request got an answer).
    leaderless: Mutex<Option<LeaderGap>>,
}

impl TokenSource {
    /// A source for this node.
    pub fn new(consensus: Arc<Consensus>) -> Self {
        TokenSource {
            consensus,
            home: OnceLock::new(),
            leaderless: Mutex::new(None),
        }
    }

    /// Hands over this node's rate home (the node's supervisor starts it).
    pub fn set_home(&self, home: ActorRef<RateHomeMsg>) {
        let _ = self.home.set(home);
    }

    /// Leases tokens for `tenant`. In the first `LEADER_WAIT` after the leader was lost (an
    /// election) it waits for a new one: the node could not accept a message without a
    /// leader anyway, and a 429 would tell a tenant under its limit that it is over it.
    pub async fn lease(
        &self,
        tenant: &str,
        limit: RateLimit,
        want: u32,
        min: u32,
    ) -> Result<Grant, NoLeader> {
        let gap = || *self.leaderless.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // How long this try may take: what is left of the wait, and once that is used
            // up one short try at most every `LONG_GAP_TRY` (the others refuse at once).
            let budget = match gap() {
                None => LEADER_WAIT,
                Some(g) => {
                    let left = LEADER_WAIT.saturating_sub(g.since.elapsed());
                    if left.is_zero() && g.last_try.elapsed() < LONG_GAP_TRY {
                        return Err(NoLeader);
                    }
                    left.max(LONG_GAP_TRY)
                }
            };
            let tried = Instant::now();
            if let Ok(Some(grant)) =
                tokio::time::timeout(budget, self.lease_once(tenant, limit, want, min)).await
            {
                *self.leaderless.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return Ok(grant);
            }
            let waited_long = {
                let mut l = self.leaderless.lock().unwrap_or_else(|e| e.into_inner());
                let g = l.get_or_insert(LeaderGap {
                    since: tried,
                    last_try: tried,
                });
                g.last_try = Instant::now();
                g.since.elapsed() >= LEADER_WAIT
            };
            if waited_long {
                return Err(NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One try at the leader's rate home. None when no leader is known, its home cannot
    /// be found (no mesh session yet) or it did not answer with a grant.
    async fn lease_once(
        &self,
        tenant: &str,
        limit: RateLimit,
        want: u32,
        min: u32,
    ) -> Option<Grant> {
        let leader = self.consensus.leader()?;
        let local = leader == self.consensus.node_id();
        let home = if local {
            self.home.get()?.clone()
        } else {
            let Some(home) = crate::cluster::mesh::find::<RateHomeMsg>(HOME_SERVICE, leader) else {
                debug!(leader, "no session to the leader's rate home yet");
                return None;
            };
            home
        };
        let req = crate::wire::encode(&GrantRequest {
            tenant: tenant.to_string(),
            per_second: limit.per_second,
            burst: limit.burst,
            want,
            min,
        })
        .ok()?;
        let started = Instant::now();
        let reply = home
            .call(|port| RateHomeMsg::Lease(req, port), Some(LEADER_WAIT))
            .await;
        let via = if local { "local" } else { "mesh" };
        metrics::histogram!("smsgw_rate_lease_seconds", "via" => via)
            .record(started.elapsed().as_secs_f64());
        match reply {
            Ok(ractor::rpc::CallResult::Success(bytes)) => {
                match crate::wire::decode::<LeaseAnswer>(&bytes).ok()? {
                    LeaseAnswer::Granted(g) => Some(g),
                    LeaseAnswer::NotLeader => {
                        debug!(leader, "that node's rate home says it does not lead");
                        None
                    }
                    LeaseAnswer::BadRequest(why) => {
                        warn!(%why, "the leader's rate home refused a lease request");
                        None
                    }
                }
            }
            other => {
                debug!(leader, answer = ?other.map(|r| r.is_success()), "lease call failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_never_exceed_the_bucket_and_batches_are_all_or_nothing() {
        let limit = RateLimit {
            per_second: 100,
            burst: 100,
        };
        let mut b = Bucket::new(limit);
        let mut total = 0;
        for _ in 0..50 {
            total += b.take(limit, 10, 1).granted;
        }
        // The burst, plus what refilled during the loop (microseconds: at most a few).
        assert!((100..=105).contains(&total), "granted {total}");
        let g = b.take(limit, 50, 50);
        assert_eq!(g.granted, 0);
        assert!(g.retry_after_s >= 1);
        assert_eq!(
            Bucket::new(limit).take(limit, 500, 500).granted,
            0,
            "above the burst never passes"
        );
        assert_eq!(lease_size(limit, 1), 5);
        assert_eq!(lease_size(limit, 40), 40);
    }

    #[test]
    fn a_burst_below_the_rate_is_the_bucket() {
        // 50/s with a burst of 10: at most 10 at once (it was silently raised to 50).
        let limit = RateLimit {
            per_second: 50,
            burst: 10,
        };
        let mut b = Bucket::new(limit);
        let mut total = 0;
        for _ in 0..20 {
            total += b.take(limit, 5, 1).granted;
        }
        assert!((10..=11).contains(&total), "granted {total}");
    }

    #[test]
    fn lease_answers_survive_the_wire_and_garbage_is_an_error() {
        let a = LeaseAnswer::Granted(Grant {
            granted: 7,
            retry_after_s: 0,
        });
        let bytes = crate::wire::encode(&a).expect("encode");
        assert_eq!(crate::wire::decode::<LeaseAnswer>(&bytes).ok(), Some(a));
        assert!(crate::wire::decode::<GrantRequest>(&[0xff, 0xfe, 0x01]).is_err());
    }
}
