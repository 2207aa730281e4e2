//! CMPP 2.0 / 3.0 (China Mobile), SP side.
//!
//! - [`codec`]: every PDU with the 2.0/3.0 field widths, status-report content,
//!   the MD5 authenticators and the Msg_Id bit layout.
//! - [`status_map`]: Stat values and SUBMIT_RESP results in the common model.
//!
//! The session (window, active test, reconnect) is the shared one in
//! `crate::protocols::cn`.

pub mod codec;
pub mod status_map;

#[cfg(test)]
mod tests;
