//! Operator protocols. Each protocol lives in its own folder with the same files:
//! `codec.rs`, `session.rs`, `receipt.rs`, `status_map.rs`, `tests.rs`.
pub mod http_upstream;
pub mod smpp;
