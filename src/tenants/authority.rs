//! The cluster-wide budget of each tenant: one token bucket per tenant, held by the Raft
//! leader (the limiter's home in the cluster). Nodes do not ask it per message: each
//! node's limiter actor leases a batch of tokens (about 50 ms of the tenant's rate) and
//! spends it locally; a lease not spent within `LEASE_TTL` lapses. The cluster therefore
//! never admits more than the limit, and a send costs no remote call per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

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

/// One tenant's bucket.
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

/// The token buckets this node holds (used while it is the leader).
#[derive(Default)]
pub struct TokenAuthority {
    buckets: Mutex<HashMap<String, Bucket>>,
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

impl TokenAuthority {
    /// Leases up to `want` tokens (at least `min`, or none).
    pub fn grant(&self, tenant: &str, limit: RateLimit, want: u32, min: u32) -> Grant {
        let rate = f64::from(limit.per_second.max(1));
        let burst = f64::from(limit.burst.max(limit.per_second).max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(tenant.to_string()).or_insert(Bucket {
            limit,
            tokens: burst,
            at: now,
        });
        if b.limit != limit {
            b.limit = limit;
            b.tokens = b.tokens.min(burst);
        }
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        let min = f64::from(min.max(1));
        if min > burst {
            return Grant {
                granted: 0,
                retry_after_s: 1,
            };
        }
        if b.tokens < min {
            let wait = ((min - b.tokens) / rate).ceil().max(1.0);
            return Grant {
                granted: 0,
                retry_after_s: wait as u64,
            };
        }
        let granted = b.tokens.min(f64::from(want.max(1))).floor();
        b.tokens -= granted;
        Grant {
            granted: granted as u32,
            retry_after_s: 0,
        }
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

/// Where a node's limiters get their tokens: the local authority when this node leads,
/// else the leader's over the cluster port.
pub struct TokenSource {
    pub consensus: Arc<Consensus>,
    pub authority: Arc<TokenAuthority>,
    client: reqwest::Client,
    /// Since when no leader could be reached (None: the last lease request got an answer).
    leaderless: Mutex<Option<LeaderGap>>,
}

impl TokenSource {
    /// A source for this node.
    pub fn new(consensus: Arc<Consensus>, authority: Arc<TokenAuthority>) -> Self {
        let client = crate::http_client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        TokenSource {
            consensus,
            authority,
            client,
            leaderless: Mutex::new(None),
        }
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

    /// One try: the local authority when this node leads, else the leader's. None when no
    /// leader is known or it did not answer.
    async fn lease_once(
        &self,
        tenant: &str,
        limit: RateLimit,
        want: u32,
        min: u32,
    ) -> Option<Grant> {
        if self.consensus.is_leader() {
            return Some(self.authority.grant(tenant, limit, want, min));
        }
        let leader = self.consensus.leader_info()?.cluster_addr;
        let req = GrantRequest {
            tenant: tenant.to_string(),
            per_second: limit.per_second,
            burst: limit.burst,
            want,
            min,
        };
        let url = format!("http://{leader}/cluster/tokens");
        match self.client.post(url).json(&req).send().await {
            Ok(r) if r.status().is_success() => r.json::<Grant>().await.ok(),
            _ => None,
        }
    }
}

/// `POST /cluster/tokens` on the cluster port: the leader's authority answers.
pub async fn grant_rpc(
    State(authority): State<Arc<TokenAuthority>>,
    Json(req): Json<GrantRequest>,
) -> Json<Grant> {
    let limit = RateLimit {
        per_second: req.per_second,
        burst: req.burst,
    };
    Json(authority.grant(&req.tenant, limit, req.want, req.min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_never_exceed_the_bucket_and_batches_are_all_or_nothing() {
        let a = TokenAuthority::default();
        let limit = RateLimit {
            per_second: 100,
            burst: 100,
        };
        let mut total = 0;
        for _ in 0..50 {
            total += a.grant("t", limit, 10, 1).granted;
        }
        // The burst, plus what refilled during the loop (microseconds: at most a few).
        assert!((100..=105).contains(&total), "granted {total}");
        let g = a.grant("t", limit, 50, 50);
        assert_eq!(g.granted, 0);
        assert!(g.retry_after_s >= 1);
        assert_eq!(
            a.grant("other", limit, 500, 500).granted,
            0,
            "above the burst never passes"
        );
        assert_eq!(lease_size(limit, 1), 5);
        assert_eq!(lease_size(limit, 40), 40);
    }
}
