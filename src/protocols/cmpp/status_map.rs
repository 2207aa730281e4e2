//! CMPP results and report Stat values in the gateway's common status model.

use crate::protocols::smpp::ReceiptState;

/// A report's Stat as a receipt state. The seven standard values map one to
/// one; gateway-side codes (MA:xxxx, MB:…, CA:…, DA:…, SA:…, IA:…, MK:…, …)
/// are failures, kept verbatim as the error code by the caller.
pub fn receipt_state(stat: &str) -> ReceiptState {
    match stat.trim().to_ascii_uppercase().as_str() {
        "DELIVRD" => ReceiptState::Delivered,
        "EXPIRED" => ReceiptState::Expired,
        "DELETED" => ReceiptState::Deleted,
        "UNDELIV" => ReceiptState::Undeliverable,
        "ACCEPTD" => ReceiptState::Accepted,
        "UNKNOWN" => ReceiptState::Unknown,
        "REJECTD" => ReceiptState::Rejected,
        _ => ReceiptState::Undeliverable,
    }
}

/// A SUBMIT_RESP Result as the SMPP command_status with the same retry
/// meaning, so one retry policy serves every protocol: 8 (flow control) →
/// ESME_RTHROTTLED, 3 (duplicate sequence) → ESME_RX_T_APPN (temporary),
/// 13 (bad Dest_terminal_Id) → ESME_RINVDSTADR, anything else → ESME_RSUBMITFAIL.
pub fn submit_status(result: u32) -> u32 {
    match result {
        0 => 0,
        8 => 0x58,
        3 => 0x64,
        13 => 0x0B,
        _ => 0x45,
    }
}

/// A CONNECT_RESP status, for logs.
pub fn connect_status_text(status: u32) -> &'static str {
    match status {
        0 => "ok",
        1 => "bad message structure",
        2 => "illegal source address",
        3 => "authentication failed",
        4 => "version too high",
        _ => "other error",
    }
}
