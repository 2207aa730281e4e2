//! Operator protocols. Each protocol lives in its own folder with the same files:
//! `codec.rs`, `session.rs`, `receipt.rs`, `status_map.rs`, `tests.rs`.
//! [`session`] is the protocol-neutral session the bind actors drive; the
//! Chinese protocols share their session engine in [`cn`].
pub mod cmpp;
pub mod cn;
pub mod http_upstream;
pub mod session;
pub mod sgip;
pub mod smgp;
pub mod smpp;
