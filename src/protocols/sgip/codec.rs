//! SGIP 1.2 PDUs (China Unicom): Bind, Unbind, Submit, Deliver, Report and
//! their responses, with the 20-octet header whose sequence number is three
//! u32 (source node id, MMDDhhmmss, counter). Both directions: the gateway is
//! the client for Submit and the server for Deliver/Report (the SMG binds to
//! it), and the simulator the other way round.

use crate::protocols::cn::wire::{self, DecodeError, Reader, put_fixed, put_u32};

/// CommandIDs (a response is the request's id | 0x8000_0000).
pub mod command {
    /// Bind.
    pub const BIND: u32 = 0x0000_0001;
    /// Bind_Resp.
    pub const BIND_RESP: u32 = 0x8000_0001;
    /// Unbind.
    pub const UNBIND: u32 = 0x0000_0002;
    /// Unbind_Resp.
    pub const UNBIND_RESP: u32 = 0x8000_0002;
    /// Submit.
    pub const SUBMIT: u32 = 0x0000_0003;
    /// Submit_Resp.
    pub const SUBMIT_RESP: u32 = 0x8000_0003;
    /// Deliver.
    pub const DELIVER: u32 = 0x0000_0004;
    /// Deliver_Resp.
    pub const DELIVER_RESP: u32 = 0x8000_0004;
    /// Report.
    pub const REPORT: u32 = 0x0000_0005;
    /// Report_Resp.
    pub const REPORT_RESP: u32 = 0x8000_0005;
}

/// Header: MessageLength, CommandID, SequenceNumber (12).
pub const HEADER_LEN: usize = 20;

/// The 12-octet SequenceNumber. A Submit's sequence number is also the message
/// id its Report refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq {
    /// Source node id (SP: 3AAAAQQQQQ).
    pub node: u32,
    /// MMDDhhmmss as a number.
    pub time: u32,
    /// Counter.
    pub n: u32,
}

impl Seq {
    /// The id the gateway stores for a submit and matches the Report's
    /// SubmitSequenceNumber against: `node-time-counter`, decimal.
    pub fn id_text(&self) -> String {
        format!("{}-{:010}-{}", self.node, self.time, self.n)
    }
}

/// Bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// LoginType: 1 SP→SMG, 2 SMG→SP.
    pub login_type: u8,
    /// LoginName (16).
    pub login_name: String,
    /// LoginPassword (16, plain text).
    pub login_password: String,
}

/// Submit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    /// SPNumber (21).
    pub sp_number: String,
    /// ChargeNumber (21); all zeros = the SP pays.
    pub charge_number: String,
    /// UserNumber, 1..=100 (21 each, "86" prefix).
    pub user_numbers: Vec<String>,
    /// CorpId (5).
    pub corp_id: String,
    /// ServiceType (10).
    pub service_type: String,
    /// FeeType.
    pub fee_type: u8,
    /// FeeValue (6).
    pub fee_value: String,
    /// GivenValue (6).
    pub given_value: String,
    /// AgentFlag.
    pub agent_flag: u8,
    /// MorelatetoMTFlag.
    pub morelate_to_mt_flag: u8,
    /// Priority.
    pub priority: u8,
    /// ExpireTime (16, yymmddhhmmsstnnp).
    pub expire_time: String,
    /// ScheduleTime (16).
    pub schedule_time: String,
    /// ReportFlag: 0 failure only, 1 always, 2 never, 3 billing.
    pub report_flag: u8,
    /// TP_pid.
    pub tp_pid: u8,
    /// TP_udhi.
    pub tp_udhi: u8,
    /// MessageCoding: 0 ASCII, 8 UCS-2, 15 GBK.
    pub message_coding: u8,
    /// MessageType (0 = SMS).
    pub message_type: u8,
    /// MessageContent.
    pub content: Vec<u8>,
}

/// Deliver (MO).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deliver {
    /// UserNumber (21).
    pub user_number: String,
    /// SPNumber (21).
    pub sp_number: String,
    /// TP_pid.
    pub tp_pid: u8,
    /// TP_udhi.
    pub tp_udhi: u8,
    /// MessageCoding.
    pub message_coding: u8,
    /// MessageContent.
    pub content: Vec<u8>,
}

/// Report (status report of an earlier Submit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// SubmitSequenceNumber: the Submit's sequence number.
    pub submit_seq: Seq,
    /// ReportType: 0 about an MT submit, 1 about an MO.
    pub report_type: u8,
    /// UserNumber (21).
    pub user_number: String,
    /// State: 0 delivered, 1 waiting, 2 failed.
    pub state: u8,
    /// ErrorCode when State = 2.
    pub error_code: u8,
}

/// Every SGIP PDU this gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// Bind.
    Bind(Bind),
    /// Bind_Resp (Result).
    BindResp(u8),
    /// Unbind.
    Unbind,
    /// Unbind_Resp.
    UnbindResp,
    /// Submit.
    Submit(Box<Submit>),
    /// Submit_Resp (Result).
    SubmitResp(u8),
    /// Deliver.
    Deliver(Box<Deliver>),
    /// Deliver_Resp (Result).
    DeliverResp(u8),
    /// Report.
    Report(Box<Report>),
    /// Report_Resp (Result).
    ReportResp(u8),
}

fn put_seq(out: &mut Vec<u8>, s: Seq) {
    put_u32(out, s.node);
    put_u32(out, s.time);
    put_u32(out, s.n);
}

fn get_seq(r: &mut Reader<'_>) -> Result<Seq, DecodeError> {
    Ok(Seq {
        node: r.u32("SequenceNumber node")?,
        time: r.u32("SequenceNumber time")?,
        n: r.u32("SequenceNumber counter")?,
    })
}

impl Pdu {
    /// The CommandID.
    pub fn command_id(&self) -> u32 {
        use command::*;
        match self {
            Pdu::Bind(_) => BIND,
            Pdu::BindResp(_) => BIND_RESP,
            Pdu::Unbind => UNBIND,
            Pdu::UnbindResp => UNBIND_RESP,
            Pdu::Submit(_) => SUBMIT,
            Pdu::SubmitResp(_) => SUBMIT_RESP,
            Pdu::Deliver(_) => DELIVER,
            Pdu::DeliverResp(_) => DELIVER_RESP,
            Pdu::Report(_) => REPORT,
            Pdu::ReportResp(_) => REPORT_RESP,
        }
    }

    /// Encodes the PDU with its header.
    pub fn encode(&self, seq: Seq) -> Vec<u8> {
        let mut out = wire::begin(self.command_id(), 64);
        put_seq(&mut out, seq);
        match self {
            Pdu::Bind(b) => {
                out.push(b.login_type);
                put_fixed(&mut out, b.login_name.as_bytes(), 16);
                put_fixed(&mut out, b.login_password.as_bytes(), 16);
                put_fixed(&mut out, b"", 8);
            }
            Pdu::BindResp(r) | Pdu::SubmitResp(r) | Pdu::DeliverResp(r) | Pdu::ReportResp(r) => {
                out.push(*r);
                put_fixed(&mut out, b"", 8);
            }
            Pdu::Unbind | Pdu::UnbindResp => {}
            Pdu::Submit(s) => {
                out.reserve(200 + s.content.len() + 21 * s.user_numbers.len());
                put_fixed(&mut out, s.sp_number.as_bytes(), 21);
                put_fixed(&mut out, s.charge_number.as_bytes(), 21);
                let n = s.user_numbers.len().min(255);
                out.push(n as u8);
                for u in &s.user_numbers[..n] {
                    put_fixed(&mut out, u.as_bytes(), 21);
                }
                put_fixed(&mut out, s.corp_id.as_bytes(), 5);
                put_fixed(&mut out, s.service_type.as_bytes(), 10);
                out.push(s.fee_type);
                put_fixed(&mut out, s.fee_value.as_bytes(), 6);
                put_fixed(&mut out, s.given_value.as_bytes(), 6);
                out.extend_from_slice(&[s.agent_flag, s.morelate_to_mt_flag, s.priority]);
                put_fixed(&mut out, s.expire_time.as_bytes(), 16);
                put_fixed(&mut out, s.schedule_time.as_bytes(), 16);
                out.extend_from_slice(&[
                    s.report_flag,
                    s.tp_pid,
                    s.tp_udhi,
                    s.message_coding,
                    s.message_type,
                ]);
                put_u32(&mut out, u32::try_from(s.content.len()).unwrap_or(u32::MAX));
                out.extend_from_slice(&s.content);
                put_fixed(&mut out, b"", 8);
            }
            Pdu::Deliver(d) => {
                put_fixed(&mut out, d.user_number.as_bytes(), 21);
                put_fixed(&mut out, d.sp_number.as_bytes(), 21);
                out.extend_from_slice(&[d.tp_pid, d.tp_udhi, d.message_coding]);
                put_u32(&mut out, u32::try_from(d.content.len()).unwrap_or(u32::MAX));
                out.extend_from_slice(&d.content);
                put_fixed(&mut out, b"", 8);
            }
            Pdu::Report(r) => {
                put_seq(&mut out, r.submit_seq);
                out.push(r.report_type);
                put_fixed(&mut out, r.user_number.as_bytes(), 21);
                out.extend_from_slice(&[r.state, r.error_code]);
                put_fixed(&mut out, b"", 8);
            }
        }
        wire::finish(out)
    }

    /// Decodes one whole frame (length prefix included). Never panics.
    pub fn decode(frame: &[u8]) -> Result<(Seq, Pdu), DecodeError> {
        wire::check_frame(frame, HEADER_LEN)?;
        let mut r = Reader::new(frame, 4);
        let id = r.u32("CommandID")?;
        let seq = get_seq(&mut r)?;
        let result = |r: &mut Reader<'_>| -> Result<u8, DecodeError> {
            let v = r.u8("Result")?;
            r.bytes(8, "Reserve")?;
            Ok(v)
        };
        let pdu = match id {
            command::BIND => {
                let b = Bind {
                    login_type: r.u8("LoginType")?,
                    login_name: r.cstr(16, "LoginName")?,
                    login_password: r.cstr(16, "LoginPassword")?,
                };
                r.bytes(8, "Reserve")?;
                Pdu::Bind(b)
            }
            command::BIND_RESP => Pdu::BindResp(result(&mut r)?),
            command::SUBMIT_RESP => Pdu::SubmitResp(result(&mut r)?),
            command::DELIVER_RESP => Pdu::DeliverResp(result(&mut r)?),
            command::REPORT_RESP => Pdu::ReportResp(result(&mut r)?),
            command::UNBIND => Pdu::Unbind,
            command::UNBIND_RESP => Pdu::UnbindResp,
            command::SUBMIT => {
                let mut s = Submit {
                    sp_number: r.cstr(21, "SPNumber")?,
                    charge_number: r.cstr(21, "ChargeNumber")?,
                    ..Submit::default()
                };
                let n = r.u8("UserCount")?;
                if n == 0 || n > 100 {
                    return Err(DecodeError::Invalid("UserCount (1..=100)"));
                }
                for _ in 0..n {
                    s.user_numbers.push(r.cstr(21, "UserNumber")?);
                }
                s.corp_id = r.cstr(5, "CorpId")?;
                s.service_type = r.cstr(10, "ServiceType")?;
                s.fee_type = r.u8("FeeType")?;
                s.fee_value = r.cstr(6, "FeeValue")?;
                s.given_value = r.cstr(6, "GivenValue")?;
                s.agent_flag = r.u8("AgentFlag")?;
                s.morelate_to_mt_flag = r.u8("MorelatetoMTFlag")?;
                s.priority = r.u8("Priority")?;
                s.expire_time = r.cstr(16, "ExpireTime")?;
                s.schedule_time = r.cstr(16, "ScheduleTime")?;
                s.report_flag = r.u8("ReportFlag")?;
                s.tp_pid = r.u8("TP_pid")?;
                s.tp_udhi = r.u8("TP_udhi")?;
                s.message_coding = r.u8("MessageCoding")?;
                s.message_type = r.u8("MessageType")?;
                let len = r.u32("MessageLength")? as usize;
                s.content = r.bytes(len, "MessageContent")?.to_vec();
                r.bytes(8, "Reserve")?;
                Pdu::Submit(Box::new(s))
            }
            command::DELIVER => {
                let mut d = Deliver {
                    user_number: r.cstr(21, "UserNumber")?,
                    sp_number: r.cstr(21, "SPNumber")?,
                    tp_pid: r.u8("TP_pid")?,
                    tp_udhi: r.u8("TP_udhi")?,
                    message_coding: r.u8("MessageCoding")?,
                    ..Deliver::default()
                };
                let len = r.u32("MessageLength")? as usize;
                d.content = r.bytes(len, "MessageContent")?.to_vec();
                r.bytes(8, "Reserve")?;
                Pdu::Deliver(Box::new(d))
            }
            command::REPORT => {
                let rep = Report {
                    submit_seq: get_seq(&mut r)?,
                    report_type: r.u8("ReportType")?,
                    user_number: r.cstr(21, "UserNumber")?,
                    state: r.u8("State")?,
                    error_code: r.u8("ErrorCode")?,
                };
                r.bytes(8, "Reserve")?;
                Pdu::Report(Box::new(rep))
            }
            other => return Err(DecodeError::UnknownCommand(other)),
        };
        Ok((seq, pdu))
    }
}
