//! Simulated operator endpoints, for tests, demos and load runs without a real
//! carrier.
//!
//! - [`smsc`]: `smsgw sim smsc`, an SMPP 3.4 SMSC simulator (binds, windowed
//!   submit_sm, delivery receipts with a configurable outcome mix, throttling,
//!   errors, connection drops, a JSONL ledger and a `/stats` endpoint).
//! - [`cn`]: the same with `--protocol cmpp|smgp|sgip` (ISMG, SMGW, SMG).

pub mod cn;
pub mod smsc;

pub use smsc::{IdFormat, SimProtocol, SmscSim, SmscSimArgs, StatsSnapshot};
