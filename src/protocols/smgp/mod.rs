//! SMGP 3.0 (China Telecom), SP side.
//!
//! - [`codec`]: Login, Submit, Deliver (reports), Active_Test, Exit and their
//!   responses, TLVs, the BCD MsgID and the report text.
//! - [`status_map`]: stat/err and Submit_Resp statuses in the common model.
//!
//! The session is the shared one in `crate::protocols::cn`.

pub mod codec;
pub mod status_map;

#[cfg(test)]
mod tests;
