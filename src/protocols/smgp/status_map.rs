//! SMGP statuses and report stat/err values in the gateway's common status model.

use crate::protocols::smpp::ReceiptState;

/// A report's `stat` (and `err` when the stat is not a standard one) as a
/// receipt state: err 000 delivered, 001/002/007 expired, 003–010 undeliverable,
/// 999 unknown.
pub fn receipt_state(stat: &str, err: &str) -> ReceiptState {
    match stat.trim().to_ascii_uppercase().as_str() {
        "DELIVRD" => ReceiptState::Delivered,
        "EXPIRED" => ReceiptState::Expired,
        "DELETED" => ReceiptState::Deleted,
        "UNDELIV" => ReceiptState::Undeliverable,
        "ACCEPTD" | "ACCEPTED" => ReceiptState::Accepted,
        "UNKNOWN" => ReceiptState::Unknown,
        "REJECTD" | "REJECTED" => ReceiptState::Rejected,
        _ => match err.trim() {
            "000" | "0" => ReceiptState::Delivered,
            "001" | "002" | "007" => ReceiptState::Expired,
            "999" => ReceiptState::Unknown,
            _ => ReceiptState::Undeliverable,
        },
    }
}

/// A Submit_Resp Status as the SMPP command_status with the same retry
/// meaning: 1 (system busy) and 2 (too many connections) → ESME_RTHROTTLED,
/// 12 (duplicate sequence) → ESME_RX_T_APPN, 47 (bad DestTermID) →
/// ESME_RINVDSTADR, anything else → ESME_RSUBMITFAIL.
pub fn submit_status(status: u32) -> u32 {
    match status {
        0 => 0,
        1 | 2 => 0x58,
        12 => 0x64,
        47 => 0x0B,
        _ => 0x45,
    }
}

/// What a Login_Resp status means (SMGP 3.0 error codes).
pub fn login_status_text(status: u32) -> &'static str {
    match status {
        0 => "ok",
        1 => "system busy",
        2 => "too many connections",
        10 => "bad message structure",
        11 => "bad command id",
        20 => "client address not allowed",
        21 => "authentication failed",
        22 => "version too high",
        _ => "other error",
    }
}
