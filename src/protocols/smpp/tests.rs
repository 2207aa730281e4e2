//! Codec tests and in-process integration tests of [`Session`] against the
//! SMSC simulator (`crate::sim::smsc`) and against a scripted fake SMSC.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::{CommandId, Pdu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::codec::{self, DeliverFields, Frame, SmppCodec, SubmitFields, command_id, status};
use super::receipt::{ReceiptState, id_keys};
use super::session::{
    BindMode, Inbound, Session, SessionConfig, SessionError, SubmitOutcome, SubmitRequest,
};
use crate::sim::smsc::{IdFormat, SmscSim, SmscSimArgs};

const WAIT: Duration = Duration::from_secs(20);

fn encode(cmd: rusmpp::Command) -> BytesMut {
    let mut buf = BytesMut::new();
    SmppCodec::new().encode(cmd, &mut buf).unwrap();
    buf
}

fn sample_submit() -> SubmitFields<'static> {
    SubmitFields {
        source_addr: "ACME",
        dest_addr: "+447700900123",
        esm_class: 0x00,
        data_coding: 0x00,
        registered_delivery: 0x01,
        short_message: b"hello",
        validity_period: "",
        tlvs: &[],
        sar: None,
        payload_tlv: false,
        addressing: None,
    }
}

#[test]
fn submit_sm_encodes_every_field_explicitly() {
    let buf = encode(codec::submit_sm(7, &sample_submit()).unwrap());
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 7]); // id, status, seq
    expected.push(0); // service_type
    expected.extend_from_slice(&[5, 0]); // alphanumeric source
    expected.extend_from_slice(b"ACME\0");
    expected.extend_from_slice(&[1, 1]); // international destination, '+' stripped
    expected.extend_from_slice(b"447700900123\0");
    expected.push(0x00); // esm_class: NOT rusmpp's default 0x08
    expected.extend_from_slice(&[0, 0]); // protocol_id, priority
    expected.extend_from_slice(&[0, 0]); // schedule, validity
    expected.push(0x01); // registered_delivery
    expected.extend_from_slice(&[0, 0, 0]); // replace, data_coding, sm_default_msg_id
    expected.push(5);
    expected.extend_from_slice(b"hello");
    assert_eq!(&buf[4..], &expected[..]);
    assert_eq!(
        u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize,
        buf.len()
    );

    // UDH flag, UCS-2 and a validity period survive; long payloads use message_payload.
    let long = vec![0x41u8; 300];
    let f = SubmitFields {
        esm_class: 0x40,
        data_coding: 0x08,
        validity_period: "000001000000000R",
        sar: None,
        payload_tlv: false,
        short_message: &long,
        ..sample_submit()
    };
    let mut buf = encode(codec::submit_sm(8, &f).unwrap());
    let Some(Frame::Command(cmd)) = SmppCodec::new().decode(&mut buf).unwrap() else {
        panic!("decode failed");
    };
    let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else {
        panic!("not a submit_sm")
    };
    let fields = codec::SubmitSmFields::from_pdu(sm);
    assert_eq!(fields.esm_class, 0x40);
    assert_eq!(fields.data_coding, 0x08);
    assert_eq!(fields.short_message, long);
    assert_eq!(sm.validity_period.as_str(), "000001000000000R");

    // Invalid fields are reported, not panicked on.
    let bad = SubmitFields {
        validity_period: "tomorrow",
        ..sample_submit()
    };
    assert!(codec::submit_sm(1, &bad).is_err());
    let bad = SubmitFields {
        dest_addr: "123456789012345678901234",
        ..sample_submit()
    };
    assert!(codec::submit_sm(1, &bad).is_err());
}

#[test]
fn relative_validity_is_smpp_relative_time() {
    assert_eq!(codec::relative_validity(300), "000000000500000R");
    assert_eq!(codec::relative_validity(86_400), "000001000000000R");
    assert_eq!(codec::relative_validity(604_800), "000007000000000R");
    assert_eq!(codec::relative_validity(90_061), "000001010101000R");
    // At least one minute, at most 99 days 23:59:59.
    assert_eq!(codec::relative_validity(0), "000000000100000R");
    assert_eq!(codec::relative_validity(u64::MAX), "000099235959000R");
    for s in [60, 3599, 86_399, 1_000_000] {
        let v = codec::relative_validity(s);
        assert_eq!(v.len(), 16, "{v}");
        assert!(v.ends_with("000R"), "{v}");
    }
}

#[test]
fn channel_addressing_overrides_service_type_and_ton_npi() {
    let a = super::Addressing {
        service_type: "CMT".into(),
        source_ton: Some(1),
        source_npi: Some(1),
        dest_ton: Some(2),
        dest_npi: Some(8),
    };
    let f = SubmitFields {
        addressing: Some(&a),
        ..sample_submit()
    };
    let mut buf = encode(codec::submit_sm(9, &f).unwrap());
    let Some(Frame::Command(cmd)) = SmppCodec::new().decode(&mut buf).unwrap() else {
        panic!("decode failed");
    };
    let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else {
        panic!("not a submit_sm")
    };
    let fields = codec::SubmitSmFields::from_pdu(sm);
    assert_eq!(fields.service_type, "CMT");
    assert_eq!(fields.ton_npi, (1, 1, 2, 8));
    assert_eq!(fields.source, "ACME");
    // Unset options keep the automatic choice (alphanumeric 5/0, international 1/1).
    let partial = super::Addressing {
        dest_npi: Some(0),
        ..Default::default()
    };
    let f = SubmitFields {
        addressing: Some(&partial),
        ..sample_submit()
    };
    let mut buf = encode(codec::submit_sm(10, &f).unwrap());
    let Some(Frame::Command(cmd)) = SmppCodec::new().decode(&mut buf).unwrap() else {
        panic!("decode failed");
    };
    let Some(Pdu::SubmitSm(sm)) = cmd.pdu() else {
        panic!("not a submit_sm")
    };
    let fields = codec::SubmitSmFields::from_pdu(sm);
    assert_eq!(
        (fields.service_type.as_str(), fields.ton_npi),
        ("", (5, 0, 1, 0))
    );
}

#[test]
fn codec_survives_malformed_pdus() {
    let mut codec = SmppCodec::new();
    let mut buf = BytesMut::new();
    // A submit_sm whose body is truncated garbage, then a valid enquire_link.
    let body = [0xFFu8; 5];
    buf.put_u32(16 + body.len() as u32);
    buf.put_u32(command_id::SUBMIT_SM);
    buf.put_u32(0);
    buf.put_u32(42);
    buf.put_slice(&body);
    buf.extend_from_slice(&encode(codec::enquire_link(43)));
    match codec.decode(&mut buf).unwrap() {
        Some(Frame::Malformed(m)) => {
            assert_eq!(m.sequence_number, 42);
            assert_eq!(m.command_id, command_id::SUBMIT_SM);
        }
        other => panic!("expected malformed, got {other:?}"),
    }
    match codec.decode(&mut buf).unwrap() {
        Some(Frame::Command(c)) => {
            assert_eq!(c.id(), CommandId::EnquireLink);
            assert_eq!(c.sequence_number, 43);
        }
        other => panic!("expected enquire_link, got {other:?}"),
    }
    assert!(codec.decode(&mut buf).unwrap().is_none());

    // Partial input waits for more.
    let full = encode(codec::enquire_link(1));
    let mut part = BytesMut::from(&full[..10]);
    assert!(codec.decode(&mut part).unwrap().is_none());
    part.extend_from_slice(&full[10..]);
    assert!(matches!(
        codec.decode(&mut part).unwrap(),
        Some(Frame::Command(_))
    ));

    // A garbage length cannot be resynchronised: error, never panic.
    let mut bad = BytesMut::from(&[0u8, 0, 0, 3, 1, 2, 3, 4][..]);
    assert!(codec.decode(&mut bad).is_err());
    let mut bad = BytesMut::from(&[0xFFu8, 0xFF, 0xFF, 0xFF][..]);
    assert!(codec.decode(&mut bad).is_err());

    // Random bodies under every command id never panic.
    let mut seed = 0x1234_5678u32;
    for id in [
        1u32,
        2,
        4,
        5,
        9,
        0x15,
        0x8000_0004,
        0x8000_0005,
        0x8000_0009,
        0x103,
        0x21,
    ] {
        for len in 0..64usize {
            let mut b = BytesMut::new();
            b.put_u32(16 + len as u32);
            b.put_u32(id);
            b.put_u32(0);
            b.put_u32(1);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b.put_u8((seed >> 16) as u8);
            }
            let _ = SmppCodec::new().decode(&mut b).unwrap();
            assert!(b.is_empty());
        }
    }
}

#[test]
fn lenient_deliver_sm_parse() {
    let receipt = codec::deliver_sm_receipt(
        9,
        &codec::ReceiptPdu {
            source_addr: "447700900123",
            dest_addr: "ACME",
            text: "id:ABC stat:DELIVRD",
            receipted_message_id: "ABC",
            message_state: 2,
        },
    )
    .unwrap();
    let buf = encode(receipt);
    let f = DeliverFields::parse_lenient(&buf[16..]).unwrap();
    assert_eq!(f.esm_class, 0x04);
    assert_eq!(f.receipted_message_id.as_deref(), Some("ABC"));
    assert_eq!(f.message_state, Some(2));
    assert_eq!(f.payload, b"id:ABC stat:DELIVRD");
    assert_eq!(f.source, "447700900123");

    // Non-ASCII source (rusmpp rejects it) still parses leniently.
    let mut body = buf[16..].to_vec();
    let pos = body.iter().position(|&b| b == b'4').unwrap();
    body[pos] = 0xE9;
    assert!(DeliverFields::parse_lenient(&body).is_some());
    // Truncated mandatory part.
    assert!(DeliverFields::parse_lenient(&body[..10]).is_none());
}

fn sim_args() -> SmscSimArgs {
    SmscSimArgs {
        listen: "127.0.0.1:0".into(),
        dlr_delay_ms: 10,
        seed: 7,
        ..SmscSimArgs::default()
    }
}

async fn start_sim(args: SmscSimArgs) -> SmscSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    SmscSim::start(listener, args).await.unwrap()
}

fn cfg_for(sim: &SmscSim, window: usize) -> SessionConfig {
    let addr = sim.local_addr();
    let mut cfg = SessionConfig::new(addr.ip().to_string(), addr.port(), "smppclient", "password");
    cfg.window = window;
    cfg.response_timeout = Duration::from_secs(5);
    cfg
}

fn request(i: usize, registered_delivery: u8) -> SubmitRequest {
    SubmitRequest {
        source_addr: "ACME".into(),
        dest_addr: format!("+4477009{i:05}"),
        esm_class: 0,
        data_coding: 0,
        registered_delivery,
        short_message: format!("message {i}").into_bytes(),
        validity_period: String::new(),
        message_id: format!("m{i}"),
        tlvs: Vec::new(),
        ..SubmitRequest::default()
    }
}

/// Accepts every receipt; returns the receipts seen once `expected` arrived.
fn spawn_receipt_acceptor(
    mut rx: mpsc::Receiver<Inbound>,
    expected: usize,
) -> tokio::task::JoinHandle<Vec<super::Receipt>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < expected {
            match rx.recv().await {
                Some(Inbound::Receipt { receipt, ack }) => {
                    ack.accept();
                    seen.push(receipt);
                }
                Some(Inbound::Mobile { ack, .. }) => ack.accept(),
                None => break,
            }
        }
        seen
    })
}

async fn wait_for_stats(sim: &SmscSim, pred: impl Fn(&crate::sim::StatsSnapshot) -> bool) {
    let ok = timeout(WAIT, async {
        loop {
            if pred(&sim.stats()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "stats never matched: {:?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_submits_and_receipts() {
    let sim = start_sim(sim_args()).await;
    let (tx, rx) = mpsc::channel(256);
    let session = Session::connect(cfg_for(&sim, 10), tx).await.unwrap();
    let receipts = spawn_receipt_acceptor(rx, 1000);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let s = session.clone();
        tasks.spawn(async move { s.submit(request(i, 1)).await });
    }
    let mut ids = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap().unwrap() {
            SubmitOutcome::Accepted { message_id } => assert!(ids.insert(message_id)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ids.len(), 1000);

    let receipts = timeout(WAIT, receipts).await.unwrap().unwrap();
    assert_eq!(receipts.len(), 1000);
    let receipt_ids: HashSet<String> = receipts.iter().map(|r| r.smsc_message_id.clone()).collect();
    assert_eq!(receipt_ids, ids);
    assert!(receipts.iter().all(|r| r.state == ReceiptState::Delivered));
    assert!(receipts.iter().all(|r| r.text_fields.is_some()));

    wait_for_stats(&sim, |s| s.receipts_acked == 1000).await;
    let st = sim.stats();
    assert_eq!(st.binds, 1);
    assert_eq!(st.submits, 1000);
    assert_eq!(st.accepted, 1000);
    assert_eq!(st.receipts_sent, 1000);
    assert_eq!(st.deliver_sm_resp_errors, 0);

    session.unbind().await;
    assert!(session.is_closed());
    assert!(matches!(
        session.submit(request(0, 0)).await,
        Err(SessionError::Closed)
    ));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_submit_is_rejected_0x58() {
    let sim = start_sim(SmscSimArgs {
        throttle_rate: 1.0,
        ..sim_args()
    })
    .await;
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg_for(&sim, 4), tx).await.unwrap();
    for i in 0..5 {
        let out = session.submit(request(i, 1)).await.unwrap();
        assert_eq!(
            out,
            SubmitOutcome::Rejected {
                command_status: 0x58
            }
        );
    }
    let st = sim.stats();
    assert_eq!((st.throttled, st.accepted, st.receipts_sent), (5, 0, 0));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_gives_permanent_0x45() {
    let sim = start_sim(SmscSimArgs {
        error_rate: 1.0,
        ..sim_args()
    })
    .await;
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg_for(&sim, 4), tx).await.unwrap();
    let out = session.submit(request(1, 1)).await.unwrap();
    assert_eq!(
        out,
        SubmitOutcome::Rejected {
            command_status: 0x45
        }
    );
    assert_eq!(
        super::classify_submit_status(0x45),
        super::SubmitErrorClass::Permanent
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_bind_rejected() {
    let sim = start_sim(sim_args()).await;
    let mut cfg = cfg_for(&sim, 1);
    cfg.password = "wrong".into();
    let (tx, _rx) = mpsc::channel(8);
    match Session::connect(cfg.clone(), tx.clone()).await {
        Err(SessionError::BindRejected { command_status }) => {
            assert_eq!(command_status, status::ESME_RINVPASWD)
        }
        other => panic!("expected BindRejected, got {other:?}"),
    }
    cfg.password = "password".into();
    cfg.system_id = "intruder".into();
    match Session::connect(cfg, tx).await {
        Err(SessionError::BindRejected { command_status }) => {
            assert_eq!(command_status, status::ESME_RINVSYSID)
        }
        other => panic!("expected BindRejected, got {other:?}"),
    }
    assert_eq!(sim.stats().binds, 0);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_is_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let cfg = SessionConfig::new("127.0.0.1", port, "a", "b");
    let (tx, _rx) = mpsc::channel(1);
    assert!(matches!(
        Session::connect(cfg, tx).await,
        Err(SessionError::Connect(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_after_closes_session_and_fails_in_flight() {
    let sim = start_sim(SmscSimArgs {
        drop_after: Some(5),
        submit_latency_ms: 50,
        ..sim_args()
    })
    .await;
    let (tx, _rx) = mpsc::channel(64);
    let session = Session::connect(cfg_for(&sim, 10), tx).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let s = session.clone();
        tasks.spawn(async move { s.submit(request(i, 0)).await });
    }
    timeout(WAIT, session.closed()).await.unwrap();
    assert!(session.is_closed());
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Err(SessionError::Closed) => failed += 1,
            Ok(SubmitOutcome::Accepted { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The 5th and everything after it were in flight when the SMSC dropped us.
    assert!(failed >= 6, "failed = {failed}");
    assert!(matches!(
        session.submit(request(0, 0)).await,
        Err(SessionError::Closed)
    ));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enquire_link_keeps_rtt_and_detects_dead_peer() {
    let sim = start_sim(sim_args()).await;
    let mut cfg = cfg_for(&sim, 2);
    cfg.enquire_link_interval = Duration::from_millis(50);
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg, tx).await.unwrap();
    timeout(WAIT, async {
        while session.last_enquire_link_rtt().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(session.last_enquire_link_rtt().unwrap() < Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!session.is_closed());
    sim.shutdown().await.unwrap();
    timeout(WAIT, session.closed()).await.unwrap();

    // A peer that accepts the bind but never answers enquire_link.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(stream, SmppCodec::new());
        if let Some(Ok(Frame::Command(bind))) = framed.next().await {
            let resp = codec::bind_resp(
                bind.sequence_number,
                codec::BindKind::Transceiver,
                0,
                "mute",
            );
            framed.send(resp).await.unwrap();
        }
        // Read and ignore everything.
        while let Some(Ok(_)) = framed.next().await {}
    });
    let mut cfg = SessionConfig::new(addr.ip().to_string(), addr.port(), "x", "y");
    cfg.enquire_link_interval = Duration::from_millis(50);
    cfg.response_timeout = Duration::from_millis(200);
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg, tx).await.unwrap();
    timeout(WAIT, session.closed()).await.unwrap();
    assert!(session.close_reason().unwrap().contains("enquire_link"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_ack_is_redelivered() {
    let sim = start_sim(sim_args()).await;
    let (tx, mut rx) = mpsc::channel(8);
    let session = Session::connect(cfg_for(&sim, 1), tx).await.unwrap();
    let out = session.submit(request(1, 1)).await.unwrap();
    let SubmitOutcome::Accepted { message_id } = out else {
        panic!("{out:?}")
    };
    // First delivery: drop the ack (gateway could not store it) → 0x64.
    let first = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    let Inbound::Receipt { receipt, ack } = first else {
        panic!("expected receipt")
    };
    assert_eq!(receipt.smsc_message_id, message_id);
    drop(ack);
    // Second delivery after the simulator's 1 s retry: reject explicitly.
    let second = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    let Inbound::Receipt { receipt, ack } = second else {
        panic!("expected receipt")
    };
    assert_eq!(receipt.smsc_message_id, message_id);
    ack.reject(status::ESME_RX_T_APPN);
    // Third: accept.
    let third = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    let Inbound::Receipt { ack, .. } = third else {
        panic!("expected receipt")
    };
    ack.accept();
    wait_for_stats(&sim, |s| s.receipts_acked == 1).await;
    let st = sim.stats();
    assert_eq!(st.deliver_sm_resp_errors, 2);
    assert_eq!(st.receipts_sent, 3);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_id_format_receipts_match_by_id_keys() {
    let sim = start_sim(SmscSimArgs {
        id_format: IdFormat::Hex,
        mixed_id_format: true,
        dlr_mix: "delivered=50,undeliverable=50".into(),
        ..sim_args()
    })
    .await;
    let (tx, rx) = mpsc::channel(64);
    let session = Session::connect(cfg_for(&sim, 8), tx).await.unwrap();
    let receipts = spawn_receipt_acceptor(rx, 20);
    let mut ids = Vec::new();
    for i in 0..20 {
        match session.submit(request(i, 1)).await.unwrap() {
            SubmitOutcome::Accepted { message_id } => ids.push(message_id),
            other => panic!("{other:?}"),
        }
    }
    let receipts = timeout(WAIT, receipts).await.unwrap().unwrap();
    let mut states = HashSet::new();
    for r in &receipts {
        states.insert(r.state);
        let rk = id_keys(&r.smsc_message_id);
        let matches = ids
            .iter()
            .filter(|id| id_keys(id).iter().any(|k| rk.contains(k)))
            .count();
        assert_eq!(
            matches, 1,
            "receipt {} matched {matches} ids",
            r.smsc_message_id
        );
        assert!(
            !ids.contains(&r.smsc_message_id),
            "ids should be written differently"
        );
    }
    assert!(states.contains(&ReceiptState::Delivered));
    assert!(states.contains(&ReceiptState::Undeliverable));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmitter_receipts_go_to_another_bind() {
    let sim = start_sim(SmscSimArgs {
        receipts_before_responses: true,
        ..sim_args()
    })
    .await;
    let (tx1, mut rx1) = mpsc::channel(8);
    let mut cfg = cfg_for(&sim, 4);
    cfg.bind = BindMode::Transmitter;
    let transmitter = Session::connect(cfg, tx1).await.unwrap();
    let (tx2, rx2) = mpsc::channel(8);
    let _transceiver = Session::connect(cfg_for(&sim, 4), tx2).await.unwrap();
    let receipts = spawn_receipt_acceptor(rx2, 3);
    for i in 0..3 {
        assert!(matches!(
            transmitter.submit(request(i, 1)).await.unwrap(),
            SubmitOutcome::Accepted { .. }
        ));
    }
    let receipts = timeout(WAIT, receipts).await.unwrap().unwrap();
    assert_eq!(receipts.len(), 3);
    assert!(rx1.try_recv().is_err());
    wait_for_stats(&sim, |s| s.receipts_acked == 3).await;
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_before_responses_on_transceiver() {
    let sim = start_sim(SmscSimArgs {
        receipts_before_responses: true,
        ..sim_args()
    })
    .await;
    let (tx, mut rx) = mpsc::channel(8);
    let session = Session::connect(cfg_for(&sim, 1), tx).await.unwrap();
    let SubmitOutcome::Accepted { message_id } = session.submit(request(1, 1)).await.unwrap()
    else {
        panic!()
    };
    // The receipt was written before the response, so it is already queued.
    let Some(Inbound::Receipt { receipt, ack }) = rx.try_recv().ok() else {
        panic!("receipt should have arrived before the submit_sm_resp")
    };
    assert_eq!(receipt.smsc_message_id, message_id);
    ack.accept();
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_and_control_stats() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.jsonl");
    let sim = start_sim(SmscSimArgs {
        ledger: Some(ledger.clone()),
        control: Some("127.0.0.1:0".into()),
        dlr_mix: "none".into(),
        ..sim_args()
    })
    .await;
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg_for(&sim, 4), tx).await.unwrap();
    let mut req = request(3, 1);
    req.esm_class = 0x40;
    req.data_coding = 8;
    req.short_message = vec![0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 0x00, 0x41];
    let SubmitOutcome::Accepted { message_id } = session.submit(req).await.unwrap() else {
        panic!()
    };
    for i in 0..9 {
        session.submit(request(i, 1)).await.unwrap();
    }

    // GET /stats over a raw socket.
    let mut http = TcpStream::connect(sim.control_addr().unwrap())
        .await
        .unwrap();
    http.write_all(b"GET /stats HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    timeout(WAIT, http.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    let stats: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(stats["submits"], 10);
    assert_eq!(stats["accepted"], 10);
    assert_eq!(stats["binds"], 1);
    assert_eq!(stats["receipts_sent"], 0);
    for key in [
        "throttled",
        "errors",
        "receipts_acked",
        "deliver_sm_resp_errors",
    ] {
        assert!(stats.get(key).is_some(), "{key}");
    }

    // The ledger is flushed within 100 ms even while running.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&ledger).unwrap();
    assert_eq!(text.lines().count(), 10);
    session.unbind().await;
    sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&ledger).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["message_id"], message_id.as_str());
    assert_eq!(first["system_id"], "smppclient");
    assert_eq!(first["source"], "ACME");
    assert_eq!(first["dest"], "447700900003");
    assert_eq!(first["data_coding"], 8);
    assert_eq!(first["esm_class"], 0x40);
    assert_eq!(first["short_message_hex"], "0500030102010041");
    assert!(first["at_ms"].as_i64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_nacks_malformed_pdus_and_keeps_going() {
    let sim = start_sim(sim_args()).await;
    let stream = TcpStream::connect(sim.local_addr()).await.unwrap();
    let mut framed = Framed::new(stream, SmppCodec::new());
    framed
        .send(
            codec::bind(
                1,
                codec::BindKind::Transceiver,
                "smppclient",
                "password",
                "",
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let Some(Ok(Frame::Command(resp))) = framed.next().await else {
        panic!()
    };
    assert_eq!(resp.id(), CommandId::BindTransceiverResp);
    assert_eq!(u32::from(resp.status), 0);

    // Garbage submit_sm body, then a valid enquire_link on the same connection.
    let mut raw = BytesMut::new();
    raw.put_u32(16 + 3);
    raw.put_u32(command_id::SUBMIT_SM);
    raw.put_u32(0);
    raw.put_u32(77);
    raw.put_slice(&[0xFF, 0xFE, 0xFD]);
    raw.extend_from_slice(&encode(codec::enquire_link(78)));
    framed.get_mut().write_all(&raw).await.unwrap();

    let Some(Ok(Frame::Command(nack))) = timeout(WAIT, framed.next()).await.unwrap() else {
        panic!()
    };
    assert_eq!(nack.id(), CommandId::GenericNack);
    assert_eq!(nack.sequence_number, 77);
    assert_ne!(u32::from(nack.status), 0);
    let Some(Ok(Frame::Command(el))) = timeout(WAIT, framed.next()).await.unwrap() else {
        panic!()
    };
    assert_eq!(el.id(), CommandId::EnquireLinkResp);
    assert_eq!(el.sequence_number, 78);

    // submit before bind on a fresh connection → ESME_RINVBNDSTS.
    let stream = TcpStream::connect(sim.local_addr()).await.unwrap();
    let mut fresh = Framed::new(stream, SmppCodec::new());
    fresh
        .send(codec::submit_sm(5, &sample_submit()).unwrap())
        .await
        .unwrap();
    let Some(Ok(Frame::Command(r))) = timeout(WAIT, fresh.next()).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.id(), CommandId::SubmitSmResp);
    assert_eq!(u32::from(r.status), status::ESME_RINVBNDSTS);
    sim.shutdown().await.unwrap();
}

/// A scripted fake SMSC exercising the session's inbound side: enquire_link
/// from the SMSC, a malformed PDU, a non-ASCII MO deliver_sm, an MO with a
/// proper body, and finally an SMSC-initiated unbind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_handles_smsc_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, mut done_rx) = mpsc::channel::<Vec<(CommandId, u32, u32)>>(1);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(stream, SmppCodec::new());
        let Some(Ok(Frame::Command(bind))) = framed.next().await else {
            panic!()
        };
        framed
            .send(codec::bind_resp(
                bind.sequence_number,
                codec::BindKind::Transceiver,
                0,
                "fake",
            ))
            .await
            .unwrap();
        framed.send(codec::enquire_link(100)).await.unwrap();
        // Unknown command id with a body → generic_nack(ESME_RINVCMDID).
        let mut raw = BytesMut::new();
        raw.put_u32(16 + 2);
        raw.put_u32(0x0000_0999);
        raw.put_u32(0);
        raw.put_u32(101);
        raw.put_slice(&[1, 2]);
        // deliver_sm with a non-ASCII source address: rusmpp rejects it, the
        // lenient parser recovers it.
        let mo = encode(codec::deliver_sm_mo(102, "447700900555", "ACME", 0, b"hi").unwrap());
        let mut mo = mo.to_vec();
        let pos = 16 + 3; // service_type NUL, ton, npi, then the address
        mo[pos] = 0xE9;
        raw.extend_from_slice(&mo);
        framed.get_mut().write_all(&raw).await.unwrap();
        framed
            .send(codec::deliver_sm_mo(103, "447700900556", "ACME", 8, &[0, 0x41]).unwrap())
            .await
            .unwrap();
        // Collect answers to 100..=103, then unbind.
        let mut answers = Vec::new();
        while answers.len() < 4 {
            let Some(Ok(Frame::Command(c))) = framed.next().await else {
                panic!("session went away")
            };
            answers.push((c.id(), c.sequence_number, u32::from(c.status)));
        }
        framed.send(codec::unbind(104)).await.unwrap();
        let Some(Ok(Frame::Command(c))) = framed.next().await else {
            panic!()
        };
        answers.push((c.id(), c.sequence_number, u32::from(c.status)));
        done_tx.send(answers).await.unwrap();
        // The session closes the socket after unbind_resp.
        assert!(timeout(WAIT, framed.next()).await.unwrap().is_none());
    });

    let cfg = SessionConfig::new(addr.ip().to_string(), addr.port(), "x", "y");
    let (tx, mut rx) = mpsc::channel(8);
    let session = Session::connect(cfg, tx).await.unwrap();
    let mut mos = Vec::new();
    for _ in 0..2 {
        match timeout(WAIT, rx.recv()).await.unwrap().unwrap() {
            Inbound::Mobile {
                source,
                dest,
                data_coding,
                payload,
                ack,
                ..
            } => {
                mos.push((source, dest, data_coding, payload, ack.sequence_number()));
                if ack.sequence_number() == 102 {
                    ack.accept();
                } else {
                    ack.reject(status::ESME_RX_R_APPN);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(mos[0].1, "ACME");
    assert_eq!(mos[0].3, b"hi");
    assert!(mos[0].0.ends_with("47700900555"));
    assert_eq!(
        mos[1],
        ("447700900556".into(), "ACME".into(), 8, vec![0, 0x41], 103)
    );

    let mut answers = timeout(WAIT, done_rx.recv()).await.unwrap().unwrap();
    let unbind = answers.pop().unwrap();
    answers.sort_by_key(|a| a.1);
    assert_eq!(
        answers,
        vec![
            (CommandId::EnquireLinkResp, 100, 0),
            (CommandId::GenericNack, 101, status::ESME_RINVCMDID),
            (CommandId::DeliverSmResp, 102, 0),
            (CommandId::DeliverSmResp, 103, status::ESME_RX_R_APPN),
        ]
    );
    assert_eq!(unbind, (CommandId::UnbindResp, 104, 0));
    timeout(WAIT, session.closed()).await.unwrap();
    assert_eq!(session.close_reason().as_deref(), Some("SMSC sent unbind"));
    timeout(WAIT, server).await.unwrap().unwrap();
}

/// Throughput: 20k submits with window 64 (no receipts), rate printed.
/// `cargo test --lib submit_throughput -- --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_throughput() {
    let sim = start_sim(SmscSimArgs {
        dlr_mix: "none".into(),
        ..sim_args()
    })
    .await;
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg_for(&sim, 64), tx).await.unwrap();
    const N: usize = 20_000;
    const WORKERS: usize = 64;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let s = session.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut ok = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= N {
                    return ok;
                }
                if let Ok(SubmitOutcome::Accepted { .. }) = s.submit(request(i, 1)).await {
                    ok += 1;
                }
            }
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        ok += r.unwrap();
    }
    let elapsed = started.elapsed();
    let rate = N as f64 / elapsed.as_secs_f64();
    println!("submit throughput: {N} submits, window 64, in {elapsed:?} = {rate:.0} submit/s");
    assert_eq!(ok, N);
    assert_eq!(sim.stats().accepted, N as u64);
    session.unbind().await;
    sim.shutdown().await.unwrap();
}

/// Throughput with receipts: 20k submits (window 64) and 20k receipts accepted
/// on the same transceiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_throughput_with_receipts() {
    let sim = start_sim(SmscSimArgs {
        dlr_delay_ms: 0,
        ..sim_args()
    })
    .await;
    let (tx, rx) = mpsc::channel(1024);
    let session = Session::connect(cfg_for(&sim, 64), tx).await.unwrap();
    const N: usize = 20_000;
    let receipts = spawn_receipt_acceptor(rx, N);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let s = session.clone();
        let next = next.clone();
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < N {
                let out = s.submit(request(1, 1)).await.unwrap();
                assert!(matches!(out, SubmitOutcome::Accepted { .. }));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let submitted = started.elapsed();
    let receipts = timeout(WAIT, receipts).await.unwrap().unwrap();
    let all = started.elapsed();
    assert_eq!(receipts.len(), N);
    wait_for_stats(&sim, |s| s.receipts_acked == N as u64).await;
    println!(
        "with receipts: {N} submits in {submitted:?} ({:.0} submit/s), all {N} receipts acked after {all:?}",
        N as f64 / submitted.as_secs_f64()
    );
    session.unbind().await;
    sim.shutdown().await.unwrap();
}

/// What a scripted SMSC saw on its one connection.
#[derive(Debug, Default, Clone)]
struct PeerLog {
    submits: usize,
    /// The most submit_sm unanswered at once.
    max_unanswered: usize,
    unbinds: usize,
}

/// A fake SMSC for one connection: binds, then answers each submit_sm after
/// `delay(n)` (n = 0, 1, ... in arrival order; None = never) and never answers unbind
/// (a hung SMSC). Ends when the client drops the line; returns what it saw.
fn scripted_peer(
    listener: TcpListener,
    delay: impl Fn(usize) -> Option<Duration> + Send + 'static,
) -> tokio::task::JoinHandle<PeerLog> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut sink, mut source) = Framed::new(stream, SmppCodec::new()).split();
        let (answers, mut answer_rx) = mpsc::unbounded_channel::<rusmpp::Command>();
        let mut log = PeerLog::default();
        let mut unanswered = 0usize;
        loop {
            tokio::select! {
                frame = source.next() => {
                    let Some(Ok(Frame::Command(cmd))) = frame else { break };
                    let seq = cmd.sequence_number;
                    match cmd.id() {
                        CommandId::BindTransceiver => {
                            let r = codec::bind_resp(seq, codec::BindKind::Transceiver, 0, "peer");
                            sink.send(r).await.unwrap();
                        }
                        CommandId::SubmitSm => {
                            let n = log.submits;
                            log.submits += 1;
                            unanswered += 1;
                            log.max_unanswered = log.max_unanswered.max(unanswered);
                            if let Some(d) = delay(n) {
                                let answers = answers.clone();
                                tokio::spawn(async move {
                                    tokio::time::sleep(d).await;
                                    let id = format!("m{n}");
                                    let _ = answers.send(codec::submit_sm_resp(seq, 0, &id));
                                });
                            }
                        }
                        CommandId::Unbind => log.unbinds += 1,
                        _ => {}
                    }
                }
                Some(answer) = answer_rx.recv() => {
                    unanswered -= 1;
                    if sink.send(answer).await.is_err() {
                        break;
                    }
                }
            }
        }
        log
    })
}

async fn mute_session(window: usize) -> (Session, tokio::task::JoinHandle<PeerLog>) {
    scripted_session(window, |_| None).await
}

async fn scripted_session(
    window: usize,
    delay: impl Fn(usize) -> Option<Duration> + Send + 'static,
) -> (Session, tokio::task::JoinHandle<PeerLog>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = scripted_peer(listener, delay);
    let mut cfg = SessionConfig::new(addr.ip().to_string(), addr.port(), "x", "y");
    cfg.window = window;
    cfg.enquire_link_interval = Duration::ZERO;
    cfg.response_timeout = Duration::from_millis(100);
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg, tx).await.unwrap();
    (session, peer)
}

/// A timed-out submit keeps its window slot (its PDU is still unanswered on the wire):
/// once every slot is held so, the session is hung: it sends unbind, waits briefly and
/// drops the line. Never more than `window` submit_sm go out unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_window_is_held_by_timed_out_submits_is_closed_as_hung() {
    let (session, peer) = mute_session(3).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let s = session.clone();
        tasks.spawn(async move { s.submit(request(i, 0)).await });
    }
    let mut timed_out = 0;
    while let Some(r) = timeout(WAIT, tasks.join_next()).await.unwrap() {
        match r.unwrap() {
            Err(SessionError::ResponseTimeout) => timed_out += 1,
            // Waiting for a slot when the session was found hung: not sent.
            Err(SessionError::Closed | SessionError::Unbinding) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(timed_out, 3, "the window's three submits timed out");
    timeout(WAIT, session.closed()).await.unwrap();
    let reason = session.close_reason().unwrap_or_default();
    assert!(reason.starts_with("hung: every window slot"), "{reason}");
    drop(session);
    let log = timeout(WAIT, peer).await.unwrap().unwrap();
    assert_eq!((log.submits, log.max_unanswered), (3, 3), "{log:?}");
    assert_eq!(
        log.unbinds, 1,
        "unbound before the line was dropped: {log:?}"
    );
}

/// On an idle line one unanswered submit is enough: nothing else in flight and no
/// submit answered for two response timeouts since it went out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_whose_submits_go_unanswered_is_closed_as_hung() {
    let (session, peer) = mute_session(10).await;
    let mut tries = 0;
    while !session.is_closed() && tries < 5 {
        tries += 1;
        let r = timeout(WAIT, session.submit(request(tries, 0)))
            .await
            .unwrap();
        assert!(
            matches!(
                r,
                Err(SessionError::ResponseTimeout | SessionError::Unbinding | SessionError::Closed)
            ),
            "{r:?}"
        );
    }
    timeout(WAIT, session.closed()).await.unwrap();
    let reason = session.close_reason().unwrap_or_default();
    assert!(
        reason.starts_with("hung: nothing else in flight"),
        "{reason}"
    );
    drop(session);
    let log = timeout(WAIT, peer).await.unwrap().unwrap();
    // 100 ms timeouts back to back: the third goes out 200 ms after the first.
    assert!((2..=3).contains(&log.submits), "{log:?}");
}

/// A late response hands the timed-out submit's slot back and counts as an answer: a
/// slow SMSC is not hung, and the session keeps sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_response_frees_the_slot_of_a_timed_out_submit() {
    // The first submit is answered after 300 ms (timeout 100 ms), the others at once.
    let (session, peer) = scripted_session(2, |n| {
        Some(if n == 0 {
            Duration::from_millis(300)
        } else {
            Duration::ZERO
        })
    })
    .await;
    let r = session.submit(request(0, 0)).await;
    assert!(matches!(r, Err(SessionError::ResponseTimeout)), "{r:?}");
    assert_eq!(session.free_window_slots(), 1, "held while unanswered");
    let deadline = tokio::time::Instant::now() + WAIT;
    while session.free_window_slots() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "late answer never freed the slot"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = session.submit(request(1, 0)).await;
    assert!(matches!(r, Ok(SubmitOutcome::Accepted { .. })), "{r:?}");
    assert!(!session.is_closed(), "{:?}", session.close_reason());
    timeout(WAIT, session.unbind()).await.unwrap();
    let log = timeout(WAIT, peer).await.unwrap().unwrap();
    assert_eq!(log.submits, 2, "{log:?}");
}

/// A cancelled submit gives its pending entry up (nothing leaks), and its slot is held
/// like a timed-out one's: its PDU may be on the wire unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_submit_holds_its_slot_like_a_timed_out_one() {
    let (session, peer) = mute_session(2).await;
    let _ = timeout(Duration::from_millis(20), session.submit(request(9, 0))).await;
    // The second slot: sent, times out, and then the window is full of unanswered
    // submits: hung.
    let r = timeout(WAIT, session.submit(request(10, 0))).await.unwrap();
    assert!(matches!(r, Err(SessionError::ResponseTimeout)), "{r:?}");
    timeout(WAIT, session.closed()).await.unwrap();
    drop(session);
    let log = timeout(WAIT, peer).await.unwrap().unwrap();
    assert_eq!((log.submits, log.max_unanswered), (2, 2), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_nack_to_submit_is_nacked_not_rejected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(stream, SmppCodec::new());
        while let Some(Ok(Frame::Command(cmd))) = framed.next().await {
            let seq = cmd.sequence_number;
            let reply = match cmd.id() {
                CommandId::BindTransceiver => {
                    codec::bind_resp(seq, codec::BindKind::Transceiver, 0, "nack")
                }
                CommandId::SubmitSm => codec::generic_nack(seq, status::ESME_RINVCMDID),
                CommandId::Unbind => codec::unbind_resp(seq),
                _ => continue,
            };
            framed.send(reply).await.unwrap();
        }
    });
    let mut cfg = SessionConfig::new(addr.ip().to_string(), addr.port(), "x", "y");
    cfg.enquire_link_interval = Duration::ZERO;
    let (tx, _rx) = mpsc::channel(8);
    let session = Session::connect(cfg, tx).await.unwrap();
    let r = session.submit(request(1, 0)).await;
    assert!(
        matches!(r, Ok(SubmitOutcome::Nacked { command_status }) if command_status == status::ESME_RINVCMDID),
        "{r:?}"
    );
    session.unbind().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_waits_for_outstanding_submits_and_refuses_new_ones() {
    let sim = start_sim(SmscSimArgs {
        submit_latency_ms: 400,
        ..sim_args()
    })
    .await;
    let (tx, _rx) = mpsc::channel(64);
    let session = Session::connect(cfg_for(&sim, 4), tx).await.unwrap();
    let mut held = tokio::task::JoinSet::new();
    for i in 0..3 {
        let s = session.clone();
        held.spawn(async move { s.submit(request(i, 0)).await });
    }
    wait_for_stats(&sim, |st| st.submits >= 3).await;
    let unbinding = {
        let s = session.clone();
        tokio::spawn(async move { s.unbind().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Unbinding: a new part is refused without being sent.
    assert!(matches!(
        session.submit(request(7, 0)).await,
        Err(SessionError::Unbinding)
    ));
    timeout(WAIT, unbinding).await.unwrap().unwrap();
    // Every held submit got its response before the unbind.
    while let Some(r) = held.join_next().await {
        let r = r.unwrap();
        assert!(matches!(r, Ok(SubmitOutcome::Accepted { .. })), "{r:?}");
    }
    assert!(session.is_closed());
    assert_eq!(sim.stats().submits, 3);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_inbound_consumer_does_not_block_submits() {
    let sim = start_sim(SmscSimArgs {
        receipts_before_responses: true,
        ..sim_args()
    })
    .await;
    // Capacity 1 and nobody reading while we submit.
    let (tx, rx) = mpsc::channel(1);
    let session = Session::connect(cfg_for(&sim, 1), tx).await.unwrap();
    for i in 0..50 {
        let r = timeout(Duration::from_secs(2), session.submit(request(i, 1)))
            .await
            .expect("submit blocked behind unread receipts");
        assert!(matches!(r, Ok(SubmitOutcome::Accepted { .. })));
    }
    let receipts = timeout(WAIT, spawn_receipt_acceptor(rx, 50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipts.len(), 50);
    wait_for_stats(&sim, |s| s.receipts_acked == 50).await;
    assert_eq!(sim.stats().deliver_sm_resp_errors, 0);
    sim.shutdown().await.unwrap();
}
