//! The generic HTTP upstream channel (`protocol: "http"`): REST providers driven by a
//! request template per channel, the provider's id read from the answer by a path,
//! receipts POSTed back to `/v1/receipts/{channel}` and mapped to the common statuses,
//! mobile-originated messages POSTed to `/v1/mo/{channel}` (`inbound.rs`).
//!
//! Same files as every protocol: `codec.rs` (templates ↔ requests and answers),
//! `session.rs` (the client a bind actor drives), `receipt.rs` (receipt auth and
//! parsing), `status_map.rs` (HTTP statuses and receipt words → the gateway's terms),
//! `tests.rs`; plus `options.rs` (the channel options, checked at create time) and
//! `path.rs` (JSON pointer / dotted path).

pub mod codec;
pub mod inbound;
pub mod options;
pub mod path;
pub mod receipt;
pub mod session;
pub mod status_map;
#[cfg(test)]
mod tests;

pub use options::{HttpChannelOptions, OptionsError, ReceiptAuth};
pub use session::{HttpSession, HttpSessionConfig};
