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

/// An operator's contracted submit rate over all binds (`--max-tps`), which real SMSCs
/// enforce by answering the surplus "throttled". No limit when absent.
pub(crate) struct Contract(Option<governor::DefaultDirectRateLimiter>);

impl Contract {
    /// The contract of `--max-tps` (none when absent).
    pub(crate) fn new(max_tps: Option<u32>) -> Contract {
        Contract(
            max_tps
                .and_then(std::num::NonZeroU32::new)
                .map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n))),
        )
    }

    /// Whether a submit now is above the contract (one that is not takes its share).
    pub(crate) fn exceeded(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.check().is_err())
    }
}
