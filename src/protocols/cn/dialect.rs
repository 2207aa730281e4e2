//! What differs between CMPP, SMGP and SGIP on the SP's side of a session:
//! login, submit, keepalive, exit and the answers to what the operator sends,
//! all as frames; [`Dialect::decode`] turns a received frame into an [`Event`]
//! the protocol-neutral session engine acts on.

use super::options::CnOptions;
use super::text::{self, GbFlavour};
use super::wire::{self, DecodeError};
use crate::protocols::cmpp::{self, codec as cm};
use crate::protocols::sgip::{self, codec as sg};
use crate::protocols::smgp::{self, codec as sm};
use crate::protocols::smpp::{Receipt, ReceiptState, SubmitRequest};

/// Which Chinese protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// CMPP 2.0 or 3.0.
    Cmpp(cm::Version),
    /// SMGP 3.0.
    Smgp,
    /// SGIP 1.2.
    Sgip,
}

impl Protocol {
    /// From a channel's `protocol` and options; None for other protocols.
    pub fn from_channel(protocol: &str, o: &CnOptions) -> Option<Protocol> {
        match protocol {
            "cmpp" => Some(Protocol::Cmpp(o.cmpp_version)),
            "smgp" => Some(Protocol::Smgp),
            "sgip" => Some(Protocol::Sgip),
            _ => None,
        }
    }

    /// Header length (SGIP 20, the others 12).
    pub fn header_len(self) -> usize {
        match self {
            Protocol::Sgip => sg::HEADER_LEN,
            _ => cm::HEADER_LEN,
        }
    }

    /// Name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Cmpp(cm::Version::V20) => "CMPP 2.0",
            Protocol::Cmpp(cm::Version::V30) => "CMPP 3.0",
            Protocol::Smgp => "SMGP 3.0",
            Protocol::Sgip => "SGIP 1.2",
        }
    }

    /// A refused login for logs and the admin API, e.g. "CMPP 3.0 CONNECT
    /// status 3 (authentication failed)".
    pub fn login_rejection(self, status: u32) -> String {
        let (request, meaning) = match self {
            Protocol::Cmpp(_) => (
                "CONNECT status",
                cmpp::status_map::connect_status_text(status),
            ),
            Protocol::Smgp => ("Login status", smgp::status_map::login_status_text(status)),
            Protocol::Sgip => ("Bind result", sgip::status_map::bind_result_text(status)),
        };
        format!("{} {request} {status} ({meaning})", self.name())
    }

    /// The submit response's result field, for messages: "SUBMIT_RESP Result" etc.
    pub fn submit_result_field(self) -> &'static str {
        match self {
            Protocol::Cmpp(_) => "SUBMIT_RESP Result",
            Protocol::Smgp => "Submit_Resp Status",
            Protocol::Sgip => "Submit_Resp Result",
        }
    }

    fn gb(self) -> GbFlavour {
        match self {
            Protocol::Smgp => GbFlavour::Gb18030,
            _ => GbFlavour::Gbk,
        }
    }
}

/// What kind of request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespKind {
    /// Login / connect / bind.
    Login,
    /// Submit.
    Submit,
    /// Active test.
    KeepAlive,
    /// Terminate / exit / unbind.
    Exit,
    /// Deliver/report responses and anything else.
    Other,
}

/// What is needed to answer a deliver or report later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCtx {
    /// CMPP_DELIVER_RESP echoes the deliver's Msg_Id.
    Cmpp(u64),
    /// SMGP Deliver_Resp echoes the deliver's MsgID.
    Smgp([u8; 10]),
    /// SGIP answers Deliver with Deliver_Resp, Report with Report_Resp.
    Sgip {
        /// True for a Report.
        report: bool,
    },
}

/// A received frame, decoded to what the session must do.
#[derive(Debug)]
pub enum Event {
    /// A response to one of our requests.
    Resp {
        /// Sequence counter it answers.
        n: u32,
        /// What it answers.
        kind: RespKind,
        /// The status (0 = ok); for submits the SMPP-equivalent command_status.
        status: u32,
        /// The protocol's own status / result as received.
        raw: u32,
        /// Message id (submit responses).
        msg_id: String,
    },
    /// A status report to commit and acknowledge.
    Report {
        /// Sequence to answer with.
        seq: sg::Seq,
        /// In the common model.
        receipt: Receipt,
        /// How to answer.
        ctx: AckCtx,
    },
    /// A mobile-originated message.
    Mobile {
        /// Sequence to answer with.
        seq: sg::Seq,
        /// Handset.
        source: String,
        /// SP number.
        dest: String,
        /// Msg_Fmt.
        msg_fmt: u8,
        /// TP_udhi.
        udhi: bool,
        /// Content.
        content: Vec<u8>,
        /// How to answer.
        ctx: AckCtx,
    },
    /// The operator's active test: answer it.
    KeepAlive(sg::Seq),
    /// The operator ends the session: answer and close.
    Exit(sg::Seq),
    /// The operator binds to us (SGIP listener only).
    Bind {
        /// Sequence to answer with.
        seq: sg::Seq,
        /// LoginName.
        name: String,
        /// LoginPassword.
        password: String,
    },
}

/// The per-session protocol behaviour.
#[derive(Debug, Clone)]
pub struct Dialect {
    /// The protocol.
    pub protocol: Protocol,
    /// Channel options.
    pub opts: CnOptions,
    /// Account (CMPP SP_Id / SMGP ClientID / SGIP LoginName).
    pub account: String,
    /// Shared secret / password.
    pub secret: String,
}

fn terminal(addr: &str) -> String {
    addr.trim().trim_start_matches('+').to_string()
}

fn seq_n(n: u32) -> sg::Seq {
    sg::Seq {
        node: 0,
        time: 0,
        n,
    }
}

/// A CMPP/SMGP report or SGIP report state as a receipt.
fn receipt(id: String, state: ReceiptState, code: Option<String>) -> Receipt {
    Receipt {
        smsc_message_id: id,
        state,
        error_code: code,
        text_fields: None,
    }
}

impl Dialect {
    /// The sequence for request counter `n` (SGIP adds our node id and the time).
    pub fn seq(&self, n: u32) -> sg::Seq {
        match self.protocol {
            Protocol::Sgip => sg::Seq {
                node: self.opts.node_id,
                time: wire::timestamp_now().1,
                n,
            },
            _ => seq_n(n),
        }
    }

    /// The login request.
    pub fn login(&self, seq: sg::Seq) -> Vec<u8> {
        let (_, ts) = wire::timestamp_now();
        match self.protocol {
            Protocol::Cmpp(v) => cm::Pdu::Connect(cm::Connect {
                source_addr: self.account.clone(),
                authenticator: cm::authenticator_source(&self.account, &self.secret, ts),
                version: v.octet(),
                timestamp: ts,
            })
            .encode(seq.n, v),
            Protocol::Smgp => sm::Pdu::Login(sm::Login {
                client_id: self.account.clone(),
                authenticator: sm::authenticator_client(&self.account, &self.secret, ts),
                login_mode: self.opts.login_mode,
                timestamp: ts,
                version: sm::VERSION,
            })
            .encode(seq.n),
            Protocol::Sgip => sg::Pdu::Bind(sg::Bind {
                login_type: 1,
                login_name: self.account.clone(),
                login_password: self.secret.clone(),
            })
            .encode(seq),
        }
    }

    /// The submit for one part. Err = the part cannot be carried (the reason);
    /// for SGIP the message id is the submit's sequence number, returned here.
    pub fn submit(
        &self,
        seq: sg::Seq,
        req: &SubmitRequest,
    ) -> Result<(Vec<u8>, Option<String>), text::TextError> {
        let t = text::transcode(
            req.data_coding,
            req.esm_class,
            &req.short_message,
            self.opts.text,
            self.protocol.gb(),
        )?;
        let dest = terminal(&req.dest_addr);
        let source = terminal(&req.source_addr);
        let src_id = if !source.is_empty()
            && source.bytes().all(|b| b.is_ascii_digit())
            && source.len() <= 21
            && source.starts_with(&self.opts.src_id)
        {
            source
        } else {
            self.opts.src_id.clone()
        };
        let report = req.registered_delivery & 0x03 != 0;
        Ok(match self.protocol {
            Protocol::Cmpp(v) => {
                let s = cm::Submit {
                    pk_total: t.pk_total,
                    pk_number: t.pk_number,
                    registered_delivery: u8::from(report),
                    msg_level: 1,
                    service_id: self.opts.service_id.clone(),
                    fee_user_type: 2,
                    tp_udhi: u8::from(t.udhi),
                    msg_fmt: t.msg_fmt,
                    msg_src: self.opts.msg_src.clone(),
                    fee_type: self.opts.fee_type.clone(),
                    fee_code: "000000".into(),
                    valid_time: req.validity_period.clone(),
                    src_id,
                    dest_terminal_ids: vec![dest],
                    content: t.content,
                    ..cm::Submit::default()
                };
                (cm::Pdu::Submit(Box::new(s)).encode(seq.n, v), None)
            }
            Protocol::Smgp => {
                let mut tlvs = vec![
                    sm::Tlv {
                        tag: sm::tag::PK_TOTAL,
                        value: vec![t.pk_total],
                    },
                    sm::Tlv {
                        tag: sm::tag::PK_NUMBER,
                        value: vec![t.pk_number],
                    },
                ];
                if t.udhi {
                    tlvs.insert(
                        0,
                        sm::Tlv {
                            tag: sm::tag::TP_UDHI,
                            value: vec![1],
                        },
                    );
                }
                let s = sm::Submit {
                    msg_type: 6,
                    need_report: u8::from(report),
                    priority: 1,
                    service_id: self.opts.service_id.clone(),
                    fee_type: self.opts.fee_type.clone(),
                    fee_code: "000000".into(),
                    fixed_fee: "000000".into(),
                    msg_format: t.msg_fmt,
                    valid_time: req.validity_period.clone(),
                    src_term_id: src_id,
                    dest_term_ids: vec![dest],
                    content: t.content,
                    tlvs,
                    ..sm::Submit::default()
                };
                (sm::Pdu::Submit(Box::new(s)).encode(seq.n), None)
            }
            Protocol::Sgip => {
                let s = sg::Submit {
                    sp_number: src_id,
                    charge_number: "000000000000000000000".into(),
                    user_numbers: vec![dest],
                    corp_id: self.opts.corp_id.clone(),
                    service_type: self.opts.service_id.clone(),
                    fee_type: 1,
                    fee_value: "0".into(),
                    given_value: "0".into(),
                    morelate_to_mt_flag: 2,
                    expire_time: req.validity_period.clone(),
                    report_flag: if report { 1 } else { 2 },
                    tp_udhi: u8::from(t.udhi),
                    message_coding: t.msg_fmt,
                    content: t.content,
                    ..sg::Submit::default()
                };
                (
                    sg::Pdu::Submit(Box::new(s)).encode(seq),
                    Some(seq.id_text()),
                )
            }
        })
    }

    /// The active test request; None for SGIP, which has none.
    pub fn keepalive(&self, seq: sg::Seq) -> Option<Vec<u8>> {
        match self.protocol {
            Protocol::Cmpp(v) => Some(cm::Pdu::ActiveTest.encode(seq.n, v)),
            Protocol::Smgp => Some(sm::Pdu::ActiveTest.encode(seq.n)),
            Protocol::Sgip => None,
        }
    }

    /// The answer to the operator's active test (SGIP has none).
    pub fn keepalive_resp(&self, seq: sg::Seq) -> Option<Vec<u8>> {
        match self.protocol {
            Protocol::Cmpp(v) => Some(cm::Pdu::ActiveTestResp.encode(seq.n, v)),
            Protocol::Smgp => Some(sm::Pdu::ActiveTestResp.encode(seq.n)),
            Protocol::Sgip => None,
        }
    }

    /// Terminate / Exit / Unbind.
    pub fn exit(&self, seq: sg::Seq) -> Vec<u8> {
        match self.protocol {
            Protocol::Cmpp(v) => cm::Pdu::Terminate.encode(seq.n, v),
            Protocol::Smgp => sm::Pdu::Exit.encode(seq.n),
            Protocol::Sgip => sg::Pdu::Unbind.encode(seq),
        }
    }

    /// The answer to the operator's Terminate / Exit / Unbind.
    pub fn exit_resp(&self, seq: sg::Seq) -> Vec<u8> {
        match self.protocol {
            Protocol::Cmpp(v) => cm::Pdu::TerminateResp.encode(seq.n, v),
            Protocol::Smgp => sm::Pdu::ExitResp.encode(seq.n),
            Protocol::Sgip => sg::Pdu::UnbindResp.encode(seq),
        }
    }

    /// The answer to a deliver or report; `ok` false asks the operator to
    /// send it again later (CMPP Result 9 / SMGP Status 1 / SGIP Result 32).
    pub fn deliver_resp(&self, seq: sg::Seq, ctx: AckCtx, ok: bool) -> Vec<u8> {
        match (self.protocol, ctx) {
            (Protocol::Cmpp(v), AckCtx::Cmpp(msg_id)) => cm::Pdu::DeliverResp(cm::Resp {
                msg_id,
                result: if ok { 0 } else { 9 },
            })
            .encode(seq.n, v),
            (Protocol::Smgp, AckCtx::Smgp(msg_id)) => sm::Pdu::DeliverResp(sm::Resp {
                msg_id,
                status: if ok { 0 } else { 1 },
            })
            .encode(seq.n),
            (Protocol::Sgip, AckCtx::Sgip { report }) => {
                let r = if ok { 0 } else { 32 };
                if report {
                    sg::Pdu::ReportResp(r).encode(seq)
                } else {
                    sg::Pdu::DeliverResp(r).encode(seq)
                }
            }
            // A context from another protocol cannot happen; answer in our own form.
            (Protocol::Cmpp(v), _) => cm::Pdu::DeliverResp(cm::Resp {
                msg_id: 0,
                result: if ok { 0 } else { 9 },
            })
            .encode(seq.n, v),
            (Protocol::Smgp, _) => sm::Pdu::DeliverResp(sm::Resp {
                msg_id: [0; 10],
                status: if ok { 0 } else { 1 },
            })
            .encode(seq.n),
            (Protocol::Sgip, _) => sg::Pdu::DeliverResp(if ok { 0 } else { 32 }).encode(seq),
        }
    }

    /// The SGIP listener's answer to the SMG's Bind.
    pub fn bind_resp(&self, seq: sg::Seq, result: u8) -> Vec<u8> {
        sg::Pdu::BindResp(result).encode(seq)
    }

    /// Decodes one frame. Errors close the session (the peer is confused).
    pub fn decode(&self, frame: &[u8]) -> Result<Event, DecodeError> {
        match self.protocol {
            Protocol::Cmpp(v) => decode_cmpp(frame, v),
            Protocol::Smgp => decode_smgp(frame),
            Protocol::Sgip => decode_sgip(frame),
        }
    }
}

fn resp(n: u32, kind: RespKind, status: u32, msg_id: String) -> Event {
    Event::Resp {
        n,
        kind,
        status,
        raw: status,
        msg_id,
    }
}

fn submit_resp(n: u32, status: u32, raw: u32, msg_id: String) -> Event {
    Event::Resp {
        n,
        kind: RespKind::Submit,
        status,
        raw,
        msg_id,
    }
}

fn decode_cmpp(frame: &[u8], v: cm::Version) -> Result<Event, DecodeError> {
    let (n, pdu) = cm::Pdu::decode(frame, v)?;
    let seq = seq_n(n);
    Ok(match pdu {
        cm::Pdu::ConnectResp(c) => resp(n, RespKind::Login, c.status, String::new()),
        cm::Pdu::SubmitResp(r) => submit_resp(
            n,
            cmpp::status_map::submit_status(r.result),
            r.result,
            r.msg_id.to_string(),
        ),
        cm::Pdu::ActiveTestResp => resp(n, RespKind::KeepAlive, 0, String::new()),
        cm::Pdu::TerminateResp => resp(n, RespKind::Exit, 0, String::new()),
        cm::Pdu::DeliverResp(_) | cm::Pdu::Connect(_) | cm::Pdu::Submit(_) => {
            resp(n, RespKind::Other, 0, String::new())
        }
        cm::Pdu::ActiveTest => Event::KeepAlive(seq),
        cm::Pdu::Terminate => Event::Exit(seq),
        cm::Pdu::Deliver(d) => {
            let ctx = AckCtx::Cmpp(d.msg_id);
            if d.registered_delivery == 1 {
                let r = cm::Report::decode(&d.content, v)?;
                let state = cmpp::status_map::receipt_state(&r.stat);
                Event::Report {
                    seq,
                    receipt: receipt(r.msg_id.to_string(), state, Some(r.stat)),
                    ctx,
                }
            } else {
                Event::Mobile {
                    seq,
                    source: d.src_terminal_id,
                    dest: d.dest_id,
                    msg_fmt: d.msg_fmt,
                    udhi: d.tp_udhi != 0,
                    content: d.content,
                    ctx,
                }
            }
        }
    })
}

fn decode_smgp(frame: &[u8]) -> Result<Event, DecodeError> {
    let (n, pdu) = sm::Pdu::decode(frame)?;
    let seq = seq_n(n);
    Ok(match pdu {
        sm::Pdu::LoginResp(l) => resp(n, RespKind::Login, l.status, String::new()),
        sm::Pdu::SubmitResp(r) => submit_resp(
            n,
            smgp::status_map::submit_status(r.status),
            r.status,
            sm::msg_id_text(&r.msg_id),
        ),
        sm::Pdu::ActiveTestResp => resp(n, RespKind::KeepAlive, 0, String::new()),
        sm::Pdu::ExitResp => resp(n, RespKind::Exit, 0, String::new()),
        sm::Pdu::DeliverResp(_) | sm::Pdu::Login(_) | sm::Pdu::Submit(_) => {
            resp(n, RespKind::Other, 0, String::new())
        }
        sm::Pdu::ActiveTest => Event::KeepAlive(seq),
        sm::Pdu::Exit => Event::Exit(seq),
        sm::Pdu::Deliver(d) => {
            let ctx = AckCtx::Smgp(d.msg_id);
            if d.is_report == 1 {
                let r = sm::Report::decode(&d.content)?;
                let state = smgp::status_map::receipt_state(&r.stat, &r.err);
                let code = if r.err.is_empty() {
                    r.stat.clone()
                } else {
                    format!("{}:{}", r.stat, r.err)
                };
                Event::Report {
                    seq,
                    receipt: receipt(sm::msg_id_text(&r.msg_id), state, Some(code)),
                    ctx,
                }
            } else {
                Event::Mobile {
                    seq,
                    source: d.src_term_id,
                    dest: d.dest_term_id,
                    msg_fmt: d.msg_format,
                    udhi: sm::tlv_u8(&d.tlvs, sm::tag::TP_UDHI).unwrap_or(0) != 0,
                    content: d.content,
                    ctx,
                }
            }
        }
    })
}

fn decode_sgip(frame: &[u8]) -> Result<Event, DecodeError> {
    let (seq, pdu) = sg::Pdu::decode(frame)?;
    let n = seq.n;
    Ok(match pdu {
        sg::Pdu::BindResp(r) => resp(n, RespKind::Login, u32::from(r), String::new()),
        sg::Pdu::SubmitResp(r) => submit_resp(
            n,
            sgip::status_map::submit_status(r),
            u32::from(r),
            seq.id_text(),
        ),
        sg::Pdu::UnbindResp => resp(n, RespKind::Exit, 0, String::new()),
        sg::Pdu::DeliverResp(_) | sg::Pdu::ReportResp(_) | sg::Pdu::Submit(_) => {
            resp(n, RespKind::Other, 0, String::new())
        }
        sg::Pdu::Unbind => Event::Exit(seq),
        sg::Pdu::Bind(b) => Event::Bind {
            seq,
            name: b.login_name,
            password: b.login_password,
        },
        sg::Pdu::Report(r) => {
            let state = sgip::status_map::receipt_state(r.state);
            let code = (r.state != 0).then(|| format!("{}:{}", r.state, r.error_code));
            Event::Report {
                seq,
                receipt: receipt(r.submit_seq.id_text(), state, code),
                ctx: AckCtx::Sgip { report: true },
            }
        }
        sg::Pdu::Deliver(d) => Event::Mobile {
            seq,
            source: d.user_number,
            dest: d.sp_number,
            msg_fmt: d.message_coding,
            udhi: d.tp_udhi != 0,
            content: d.content,
            ctx: AckCtx::Sgip { report: false },
        },
    })
}
