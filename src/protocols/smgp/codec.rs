//! SMGP 3.0 PDUs (China Telecom): Login, Submit, Deliver (status reports
//! included), Active_Test, Exit and their responses, with the optional TLVs
//! after the fixed body. Both directions (the simulator uses the SMGW side).

use crate::protocols::cn::wire::{self, DecodeError, Reader, put_fixed, put_u32};

/// RequestIDs (a response is the request's id | 0x8000_0000).
pub mod command {
    /// Login.
    pub const LOGIN: u32 = 0x0000_0001;
    /// Login_Resp.
    pub const LOGIN_RESP: u32 = 0x8000_0001;
    /// Submit.
    pub const SUBMIT: u32 = 0x0000_0002;
    /// Submit_Resp.
    pub const SUBMIT_RESP: u32 = 0x8000_0002;
    /// Deliver.
    pub const DELIVER: u32 = 0x0000_0003;
    /// Deliver_Resp.
    pub const DELIVER_RESP: u32 = 0x8000_0003;
    /// Active_Test.
    pub const ACTIVE_TEST: u32 = 0x0000_0004;
    /// Active_Test_Resp.
    pub const ACTIVE_TEST_RESP: u32 = 0x8000_0004;
    /// Exit.
    pub const EXIT: u32 = 0x0000_0006;
    /// Exit_Resp.
    pub const EXIT_RESP: u32 = 0x8000_0006;
}

/// Optional parameter tags.
pub mod tag {
    /// TP_pid.
    pub const TP_PID: u16 = 0x0001;
    /// TP_udhi.
    pub const TP_UDHI: u16 = 0x0002;
    /// LinkID.
    pub const LINK_ID: u16 = 0x0003;
    /// PkTotal.
    pub const PK_TOTAL: u16 = 0x0009;
    /// PkNumber.
    pub const PK_NUMBER: u16 = 0x000A;
    /// SubmitMsgType.
    pub const SUBMIT_MSG_TYPE: u16 = 0x000B;
    /// MsgSrc.
    pub const MSG_SRC: u16 = 0x0010;
}

/// Header: PacketLength, RequestID, SequenceID.
pub const HEADER_LEN: usize = 12;
/// ClientVersion this codec speaks.
pub const VERSION: u8 = 0x30;

/// One optional parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// Tag.
    pub tag: u16,
    /// Value.
    pub value: Vec<u8>,
}

/// Login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// ClientID (8).
    pub client_id: String,
    /// AuthenticatorClient: see [`authenticator_client`].
    pub authenticator: [u8; 16],
    /// LoginMode: 0 send, 1 receive, 2 transmit (both).
    pub login_mode: u8,
    /// TimeStamp MMDDHHMMSS as a number.
    pub timestamp: u32,
    /// ClientVersion.
    pub version: u8,
}

/// Login_Resp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResp {
    /// Status: 0 ok, 20/21/22 address/authentication/version errors, ...
    pub status: u32,
    /// AuthenticatorServer = MD5(Status + AuthenticatorClient + secret).
    pub authenticator: [u8; 16],
    /// ServerVersion.
    pub version: u8,
}

/// Submit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    /// MsgType: 6 = MT to a handset.
    pub msg_type: u8,
    /// NeedReport: 1 = status report wanted.
    pub need_report: u8,
    /// Priority 0..=3.
    pub priority: u8,
    /// ServiceID (10).
    pub service_id: String,
    /// FeeType (2).
    pub fee_type: String,
    /// FeeCode (6).
    pub fee_code: String,
    /// FixedFee (6).
    pub fixed_fee: String,
    /// MsgFormat: 0 ASCII, 8 UCS-2, 15 GB18030.
    pub msg_format: u8,
    /// ValidTime (17).
    pub valid_time: String,
    /// AtTime (17).
    pub at_time: String,
    /// SrcTermID (21).
    pub src_term_id: String,
    /// ChargeTermID (21).
    pub charge_term_id: String,
    /// DestTermID, 1..=100 of them (21 each).
    pub dest_term_ids: Vec<String>,
    /// MsgContent (UDH included when TP_udhi = 1).
    pub content: Vec<u8>,
    /// Optional parameters.
    pub tlvs: Vec<Tlv>,
}

/// Submit_Resp / Deliver_Resp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    /// MsgID (10 octets, BCD).
    pub msg_id: [u8; 10],
    /// Status: 0 ok, 1 system busy, ...
    pub status: u32,
}

/// Deliver: an MO message or (IsReport = 1) a status report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deliver {
    /// MsgID of this deliver.
    pub msg_id: [u8; 10],
    /// IsReport.
    pub is_report: u8,
    /// MsgFormat.
    pub msg_format: u8,
    /// RecvTime (14, YYYYMMDDhhmmss).
    pub recv_time: String,
    /// SrcTermID (21).
    pub src_term_id: String,
    /// DestTermID (21).
    pub dest_term_id: String,
    /// MsgContent.
    pub content: Vec<u8>,
    /// Optional parameters.
    pub tlvs: Vec<Tlv>,
}

/// A status report's content: `id:` + 10-octet MsgID, then SMPP-style text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// MsgID of the submit.
    pub msg_id: [u8; 10],
    /// stat (7): DELIVRD, EXPIRED, UNDELIV, ...
    pub stat: String,
    /// err (3): 000 ok, 001–010 failure reasons, 999 unknown.
    pub err: String,
    /// submit date (YYMMDDhhmm).
    pub submit_date: String,
    /// done date.
    pub done_date: String,
}

/// Every SMGP PDU this gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// Login.
    Login(Login),
    /// Login_Resp.
    LoginResp(LoginResp),
    /// Submit.
    Submit(Box<Submit>),
    /// Submit_Resp.
    SubmitResp(Resp),
    /// Deliver.
    Deliver(Box<Deliver>),
    /// Deliver_Resp.
    DeliverResp(Resp),
    /// Active_Test.
    ActiveTest,
    /// Active_Test_Resp.
    ActiveTestResp,
    /// Exit.
    Exit,
    /// Exit_Resp.
    ExitResp,
}

/// AuthenticatorClient = MD5(ClientID + 7 × 0x00 + secret + "MMDDHHMMSS").
pub fn authenticator_client(client_id: &str, secret: &str, timestamp: u32) -> [u8; 16] {
    wire::login_authenticator(client_id, 7, secret, &wire::timestamp_text(timestamp))
}

/// AuthenticatorServer = MD5(Status(4) + AuthenticatorClient + secret).
pub fn authenticator_server(status: u32, client: &[u8; 16], secret: &str) -> [u8; 16] {
    wire::md5(&[&status.to_be_bytes(), client, secret.as_bytes()])
}

/// A MsgID: SMGW code (3 octets BCD), MMDDHHMM (4 octets BCD), sequence (3 octets BCD).
pub fn make_msg_id(smgw_code: u32, mmddhhmm: &str, seq: u32) -> [u8; 10] {
    let s = format!(
        "{:06}{:0>8}{:06}",
        smgw_code % 1_000_000,
        mmddhhmm,
        seq % 1_000_000
    );
    let b = wire::string_to_bcd(&s, 10);
    let mut a = [0u8; 10];
    a.copy_from_slice(&b);
    a
}

/// The MsgID as the 20-digit text the gateway stores and matches.
pub fn msg_id_text(id: &[u8; 10]) -> String {
    wire::bcd_to_string(id)
}

fn put_tlvs(out: &mut Vec<u8>, tlvs: &[Tlv]) {
    for t in tlvs {
        let len = t.value.len().min(u16::MAX as usize);
        out.extend_from_slice(&t.tag.to_be_bytes());
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&t.value[..len]);
    }
}

fn get_tlvs(r: &mut Reader<'_>) -> Result<Vec<Tlv>, DecodeError> {
    let mut v = Vec::new();
    while r.remaining() > 0 {
        let tag = r.u16("TLV tag")?;
        let len = r.u16("TLV length")?;
        v.push(Tlv {
            tag,
            value: r.bytes(usize::from(len), "TLV value")?.to_vec(),
        });
    }
    Ok(v)
}

fn msg_id(r: &mut Reader<'_>) -> Result<[u8; 10], DecodeError> {
    let mut a = [0u8; 10];
    a.copy_from_slice(r.bytes(10, "MsgID")?);
    Ok(a)
}

/// The one-octet value of `tag`, if present.
pub fn tlv_u8(tlvs: &[Tlv], tag: u16) -> Option<u8> {
    tlvs.iter()
        .find(|t| t.tag == tag)
        .and_then(|t| t.value.first().copied())
}

impl Pdu {
    /// The RequestID.
    pub fn command_id(&self) -> u32 {
        use command::*;
        match self {
            Pdu::Login(_) => LOGIN,
            Pdu::LoginResp(_) => LOGIN_RESP,
            Pdu::Submit(_) => SUBMIT,
            Pdu::SubmitResp(_) => SUBMIT_RESP,
            Pdu::Deliver(_) => DELIVER,
            Pdu::DeliverResp(_) => DELIVER_RESP,
            Pdu::ActiveTest => ACTIVE_TEST,
            Pdu::ActiveTestResp => ACTIVE_TEST_RESP,
            Pdu::Exit => EXIT,
            Pdu::ExitResp => EXIT_RESP,
        }
    }

    /// Encodes the PDU with its header.
    pub fn encode(&self, seq: u32) -> Vec<u8> {
        let mut out = wire::begin(self.command_id(), 64);
        put_u32(&mut out, seq);
        match self {
            Pdu::Login(l) => {
                put_fixed(&mut out, l.client_id.as_bytes(), 8);
                out.extend_from_slice(&l.authenticator);
                out.push(l.login_mode);
                put_u32(&mut out, l.timestamp);
                out.push(l.version);
            }
            Pdu::LoginResp(l) => {
                put_u32(&mut out, l.status);
                out.extend_from_slice(&l.authenticator);
                out.push(l.version);
            }
            Pdu::Submit(s) => {
                out.reserve(200 + s.content.len() + 21 * s.dest_term_ids.len());
                out.extend_from_slice(&[s.msg_type, s.need_report, s.priority]);
                put_fixed(&mut out, s.service_id.as_bytes(), 10);
                put_fixed(&mut out, s.fee_type.as_bytes(), 2);
                put_fixed(&mut out, s.fee_code.as_bytes(), 6);
                put_fixed(&mut out, s.fixed_fee.as_bytes(), 6);
                out.push(s.msg_format);
                put_fixed(&mut out, s.valid_time.as_bytes(), 17);
                put_fixed(&mut out, s.at_time.as_bytes(), 17);
                put_fixed(&mut out, s.src_term_id.as_bytes(), 21);
                put_fixed(&mut out, s.charge_term_id.as_bytes(), 21);
                let n = s.dest_term_ids.len().min(255);
                out.push(n as u8);
                for d in &s.dest_term_ids[..n] {
                    put_fixed(&mut out, d.as_bytes(), 21);
                }
                let len = s.content.len().min(255);
                out.push(len as u8);
                out.extend_from_slice(&s.content[..len]);
                put_fixed(&mut out, b"", 8);
                put_tlvs(&mut out, &s.tlvs);
            }
            Pdu::SubmitResp(r) | Pdu::DeliverResp(r) => {
                out.extend_from_slice(&r.msg_id);
                put_u32(&mut out, r.status);
            }
            Pdu::Deliver(d) => {
                out.extend_from_slice(&d.msg_id);
                out.extend_from_slice(&[d.is_report, d.msg_format]);
                put_fixed(&mut out, d.recv_time.as_bytes(), 14);
                put_fixed(&mut out, d.src_term_id.as_bytes(), 21);
                put_fixed(&mut out, d.dest_term_id.as_bytes(), 21);
                let len = d.content.len().min(255);
                out.push(len as u8);
                out.extend_from_slice(&d.content[..len]);
                put_fixed(&mut out, b"", 8);
                put_tlvs(&mut out, &d.tlvs);
            }
            Pdu::ActiveTest | Pdu::ActiveTestResp | Pdu::Exit | Pdu::ExitResp => {}
        }
        wire::finish(out)
    }

    /// Decodes one whole frame (length prefix included). Never panics.
    pub fn decode(frame: &[u8]) -> Result<(u32, Pdu), DecodeError> {
        wire::check_frame(frame, HEADER_LEN)?;
        let mut r = Reader::new(frame, 4);
        let id = r.u32("RequestID")?;
        let seq = r.u32("SequenceID")?;
        let pdu = match id {
            command::LOGIN => {
                let client_id = r.cstr(8, "ClientID")?;
                let mut authenticator = [0u8; 16];
                authenticator.copy_from_slice(r.bytes(16, "AuthenticatorClient")?);
                Pdu::Login(Login {
                    client_id,
                    authenticator,
                    login_mode: r.u8("LoginMode")?,
                    timestamp: r.u32("TimeStamp")?,
                    version: r.u8("ClientVersion")?,
                })
            }
            command::LOGIN_RESP => {
                let status = r.u32("Status")?;
                let mut authenticator = [0u8; 16];
                authenticator.copy_from_slice(r.bytes(16, "AuthenticatorServer")?);
                Pdu::LoginResp(LoginResp {
                    status,
                    authenticator,
                    version: r.u8("ServerVersion")?,
                })
            }
            command::SUBMIT => {
                let mut s = Submit {
                    msg_type: r.u8("MsgType")?,
                    need_report: r.u8("NeedReport")?,
                    priority: r.u8("Priority")?,
                    service_id: r.cstr(10, "ServiceID")?,
                    fee_type: r.cstr(2, "FeeType")?,
                    fee_code: r.cstr(6, "FeeCode")?,
                    fixed_fee: r.cstr(6, "FixedFee")?,
                    msg_format: r.u8("MsgFormat")?,
                    valid_time: r.cstr(17, "ValidTime")?,
                    at_time: r.cstr(17, "AtTime")?,
                    src_term_id: r.cstr(21, "SrcTermID")?,
                    charge_term_id: r.cstr(21, "ChargeTermID")?,
                    ..Submit::default()
                };
                let n = r.u8("DestTermIDCount")?;
                if n == 0 || n > 100 {
                    return Err(DecodeError::Invalid("DestTermIDCount (1..=100)"));
                }
                for _ in 0..n {
                    s.dest_term_ids.push(r.cstr(21, "DestTermID")?);
                }
                let len = r.u8("MsgLength")?;
                s.content = r.bytes(usize::from(len), "MsgContent")?.to_vec();
                r.bytes(8, "Reserve")?;
                s.tlvs = get_tlvs(&mut r)?;
                Pdu::Submit(Box::new(s))
            }
            command::SUBMIT_RESP | command::DELIVER_RESP => {
                let resp = Resp {
                    msg_id: msg_id(&mut r)?,
                    status: r.u32("Status")?,
                };
                if id == command::SUBMIT_RESP {
                    Pdu::SubmitResp(resp)
                } else {
                    Pdu::DeliverResp(resp)
                }
            }
            command::DELIVER => {
                let mut d = Deliver {
                    msg_id: msg_id(&mut r)?,
                    is_report: r.u8("IsReport")?,
                    msg_format: r.u8("MsgFormat")?,
                    recv_time: r.cstr(14, "RecvTime")?,
                    src_term_id: r.cstr(21, "SrcTermID")?,
                    dest_term_id: r.cstr(21, "DestTermID")?,
                    ..Deliver::default()
                };
                let len = r.u8("MsgLength")?;
                d.content = r.bytes(usize::from(len), "MsgContent")?.to_vec();
                r.bytes(8, "Reserve")?;
                d.tlvs = get_tlvs(&mut r)?;
                Pdu::Deliver(Box::new(d))
            }
            command::ACTIVE_TEST => Pdu::ActiveTest,
            command::ACTIVE_TEST_RESP => Pdu::ActiveTestResp,
            command::EXIT => Pdu::Exit,
            command::EXIT_RESP => Pdu::ExitResp,
            other => return Err(DecodeError::UnknownCommand(other)),
        };
        Ok((seq, pdu))
    }
}

impl Report {
    /// The report's MsgContent:
    /// `id:<10 octets> sub:001 dlvrd:001 Submit date:… done date:… stat:… err:… Txt:<20 octets>`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(122);
        out.extend_from_slice(b"id:");
        out.extend_from_slice(&self.msg_id);
        let delivered = self.stat == "DELIVRD";
        out.extend_from_slice(
            format!(
                " sub:001 dlvrd:{} Submit date:{:<10} done date:{:<10} stat:{:<7} err:{:<3} Txt:",
                if delivered { "001" } else { "000" },
                self.submit_date,
                self.done_date,
                self.stat,
                self.err
            )
            .as_bytes(),
        );
        put_fixed(&mut out, b"", 20);
        out
    }

    /// Parses a report's MsgContent: the raw 10-octet MsgID after `id:`, then
    /// the `stat:`/`err:`/dates fields by name (case-insensitive). Never panics.
    pub fn decode(content: &[u8]) -> Result<Report, DecodeError> {
        let mut r = Reader::new(content, 0);
        if !r.bytes(3, "id:")?.eq_ignore_ascii_case(b"id:") {
            return Err(DecodeError::Invalid(
                "report content does not start with id:",
            ));
        }
        let msg_id = msg_id(&mut r)?;
        let text = String::from_utf8_lossy(r.rest()).into_owned();
        let lower = text.to_ascii_lowercase();
        let field = |name: &str, width: usize| -> String {
            lower
                .find(name)
                .and_then(|i| text.get(i + name.len()..))
                .map(|s| s.chars().take(width).collect::<String>().trim().to_string())
                .unwrap_or_default()
        };
        let stat = field("stat:", 7).to_ascii_uppercase();
        if stat.is_empty() {
            return Err(DecodeError::Invalid("report without stat:"));
        }
        Ok(Report {
            msg_id,
            stat,
            err: field("err:", 3),
            submit_date: field("submit date:", 10),
            done_date: field("done date:", 10),
        })
    }
}
