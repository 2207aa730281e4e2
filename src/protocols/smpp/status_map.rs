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

/// Whether a permanent refusal with this contract code says something about the line
/// (counted against the channel's health) rather than about the recipient: a bad
/// number (`invalid_destination`, SMPP 0x0B, an HTTP 400 mapped to it) or a barred one
/// (`blocked`) is the recipient's, and one such answer must not make a working line look
/// broken. Shared by every protocol (the HTTP channel's codes are the same contract's).
pub fn counts_against_line(code: &str) -> bool {
    !matches!(code, "invalid_destination" | "blocked")
}

/// The SMPP 3.4 name and meaning (§5.1.3) of the common command_status values, so an
/// operator's refusal can be shown in words; None for vendor or unlisted codes.
pub fn command_status_name(command_status: u32) -> Option<(&'static str, &'static str)> {
    Some(match command_status {
        0x00 => ("ESME_ROK", "no error"),
        0x01 => ("ESME_RINVMSGLEN", "message length is invalid"),
        0x02 => ("ESME_RINVCMDLEN", "command length is invalid"),
        0x03 => ("ESME_RINVCMDID", "invalid command id"),
        0x04 => ("ESME_RINVBNDSTS", "incorrect bind status for the command"),
        0x05 => ("ESME_RALYBND", "already bound"),
        0x06 => ("ESME_RINVPRTFLG", "invalid priority flag"),
        0x07 => ("ESME_RINVREGDLVFLG", "invalid registered delivery flag"),
        0x08 => ("ESME_RSYSERR", "system error"),
        0x0A => ("ESME_RINVSRCADR", "invalid source address"),
        0x0B => ("ESME_RINVDSTADR", "invalid destination address"),
        0x0C => ("ESME_RINVMSGID", "message id is invalid"),
        0x0D => ("ESME_RBINDFAIL", "bind failed"),
        0x0E => ("ESME_RINVPASWD", "invalid password"),
        0x0F => ("ESME_RINVSYSID", "invalid system_id"),
        0x11 => ("ESME_RCANCELFAIL", "cancel_sm failed"),
        0x13 => ("ESME_RREPLACEFAIL", "replace_sm failed"),
        0x14 => ("ESME_RMSGQFUL", "message queue full"),
        0x15 => ("ESME_RINVSERTYP", "invalid service type"),
        0x33 => ("ESME_RINVNUMDESTS", "invalid number of destinations"),
        0x34 => ("ESME_RINVDLNAME", "invalid distribution list name"),
        0x40 => ("ESME_RINVDESTFLAG", "invalid destination flag"),
        0x42 => ("ESME_RINVSUBREP", "invalid submit with replace request"),
        0x43 => ("ESME_RINVESMCLASS", "invalid esm_class"),
        0x44 => ("ESME_RCNTSUBDL", "cannot submit to distribution list"),
        0x45 => ("ESME_RSUBMITFAIL", "submit failed"),
        0x48 => ("ESME_RINVSRCTON", "invalid source address TON"),
        0x49 => ("ESME_RINVSRCNPI", "invalid source address NPI"),
        0x50 => ("ESME_RINVDSTTON", "invalid destination address TON"),
        0x51 => ("ESME_RINVDSTNPI", "invalid destination address NPI"),
        0x53 => ("ESME_RINVSYSTYP", "invalid system_type"),
        0x54 => ("ESME_RINVREPFLAG", "invalid replace_if_present flag"),
        0x55 => ("ESME_RINVNUMMSGS", "invalid number of messages"),
        0x58 => ("ESME_RTHROTTLED", "throttling error"),
        0x61 => ("ESME_RINVSCHED", "invalid scheduled delivery time"),
        0x62 => ("ESME_RINVEXPIRY", "invalid validity period"),
        0x63 => ("ESME_RINVDFTMSGID", "predefined message not found"),
        0x64 => ("ESME_RX_T_APPN", "temporary application error"),
        0x65 => ("ESME_RX_P_APPN", "permanent application error"),
        0x66 => ("ESME_RX_R_APPN", "message rejected by the application"),
        0x67 => ("ESME_RQUERYFAIL", "query_sm failed"),
        0xC0 => (
            "ESME_RINVOPTPARSTREAM",
            "error in the optional part of the PDU",
        ),
        0xC1 => ("ESME_ROPTPARNOTALLWD", "optional parameter not allowed"),
        0xC2 => ("ESME_RINVPARLEN", "invalid parameter length"),
        0xC3 => (
            "ESME_RMISSINGOPTPARAM",
            "expected optional parameter missing",
        ),
        0xC4 => ("ESME_RINVOPTPARAMVAL", "invalid optional parameter value"),
        0xFE => ("ESME_RDELIVERYFAILURE", "delivery failure"),
        0xFF => ("ESME_RUNKNOWNERR", "unknown error"),
        _ => return None,
    })
}

/// `command_status 0x00000045 (ESME_RSUBMITFAIL, submit failed)`: a status as shown in
/// a message's error, named when the table knows it.
pub fn describe_command_status(command_status: u32) -> String {
    match command_status_name(command_status) {
        Some((name, meaning)) => {
            format!("command_status 0x{command_status:08X} ({name}, {meaning})")
        }
        None => format!("command_status 0x{command_status:08X}"),
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
    fn recipient_refusals_do_not_count_against_the_line() {
        // 0x0B (bad number) and 0x101 (barred) are the recipient's; 0x45 and 0x08 the line's.
        let rows = [
            (0x0B, false),
            (0x51, false),
            (0x101, false),
            (0x45, true),
            (0x08, true),
        ];
        for (status, line) in rows {
            assert_eq!(
                counts_against_line(submit_error_code(status)),
                line,
                "{status:#x}"
            );
        }
    }

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
    fn command_status_described_with_its_name() {
        assert_eq!(
            describe_command_status(0x45),
            "command_status 0x00000045 (ESME_RSUBMITFAIL, submit failed)"
        );
        assert_eq!(
            describe_command_status(0x0B),
            "command_status 0x0000000B (ESME_RINVDSTADR, invalid destination address)"
        );
        assert_eq!(describe_command_status(0x400), "command_status 0x00000400");
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
