//! Messages at work: the dispatcher (per-channel priority queues, each lane fair between
//! tenants), one message actor per message being sent, and the sweeper for time-driven
//! transitions.
pub mod dispatcher;
pub mod fair_lane;
pub mod intake;
pub mod message_actor;
pub mod phone_patterns;
pub mod sweeper;
