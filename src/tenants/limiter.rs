//! One rate-limiter actor per tenant (GCRA via governor): it owns the tenant's budget on
//! this node, so the limit follows tenant changes without locks on the request path.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::state::RateLimit;

/// Messages of a tenant limiter.
pub enum LimiterMsg {
    /// May `n` more requests go now? Err(seconds to wait) when not.
    Check(u32, RpcReplyPort<Result<(), u64>>),
    /// The tenant's limit changed.
    SetLimit(RateLimit),
}

/// The tenant limiter actor.
pub struct TenantLimiter;

/// The current limit and its GCRA state.
pub struct LimiterState {
    limit: RateLimit,
    limiter: DefaultDirectRateLimiter,
}

fn make(limit: RateLimit) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(limit.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst =
        NonZeroU32::new(limit.burst.max(limit.per_second).max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

impl Actor for TenantLimiter {
    type Msg = LimiterMsg;
    type State = LimiterState;
    type Arguments = RateLimit;

    async fn pre_start(
        &self,
        _myself: ActorRef<LimiterMsg>,
        limit: RateLimit,
    ) -> Result<LimiterState, ActorProcessingErr> {
        Ok(LimiterState {
            limit,
            limiter: make(limit),
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
                let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
                let answer = match st.limiter.check_n(n) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(not_until)) => {
                        let wait: Duration =
                            not_until.wait_time_from(DefaultClock::default().now());
                        Err(wait.as_secs().max(1))
                    }
                    // More than the burst at once can never pass: wait a full second.
                    Err(_) => Err(1),
                };
                let _ = reply.send(answer);
            }
            LimiterMsg::SetLimit(limit) => {
                if limit != st.limit {
                    st.limit = limit;
                    st.limiter = make(limit);
                }
            }
        }
        Ok(())
    }
}
