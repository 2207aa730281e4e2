//! The replicated state: its rows (`model`), the operations Raft carries (`ops`), the
//! status machine (`transitions`, pure), the queue admission rule (`admission`, pure),
//! the fjall-backed store (`store`) and its transfer to a lagging peer (`snapshot`), and
//! the JSON views of rows shared by the API and the webhooks (`views`).
pub mod admission;
#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod cancel_tests;
pub mod compliance;
#[cfg(test)]
mod config_refs_tests;
#[cfg(test)]
mod idem_tests;
#[cfg(test)]
mod list_tests;
pub mod memtables;
pub mod message_key;
pub mod model;
pub mod ops;
pub mod parked;
#[cfg(test)]
mod parked_tests;
pub mod placement;
#[cfg(test)]
mod secret_tests;
pub mod snapshot;
pub mod store;
pub mod transitions;
pub mod views;

pub use message_key::MessageKey;
pub use model::*;
pub use ops::*;
pub use placement::{BindReport, ClaimRow, NodeRow, Placement, RECEIVER_INDEX_BASE};
pub use store::{
    ConfigView, Feedback, FeedbackKind, InboundPage, ListPage, ListScope, Notice, Notifier,
    ReadyInfo, ScanBudget, StateStore, StoreError, WebhookJob,
};
