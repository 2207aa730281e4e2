//! Unit tests of the HTTP upstream pieces: templates, paths, answers, options errors,
//! receipt auth and parsing, status tables.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::codec::{BodyTemplate, PartVars, ProviderAnswer, Template, percent_encode};
use super::options::{HttpChannelOptions, ReceiptAuth};
use super::path::ValuePath;
use super::receipt::{ReceiptError, authenticate, hmac_hex, parse_receipts};
use super::status_map::{CommonStatus, StatusTable, SubmitErrorClass, classify_http_status};

fn vars() -> PartVars {
    PartVars {
        to: "+4915112345678".into(),
        from: "ACME".into(),
        text: "Héllo \"world\" & {you}".into(),
        message_id: "01JABC".into(),
        part: 2,
        parts: 3,
        data_coding: 8,
        udh_hex: "050003070302".into(),
        system_id: "acct".into(),
        password: "key/1+2".into(),
    }
}

fn opts(v: Value) -> Result<HttpChannelOptions, (String, String)> {
    let Value::Object(m) = v else {
        panic!("object")
    };
    HttpChannelOptions::parse(&m).map_err(|e| (e.field, e.message))
}

fn minimal() -> Value {
    json!({"request": {"url": "http://127.0.0.1:9/sms", "body": {"to": "{to}", "text": "{text}"}}})
}

#[test]
fn template_table() {
    let rows: &[(&str, &str)] = &[
        ("{to}", "+4915112345678"),
        ("{to_digits}", "4915112345678"),
        ("ref-{reference}", "ref-01JABC-2"),
        ("{part}/{parts}", "2/3"),
        ("{{literal}} {encoding}", "{literal} ucs2"),
        ("{udh}", "050003070302"),
        ("no placeholders", "no placeholders"),
        ("", ""),
    ];
    for (t, want) in rows {
        assert_eq!(Template::parse(t).unwrap().render(&vars()), *want, "{t}");
    }
}

#[test]
fn template_errors_name_the_problem() {
    for (t, needle) in [
        ("{txt}", "unknown placeholder {txt}"),
        ("{to", "unclosed"),
        ("a } b", "lone '}'"),
        ("{}", "unknown placeholder {}"),
    ] {
        let e = Template::parse(t).unwrap_err();
        assert!(e.contains(needle), "{t}: {e}");
    }
}

#[test]
fn url_values_are_percent_encoded_and_json_is_escaped() {
    let t = Template::parse("http://h/send?to={to}&text={text}&k={password}").unwrap();
    assert_eq!(
        t.render_with(&vars(), percent_encode),
        "http://h/send?to=%2B4915112345678&text=H%C3%A9llo%20%22world%22%20%26%20%7Byou%7D&k=key%2F1%2B2"
    );
    let o = opts(json!({"request": {"url": "http://h/x", "body": {"m": [{"text": "{text}", "n": "{part}", "s": "{part}x", "fixed": 7}]}}})).unwrap();
    let body = o.request.body.render(&vars());
    assert_eq!(body.content_type, Some("application/json"));
    let v: Value = serde_json::from_slice(&body.bytes).unwrap();
    assert_eq!(
        v,
        json!({"m": [{"text": "Héllo \"world\" & {you}", "n": 2, "s": "2x", "fixed": 7}]})
    );
}

#[test]
fn form_bodies_are_url_encoded() {
    let o = opts(json!({"request": {"url": "http://h/x", "format": "form", "body": {"To": "{to}", "Body": "{text}"}}})).unwrap();
    let body = o.request.body.render(&vars());
    assert_eq!(body.content_type, Some("application/x-www-form-urlencoded"));
    let text = String::from_utf8(body.bytes).unwrap();
    let back: BTreeMap<String, String> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(back["To"], "+4915112345678");
    assert_eq!(back["Body"], "Héllo \"world\" & {you}");
}

#[test]
fn paths_pointer_and_dotted() {
    let v = json!({"messages": [{"message-id": "abc", "n": 12}], "a/b": {"~": true}});
    for (p, want) in [
        ("/messages/0/message-id", Some("abc")),
        ("messages.0.message-id", Some("abc")),
        ("messages.0.n", Some("12")),
        ("/a~1b/~0", Some("true")),
        ("messages.1.message-id", None),
        ("messages.x", None),
        ("/messages", None),
    ] {
        assert_eq!(
            ValuePath::parse(p).unwrap().find_text(&v).as_deref(),
            want,
            "{p}"
        );
    }
    assert!(ValuePath::parse("").is_err());
    assert!(ValuePath::parse("a..b").is_err());
    assert!(ValuePath::parse("/a//b").is_err());
}

#[test]
fn http_status_classes() {
    assert_eq!(classify_http_status(429), SubmitErrorClass::Throttled);
    for s in [500, 502, 503, 504, 408, 401, 403, 302] {
        assert_eq!(classify_http_status(s), SubmitErrorClass::Temporary, "{s}");
    }
    for s in [400, 404, 410, 422] {
        assert_eq!(classify_http_status(s), SubmitErrorClass::Permanent, "{s}");
    }
}

#[test]
fn answers_read_id_error_code_and_map() {
    let o = opts(json!({"request": {"url": "http://h/x"},
        "response": {"id_path": "/message/id", "error_code_path": "error.code", "error_map": {"21211": "invalid_destination"}}}))
    .unwrap();
    let r = &o.response;
    assert_eq!(
        r.read(201, br#"{"message":{"id":"p-1"}}"#, "fb"),
        ProviderAnswer::Accepted {
            provider_id: "p-1".into()
        }
    );
    // 2xx with an error code and no id: refused for good.
    let ProviderAnswer::Refused {
        class,
        code,
        provider_code,
        ..
    } = r.read(200, br#"{"error":{"code":21211}}"#, "fb")
    else {
        panic!("refused")
    };
    assert_eq!(
        (class, code.as_str(), provider_code.as_str()),
        (SubmitErrorClass::Permanent, "invalid_destination", "21211")
    );
    // 2xx with neither: accepted under the gateway's reference.
    assert_eq!(
        r.read(202, b"OK", "01J-1"),
        ProviderAnswer::Accepted {
            provider_id: "01J-1".into()
        }
    );
    let ProviderAnswer::Refused {
        class,
        code,
        provider_code,
        message,
    } = r.read(400, br#"{"error":{"code":"E42"}}"#, "fb")
    else {
        panic!("refused")
    };
    assert_eq!(
        (class, code.as_str(), provider_code.as_str()),
        (SubmitErrorClass::Permanent, "rejected_by_carrier", "E42")
    );
    assert!(message.contains("HTTP 400"), "{message}");
    let ProviderAnswer::Refused {
        class,
        code,
        provider_code,
        ..
    } = r.read(429, b"slow down", "fb")
    else {
        panic!("refused")
    };
    assert_eq!(
        (class, code.as_str(), provider_code.as_str()),
        (SubmitErrorClass::Throttled, "throttled", "HTTP 429")
    );
    let ProviderAnswer::Refused { class, code, .. } = r.read(503, b"", "fb") else {
        panic!("refused")
    };
    assert_eq!(
        (class, code.as_str()),
        (SubmitErrorClass::Temporary, "channel_unavailable")
    );
}

#[test]
fn option_errors_name_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "options.request"),
        (json!({"request": {}}), "options.request.url"),
        (
            json!({"request": {"url": "ftp://h/x"}}),
            "options.request.url",
        ),
        (
            json!({"request": {"url": "http://h/{nope}"}}),
            "options.request.url",
        ),
        (
            json!({"request": {"url": "http://h/x", "method": "DELETE"}}),
            "options.request.method",
        ),
        (
            json!({"request": {"url": "http://h/x", "headers": {"X-Key": "{pasword}"}}}),
            "options.request.headers.X-Key",
        ),
        (
            json!({"request": {"url": "http://h/x", "headers": {"bad header": "v"}}}),
            "options.request.headers.bad header",
        ),
        (
            json!({"request": {"url": "http://h/x", "body": {"sms": {"text": "{txt}"}}}}),
            "options.request.body.sms.text",
        ),
        (
            json!({"request": {"url": "http://h/x", "body": {"list": ["{to}", "{x}"]}}}),
            "options.request.body.list.1",
        ),
        (
            json!({"request": {"url": "http://h/x", "format": "form", "body": {"n": 1}}}),
            "options.request.body.n",
        ),
        (
            json!({"request": {"url": "http://h/x", "format": "xml", "body": {}}}),
            "options.request.format",
        ),
        (
            json!({"request": {"url": "http://h/x", "method": "GET", "body": {}}}),
            "options.request.body",
        ),
        (
            json!({"request": {"url": "http://h/x", "timeout_ms": 5}}),
            "options.request.timeout_ms",
        ),
        (
            json!({"request": {"url": "http://h/x", "extra": 1}}),
            "options.request.extra",
        ),
        (
            json!({"request": {"url": "http://h/x"}, "response": {"id_path": ""}}),
            "options.response.id_path",
        ),
        (
            json!({"request": {"url": "http://h/x"}, "response": {"error_map": {"1": "nope"}}}),
            "options.response.error_map.1",
        ),
        (
            json!({"request": {"url": "http://h/x"}, "receipts": {"auth": {"type": "token", "token": "short"}}}),
            "options.receipts.auth.token",
        ),
        (
            json!({"request": {"url": "http://h/x"}, "receipts": {"auth": {"type": "magic"}}}),
            "options.receipts.auth.type",
        ),
        (
            json!({"request": {"url": "http://h/x"}, "receipts": {"auth": {"type": "token", "token": "0123456789abcdef"}, "status_map": {"ok": "great"}}}),
            "options.receipts.status_map.ok",
        ),
    ];
    for (v, field) in cases {
        let (f, msg) = opts(v.clone()).unwrap_err();
        assert_eq!(f, field, "{v} → {msg}");
    }
    // Shared keys are not the http module's business.
    let mut ok = minimal();
    ok["dlr_timeout_seconds"] = json!(60);
    let o = opts(ok).unwrap();
    assert_eq!((o.request.host.as_str(), o.request.port), ("127.0.0.1", 9));
    assert!(matches!(o.request.body, BodyTemplate::Json(_)));
}

fn receipts_opts(auth: Value) -> super::options::ReceiptSettings {
    let mut v = minimal();
    v["receipts"] = json!({"auth": auth, "id_path": "data.id", "status_path": "data.state", "error_code_path": "data.err",
        "status_map": {"DLV": "delivered", "NOK": "undeliverable", "*": "unknown"}});
    opts(v).unwrap().receipts.unwrap()
}

#[test]
fn receipt_token_and_hmac_auth() {
    let body = br#"{"data":{"id":"p1","state":"DLV"}}"#;
    let s = receipts_opts(json!({"type": "token", "token": "0123456789abcdef"}));
    let h = |v: &'static str| move |n: &str| (n == "authorization").then_some(v);
    assert!(authenticate(&s.auth, h("Bearer 0123456789abcdef"), body).is_ok());
    assert_eq!(
        authenticate(&s.auth, h("Bearer 0123456789abcdeX"), body),
        Err(ReceiptError::Unauthorized)
    );
    assert_eq!(
        authenticate(&s.auth, |_| None, body),
        Err(ReceiptError::Unauthorized)
    );
    let s =
        receipts_opts(json!({"type": "token", "token": "0123456789abcdef", "header": "X-Token"}));
    assert!(
        authenticate(
            &s.auth,
            |n: &str| (n == "X-Token").then_some("0123456789abcdef"),
            body
        )
        .is_ok()
    );
    let s = receipts_opts(json!({"type": "hmac_sha256", "secret": "0123456789abcdef"}));
    let ReceiptAuth::HmacSha256 { secret, .. } = &s.auth else {
        panic!("hmac")
    };
    let sig = hmac_hex(secret.as_bytes(), body);
    let sig2 = format!("sha256={}", sig.to_uppercase());
    assert!(
        authenticate(
            &s.auth,
            |n: &str| (n == "x-signature").then_some(sig.as_str()),
            body
        )
        .is_ok()
    );
    assert!(
        authenticate(
            &s.auth,
            |n: &str| (n == "x-signature").then_some(sig2.as_str()),
            body
        )
        .is_ok()
    );
    assert_eq!(
        authenticate(
            &s.auth,
            |n: &str| (n == "x-signature").then_some(sig.as_str()),
            b"{}"
        ),
        Err(ReceiptError::Unauthorized)
    );
}

#[test]
fn receipt_bodies_json_list_and_form() {
    let s = receipts_opts(json!({"type": "token", "token": "0123456789abcdef"}));
    let one = parse_receipts(
        &s,
        br#"{"data":{"id":"p1","state":"dlv","err":"000"}}"#,
        false,
    )
    .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (
            one[0].provider_id.as_str(),
            one[0].status,
            one[0].error_code.as_deref()
        ),
        ("p1", Some(CommonStatus::Delivered), Some("000"))
    );
    let list = parse_receipts(
        &s,
        br#"[{"data":{"id":1,"state":"NOK"}},{"data":{"id":"p3","state":"weird"}}]"#,
        false,
    )
    .unwrap();
    assert_eq!(list[0].provider_id, "1");
    assert_eq!(list[0].status, Some(CommonStatus::Undeliverable));
    assert_eq!(
        list[1].status,
        Some(CommonStatus::Unknown),
        "the * fallback"
    );
    let e = parse_receipts(&s, br#"{"data":{"state":"DLV"}}"#, false).unwrap_err();
    assert_eq!(
        e,
        ReceiptError::Invalid {
            field: "data.id".into(),
            message: "missing message id".into()
        }
    );
    assert!(
        matches!(parse_receipts(&s, b"not json", false), Err(ReceiptError::Invalid { field, .. }) if field == "body")
    );
    // Form bodies: fields are flat keys.
    let mut v = minimal();
    v["receipts"] = json!({"auth": {"type": "token", "token": "0123456789abcdef"}, "id_path": "MessageSid", "status_path": "MessageStatus"});
    let s = opts(v).unwrap().receipts.unwrap();
    let r = parse_receipts(&s, b"MessageSid=SM1&MessageStatus=delivered&To=%2B49", true).unwrap();
    assert_eq!(
        (r[0].provider_id.as_str(), r[0].status),
        ("SM1", Some(CommonStatus::Delivered))
    );
    let r = parse_receipts(&s, b"MessageSid=SM1&MessageStatus=mystery", true).unwrap();
    assert_eq!(r[0].status, None, "unknown words without * are not final");
}

#[test]
fn default_status_words_cover_the_common_vocabulary() {
    let t = StatusTable::new(&BTreeMap::new());
    for (w, s) in [
        ("DELIVRD", CommonStatus::Delivered),
        ("delivered", CommonStatus::Delivered),
        ("queued", CommonStatus::Accepted),
        ("Sent", CommonStatus::Sent),
        ("UNDELIV", CommonStatus::Undeliverable),
        ("failed", CommonStatus::Undeliverable),
        ("EXPIRED", CommonStatus::Expired),
        ("REJECTD", CommonStatus::Rejected),
        ("unknown", CommonStatus::Unknown),
    ] {
        assert_eq!(t.lookup(w), Some(s), "{w}");
    }
    assert_eq!(t.lookup("zzz"), None);
    assert!(!CommonStatus::Sent.is_final() && CommonStatus::Expired.is_final());
}

#[test]
fn redaction_hides_receipt_secrets() {
    let v = super::options::redacted(
        json!({"receipts": {"auth": {"type": "token", "token": "s3cret-s3cret-s3cret"}}}),
    );
    assert_eq!(v["receipts"]["auth"]["token"], "<redacted>");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Receipt bodies come from the network: any bytes, as JSON or form, give
        /// receipts or an error, never a panic; templates and paths likewise.
        #[test]
        fn untrusted_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), text in ".{0,64}") {
            let s = receipts_opts(json!({"type": "hmac_sha256", "secret": "0123456789abcdef"}));
            let _ = parse_receipts(&s, &bytes, false);
            let _ = parse_receipts(&s, &bytes, true);
            let _ = authenticate(&s.auth, |_| std::str::from_utf8(&bytes).ok(), &bytes);
            if let Ok(t) = Template::parse(&text) {
                let _ = t.render_with(&vars(), percent_encode);
            }
            if let Ok(p) = ValuePath::parse(&text) {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let _ = p.find_text(&v);
            }
        }

        /// Whatever a placeholder's value, a rendered JSON body is valid JSON holding it.
        #[test]
        fn json_bodies_hold_any_text(text in ".{0,200}") {
            let o = opts(json!({"request": {"url": "http://h/x", "body": {"t": "<{text}>"}}})).unwrap();
            let mut v = vars();
            v.text = text.clone();
            let body: Value = serde_json::from_slice(&o.request.body.render(&v).bytes).unwrap();
            let want = format!("<{text}>");
            prop_assert_eq!(body["t"].as_str(), Some(want.as_str()));
        }
    }
}

/// A final receipt word means the same `error.code` over HTTP as the SMPP receipt state
/// of the same name (REJECTD → rejected_by_carrier, not blocked).
#[test]
fn receipt_error_codes_match_smpp() {
    use crate::protocols::smpp::receipt::ReceiptState;
    use crate::protocols::smpp::status_map::receipt_error_code;
    let table = [
        (CommonStatus::Rejected, ReceiptState::Rejected),
        (CommonStatus::Undeliverable, ReceiptState::Undeliverable),
        (CommonStatus::Expired, ReceiptState::Expired),
        (CommonStatus::Unknown, ReceiptState::Unknown),
    ];
    for (http, smpp) in table {
        assert_eq!(
            http.error_code(),
            Some(receipt_error_code(smpp)),
            "{http:?} vs {smpp:?}"
        );
    }
}
