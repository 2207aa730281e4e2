//! SGIP results and report State/ErrorCode in the gateway's common status model.

use crate::protocols::smpp::ReceiptState;

/// A Report's State: 0 delivered, 1 waiting (intermediate), 2 failed.
pub fn receipt_state(state: u8) -> ReceiptState {
    match state {
        0 => ReceiptState::Delivered,
        1 => ReceiptState::Enroute,
        _ => ReceiptState::Undeliverable,
    }
}

/// A Submit_Resp Result as the SMPP command_status with the same retry
/// meaning: 11 (node busy) and 33 (SMSC queue full) → ESME_RTHROTTLED,
/// 32 (system failure) → ESME_RSYSERR (temporary), 6 and 29 (bad / unknown
/// number) → ESME_RINVDSTADR, anything else → ESME_RSUBMITFAIL.
pub fn submit_status(result: u8) -> u32 {
    match result {
        0 => 0,
        11 | 33 => 0x58,
        32 => 0x08,
        6 | 29 => 0x0B,
        _ => 0x45,
    }
}

/// What a Bind_Resp result means (SGIP 1.2 error codes).
pub fn bind_result_text(result: u32) -> &'static str {
    match result {
        0 => "ok",
        1 => "illegal login (name or password)",
        2 => "already logged in",
        3 => "too many connections",
        4 => "bad login type",
        5 => "bad parameter format",
        _ => "other error",
    }
}
