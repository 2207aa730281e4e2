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

pub use engine::{Ranking, RouteChoice, RoutingEngine};
pub use matcher::{MatchInput, RouteIndex, Shadow};
pub use strategy::Strategy;
