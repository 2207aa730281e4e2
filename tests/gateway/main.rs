//! Black-box tests of one gateway node: the real binary and real SMSC simulator
//! processes over TCP on 127.0.0.1.
#[path = "../common/mod.rs"]
mod common;

mod t10_send_basic;
mod t20_kill9_durability;
