//! SMPP 3.4 operator protocol, ESME (client) side.
//!
//! - [`session`]: one bound connection: connect + bind, windowed pipelined
//!   `submit_sm`, enquire_link keepalive, inbound `deliver_sm` handed to the
//!   gateway with an explicit ack, unbind. Used by the gateway's bind actors,
//!   which own reconnecting.
//! - [`receipt`]: delivery receipt parsing (TLVs and text) and [`id_keys`] for
//!   matching receipt ids written differently from the submit_sm_resp id.
//! - [`status_map`]: command_status / receipt state → retry class and the
//!   gateway's normalised error codes.
//! - [`addressing`]: a channel's fixed service_type and TON/NPI options.
//! - [`codec`]: framing codec and PDU builders over `rusmpp`, shared with the
//!   SMSC simulator in `crate::sim`.

pub mod addressing;
pub mod codec;
pub mod receipt;
pub mod session;
pub mod status_map;

#[cfg(test)]
mod tests;

pub use addressing::Addressing;
pub use receipt::{
    Receipt, ReceiptIdFormat, ReceiptState, ReceiptText, id_keys, parse_receipt, parse_receipt_text,
};
pub use session::{
    BindMode, DeliverAck, Inbound, Session, SessionConfig, SessionError, SubmitOutcome,
    SubmitRequest,
};
pub use status_map::{
    SubmitErrorClass, classify_submit_status, receipt_error_code, submit_error_code,
};
