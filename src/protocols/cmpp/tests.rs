//! CMPP byte-exact tests: expected frames are built field by field from the
//! specification's tables (QB-GF-028-2003 §7.4) by an independent script, then
//! compared with what the codec writes and read back. Plus: every truncation
//! of a valid frame and arbitrary bytes decode to an error, never a panic.

use proptest::prelude::*;

use super::codec::*;
use crate::protocols::cn::wire::DecodeError;

fn hx(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector")
}

const TS: u32 = 1_203_065_310;

#[test]
fn connect_with_md5_authenticator() {
    let auth = authenticator_source("901234", "secret", TS);
    assert_eq!(hex::encode(auth), "354734ec92b0e1474f82327079f6da3b");
    let pdu = Pdu::Connect(Connect {
        source_addr: "901234".into(),
        authenticator: auth,
        version: 0x30,
        timestamp: TS,
    });
    let f = pdu.encode(1, Version::V30);
    assert_eq!(
        hex::encode(&f),
        "000000270000000100000001393031323334354734ec92b0e1474f82327079f6da3b3047b551de"
    );
    assert_eq!(f.len(), 39, "12 + 6 + 16 + 1 + 4");
    assert_eq!(
        Pdu::decode(&f, Version::V20),
        Ok((1, pdu)),
        "CONNECT is the same in 2.0"
    );
}

#[test]
fn connect_resp_status_is_1_octet_in_2_0_and_4_in_3_0() {
    let src = authenticator_source("901234", "secret", TS);
    for (v, ismg, frame, len) in [
        (
            Version::V20,
            "149fad9b3986a8ab31334043915ced4c",
            "0000001e800000010000000100149fad9b3986a8ab31334043915ced4c20",
            30,
        ),
        (
            Version::V30,
            "a2379f6f8ea3afc1223f8aba6a92c27a",
            "00000021800000010000000100000000a2379f6f8ea3afc1223f8aba6a92c27a30",
            33,
        ),
    ] {
        let a = authenticator_ismg(v, 0, &src, "secret");
        assert_eq!(hex::encode(a), ismg);
        let pdu = Pdu::ConnectResp(ConnectResp {
            status: 0,
            authenticator: a,
            version: v.octet(),
        });
        let f = pdu.encode(1, v);
        assert_eq!(hex::encode(&f), frame);
        assert_eq!(f.len(), len);
        assert_eq!(Pdu::decode(&f, v), Ok((1, pdu)));
    }
}

fn submit() -> Submit {
    Submit {
        pk_total: 1,
        pk_number: 1,
        registered_delivery: 1,
        msg_level: 1,
        service_id: "MTEST".into(),
        fee_user_type: 2,
        msg_src: "901234".into(),
        fee_type: "01".into(),
        fee_code: "000000".into(),
        src_id: "10690".into(),
        dest_terminal_ids: vec!["8613800138000".into()],
        content: b"Hello".to_vec(),
        ..Submit::default()
    }
}

#[test]
fn submit_field_widths_2_0_and_3_0() {
    for (v, frame, len) in [
        (
            Version::V20,
            "000000a400000004000000070000000000000000010101014d54455354000000000002000000000000000000000000000000000000000000000000393031323334303130303030303000000000000000000000000000000000000000000000000000000000000000000000313036393000000000000000000000000000000000013836313338303031333830303000000000000000000548656c6c6f0000000000000000",
            12 + 147 + 5,
        ),
        (
            Version::V30,
            "000000c800000004000000070000000000000000010101014d54455354000000000002000000000000000000000000000000000000000000000000000000000000000000000000393031323334303130303030303000000000000000000000000000000000000000000000000000000000000000000000313036393000000000000000000000000000000000013836313338303031333830303000000000000000000000000000000000000000000548656c6c6f0000000000000000000000000000000000000000",
            12 + 183 + 5,
        ),
    ] {
        let pdu = Pdu::Submit(Box::new(submit()));
        let f = pdu.encode(7, v);
        assert_eq!(hex::encode(&f), frame, "{v:?}");
        assert_eq!(f.len(), len);
        assert_eq!(Pdu::decode(&f, v), Ok((7, pdu)));
    }
}

#[test]
fn submit_resp_result_width() {
    for (v, frame) in [
        (Version::V20, "0000001580000004000000070123456789abcdef08"),
        (
            Version::V30,
            "0000001880000004000000070123456789abcdef00000008",
        ),
    ] {
        let pdu = Pdu::SubmitResp(Resp {
            msg_id: 0x0123_4567_89AB_CDEF,
            result: 8,
        });
        assert_eq!(hex::encode(pdu.encode(7, v)), frame);
        assert_eq!(Pdu::decode(&hx(frame), v), Ok((7, pdu)));
    }
}

#[test]
fn status_report_deliver_3_0() {
    let report = Report {
        msg_id: 0x0123_4567_89AB_CDEF,
        stat: "DELIVRD".into(),
        submit_time: "2612030653".into(),
        done_time: "2612030654".into(),
        dest_terminal_id: "8613800138000".into(),
        smsc_sequence: 42,
    };
    let content = report.encode(Version::V30);
    assert_eq!(
        hex::encode(&content),
        "0123456789abcdef44454c49565244323631323033303635333236313230333036353438363133383030313338303030000000000000000000000000000000000000000000002a"
    );
    assert_eq!(content.len(), 71);
    assert_eq!(report.encode(Version::V20).len(), 60);
    let pdu = Pdu::Deliver(Box::new(Deliver {
        msg_id: 99,
        dest_id: "10690".into(),
        service_id: "MTEST".into(),
        src_terminal_id: "8613800138000".into(),
        registered_delivery: 1,
        content,
        ..Deliver::default()
    }));
    let f = pdu.encode(9, Version::V30);
    assert_eq!(
        hex::encode(&f),
        "000000b4000000050000000900000000000000633130363930000000000000000000000000000000004d54455354000000000000000038363133383030313338303030000000000000000000000000000000000000000001470123456789abcdef44454c49565244323631323033303635333236313230333036353438363133383030313338303030000000000000000000000000000000000000000000002a0000000000000000000000000000000000000000"
    );
    let (seq, back) = Pdu::decode(&f, Version::V30).unwrap();
    assert_eq!((seq, &back), (9, &pdu));
    let Pdu::Deliver(d) = back else {
        unreachable!()
    };
    assert_eq!(Report::decode(&d.content, Version::V30), Ok(report));
}

#[test]
fn active_test_resp_has_a_reserved_octet() {
    assert_eq!(
        hex::encode(Pdu::ActiveTestResp.encode(3, Version::V30)),
        "0000000d800000080000000300"
    );
    assert_eq!(
        Pdu::decode(&hx("0000000d800000080000000300"), Version::V30),
        Ok((3, Pdu::ActiveTestResp))
    );
    assert_eq!(Pdu::Terminate.encode(4, Version::V20).len(), 12);
}

#[test]
fn msg_id_bit_layout() {
    let id = make_msg_id((12, 3, 6, 53, 10), 0x2A_5A5A, 0xBEEF);
    assert_eq!(split_msg_id(id), ((12, 3, 6, 53, 10), 0x2A_5A5A, 0xBEEF));
    assert_eq!(id >> 60, 12, "month in the top 4 bits");
    assert_eq!(id & 0xFFFF, 0xBEEF, "sequence in the low 16 bits");
}

#[test]
fn every_truncation_is_an_error() {
    for frame in [
        "000000c800000004000000070000000000000000010101014d54455354000000000002000000000000000000000000000000000000000000000000000000000000000000000000393031323334303130303030303000000000000000000000000000000000000000000000000000000000000000000000313036393000000000000000000000000000000000013836313338303031333830303000000000000000000000000000000000000000000548656c6c6f0000000000000000000000000000000000000000",
        "000000b4000000050000000900000000000000633130363930000000000000000000000000000000004d54455354000000000000000038363133383030313338303030000000000000000000000000000000000000000001470123456789abcdef44454c49565244323631323033303635333236313230333036353438363133383030313338303030000000000000000000000000000000000000000000002a0000000000000000000000000000000000000000",
        "00000021800000010000000100000000a2379f6f8ea3afc1223f8aba6a92c27a30",
    ] {
        let f = hx(frame);
        for cut in 0..f.len() {
            let mut t = f[..cut].to_vec();
            if t.len() >= 4 {
                t[..4].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            assert!(Pdu::decode(&t, Version::V30).is_err(), "cut at {cut}");
        }
    }
    // A DestUsr_tl of 0 or > 100 is refused.
    let mut f = hx(
        "000000c800000004000000070000000000000000010101014d54455354000000000002000000000000000000000000000000000000000000000000000000000000000000000000393031323334303130303030303000000000000000000000000000000000000000000000000000000000000000000000313036393000000000000000000000000000000000013836313338303031333830303000000000000000000000000000000000000000000548656c6c6f0000000000000000000000000000000000000000",
    );
    f[12 + 128] = 0; // DestUsr_tl in 3.0
    assert_eq!(
        Pdu::decode(&f, Version::V30),
        Err(DecodeError::Invalid("DestUsr_tl (1..=100)"))
    );
}

#[test]
fn status_map() {
    use super::status_map::*;
    use crate::protocols::smpp::ReceiptState;
    assert_eq!(receipt_state("DELIVRD"), ReceiptState::Delivered);
    assert_eq!(receipt_state("EXPIRED"), ReceiptState::Expired);
    assert_eq!(receipt_state("ACCEPTD"), ReceiptState::Accepted);
    assert_eq!(receipt_state("MA:0001"), ReceiptState::Undeliverable);
    assert_eq!(submit_status(8), 0x58, "flow control = throttled");
    assert_eq!(submit_status(0), 0);
    assert_eq!(submit_status(13), 0x0B);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400), v3 in any::<bool>()) {
        let v = if v3 { Version::V30 } else { Version::V20 };
        let _ = Pdu::decode(&b, v);
        let _ = Report::decode(&b, v);
        // Also with a consistent length prefix, so the body decoders run.
        let mut c = b.clone();
        if c.len() >= 12 {
            let n = c.len() as u32;
            c[..4].copy_from_slice(&n.to_be_bytes());
            c[4] &= 0x80;
            c[5] = 0;
            c[6] = 0;
            c[7] %= 9;
            let _ = Pdu::decode(&c, v);
        }
    }
}
