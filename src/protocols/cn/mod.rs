//! What CMPP 2.0/3.0, SMGP 3.0 and SGIP 1.2 share on the SP side: byte
//! helpers ([`wire`]), part transcoding to Msg_Fmt 0/8/15 ([`text`]), channel
//! options ([`options`]), the per-protocol differences ([`dialect`]), one
//! session engine for all three ([`session`]) and SGIP's listener for the
//! SMG's reverse connection ([`listener`]). The PDU codecs live in
//! `crate::protocols::{cmpp, smgp, sgip}`.

pub mod dialect;
pub mod listener;
pub mod options;
pub mod session;
pub mod text;
pub mod wire;

pub use dialect::{Dialect, Protocol};
pub use listener::SgipListener;
pub use options::{CnOptions, OptionError};
pub use session::{CnConfig, CnSession};

/// True for a channel protocol this module speaks (CMPP, SMGP, SGIP): their options are
/// checked by [`options::parse`], and their GSM text goes out as ASCII.
pub fn is_cn_protocol(protocol: &str) -> bool {
    matches!(protocol, "cmpp" | "smgp" | "sgip")
}
