//! SGIP byte-exact tests: expected frames built field by field from the SGIP
//! 1.2 tables (20-octet header, 12-octet sequence numbers) by an independent
//! script, compared with the codec both ways; truncations and arbitrary bytes
//! never panic.

use proptest::prelude::*;

use super::codec::*;

fn hx(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector")
}

fn seq(node: u32, time: u32, n: u32) -> Seq {
    Seq { node, time, n }
}

#[test]
fn bind_with_plain_password() {
    let pdu = Pdu::Bind(Bind {
        login_type: 1,
        login_name: "sp".into(),
        login_password: "pw".into(),
    });
    let s = seq(3_010_012_345, 1_203_065_310, 1);
    let f = pdu.encode(s);
    assert_eq!(
        hex::encode(&f),
        "0000003d00000001b36924b947b551de000000010173700000000000000000000000000000707700000000000000000000000000000000000000000000"
    );
    assert_eq!(f.len(), 61, "20 + 1 + 16 + 16 + 8");
    assert_eq!(Pdu::decode(&f), Ok((s, pdu)));
}

#[test]
fn submit_gbk_long_part() {
    let pdu = Pdu::Submit(Box::new(Submit {
        sp_number: "10655".into(),
        charge_number: "0".repeat(21),
        user_numbers: vec!["8613800138000".into()],
        corp_id: "12345".into(),
        service_type: "MTEST".into(),
        fee_type: 1,
        fee_value: "0".into(),
        given_value: "0".into(),
        morelate_to_mt_flag: 2,
        report_flag: 1,
        tp_udhi: 1,
        message_coding: 15,
        content: vec![5, 0, 3, 1, 2, 2, 0xD6, 0xD0],
        ..Submit::default()
    }));
    let s = seq(3_010_012_345, 1_203_065_310, 7);
    let f = pdu.encode(s);
    assert_eq!(
        hex::encode(&f),
        "000000ac00000003b36924b947b551de000000073130363535000000000000000000000000000000003030303030303030303030303030303030303030300138363133383030313338303030000000000000000031323334354d5445535400000000000130000000000030000000000000020000000000000000000000000000000000000000000000000000000000000000000100010f0000000008050003010202d6d00000000000000000"
    );
    assert_eq!(Pdu::decode(&f), Ok((s, pdu)));
    assert_eq!(s.id_text(), "3010012345-1203065310-7");
}

#[test]
fn report_refers_to_the_submit_sequence() {
    let pdu = Pdu::Report(Box::new(Report {
        submit_seq: seq(3_010_012_345, 1_203_065_310, 7),
        report_type: 0,
        user_number: "8613800138000".into(),
        state: 2,
        error_code: 21,
    }));
    let s = seq(1_010_001, 1_203_065_400, 3);
    assert_eq!(
        hex::encode(pdu.encode(s)),
        "0000004000000005000f695147b5523800000003b36924b947b551de000000070038363133383030313338303030000000000000000002150000000000000000"
    );
    assert_eq!(
        Pdu::decode(&hx(
            "0000004000000005000f695147b5523800000003b36924b947b551de000000070038363133383030313338303030000000000000000002150000000000000000"
        )),
        Ok((s, pdu))
    );
    let resp = Pdu::SubmitResp(0);
    let s = seq(3_010_012_345, 1_203_065_310, 7);
    assert_eq!(
        hex::encode(resp.encode(s)),
        "0000001d80000003b36924b947b551de00000007000000000000000000"
    );
}

#[test]
fn every_truncation_is_an_error() {
    for frame in [
        "0000003d00000001b36924b947b551de000000010173700000000000000000000000000000707700000000000000000000000000000000000000000000",
        "000000ac00000003b36924b947b551de000000073130363535000000000000000000000000000000003030303030303030303030303030303030303030300138363133383030313338303030000000000000000031323334354d5445535400000000000130000000000030000000000000020000000000000000000000000000000000000000000000000000000000000000000100010f0000000008050003010202d6d00000000000000000",
        "0000004000000005000f695147b5523800000003b36924b947b551de000000070038363133383030313338303030000000000000000002150000000000000000",
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
    // A MessageLength far beyond the frame.
    let mut f = hx(
        "000000ac00000003b36924b947b551de000000073130363535000000000000000000000000000000003030303030303030303030303030303030303030300138363133383030313338303030000000000000000031323334354d5445535400000000000130000000000030000000000000020000000000000000000000000000000000000000000000000000000000000000000100010f0000000008050003010202d6d00000000000000000",
    );
    let at = 20 + 21 + 21 + 1 + 21 + 5 + 10 + 1 + 6 + 6 + 3 + 16 + 16 + 5;
    f[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(Pdu::decode(&f).is_err());
}

#[test]
fn status_map() {
    use super::status_map::*;
    use crate::protocols::smpp::ReceiptState;
    assert_eq!(receipt_state(0), ReceiptState::Delivered);
    assert_eq!(receipt_state(1), ReceiptState::Enroute);
    assert_eq!(receipt_state(2), ReceiptState::Undeliverable);
    assert_eq!(submit_status(11), 0x58);
    assert_eq!(submit_status(0), 0);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Pdu::decode(&b);
        let mut c = b.clone();
        if c.len() >= 20 {
            let n = c.len() as u32;
            c[..4].copy_from_slice(&n.to_be_bytes());
            c[4] &= 0x80;
            c[5] = 0;
            c[6] = 0;
            c[7] %= 6;
            let _ = Pdu::decode(&c);
        }
    }
}
