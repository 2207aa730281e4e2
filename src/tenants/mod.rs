//! Tenants at run time: one rate-limiter actor per tenant on each node, created on first
//! use, spending tokens leased from the tenant's cluster-wide bucket on the leader.
pub mod authority;
pub mod limiter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorRef};

use crate::state::RateLimit;
use authority::TokenSource;
use limiter::{LimiterArgs, LimiterMsg, Refusal, TenantLimiter};

/// Finds (or starts) the limiter actor of a tenant.
pub struct Limiters {
    /// Each tenant's limiter actor and the limit it was last given.
    actors: Mutex<HashMap<String, (ActorRef<LimiterMsg>, RateLimit)>>,
    source: Arc<TokenSource>,
}

impl Limiters {
    /// Limiters that lease from `source`.
    pub fn new(source: Arc<TokenSource>) -> Self {
        Limiters {
            actors: Mutex::new(HashMap::new()),
            source,
        }
    }

    /// Asks the tenant's limiter for `n` requests.
    pub async fn check(&self, tenant: &str, limit: RateLimit, n: u32) -> Result<(), Refusal> {
        for _ in 0..2 {
            let existing = self
                .actors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(tenant)
                .cloned();
            let actor = match existing {
                Some((a, known)) => {
                    if known != limit {
                        let _ = a.send_message(LimiterMsg::SetLimit(limit));
                        self.actors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(tenant.to_string(), (a.clone(), limit));
                    }
                    a
                }
                None => match Actor::spawn(
                    None,
                    TenantLimiter,
                    LimiterArgs {
                        tenant: tenant.to_string(),
                        limit,
                        source: self.source.clone(),
                    },
                )
                .await
                {
                    Ok((a, _)) => {
                        self.actors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(tenant.to_string(), (a.clone(), limit));
                        a
                    }
                    Err(_) => return Ok(()),
                },
            };
            match actor
                .call(
                    |port| LimiterMsg::Check(n, port),
                    Some(Duration::from_secs(4)),
                )
                .await
            {
                Ok(ractor::rpc::CallResult::Success(r)) => return r,
                _ => {
                    // The limiter died: forget it and start a fresh one.
                    self.actors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(tenant);
                }
            }
        }
        Ok(())
    }
}
