//! CMPP 2.0 / 3.0 PDUs (China Mobile, QB-GF-028-2003 §7): every PDU a service
//! provider sends or receives, both directions (the simulator uses the ISMG
//! side). Field widths follow the specification's tables; the 2.0/3.0
//! differences are the CONNECT_RESP status (1 vs 4 octets), the terminal ids
//! (21 vs 32 octets plus a type octet), LinkID (3.0) instead of Reserve (2.0)
//! and the result width of SUBMIT_RESP/DELIVER_RESP (1 vs 4 octets).

use crate::protocols::cn::wire::{self, DecodeError, Reader, put_fixed, put_u32};

/// Command ids (a response is the request's id | 0x8000_0000).
pub mod command {
    /// CMPP_CONNECT.
    pub const CONNECT: u32 = 0x0000_0001;
    /// CMPP_CONNECT_RESP.
    pub const CONNECT_RESP: u32 = 0x8000_0001;
    /// CMPP_TERMINATE.
    pub const TERMINATE: u32 = 0x0000_0002;
    /// CMPP_TERMINATE_RESP.
    pub const TERMINATE_RESP: u32 = 0x8000_0002;
    /// CMPP_SUBMIT.
    pub const SUBMIT: u32 = 0x0000_0004;
    /// CMPP_SUBMIT_RESP.
    pub const SUBMIT_RESP: u32 = 0x8000_0004;
    /// CMPP_DELIVER.
    pub const DELIVER: u32 = 0x0000_0005;
    /// CMPP_DELIVER_RESP.
    pub const DELIVER_RESP: u32 = 0x8000_0005;
    /// CMPP_ACTIVE_TEST.
    pub const ACTIVE_TEST: u32 = 0x0000_0008;
    /// CMPP_ACTIVE_TEST_RESP.
    pub const ACTIVE_TEST_RESP: u32 = 0x8000_0008;
}

/// Header: Total_Length, Command_Id, Sequence_Id.
pub const HEADER_LEN: usize = 12;

/// Protocol version, which decides the field widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// CMPP 2.0 (version octet 0x20).
    V20,
    /// CMPP 3.0 (version octet 0x30).
    #[default]
    V30,
}

impl Version {
    /// The Version octet of CMPP_CONNECT.
    pub fn octet(self) -> u8 {
        match self {
            Version::V20 => 0x20,
            Version::V30 => 0x30,
        }
    }

    /// The version a CONNECT's octet asks for (major 3 → 3.0, else 2.0).
    pub fn from_octet(v: u8) -> Version {
        if v >> 4 >= 3 {
            Version::V30
        } else {
            Version::V20
        }
    }

    fn terminal_len(self) -> usize {
        match self {
            Version::V20 => 21,
            Version::V30 => 32,
        }
    }
}

/// CMPP_CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Source_Addr: the SP's enterprise code (6).
    pub source_addr: String,
    /// AuthenticatorSource: see [`authenticator_source`].
    pub authenticator: [u8; 16],
    /// Version octet (0x20 / 0x30).
    pub version: u8,
    /// Timestamp as the number MMDDHHMMSS.
    pub timestamp: u32,
}

/// CMPP_CONNECT_RESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResp {
    /// 0 ok, 1 bad structure, 2 bad source address, 3 authentication failed,
    /// 4 version too high, ≥5 other.
    pub status: u32,
    /// AuthenticatorISMG = MD5(Status + AuthenticatorSource + secret).
    pub authenticator: [u8; 16],
    /// The ISMG's version octet.
    pub version: u8,
}

/// CMPP_SUBMIT (one part to up to 100 recipients).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    /// Msg_Id (0 from the SP; the ISMG assigns it).
    pub msg_id: u64,
    /// Pk_total.
    pub pk_total: u8,
    /// Pk_number.
    pub pk_number: u8,
    /// Registered_Delivery: 1 = status report wanted.
    pub registered_delivery: u8,
    /// Msg_level.
    pub msg_level: u8,
    /// Service_Id (10).
    pub service_id: String,
    /// Fee_UserType: 0 destination, 1 source, 2 SP, 3 Fee_terminal_Id.
    pub fee_user_type: u8,
    /// Fee_terminal_Id (21 / 32).
    pub fee_terminal_id: String,
    /// Fee_terminal_type (3.0 only).
    pub fee_terminal_type: u8,
    /// TP_pId.
    pub tp_pid: u8,
    /// TP_udhi: the content starts with a UDH.
    pub tp_udhi: u8,
    /// Msg_Fmt: 0 ASCII, 8 UCS-2, 15 GB.
    pub msg_fmt: u8,
    /// Msg_src: the SP id (6).
    pub msg_src: String,
    /// FeeType (2): "01" free, "02" per message, ...
    pub fee_type: String,
    /// FeeCode (6), in fen.
    pub fee_code: String,
    /// ValId_Time (17, SMPP time format).
    pub valid_time: String,
    /// At_Time (17).
    pub at_time: String,
    /// Src_Id (21): SP service number (+ extension) shown to the handset.
    pub src_id: String,
    /// Dest_terminal_Id, 1..=100 of them.
    pub dest_terminal_ids: Vec<String>,
    /// Dest_terminal_type (3.0 only): 0 real number, 1 pseudo.
    pub dest_terminal_type: u8,
    /// Msg_Content (UDH included when tp_udhi = 1); at most 255 octets.
    pub content: Vec<u8>,
    /// LinkID (3.0, 20) / ignored in 2.0 (Reserve).
    pub link_id: String,
}

/// CMPP_SUBMIT_RESP / CMPP_DELIVER_RESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resp {
    /// Msg_Id.
    pub msg_id: u64,
    /// Result (1 octet in 2.0, 4 in 3.0); 0 = ok, 8 = flow control.
    pub result: u32,
}

/// CMPP_DELIVER: an MO message or (Registered_Delivery = 1) a status report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deliver {
    /// Msg_Id of this deliver.
    pub msg_id: u64,
    /// Dest_Id (21): the SP service number.
    pub dest_id: String,
    /// Service_Id (10).
    pub service_id: String,
    /// TP_pid.
    pub tp_pid: u8,
    /// TP_udhi.
    pub tp_udhi: u8,
    /// Msg_Fmt.
    pub msg_fmt: u8,
    /// Src_terminal_Id (21 / 32): the handset.
    pub src_terminal_id: String,
    /// Src_terminal_type (3.0 only).
    pub src_terminal_type: u8,
    /// Registered_Delivery: 1 = the content is a [`Report`].
    pub registered_delivery: u8,
    /// Msg_Content.
    pub content: Vec<u8>,
    /// LinkID (3.0).
    pub link_id: String,
}

/// The content of a status-report CMPP_DELIVER.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Msg_Id of the submit this reports on.
    pub msg_id: u64,
    /// Stat (7): DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD or a gateway code.
    pub stat: String,
    /// Submit_time (10, YYMMDDHHMM).
    pub submit_time: String,
    /// Done_time (10).
    pub done_time: String,
    /// Dest_terminal_Id (21 / 32).
    pub dest_terminal_id: String,
    /// SMSC_sequence.
    pub smsc_sequence: u32,
}

/// Every CMPP PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// CMPP_CONNECT.
    Connect(Connect),
    /// CMPP_CONNECT_RESP.
    ConnectResp(ConnectResp),
    /// CMPP_TERMINATE.
    Terminate,
    /// CMPP_TERMINATE_RESP.
    TerminateResp,
    /// CMPP_SUBMIT.
    Submit(Box<Submit>),
    /// CMPP_SUBMIT_RESP.
    SubmitResp(Resp),
    /// CMPP_DELIVER.
    Deliver(Box<Deliver>),
    /// CMPP_DELIVER_RESP.
    DeliverResp(Resp),
    /// CMPP_ACTIVE_TEST.
    ActiveTest,
    /// CMPP_ACTIVE_TEST_RESP.
    ActiveTestResp,
}

/// AuthenticatorSource = MD5(Source_Addr + 9 × 0x00 + secret + "MMDDHHMMSS").
pub fn authenticator_source(source_addr: &str, secret: &str, timestamp: u32) -> [u8; 16] {
    wire::login_authenticator(source_addr, 9, secret, &wire::timestamp_text(timestamp))
}

/// AuthenticatorISMG = MD5(Status + AuthenticatorSource + secret); Status is 1
/// octet in 2.0 and 4 in 3.0.
pub fn authenticator_ismg(v: Version, status: u32, source: &[u8; 16], secret: &str) -> [u8; 16] {
    let st4 = status.to_be_bytes();
    let st: &[u8] = match v {
        Version::V20 => &st4[3..],
        Version::V30 => &st4,
    };
    wire::md5(&[st, source, secret.as_bytes()])
}

/// A Msg_Id: month (4 bits), day (5), hour (5), minute (6), second (6),
/// gateway code (22), sequence (16).
pub fn make_msg_id(mdhms: (u32, u32, u32, u32, u32), gateway: u32, seq: u16) -> u64 {
    let (mo, d, h, mi, s) = mdhms;
    (u64::from(mo & 0xF) << 60)
        | (u64::from(d & 0x1F) << 55)
        | (u64::from(h & 0x1F) << 50)
        | (u64::from(mi & 0x3F) << 44)
        | (u64::from(s & 0x3F) << 38)
        | (u64::from(gateway & 0x3F_FFFF) << 16)
        | u64::from(seq)
}

/// The parts of a Msg_Id (the inverse of [`make_msg_id`]).
pub fn split_msg_id(id: u64) -> ((u32, u32, u32, u32, u32), u32, u16) {
    let f = |shift: u32, mask: u64| ((id >> shift) & mask) as u32;
    (
        (
            f(60, 0xF),
            f(55, 0x1F),
            f(50, 0x1F),
            f(44, 0x3F),
            f(38, 0x3F),
        ),
        f(16, 0x3F_FFFF),
        (id & 0xFFFF) as u16,
    )
}

fn put_result(out: &mut Vec<u8>, v: Version, r: u32) {
    match v {
        Version::V20 => out.push(u8::try_from(r).unwrap_or(u8::MAX)),
        Version::V30 => put_u32(out, r),
    }
}

fn get_result(r: &mut Reader<'_>, v: Version) -> Result<u32, DecodeError> {
    match v {
        Version::V20 => r.u8("Result").map(u32::from),
        Version::V30 => r.u32("Result"),
    }
}

impl Pdu {
    /// The Command_Id.
    pub fn command_id(&self) -> u32 {
        use command::*;
        match self {
            Pdu::Connect(_) => CONNECT,
            Pdu::ConnectResp(_) => CONNECT_RESP,
            Pdu::Terminate => TERMINATE,
            Pdu::TerminateResp => TERMINATE_RESP,
            Pdu::Submit(_) => SUBMIT,
            Pdu::SubmitResp(_) => SUBMIT_RESP,
            Pdu::Deliver(_) => DELIVER,
            Pdu::DeliverResp(_) => DELIVER_RESP,
            Pdu::ActiveTest => ACTIVE_TEST,
            Pdu::ActiveTestResp => ACTIVE_TEST_RESP,
        }
    }

    /// Encodes the PDU with its header. Over-long strings are truncated to
    /// their field width; callers validate lengths beforehand.
    pub fn encode(&self, seq: u32, v: Version) -> Vec<u8> {
        let mut out = wire::begin(self.command_id(), 64);
        put_u32(&mut out, seq);
        let tl = v.terminal_len();
        match self {
            Pdu::Connect(c) => {
                put_fixed(&mut out, c.source_addr.as_bytes(), 6);
                out.extend_from_slice(&c.authenticator);
                out.push(c.version);
                put_u32(&mut out, c.timestamp);
            }
            Pdu::ConnectResp(c) => {
                put_result(&mut out, v, c.status);
                out.extend_from_slice(&c.authenticator);
                out.push(c.version);
            }
            Pdu::Terminate | Pdu::TerminateResp | Pdu::ActiveTest => {}
            Pdu::ActiveTestResp => out.push(0),
            Pdu::Submit(s) => {
                out.reserve(160 + s.content.len() + s.dest_terminal_ids.len() * tl);
                out.extend_from_slice(&s.msg_id.to_be_bytes());
                out.extend_from_slice(&[
                    s.pk_total,
                    s.pk_number,
                    s.registered_delivery,
                    s.msg_level,
                ]);
                put_fixed(&mut out, s.service_id.as_bytes(), 10);
                out.push(s.fee_user_type);
                put_fixed(&mut out, s.fee_terminal_id.as_bytes(), tl);
                if v == Version::V30 {
                    out.push(s.fee_terminal_type);
                }
                out.extend_from_slice(&[s.tp_pid, s.tp_udhi, s.msg_fmt]);
                put_fixed(&mut out, s.msg_src.as_bytes(), 6);
                put_fixed(&mut out, s.fee_type.as_bytes(), 2);
                put_fixed(&mut out, s.fee_code.as_bytes(), 6);
                put_fixed(&mut out, s.valid_time.as_bytes(), 17);
                put_fixed(&mut out, s.at_time.as_bytes(), 17);
                put_fixed(&mut out, s.src_id.as_bytes(), 21);
                let n = s.dest_terminal_ids.len().min(255);
                out.push(n as u8);
                for d in &s.dest_terminal_ids[..n] {
                    put_fixed(&mut out, d.as_bytes(), tl);
                }
                if v == Version::V30 {
                    out.push(s.dest_terminal_type);
                }
                let len = s.content.len().min(255);
                out.push(len as u8);
                out.extend_from_slice(&s.content[..len]);
                match v {
                    Version::V20 => put_fixed(&mut out, b"", 8),
                    Version::V30 => put_fixed(&mut out, s.link_id.as_bytes(), 20),
                }
            }
            Pdu::SubmitResp(r) | Pdu::DeliverResp(r) => {
                out.extend_from_slice(&r.msg_id.to_be_bytes());
                put_result(&mut out, v, r.result);
            }
            Pdu::Deliver(d) => {
                out.extend_from_slice(&d.msg_id.to_be_bytes());
                put_fixed(&mut out, d.dest_id.as_bytes(), 21);
                put_fixed(&mut out, d.service_id.as_bytes(), 10);
                out.extend_from_slice(&[d.tp_pid, d.tp_udhi, d.msg_fmt]);
                put_fixed(&mut out, d.src_terminal_id.as_bytes(), tl);
                if v == Version::V30 {
                    out.push(d.src_terminal_type);
                }
                out.push(d.registered_delivery);
                let len = d.content.len().min(255);
                out.push(len as u8);
                out.extend_from_slice(&d.content[..len]);
                match v {
                    Version::V20 => put_fixed(&mut out, b"", 8),
                    Version::V30 => put_fixed(&mut out, d.link_id.as_bytes(), 20),
                }
            }
        }
        wire::finish(out)
    }

    /// Decodes one whole frame (length prefix included). Never panics.
    /// CONNECT_RESP, SUBMIT, SUBMIT_RESP, DELIVER and DELIVER_RESP are read with `v`'s widths.
    pub fn decode(frame: &[u8], v: Version) -> Result<(u32, Pdu), DecodeError> {
        wire::check_frame(frame, HEADER_LEN)?;
        let mut r = Reader::new(frame, 4);
        let id = r.u32("Command_Id")?;
        let seq = r.u32("Sequence_Id")?;
        let tl = v.terminal_len();
        let pdu = match id {
            command::CONNECT => {
                let source_addr = r.cstr(6, "Source_Addr")?;
                let mut authenticator = [0u8; 16];
                authenticator.copy_from_slice(r.bytes(16, "AuthenticatorSource")?);
                let version = r.u8("Version")?;
                let timestamp = r.u32("Timestamp")?;
                Pdu::Connect(Connect {
                    source_addr,
                    authenticator,
                    version,
                    timestamp,
                })
            }
            command::CONNECT_RESP => {
                let status = get_result(&mut r, v)?;
                let mut authenticator = [0u8; 16];
                authenticator.copy_from_slice(r.bytes(16, "AuthenticatorISMG")?);
                let version = r.u8("Version")?;
                Pdu::ConnectResp(ConnectResp {
                    status,
                    authenticator,
                    version,
                })
            }
            command::TERMINATE => Pdu::Terminate,
            command::TERMINATE_RESP => Pdu::TerminateResp,
            command::ACTIVE_TEST => Pdu::ActiveTest,
            // Reserved (1) is optional in practice: some ISMGs send a bare header.
            command::ACTIVE_TEST_RESP => Pdu::ActiveTestResp,
            command::SUBMIT_RESP | command::DELIVER_RESP => {
                let resp = Resp {
                    msg_id: r.u64("Msg_Id")?,
                    result: get_result(&mut r, v)?,
                };
                if id == command::SUBMIT_RESP {
                    Pdu::SubmitResp(resp)
                } else {
                    Pdu::DeliverResp(resp)
                }
            }
            command::SUBMIT => {
                let mut s = Submit {
                    msg_id: r.u64("Msg_Id")?,
                    pk_total: r.u8("Pk_total")?,
                    pk_number: r.u8("Pk_number")?,
                    registered_delivery: r.u8("Registered_Delivery")?,
                    msg_level: r.u8("Msg_level")?,
                    service_id: r.cstr(10, "Service_Id")?,
                    fee_user_type: r.u8("Fee_UserType")?,
                    fee_terminal_id: r.cstr(tl, "Fee_terminal_Id")?,
                    ..Submit::default()
                };
                if v == Version::V30 {
                    s.fee_terminal_type = r.u8("Fee_terminal_type")?;
                }
                s.tp_pid = r.u8("TP_pId")?;
                s.tp_udhi = r.u8("TP_udhi")?;
                s.msg_fmt = r.u8("Msg_Fmt")?;
                s.msg_src = r.cstr(6, "Msg_src")?;
                s.fee_type = r.cstr(2, "FeeType")?;
                s.fee_code = r.cstr(6, "FeeCode")?;
                s.valid_time = r.cstr(17, "ValId_Time")?;
                s.at_time = r.cstr(17, "At_Time")?;
                s.src_id = r.cstr(21, "Src_Id")?;
                let n = r.u8("DestUsr_tl")?;
                if n == 0 || n > 100 {
                    return Err(DecodeError::Invalid("DestUsr_tl (1..=100)"));
                }
                for _ in 0..n {
                    s.dest_terminal_ids.push(r.cstr(tl, "Dest_terminal_Id")?);
                }
                if v == Version::V30 {
                    s.dest_terminal_type = r.u8("Dest_terminal_type")?;
                }
                let len = r.u8("Msg_Length")?;
                s.content = r.bytes(usize::from(len), "Msg_Content")?.to_vec();
                match v {
                    Version::V20 => {
                        r.bytes(8, "Reserve")?;
                    }
                    Version::V30 => s.link_id = r.cstr(20, "LinkID")?,
                }
                Pdu::Submit(Box::new(s))
            }
            command::DELIVER => {
                let mut d = Deliver {
                    msg_id: r.u64("Msg_Id")?,
                    dest_id: r.cstr(21, "Dest_Id")?,
                    service_id: r.cstr(10, "Service_Id")?,
                    tp_pid: r.u8("TP_pid")?,
                    tp_udhi: r.u8("TP_udhi")?,
                    msg_fmt: r.u8("Msg_Fmt")?,
                    src_terminal_id: r.cstr(tl, "Src_terminal_Id")?,
                    ..Deliver::default()
                };
                if v == Version::V30 {
                    d.src_terminal_type = r.u8("Src_terminal_type")?;
                }
                d.registered_delivery = r.u8("Registered_Delivery")?;
                let len = r.u8("Msg_Length")?;
                d.content = r.bytes(usize::from(len), "Msg_Content")?.to_vec();
                match v {
                    Version::V20 => {
                        r.bytes(8, "Reserve")?;
                    }
                    Version::V30 => d.link_id = r.cstr(20, "LinkID")?,
                }
                Pdu::Deliver(Box::new(d))
            }
            other => return Err(DecodeError::UnknownCommand(other)),
        };
        Ok((seq, pdu))
    }
}

impl Report {
    /// The Msg_Content of a status-report DELIVER (60 octets in 2.0, 71 in 3.0).
    pub fn encode(&self, v: Version) -> Vec<u8> {
        let mut out = Vec::with_capacity(71);
        out.extend_from_slice(&self.msg_id.to_be_bytes());
        put_fixed(&mut out, self.stat.as_bytes(), 7);
        put_fixed(&mut out, self.submit_time.as_bytes(), 10);
        put_fixed(&mut out, self.done_time.as_bytes(), 10);
        put_fixed(&mut out, self.dest_terminal_id.as_bytes(), v.terminal_len());
        put_u32(&mut out, self.smsc_sequence);
        out
    }

    /// Parses a report's Msg_Content. Never panics.
    pub fn decode(content: &[u8], v: Version) -> Result<Report, DecodeError> {
        let mut r = Reader::new(content, 0);
        Ok(Report {
            msg_id: r.u64("Msg_Id")?,
            stat: r.cstr(7, "Stat")?,
            submit_time: r.cstr(10, "Submit_time")?,
            done_time: r.cstr(10, "Done_time")?,
            dest_terminal_id: r.cstr(v.terminal_len(), "Dest_terminal_Id")?,
            smsc_sequence: r.u32("SMSC_sequence")?,
        })
    }
}
