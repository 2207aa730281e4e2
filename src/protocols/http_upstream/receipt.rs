//! Receipts an HTTP provider POSTs to `/v1/receipts/{channel}`: who may post them
//! (token or HMAC, per channel) and what they say (JSON object, JSON list or form
//! fields → provider id, common status, provider error code). Pure.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::options::{ReceiptAuth, ReceiptSettings};
use super::path::ValuePath;
use super::status_map::CommonStatus;

/// One receipt, read and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReceipt {
    /// The provider's message id, as the submit response gave it.
    pub provider_id: String,
    /// The provider's status word, as sent.
    pub raw_status: String,
    /// `None` when the status table does not know the word (recorded as not final).
    pub status: Option<CommonStatus>,
    pub error_code: Option<String>,
}

/// Why a receipt POST is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Missing or wrong token / signature.
    #[error("missing or wrong receipt credentials")]
    Unauthorized,
    /// The body cannot be read; `field` names what is missing or wrong.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The hex HMAC-SHA256 of `body` with `secret` (what a provider puts in the header).
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut m) => {
            m.update(body);
            hex::encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Checks the credentials of a receipt POST. `header` looks a header up by name.
pub fn authenticate<'a>(
    auth: &ReceiptAuth,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<(), ReceiptError> {
    let ok = match auth {
        ReceiptAuth::Token {
            token,
            header: None,
        } => header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| constant_time_eq(v.trim().as_bytes(), token.as_bytes())),
        ReceiptAuth::Token {
            token,
            header: Some(h),
        } => header(h).is_some_and(|v| constant_time_eq(v.trim().as_bytes(), token.as_bytes())),
        ReceiptAuth::HmacSha256 { secret, header: h } => {
            let name = h.as_deref().unwrap_or("x-signature");
            let want = hmac_hex(secret.as_bytes(), body);
            header(name).is_some_and(|v| {
                let v = v.trim();
                let v = v.strip_prefix("sha256=").unwrap_or(v);
                !want.is_empty()
                    && constant_time_eq(v.to_ascii_lowercase().as_bytes(), want.as_bytes())
            })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ReceiptError::Unauthorized)
    }
}

pub(super) fn invalid(field: &str, message: impl Into<String>) -> ReceiptError {
    ReceiptError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Whether a provider's POST body is form fields: declared so (`content_type`), and not
/// plainly JSON (`curl -d '{...}'` declares a form; no form body starts with a brace or
/// bracket).
pub fn is_form_body(content_type: Option<&str>, body: &[u8]) -> bool {
    let json_body = matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    );
    !json_body && content_type.is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// A provider's POST body as JSON: form fields become a flat object.
pub(super) fn read_body(body: &[u8], form: bool) -> Result<Value, ReceiptError> {
    if form {
        return Ok(Value::Object(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| invalid("body", format!("not JSON: {e}")))
}

/// The items of a POST: the list at `items_path`, else the body itself if it is a list,
/// else the body as one item; at most 10,000.
pub(super) fn items_of<'a>(
    root: &'a Value,
    items_path: Option<&ValuePath>,
    what: &str,
) -> Result<Vec<&'a Value>, ReceiptError> {
    let items: Vec<&Value> = match (items_path, root) {
        (Some(p), _) => match p.find(root) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) if v.is_object() => vec![v],
            _ => {
                return Err(invalid(
                    p.as_str(),
                    format!("missing or not a list of {what}"),
                ));
            }
        },
        (None, Value::Array(a)) => a.iter().collect(),
        (None, v) => vec![v],
    };
    if items.len() > 10_000 {
        return Err(invalid(
            "body",
            format!("more than 10000 {what} in one request"),
        ));
    }
    Ok(items)
}

/// Reads every receipt in a POST body. `form` is true for
/// `application/x-www-form-urlencoded` bodies (fields become a flat JSON object).
pub fn parse_receipts(
    settings: &ReceiptSettings,
    body: &[u8],
    form: bool,
) -> Result<Vec<HttpReceipt>, ReceiptError> {
    let root = read_body(body, form)?;
    items_of(&root, settings.items_path.as_ref(), "receipts")?
        .into_iter()
        .map(|item| {
            let provider_id = settings
                .id_path
                .find_text(item)
                .ok_or_else(|| invalid(settings.id_path.as_str(), "missing message id"))?;
            let raw_status = settings
                .status_path
                .find_text(item)
                .ok_or_else(|| invalid(settings.status_path.as_str(), "missing status"))?;
            Ok(HttpReceipt {
                status: settings.statuses.lookup(&raw_status),
                error_code: settings
                    .error_code_path
                    .as_ref()
                    .and_then(|p| p.find_text(item)),
                provider_id,
                raw_status,
            })
        })
        .collect()
}
