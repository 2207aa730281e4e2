//! Status webhooks: the leader POSTs each outbox job's JSON body to the tenant's
//! callback URL, signed with the tenant's secret, and retries with backoff for 24 h.
//!
//! - `signature`: the `Smsgw-Signature` header (`t=<unix s>,v1=<hex HMAC-SHA256>`), sign
//!   and the reference verify (pure).
//! - `backoff`: 1 s, 2 s, 4 s … capped at 1 h, ±10 % jitter (pure).
//! - `fair`: the due-queue, per tenant with round-robin turns (pure).
//! - `target`: where a webhook may go (SSRF guard: internal addresses refused unless
//!   `webhook_allow_private`) and URLs with credentials redacted for logs.
//! - `dispatcher`: the ractor actor that keeps the due-queue, runs deliveries as tasks,
//!   and removes finished jobs from the replicated outbox with `Op::WebhookDone`.
//!
//! Delivery is at-least-once; receivers deduplicate on the body's stable `event_id`.

pub mod backoff;
pub mod dispatcher;
pub mod fair;
pub mod signature;
pub mod target;

#[cfg(test)]
mod tests;

pub use dispatcher::{Attempt, WebhookArgs, WebhookDispatcher, WebhookMsg, WebhookState};
pub use signature::{SIGNATURE_HEADER, sign, verify};
