//! Simulated operator endpoints, for tests, demos and load runs without a real
//! carrier.
//!
//! - [`smsc`]: `smsgw sim smsc`, an SMPP 3.4 SMSC simulator (binds, windowed
//!   submit_sm, delivery receipts with a configurable outcome mix, throttling,
//!   errors, connection drops, a JSONL ledger and a `/stats` endpoint).
//! - [`cn`]: the same with `--protocol cmpp|smgp|sgip` (ISMG, SMGW, SMG).

//! - [`http_provider`]: `smsgw sim http-provider`, a REST SMS provider for the HTTP
//!   upstream channel (ids, 429/500/400 on demand, receipts POSTed back).

pub mod cn;
pub mod http_provider;
pub mod smsc;

pub use smsc::{IdFormat, SimProtocol, SmscSim, SmscSimArgs, StatsSnapshot};
