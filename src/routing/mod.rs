//! Routing: which route a message takes and in which order its channels are tried.
//!
//! - `trie`: digit trie over E.164 prefixes (routes, number ranges, price lists).
//! - `matcher`: route precedence and the compiled [`RouteIndex`] (pure).
//! - `operators`: the number-range table (MCC+MNC by prefix) from CSV.
//! - `hlr`: the number-portability / HLR HTTP hook with cache and timeout.
//! - `strategy`: priority, weighted, least_cost, success_rate (Thompson sampling) (pure).
//! - `feedback`: receipt outcomes over a sliding window; A/B statistics and z-test.
//! - `engine`: one node's engine tying these together (the accept-time route choice and
//!   candidate order; see `docs/architecture.md`, "Routing and channel health").

pub mod engine;
pub mod feedback;
pub mod hlr;
pub mod matcher;
pub mod operators;
pub mod strategy;
pub mod trie;

pub use engine::{RouteChoice, RoutingEngine};
pub use matcher::{MatchInput, RouteIndex};
pub use strategy::Strategy;

use crate::state::{Category, Route};

/// Picks the route for a message by scanning `routes` (no operator or sender type
/// known). Kept for callers without an engine; the engine's cached index answers the
/// same.
pub fn choose<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    to: &str,
    country: Option<&str>,
    tenant: &str,
    category: Category,
) -> Option<RouteChoice> {
    let routes: Vec<&Route> = routes.into_iter().collect();
    let ix = RouteIndex::build(routes.iter().copied());
    let r = ix.choose(&MatchInput {
        to,
        country,
        operator: None,
        tenant,
        category,
        sender_type: "alphanumeric",
    })?;
    let mut chans = r.channels.clone();
    chans.sort_by_key(|c| c.priority);
    Some(RouteChoice {
        route_id: r.id.clone(),
        strategy: r.strategy.clone(),
        channels: chans.into_iter().map(|c| c.id).collect(),
        variant: None,
    })
}
