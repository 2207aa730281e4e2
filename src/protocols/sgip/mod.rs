//! SGIP 1.2 (China Unicom), SP side.
//!
//! - [`codec`]: Bind, Unbind, Submit, Deliver, Report and their responses with
//!   the 12-octet sequence numbers.
//! - [`status_map`]: Report State/ErrorCode and Submit_Resp results in the
//!   common model.
//!
//! The submit session is the shared one in `crate::protocols::cn`; the
//! listener the SMG binds to for Deliver/Report is [`crate::protocols::cn::listener`].

pub mod codec;
pub mod status_map;

#[cfg(test)]
mod tests;
