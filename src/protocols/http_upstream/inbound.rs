//! Mobile-originated messages a REST provider POSTs to `/v1/mo/{channel}`: read with the
//! channel's `options.inbound` paths (JSON object, list, or form fields, as receipts).

use serde_json::Value;

use super::options::InboundSettings;
use super::receipt::{ReceiptError, invalid, items_of, read_body};

/// One MO as the provider described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMo {
    /// The handset that sent it.
    pub from: String,
    /// The tenant's number or short code it was sent to.
    pub to: String,
    /// Its text (the provider decodes it; empty when it sent none).
    pub text: String,
}

/// Longest MO text accepted from a provider (a long message of 255 parts).
const MAX_TEXT_CHARS: usize = 255 * 153;

/// Reads every MO in a POST body. `form` is true for form-encoded bodies.
///
/// # Errors
/// The body is not JSON (or form fields), or an item lacks `from` or `to`, or its text
/// is over 39,015 characters: the field is named.
pub fn parse_inbound(
    settings: &InboundSettings,
    body: &[u8],
    form: bool,
) -> Result<Vec<HttpMo>, ReceiptError> {
    let root = read_body(body, form)?;
    items_of(&root, settings.items_path.as_ref(), "messages")?
        .into_iter()
        .map(|item: &Value| {
            let from = settings
                .from_path
                .find_text(item)
                .filter(|f| !f.trim().is_empty())
                .ok_or_else(|| invalid(settings.from_path.as_str(), "missing sender"))?;
            let to = settings
                .to_path
                .find_text(item)
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| invalid(settings.to_path.as_str(), "missing recipient"))?;
            let text = settings.text_path.find_text(item).unwrap_or_default();
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(invalid(
                    settings.text_path.as_str(),
                    format!("over {MAX_TEXT_CHARS} characters"),
                ));
            }
            Ok(HttpMo { from, to, text })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http_upstream::HttpChannelOptions;

    fn settings(inbound: Value) -> InboundSettings {
        let options = serde_json::json!({
            "request": {"url": "http://127.0.0.1:1/sms"},
            "inbound": inbound,
        });
        let Value::Object(o) = options else {
            unreachable!("an object literal")
        };
        HttpChannelOptions::parse(&o)
            .ok()
            .and_then(|o| o.inbound)
            .unwrap_or_else(|| panic!("inbound settings"))
    }

    #[test]
    fn objects_lists_and_forms_are_read_with_the_channels_paths() {
        let s = settings(serde_json::json!({
            "auth": {"type": "token", "token": "0123456789abcdef"},
            "items_path": "data", "from_path": "msisdn", "to_path": "/dest/number", "text_path": "body",
        }));
        let body =
            br#"{"data": [{"msisdn": "+4915112345690", "dest": {"number": "55555"}, "body": "hi"},
                                 {"msisdn": "4915112345691", "dest": {"number": "55555"}}]}"#;
        let got = parse_inbound(&s, body, false).unwrap_or_default();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].from, "+4915112345690");
        assert_eq!(got[0].to, "55555");
        assert_eq!(got[0].text, "hi");
        assert_eq!(got[1].text, "");
        let plain =
            settings(serde_json::json!({"auth": {"type": "token", "token": "0123456789abcdef"}}));
        let form = b"from=%2B4915112345690&to=55555&text=STOP";
        let got = parse_inbound(&plain, form, true).unwrap_or_default();
        assert_eq!(
            got,
            vec![HttpMo {
                from: "+4915112345690".into(),
                to: "55555".into(),
                text: "STOP".into()
            }]
        );
    }

    #[test]
    fn a_message_without_sender_or_recipient_names_the_field() {
        let s =
            settings(serde_json::json!({"auth": {"type": "token", "token": "0123456789abcdef"}}));
        for (body, field) in [
            (&br#"{"to": "55555", "text": "x"}"#[..], "from"),
            (&br#"{"from": "+4915112345690", "to": " "}"#[..], "to"),
            (&b"not json"[..], "body"),
        ] {
            match parse_inbound(&s, body, false) {
                Err(ReceiptError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?} for {}", String::from_utf8_lossy(body)),
            }
        }
    }
}
