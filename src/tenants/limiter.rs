//! One rate-limiter actor per tenant on each node: it spends tokens leased from the
//! tenant's cluster-wide bucket (`authority`), so the limit holds across all nodes while
//! a send costs a remote call only once per lease, not per message.

use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::authority::{LEASE_TTL, TokenSource, lease_size};
use crate::state::RateLimit;

/// Why a limiter refused requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the tenant's rate: a slot frees in this many seconds.
    OverLimit { retry_after_s: u64 },
    /// No leader to lease the tenant's tokens from (an election outlasted the wait).
    NoLeader,
}

/// Messages of a tenant limiter.
#[derive(ractor_cluster::RactorMessage)]
pub enum LimiterMsg {
    /// May `n` more requests go now?
    Check(u32, RpcReplyPort<Result<(), Refusal>>),
    /// The tenant's limit changed.
    SetLimit(RateLimit),
}

/// The tenant limiter actor.
pub struct TenantLimiter;

/// What a limiter starts with.
pub struct LimiterArgs {
    pub tenant: String,
    pub limit: RateLimit,
    pub source: Arc<TokenSource>,
}

/// The tokens this node holds for the tenant.
pub struct LimiterState {
    args: LimiterArgs,
    tokens: u32,
    expires: Instant,
}

impl Actor for TenantLimiter {
    type Msg = LimiterMsg;
    type State = LimiterState;
    type Arguments = LimiterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LimiterMsg>,
        args: LimiterArgs,
    ) -> Result<LimiterState, ActorProcessingErr> {
        Ok(LimiterState {
            args,
            tokens: 0,
            expires: Instant::now(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LimiterMsg>,
        msg: LimiterMsg,
        st: &mut LimiterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LimiterMsg::Check(n, reply) => {
                let n = n.max(1);
                let now = Instant::now();
                if now >= st.expires {
                    st.tokens = 0; // an unspent lease lapses
                }
                if st.tokens < n {
                    let limit = st.args.limit;
                    let want = lease_size(limit, n);
                    let grant = st
                        .args
                        .source
                        .lease(&st.args.tenant, limit, want, n - st.tokens)
                        .await;
                    match grant {
                        Ok(g) if g.granted > 0 => {
                            st.tokens += g.granted;
                            st.expires = Instant::now() + LEASE_TTL;
                        }
                        Ok(g) => {
                            let _ = reply.send(Err(Refusal::OverLimit {
                                retry_after_s: g.retry_after_s.max(1),
                            }));
                            return Ok(());
                        }
                        Err(_) => {
                            let _ = reply.send(Err(Refusal::NoLeader));
                            return Ok(());
                        }
                    }
                }
                let answer = if st.tokens >= n {
                    st.tokens -= n;
                    Ok(())
                } else {
                    Err(Refusal::OverLimit { retry_after_s: 1 })
                };
                let _ = reply.send(answer);
            }
            LimiterMsg::SetLimit(limit) => {
                if limit != st.args.limit {
                    st.args.limit = limit;
                    st.tokens = st.tokens.min(limit.burst);
                }
            }
        }
        Ok(())
    }
}
