//! SMGP byte-exact tests: expected frames built field by field from the SMGP
//! 3.0 tables by an independent script, compared with the codec both ways;
//! truncations and arbitrary bytes never panic.

use proptest::prelude::*;

use super::codec::*;

fn hx(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector")
}

#[test]
fn login_with_md5_authenticator() {
    let a = authenticator_client("12345678", "secret", 1_203_065_310);
    assert_eq!(hex::encode(a), "6464e2caf75f1968a0b892359ec6ba7d");
    let pdu = Pdu::Login(Login {
        client_id: "12345678".into(),
        authenticator: a,
        login_mode: 2,
        timestamp: 1_203_065_310,
        version: 0x30,
    });
    let f = pdu.encode(1);
    assert_eq!(
        hex::encode(&f),
        "0000002a000000010000000131323334353637386464e2caf75f1968a0b892359ec6ba7d0247b551de30"
    );
    assert_eq!(f.len(), 42, "12 + 8 + 16 + 1 + 4 + 1");
    assert_eq!(Pdu::decode(&f), Ok((1, pdu)));
}

#[test]
fn submit_with_tlvs() {
    let pdu = Pdu::Submit(Box::new(Submit {
        msg_type: 6,
        need_report: 1,
        priority: 1,
        service_id: "MTEST".into(),
        fee_type: "01".into(),
        fee_code: "000000".into(),
        fixed_fee: "000000".into(),
        msg_format: 8,
        src_term_id: "10659".into(),
        dest_term_ids: vec!["8613800138000".into()],
        content: vec![5, 0, 3, 0x2A, 2, 1, 0x4F, 0x60],
        tlvs: vec![
            Tlv {
                tag: tag::TP_UDHI,
                value: vec![1],
            },
            Tlv {
                tag: tag::PK_TOTAL,
                value: vec![2],
            },
            Tlv {
                tag: tag::PK_NUMBER,
                value: vec![1],
            },
        ],
        ..Submit::default()
    }));
    let f = pdu.encode(5);
    assert_eq!(
        hex::encode(&f),
        "000000aa00000002000000050601014d5445535400000000003031303030303030303030303030080000000000000000000000000000000000000000000000000000000000000000000031303635390000000000000000000000000000000000000000000000000000000000000000000000000001383631333830303133383030300000000000000000080500032a02014f60000000000000000000020001010009000102000a000101"
    );
    assert_eq!(Pdu::decode(&f), Ok((5, pdu)));
}

#[test]
fn submit_resp_and_bcd_msg_id() {
    let id = make_msg_id(100_601, "12030653", 42);
    assert_eq!(msg_id_text(&id), "10060112030653000042");
    let pdu = Pdu::SubmitResp(Resp {
        msg_id: id,
        status: 0,
    });
    assert_eq!(
        hex::encode(pdu.encode(5)),
        "0000001a80000002000000051006011203065300004200000000"
    );
    assert_eq!(
        Pdu::decode(&hx("0000001a80000002000000051006011203065300004200000000")),
        Ok((5, pdu))
    );
}

#[test]
fn report_content() {
    let r = Report {
        msg_id: make_msg_id(100_601, "12030653", 42),
        stat: "DELIVRD".into(),
        err: "000".into(),
        submit_date: "2612030653".into(),
        done_date: "2612030654".into(),
    };
    assert_eq!(
        hex::encode(r.encode()),
        "69643a10060112030653000042207375623a30303120646c7672643a303031205375626d697420646174653a3236313230333036353320646f6e6520646174653a3236313230333036353420737461743a44454c49565244206572723a303030205478743a0000000000000000000000000000000000000000"
    );
    assert_eq!(Report::decode(&r.encode()), Ok(r));
    // Other writers use other case and spacing.
    let mut text = b"ID:".to_vec();
    text.extend_from_slice(&[0x10, 0x06, 0x01, 0x12, 0x03, 0x06, 0x53, 0x00, 0x00, 0x42]);
    text.extend_from_slice(b" stat:UNDELIV err:004 text:x");
    let r = Report::decode(&text).unwrap();
    assert_eq!((r.stat.as_str(), r.err.as_str()), ("UNDELIV", "004"));
    assert!(Report::decode(b"id:0123456789 no status here").is_err());
}

#[test]
fn every_truncation_is_an_error() {
    for frame in [
        "0000002a000000010000000131323334353637386464e2caf75f1968a0b892359ec6ba7d0247b551de30",
        "0000001a80000002000000051006011203065300004200000000",
    ] {
        let f = hx(frame);
        for cut in 0..f.len() {
            let mut t = f[..cut].to_vec();
            if t.len() >= 4 {
                t[..4].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            assert!(Pdu::decode(&t).is_err(), "cut at {cut}");
        }
    }
    // A TLV whose length runs past the frame.
    let mut f = hx(
        "000000aa00000002000000050601014d5445535400000000003031303030303030303030303030080000000000000000000000000000000000000000000000000000000000000000000031303635390000000000000000000000000000000000000000000000000000000000000000000000000001383631333830303133383030300000000000000000080500032a02014f60000000000000000000020001010009000102000a000101",
    );
    let n = f.len();
    f[n - 2] = 9;
    assert!(Pdu::decode(&f).is_err());
}

#[test]
fn status_map() {
    use super::status_map::*;
    use crate::protocols::smpp::ReceiptState;
    assert_eq!(receipt_state("DELIVRD", "000"), ReceiptState::Delivered);
    assert_eq!(receipt_state("XXXXXXX", "002"), ReceiptState::Expired);
    assert_eq!(receipt_state("", "005"), ReceiptState::Undeliverable);
    assert_eq!(receipt_state("", "999"), ReceiptState::Unknown);
    assert_eq!(submit_status(1), 0x58);
    assert_eq!(submit_status(47), 0x0B);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Pdu::decode(&b);
        let _ = Report::decode(&b);
        let mut c = b.clone();
        if c.len() >= 12 {
            let n = c.len() as u32;
            c[..4].copy_from_slice(&n.to_be_bytes());
            c[4] &= 0x80;
            c[5] = 0;
            c[6] = 0;
            c[7] %= 7;
            let _ = Pdu::decode(&c);
        }
    }
}
