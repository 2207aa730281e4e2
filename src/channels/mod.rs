//! Channels at run time: the supervisor keeps one bind actor per operator bind; the
//! registry is the node-local view of which binds are up and how fast each channel may go.
pub mod bind_actor;
pub mod health;
pub mod receiver_bind;
pub mod registry;
pub mod sla;
pub mod supervisor;
pub mod tps_window;

pub use registry::{ChannelRegistry, ChannelRuntime};
