//! Maps SMPP command_status values and receipt states onto the gateway's
//! retry policy and its normalised, protocol-independent error codes (pure).

use serde::{Deserialize, Serialize};

use super::receipt::ReceiptState;

/// How the gateway should treat a non-zero submit_sm_resp status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitErrorClass {
    /// The SMSC asks us to slow down (0x58 ESME_RTHROTTLED, 0x14
    /// ESME_RMSGQFUL): back off the channel and retry the same message.
    Throttled,
    /// A transient SMSC or session problem (system error, temporary app
    /// error, bind state, unknown error): retry later, possibly elsewhere.
    Temporary,
    /// The message itself was refused (bad address, 0x45 ESME_RSUBMITFAIL,
    /// 0x66 ESME_RX_R_APPN, ...): do not retry.
    Permanent,
}

/// Classifies a submit_sm_resp (or generic_nack) command_status.
pub fn classify_submit_status(command_status: u32) -> SubmitErrorClass {
    match command_status {
        // ESME_RTHROTTLED, ESME_RMSGQFUL
        0x58 | 0x14 => SubmitErrorClass::Throttled,
        // ESME_RINVBNDSTS, ESME_RALYBND, ESME_RSYSERR, ESME_RX_T_APPN,
        // ESME_RUNKNOWNERR, ESME_RSERTYPUNAVAIL (SMPP 5.0). Anything not listed
        // is permanent so that an unknown vendor code cannot cause a retry loop.
        0x04 | 0x05 | 0x08 | 0x64 | 0xFF | 0x102 => SubmitErrorClass::Temporary,
        _ => SubmitErrorClass::Permanent,
    }
}

/// The gateway contract's normalised error code for a failed submit:
/// `invalid_destination`, `blocked`, `rejected_by_carrier`, `throttled`,
/// `channel_unavailable` or `unknown`.
pub fn submit_error_code(command_status: u32) -> &'static str {
    match command_status {
        // ESME_RINVDSTADR, ESME_RINVDSTTON, ESME_RINVDSTNPI, ESME_RINVNUMDESTS,
        // ESME_RINVDSTADDRSUBUNIT (5.0)
        0x0B | 0x50 | 0x51 | 0x33 | 0x106 => "invalid_destination",
        // ESME_RSERTYPUNAUTH, ESME_RPROHIBITED, ESME_RSERTYPDENIED (5.0)
        0x100 | 0x101 | 0x103 => "blocked",
        0x58 | 0x14 => "throttled",
        0x04 | 0x05 | 0x08 | 0x64 | 0x102 => "channel_unavailable",
        0x00 | 0xFF => "unknown",
        _ => "rejected_by_carrier",
    }
}

/// The normalised error code for a failed delivery receipt. Non-failure
/// states (delivered, accepted, en route) return `unknown`: callers only ask
/// for failures.
pub fn receipt_error_code(state: ReceiptState) -> &'static str {
    match state {
        ReceiptState::Undeliverable | ReceiptState::Rejected => "rejected_by_carrier",
        ReceiptState::Deleted => "blocked",
        ReceiptState::Expired => "expired",
        ReceiptState::Unknown
        | ReceiptState::Delivered
        | ReceiptState::Accepted
        | ReceiptState::Enroute => "unknown",
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn classify_table() {
        use SubmitErrorClass::*;
        let rows = [
            (0x58, Throttled),
            (0x14, Throttled),
            (0x08, Temporary),
            (0x64, Temporary),
            (0x04, Temporary),
            (0xFF, Temporary),
            (0x0B, Permanent),
            (0x0A, Permanent),
            (0x45, Permanent),
            (0x66, Permanent),
            (0x01, Permanent),
            (0x1234, Permanent),
        ];
        for (status, class) in rows {
            assert_eq!(classify_submit_status(status), class, "{status:#x}");
        }
    }

    #[test]
    fn submit_code_table() {
        let rows = [
            (0x0B, "invalid_destination"),
            (0x50, "invalid_destination"),
            (0x101, "blocked"),
            (0x58, "throttled"),
            (0x14, "throttled"),
            (0x08, "channel_unavailable"),
            (0x64, "channel_unavailable"),
            (0x45, "rejected_by_carrier"),
            (0x0A, "rejected_by_carrier"),
            (0x66, "rejected_by_carrier"),
            (0xFF, "unknown"),
        ];
        for (status, code) in rows {
            assert_eq!(submit_error_code(status), code, "{status:#x}");
        }
        // Every class maps to a code from the contract.
        let allowed = [
            "invalid_destination",
            "blocked",
            "rejected_by_carrier",
            "throttled",
            "channel_unavailable",
            "unknown",
        ];
        for status in 0..0x200u32 {
            assert!(allowed.contains(&submit_error_code(status)));
        }
    }

    #[test]
    fn receipt_code_table() {
        assert_eq!(
            receipt_error_code(ReceiptState::Undeliverable),
            "rejected_by_carrier"
        );
        assert_eq!(
            receipt_error_code(ReceiptState::Rejected),
            "rejected_by_carrier"
        );
        assert_eq!(receipt_error_code(ReceiptState::Deleted), "blocked");
        assert_eq!(receipt_error_code(ReceiptState::Expired), "expired");
        assert_eq!(receipt_error_code(ReceiptState::Unknown), "unknown");
    }
}
