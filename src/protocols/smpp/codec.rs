//! Thin helpers over `rusmpp`: a framing codec that never loses sync and never
//! panics on hostile input, PDU builders with every field set explicitly, and
//! extraction of the few fields the gateway cares about.
//!
//! Why not `rusmpp::tokio_codec::CommandCodec` directly? Its decoder returns an
//! error for a PDU whose body fails to decode, which ends a `Framed` stream and
//! may leave the buffer mid-PDU. [`SmppCodec`] splits off exactly
//! `command_length` bytes first and then decodes that frame with rusmpp, so a
//! malformed body becomes a [`Frame::Malformed`] (answerable with a
//! `generic_nack`) and the stream stays in sync. Encoding is delegated to
//! rusmpp's `CommandCodec`.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rusmpp::{
    Command, CommandStatus, Pdu,
    decode::DecodeWithLength,
    pdus::{
        BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp, BindTransmitter,
        BindTransmitterResp, DeliverSm, DeliverSmResp, SubmitSm, SubmitSmResp,
    },
    tlvs::{MessageDeliveryRequestTlvValue, MessageSubmissionRequestTlvValue, TlvTag, TlvValue},
    tokio_codec::CommandCodec,
    types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString},
    values::{
        DataCoding, EsmClass, InterfaceVersion, MessagePayload, MessageState, Npi, PriorityFlag,
        RegisteredDelivery, ReplaceIfPresentFlag, ServiceType, Ton,
    },
};
use tokio_util::bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest PDU accepted from a peer (message_payload may carry up to 64 KiB).
pub const MAX_PDU_LEN: usize = 70_000;

/// Raw SMPP command ids, for matching frames that rusmpp could not decode.
pub mod command_id {
    /// generic_nack
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    /// bind_receiver
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    /// bind_transmitter
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    /// submit_sm
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    /// deliver_sm
    pub const DELIVER_SM: u32 = 0x0000_0005;
    /// unbind
    pub const UNBIND: u32 = 0x0000_0006;
    /// bind_transceiver
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    /// enquire_link
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    /// alert_notification (has no response)
    pub const ALERT_NOTIFICATION: u32 = 0x0000_0102;
    /// submit_sm_resp
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    /// deliver_sm_resp
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    /// Bit set on every response command id.
    pub const RESPONSE_BIT: u32 = 0x8000_0000;
}

/// SMPP command_status values used by the session and the simulator.
pub mod status {
    /// No error.
    pub const ESME_ROK: u32 = 0x00;
    /// Command length is invalid.
    pub const ESME_RINVCMDLEN: u32 = 0x02;
    /// Invalid command id.
    pub const ESME_RINVCMDID: u32 = 0x03;
    /// Incorrect bind status for the given command.
    pub const ESME_RINVBNDSTS: u32 = 0x04;
    /// ESME already in bound state.
    pub const ESME_RALYBND: u32 = 0x05;
    /// System error.
    pub const ESME_RSYSERR: u32 = 0x08;
    /// Invalid source address.
    pub const ESME_RINVSRCADR: u32 = 0x0A;
    /// Invalid destination address.
    pub const ESME_RINVDSTADR: u32 = 0x0B;
    /// Bind failed.
    pub const ESME_RBINDFAIL: u32 = 0x0D;
    /// Invalid password.
    pub const ESME_RINVPASWD: u32 = 0x0E;
    /// Invalid system id.
    pub const ESME_RINVSYSID: u32 = 0x0F;
    /// Message queue full.
    pub const ESME_RMSGQFUL: u32 = 0x14;
    /// submit_sm failed.
    pub const ESME_RSUBMITFAIL: u32 = 0x45;
    /// Throttling error (ESME exceeded allowed message limits).
    pub const ESME_RTHROTTLED: u32 = 0x58;
    /// Temporary application error: the peer should redeliver later.
    pub const ESME_RX_T_APPN: u32 = 0x64;
    /// Permanent application error: the peer should not redeliver.
    pub const ESME_RX_R_APPN: u32 = 0x66;
}

/// One PDU read from the wire. Not boxed: one allocation fewer per PDU.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Frame {
    /// A PDU rusmpp decoded.
    Command(Command),
    /// A correctly framed PDU whose body did not decode; the header is known.
    Malformed(MalformedPdu),
}

/// A framed PDU whose body rusmpp rejected. The header fields are always valid,
/// so a request can be answered with `generic_nack` and a response can be
/// matched to its request.
#[derive(Debug, Clone)]
pub struct MalformedPdu {
    /// Raw command_id from the header.
    pub command_id: u32,
    /// Raw command_status from the header.
    pub command_status: u32,
    /// Sequence number from the header.
    pub sequence_number: u32,
    /// Body bytes (after the 16-byte header); kept only for the PDUs that have a
    /// lenient fallback parser (deliver_sm, submit_sm_resp), empty otherwise.
    pub body: Bytes,
    /// Why rusmpp rejected it.
    pub error: String,
}

/// Length-delimited SMPP codec: frames by `command_length`, decodes each frame
/// with rusmpp, never panics and never desynchronises on a bad body.
#[derive(Debug)]
pub struct SmppCodec {
    encoder: CommandCodec,
    max_len: usize,
}

impl SmppCodec {
    /// Codec accepting PDUs up to [`MAX_PDU_LEN`].
    pub fn new() -> Self {
        Self {
            encoder: CommandCodec::new().without_max_length(),
            max_len: MAX_PDU_LEN,
        }
    }
}

impl Default for SmppCodec {
    fn default() -> Self {
        Self::new()
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Decoder for SmppCodec {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = be_u32(&src[..4]) as usize;
        if !(16..=self.max_len).contains(&len) {
            // The length itself is garbage: there is no way to find the next PDU.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("invalid SMPP command_length {len}"),
            ));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        frame.advance(4);
        let command_id = be_u32(&frame[0..4]);
        let command_status = be_u32(&frame[4..8]);
        let sequence_number = be_u32(&frame[8..12]);
        // Keep a copy of the body only where we have a lenient fallback parser.
        let backup = match command_id {
            command_id::DELIVER_SM | command_id::SUBMIT_SM_RESP => {
                Some(Bytes::copy_from_slice(&frame[12..]))
            }
            _ => None,
        };
        let pdu_len = len - 4;
        let result = catch_unwind(AssertUnwindSafe(|| {
            <Command as DecodeWithLength>::decode(&mut frame, pdu_len)
        }));
        let error = match result {
            Ok(Ok((command, _))) => return Ok(Some(Frame::Command(command))),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "decoder panicked".to_string(),
        };
        Ok(Some(Frame::Malformed(MalformedPdu {
            command_id,
            command_status,
            sequence_number,
            body: backup.unwrap_or_default(),
            error,
        })))
    }
}

impl Encoder<Command> for SmppCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Command, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.encoder.encode(&item, dst).map_err(|e| match e {
            rusmpp::tokio_codec::EncodeError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })
    }
}

// ---------------------------------------------------------------------------
// Field helpers
// ---------------------------------------------------------------------------

fn cstr<const MIN: usize, const MAX: usize>(
    field: &str,
    value: &str,
) -> Result<COctetString<MIN, MAX>, String> {
    COctetString::from_string(value.to_string()).map_err(|e| format!("{field} {value:?}: {e}"))
}

/// Type of number / numbering plan for an address, inferred from its form:
/// alphanumeric → (5, 0); `+` or ≥ 10 digits → international (1, 1);
/// short digits → unknown/ISDN (0, 1). Returns the address without `+`.
pub fn address_ton_npi(addr: &str) -> (u8, u8, &str) {
    let trimmed = addr.trim();
    let (plus, digits) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        (5, 0, trimmed)
    } else if plus || digits.len() >= 10 {
        (1, 1, digits)
    } else {
        (0, 1, digits)
    }
}

/// Everything needed to encode a submit_sm; mirrors the session's
/// `SubmitRequest` so the simulator and tests can share the builder.
#[derive(Debug, Clone, Copy)]
pub struct SubmitFields<'a> {
    /// Sender (alphanumeric, short code or MSISDN).
    pub source_addr: &'a str,
    /// Recipient MSISDN.
    pub dest_addr: &'a str,
    /// Raw esm_class (0x40 = UDH present).
    pub esm_class: u8,
    /// Raw data_coding.
    pub data_coding: u8,
    /// Raw registered_delivery.
    pub registered_delivery: u8,
    /// User data (UDH included); > 254 octets goes into message_payload.
    pub short_message: &'a [u8],
    /// "" or a 16-character SMPP time.
    pub validity_period: &'a str,
    /// Extra (vendor) TLVs as (tag, value), e.g. India DLT ids on 0x1400/0x1401.
    pub tlvs: &'a [(u16, Vec<u8>)],
    /// SAR TLVs (reference, total, seq) for a long message without UDH.
    pub sar: Option<(u16, u8, u8)>,
    /// Put the user data in message_payload even when it would fit short_message.
    pub payload_tlv: bool,
    /// The channel's fixed service_type and TON/NPI (None: empty service_type, TON/NPI
    /// from each address's form).
    pub addressing: Option<&'a super::addressing::Addressing>,
}

/// Builds a submit_sm. Every mandatory field is set explicitly (rusmpp's
/// `EsmClass::default()` would encode 0x08). Err describes an invalid field.
pub fn submit_sm(seq: u32, f: &SubmitFields<'_>) -> Result<Command, String> {
    let (mut src_ton, mut src_npi, src) = address_ton_npi(f.source_addr);
    let (mut dst_ton, mut dst_npi, dst) = address_ton_npi(f.dest_addr);
    let mut service_type = ServiceType::default();
    if let Some(a) = f.addressing {
        src_ton = a.source_ton.unwrap_or(src_ton);
        src_npi = a.source_npi.unwrap_or(src_npi);
        dst_ton = a.dest_ton.unwrap_or(dst_ton);
        dst_npi = a.dest_npi.unwrap_or(dst_npi);
        if !a.service_type.is_empty() {
            service_type = ServiceType::new(cstr("service_type", &a.service_type)?);
        }
    }
    let validity = if f.validity_period.is_empty() {
        EmptyOrFullCOctetString::empty()
    } else {
        EmptyOrFullCOctetString::from_string(f.validity_period.to_string())
            .map_err(|e| format!("validity_period {:?}: {e}", f.validity_period))?
    };
    let mut sm = SubmitSm::builder()
        .service_type(service_type)
        .source_addr_ton(Ton::from(src_ton))
        .source_addr_npi(Npi::from(src_npi))
        .source_addr(cstr("source_addr", src)?)
        .dest_addr_ton(Ton::from(dst_ton))
        .dest_addr_npi(Npi::from(dst_npi))
        .destination_addr(cstr("dest_addr", dst)?)
        .esm_class(EsmClass::from(f.esm_class))
        .protocol_id(0)
        .priority_flag(PriorityFlag::from(0u8))
        .schedule_delivery_time(EmptyOrFullCOctetString::empty())
        .validity_period(validity)
        .registered_delivery(RegisteredDelivery::from(f.registered_delivery))
        .replace_if_present_flag(ReplaceIfPresentFlag::from(0u8))
        .data_coding(DataCoding::from(f.data_coding))
        .sm_default_msg_id(0)
        .build();
    for (tag, value) in f.tlvs {
        sm.push_tlv(MessageSubmissionRequestTlvValue::Other {
            tag: TlvTag::Other(*tag),
            value: AnyOctetString::from_slice(value),
        });
    }
    if let Some((reference, total, seq)) = f.sar {
        sm.push_tlv(MessageSubmissionRequestTlvValue::SarMsgRefNum(reference));
        sm.push_tlv(MessageSubmissionRequestTlvValue::SarTotalSegments(total));
        sm.push_tlv(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(seq));
    }
    if f.short_message.len() <= 254 && !f.payload_tlv {
        let sm_bytes =
            OctetString::from_slice(f.short_message).map_err(|e| format!("short_message: {e}"))?;
        sm.set_short_message(sm_bytes);
    } else {
        sm.set_short_message(OctetString::empty());
        sm.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
            MessagePayload::new(AnyOctetString::from_slice(f.short_message)),
        ));
    }
    Ok(Command::new(CommandStatus::EsmeRok, seq, sm))
}

/// The SMPP 3.4 relative time (§7.1.1, `YYMMDDhhmmss000R`) for `seconds` from now,
/// as a submit's validity_period: at least one minute (a shorter one is refused or
/// rounded by many SMSCs), at most 99 days, in days/hours/minutes/seconds.
pub fn relative_validity(seconds: u64) -> String {
    let s = seconds.clamp(60, 99 * 86_400 + 86_399);
    let (days, rest) = (s / 86_400, s % 86_400);
    format!(
        "0000{days:02}{:02}{:02}{:02}000R",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Which bind PDU to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    /// bind_transmitter
    Transmitter,
    /// bind_receiver
    Receiver,
    /// bind_transceiver
    Transceiver,
}

/// Builds a bind_transmitter/receiver/transceiver (SMPP 3.4).
pub fn bind(
    seq: u32,
    kind: BindKind,
    system_id: &str,
    password: &str,
    system_type: &str,
) -> Result<Command, String> {
    let system_id: COctetString<1, 16> = cstr("system_id", system_id)?;
    let password: COctetString<1, 9> = cstr("password", password)?;
    let system_type: COctetString<1, 13> = cstr("system_type", system_type)?;
    macro_rules! build {
        ($ty:ident) => {
            $ty::builder()
                .system_id(system_id)
                .password(password)
                .system_type(system_type)
                .interface_version(InterfaceVersion::Smpp3_4)
                .addr_ton(Ton::from(0u8))
                .addr_npi(Npi::from(0u8))
                .address_range(COctetString::empty())
                .build()
        };
    }
    let pdu: Pdu = match kind {
        BindKind::Transmitter => build!(BindTransmitter).into(),
        BindKind::Receiver => build!(BindReceiver).into(),
        BindKind::Transceiver => build!(BindTransceiver).into(),
    };
    Ok(Command::new(CommandStatus::EsmeRok, seq, pdu))
}

/// Builds the bind response matching `kind` (used by the simulator).
pub fn bind_resp(seq: u32, kind: BindKind, status: u32, system_id: &str) -> Command {
    let sid: COctetString<1, 16> = cstr("system_id", system_id).unwrap_or_default();
    let pdu: Pdu = match kind {
        BindKind::Transmitter => BindTransmitterResp::new(sid, None).into(),
        BindKind::Receiver => BindReceiverResp::new(sid, None).into(),
        BindKind::Transceiver => BindTransceiverResp::new(sid, None).into(),
    };
    Command::new(CommandStatus::from(status), seq, pdu)
}

/// Builds a submit_sm_resp (used by the simulator). An empty id is sent for
/// error responses.
pub fn submit_sm_resp(seq: u32, status: u32, message_id: &str) -> Command {
    let id: COctetString<1, 65> = cstr("message_id", message_id).unwrap_or_default();
    Command::new(
        CommandStatus::from(status),
        seq,
        SubmitSmResp::new(id, Vec::new()),
    )
}

/// Builds a deliver_sm_resp with an empty message_id.
pub fn deliver_sm_resp(seq: u32, status: u32) -> Command {
    Command::new(
        CommandStatus::from(status),
        seq,
        DeliverSmResp::new(COctetString::empty(), Vec::new()),
    )
}

/// Builds a generic_nack.
pub fn generic_nack(seq: u32, status: u32) -> Command {
    Command::new(CommandStatus::from(status), seq, Pdu::GenericNack)
}

/// Builds an enquire_link.
pub fn enquire_link(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink)
}

/// Builds an enquire_link_resp.
pub fn enquire_link_resp(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)
}

/// Builds an unbind.
pub fn unbind(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind)
}

/// Builds an unbind_resp.
pub fn unbind_resp(seq: u32) -> Command {
    Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp)
}

/// A delivery receipt to encode as deliver_sm (used by the simulator).
#[derive(Debug, Clone)]
pub struct ReceiptPdu<'a> {
    /// Receipt source = original destination.
    pub source_addr: &'a str,
    /// Receipt destination = original source.
    pub dest_addr: &'a str,
    /// Receipt text (`id:... stat:... text:`).
    pub text: &'a str,
    /// receipted_message_id TLV value.
    pub receipted_message_id: &'a str,
    /// message_state TLV value (2 = delivered, 5 = undeliverable, ...).
    pub message_state: u8,
}

/// Builds a receipt deliver_sm: esm_class 0x04, text body, TLVs
/// receipted_message_id and message_state.
pub fn deliver_sm_receipt(seq: u32, r: &ReceiptPdu<'_>) -> Result<Command, String> {
    let (src_ton, src_npi, src) = address_ton_npi(r.source_addr);
    let (dst_ton, dst_npi, dst) = address_ton_npi(r.dest_addr);
    let text = r.text.as_bytes();
    let text = &text[..text.len().min(254)];
    let dsm = DeliverSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::from(src_ton))
        .source_addr_npi(Npi::from(src_npi))
        .source_addr(cstr("source_addr", src)?)
        .dest_addr_ton(Ton::from(dst_ton))
        .dest_addr_npi(Npi::from(dst_npi))
        .destination_addr(cstr("dest_addr", dst)?)
        .esm_class(EsmClass::from(0x04))
        .protocol_id(0)
        .priority_flag(PriorityFlag::from(0u8))
        .schedule_delivery_time(EmptyOrFullCOctetString::empty())
        .validity_period(EmptyOrFullCOctetString::empty())
        .registered_delivery(RegisteredDelivery::from(0u8))
        .replace_if_present_flag(ReplaceIfPresentFlag::from(0u8))
        .data_coding(DataCoding::from(0u8))
        .sm_default_msg_id(0)
        .short_message(OctetString::from_slice(text).map_err(|e| e.to_string())?)
        .tlvs(vec![
            MessageDeliveryRequestTlvValue::ReceiptedMessageId(cstr(
                "receipted_message_id",
                r.receipted_message_id,
            )?),
            MessageDeliveryRequestTlvValue::MessageState(MessageState::from(r.message_state)),
        ])
        .build();
    Ok(Command::new(CommandStatus::EsmeRok, seq, dsm))
}

/// A mobile-originated message to encode as deliver_sm (used by tests).
pub fn deliver_sm_mo(
    seq: u32,
    source: &str,
    dest: &str,
    data_coding: u8,
    payload: &[u8],
) -> Result<Command, String> {
    deliver_sm_mo_with_esm(seq, source, dest, 0, data_coding, payload)
}

/// One part of a long MO: `payload` starts with its UDH (esm_class 0x40).
pub fn deliver_sm_mo_part(
    seq: u32,
    source: &str,
    dest: &str,
    data_coding: u8,
    payload: &[u8],
) -> Result<Command, String> {
    deliver_sm_mo_with_esm(seq, source, dest, 0x40, data_coding, payload)
}

fn deliver_sm_mo_with_esm(
    seq: u32,
    source: &str,
    dest: &str,
    esm_class: u8,
    data_coding: u8,
    payload: &[u8],
) -> Result<Command, String> {
    let (src_ton, src_npi, src) = address_ton_npi(source);
    let (dst_ton, dst_npi, dst) = address_ton_npi(dest);
    let dsm = DeliverSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::from(src_ton))
        .source_addr_npi(Npi::from(src_npi))
        .source_addr(cstr("source_addr", src)?)
        .dest_addr_ton(Ton::from(dst_ton))
        .dest_addr_npi(Npi::from(dst_npi))
        .destination_addr(cstr("dest_addr", dst)?)
        .esm_class(EsmClass::from(esm_class))
        .protocol_id(0)
        .priority_flag(PriorityFlag::from(0u8))
        .schedule_delivery_time(EmptyOrFullCOctetString::empty())
        .validity_period(EmptyOrFullCOctetString::empty())
        .registered_delivery(RegisteredDelivery::from(0u8))
        .replace_if_present_flag(ReplaceIfPresentFlag::from(0u8))
        .data_coding(DataCoding::from(data_coding))
        .sm_default_msg_id(0)
        .short_message(OctetString::from_slice(payload).map_err(|e| e.to_string())?)
        .build();
    Ok(Command::new(CommandStatus::EsmeRok, seq, dsm))
}

// ---------------------------------------------------------------------------
// Field extraction
// ---------------------------------------------------------------------------

/// The parts of a deliver_sm the gateway acts on, from a decoded PDU or from
/// the lenient fallback parser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverFields {
    /// source_addr.
    pub source: String,
    /// destination_addr.
    pub dest: String,
    /// Raw esm_class.
    pub esm_class: u8,
    /// Raw data_coding.
    pub data_coding: u8,
    /// short_message, or the message_payload TLV when short_message is empty.
    pub payload: Vec<u8>,
    /// receipted_message_id TLV (0x001E).
    pub receipted_message_id: Option<String>,
    /// message_state TLV (0x0427).
    pub message_state: Option<u8>,
    /// network_error_code TLV (0x0423): (network type, error code).
    pub network_error_code: Option<(u8, u16)>,
    /// SAR TLVs of a concatenated MO part: (sar_msg_ref_num, sar_total_segments,
    /// sar_segment_seqnum); present only when all three are.
    pub sar: Option<(u16, u8, u8)>,
}

/// Collects the three SAR TLVs, which may come in any order.
#[derive(Default)]
struct SarParts(Option<u16>, Option<u8>, Option<u8>);

impl SarParts {
    fn finish(self) -> Option<(u16, u8, u8)> {
        Some((self.0?, self.1?, self.2?))
    }
}

impl DeliverFields {
    /// Extracts the fields from a decoded deliver_sm.
    pub fn from_pdu(d: &DeliverSm) -> Self {
        let mut out = DeliverFields {
            source: d.source_addr.as_str().to_string(),
            dest: d.destination_addr.as_str().to_string(),
            esm_class: u8::from(d.esm_class),
            data_coding: u8::from(d.data_coding),
            payload: d.short_message().as_ref().to_vec(),
            ..Default::default()
        };
        let mut sar = SarParts::default();
        for tlv in d.tlvs() {
            match tlv.value() {
                Some(TlvValue::SarMsgRefNum(r)) => sar.0 = Some(*r),
                Some(TlvValue::SarTotalSegments(t)) => sar.1 = Some(*t),
                Some(TlvValue::SarSegmentSeqnum(n)) => sar.2 = Some(*n),
                Some(TlvValue::ReceiptedMessageId(id)) => {
                    out.receipted_message_id = Some(id.as_str().to_string())
                }
                Some(TlvValue::MessageState(s)) => out.message_state = Some(u8::from(*s)),
                Some(TlvValue::NetworkErrorCode(n)) => {
                    out.network_error_code = Some((u8::from(n.network_type), n.error_code))
                }
                Some(TlvValue::MessagePayload(p)) if out.payload.is_empty() => {
                    out.payload = p.value.as_ref().to_vec()
                }
                _ => {}
            }
        }
        out.sar = sar.finish();
        out
    }

    /// Lenient parse of a deliver_sm body (after the 16-byte header) that
    /// rusmpp rejected: non-ASCII addresses, over-long strings, odd TLVs.
    /// None only if the mandatory part is truncated.
    pub fn parse_lenient(body: &[u8]) -> Option<Self> {
        let mut r = Reader { b: body, pos: 0 };
        r.cstr()?; // service_type
        r.u8()?;
        r.u8()?;
        let source = r.cstr()?;
        r.u8()?;
        r.u8()?;
        let dest = r.cstr()?;
        let esm_class = r.u8()?;
        r.u8()?; // protocol_id
        r.u8()?; // priority_flag
        r.cstr()?; // schedule_delivery_time
        r.cstr()?; // validity_period
        r.u8()?; // registered_delivery
        r.u8()?; // replace_if_present_flag
        let data_coding = r.u8()?;
        r.u8()?; // sm_default_msg_id
        let sm_len = r.u8()? as usize;
        let short_message = r.take(sm_len)?.to_vec();
        let mut out = DeliverFields {
            source: String::from_utf8_lossy(source).into_owned(),
            dest: String::from_utf8_lossy(dest).into_owned(),
            esm_class,
            data_coding,
            payload: short_message,
            ..Default::default()
        };
        // TLVs: stop quietly at the first truncated one.
        let mut sar = SarParts::default();
        while let (Some(tag), Some(len)) = (r.u16(), r.u16()) {
            let Some(value) = r.take(len as usize) else {
                break;
            };
            match tag {
                0x001E => {
                    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                    out.receipted_message_id =
                        Some(String::from_utf8_lossy(&value[..end]).into_owned());
                }
                0x0427 if !value.is_empty() => out.message_state = Some(value[0]),
                0x0423 if value.len() >= 3 => {
                    out.network_error_code =
                        Some((value[0], u16::from_be_bytes([value[1], value[2]])))
                }
                0x0424 if out.payload.is_empty() => out.payload = value.to_vec(),
                0x020C if value.len() == 2 => {
                    sar.0 = Some(u16::from_be_bytes([value[0], value[1]]))
                }
                0x020E if value.len() == 1 => sar.1 = Some(value[0]),
                0x020F if value.len() == 1 => sar.2 = Some(value[0]),
                _ => {}
            }
        }
        out.sar = sar.finish();
        Some(out)
    }
}

/// Lenient parse of a submit_sm_resp body: the message_id up to the first NUL
/// (or the end), lossily decoded.
pub fn parse_submit_sm_resp_lenient(body: &[u8]) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).trim().to_string()
}

/// Fields of a submit_sm the simulator records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitSmFields {
    /// source_addr.
    pub source: String,
    /// destination_addr.
    pub dest: String,
    /// Raw esm_class.
    pub esm_class: u8,
    /// Raw data_coding.
    pub data_coding: u8,
    /// Raw registered_delivery.
    pub registered_delivery: u8,
    /// short_message, or message_payload when short_message is empty.
    pub short_message: Vec<u8>,
    /// TLVs this codec does not know (vendor tags such as the DLT ids), as (tag, value).
    pub vendor_tlvs: Vec<(u16, Vec<u8>)>,
    /// The data came in message_payload.
    pub message_payload: bool,
    /// SAR TLVs (reference, total, seq) when all three were sent.
    pub sar: Option<(u16, u8, u8)>,
    /// service_type as sent ("" = default).
    pub service_type: String,
    /// (source_addr_ton, source_addr_npi, dest_addr_ton, dest_addr_npi).
    pub ton_npi: (u8, u8, u8, u8),
    /// validity_period as sent ("" = the SMSC's default).
    pub validity_period: String,
}

impl SubmitSmFields {
    /// Extracts the fields from a decoded submit_sm.
    pub fn from_pdu(s: &SubmitSm) -> Self {
        let mut short_message = s.short_message().as_ref().to_vec();
        let vendor_tlvs = s
            .tlvs()
            .iter()
            .filter_map(|tlv| match tlv.value() {
                Some(TlvValue::Other {
                    tag: TlvTag::Other(t),
                    value,
                }) => Some((*t, value.as_ref().to_vec())),
                _ => None,
            })
            .collect();
        let mut message_payload = false;
        let mut sar = SarParts::default();
        for tlv in s.tlvs() {
            match tlv.value() {
                Some(TlvValue::MessagePayload(p))
                    if short_message.is_empty() && tlv.tag() == TlvTag::MessagePayload =>
                {
                    short_message = p.value.as_ref().to_vec();
                    message_payload = true;
                }
                Some(TlvValue::SarMsgRefNum(r)) => sar.0 = Some(*r),
                Some(TlvValue::SarTotalSegments(t)) => sar.1 = Some(*t),
                Some(TlvValue::SarSegmentSeqnum(n)) => sar.2 = Some(*n),
                _ => {}
            }
        }
        SubmitSmFields {
            source: s.source_addr.as_str().to_string(),
            dest: s.destination_addr.as_str().to_string(),
            esm_class: u8::from(s.esm_class),
            data_coding: u8::from(s.data_coding),
            registered_delivery: u8::from(s.registered_delivery),
            short_message,
            vendor_tlvs,
            message_payload,
            sar: sar.finish(),
            service_type: s.service_type.value().as_str().to_string(),
            ton_npi: (
                u8::from(s.source_addr_ton),
                u8::from(s.source_addr_npi),
                u8::from(s.dest_addr_ton),
                u8::from(s.dest_addr_npi),
            ),
            validity_period: s.validity_period.as_str().to_string(),
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    /// A C-octet string without its NUL.
    fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.b.get(self.pos..)?;
        let n = rest.iter().position(|&b| b == 0)?;
        self.pos += n + 1;
        Some(&rest[..n])
    }
}

/// What a connection's writer task is told: send a PDU, or flush, shut the socket down
/// and stop. Used by both the ESME session and the SMSC simulator. Not boxed: a box per
/// PDU costs more than moving it.
#[allow(clippy::large_enum_variant)]
pub enum Outgoing {
    Pdu(Command),
    Close,
}

/// Most PDUs fed to the socket buffer before a flush is forced.
pub const MAX_WRITE_BATCH: usize = 1024;

/// Writes PDUs from `rx` in batches: feeds everything already queued (at most
/// `MAX_WRITE_BATCH`, after yielding once to the tasks about to queue more), then
/// flushes once. Returns Ok when the queue closes or after
/// `Outgoing::Close` (flushed, socket shut down); Err on the first write error.
pub async fn write_pdus(
    writer: &mut tokio_util::codec::FramedWrite<tokio::net::tcp::OwnedWriteHalf, SmppCodec>,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
) -> io::Result<()> {
    use futures::SinkExt;
    use tokio::io::AsyncWriteExt;
    loop {
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        let mut next = Some(first);
        let mut fed = 0;
        let mut close = false;
        let mut yielded = false;
        while let Some(item) = next.take() {
            match item {
                Outgoing::Pdu(cmd) => writer.feed(cmd).await?,
                Outgoing::Close => {
                    close = true;
                    break;
                }
            }
            fed += 1;
            if fed < MAX_WRITE_BATCH {
                next = rx.try_recv().ok();
                if next.is_none() && !yielded {
                    // Let the tasks that are about to queue a PDU run once before the
                    // write: one syscall for several PDUs instead of one each.
                    yielded = true;
                    tokio::task::yield_now().await;
                    next = rx.try_recv().ok();
                }
            }
        }
        writer.flush().await?;
        if close {
            let _ = writer.get_mut().shutdown().await;
            return Ok(());
        }
    }
}
