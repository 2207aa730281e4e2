//! The one place where every refusal becomes an HTTP status and a contract error code:
//! `{"error": {"code", "message", "field"}}`. The registry of codes is exported to
//! `docs/error-codes.md`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::consensus::WriteError;

/// A refused request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

/// Every public error code: (code, HTTP status, what it means and what to do).
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    (
        "invalid_json",
        400,
        "The body is not valid JSON (or not UTF-8). Fix the request body.",
    ),
    (
        "invalid_field",
        422,
        "A field has the wrong type, is missing, unknown, or out of range; `field` names it (`body` when the body is not a JSON object, `messages[i]` for such a batch item).",
    ),
    (
        "invalid_phone_number",
        422,
        "`to` is not a valid E.164 number after stripping spaces, dashes and parentheses.",
    ),
    (
        "invalid_sender",
        422,
        "`from` is not an alphanumeric id (≤ 11), a short code or an E.164 number.",
    ),
    (
        "encoding_mismatch",
        422,
        "`encoding: gsm7` was requested but the text has a character outside GSM 03.38.",
    ),
    (
        "too_long",
        422,
        "The text needs more parts than the tenant's `max_parts`. Shorten it or raise `max_parts`.",
    ),
    (
        "unauthorized",
        401,
        "Missing or wrong `Authorization: Bearer` credentials.",
    ),
    ("not_found", 404, "No such id (for this tenant)."),
    (
        "conflict",
        409,
        "An object with this id (or a route with the same match, or one that would make it or itself never chosen, or this sender) exists already, a channel is still used by a route, or a deleted tenant's messages still hold the tenant id; `message` says which and what to do.",
    ),
    (
        "idempotency_conflict",
        409,
        "The same Idempotency-Key was used with a different request within 24 h (compared after parsing: key order, whitespace and number formatting do not matter).",
    ),
    (
        "not_cancelable",
        409,
        "`POST /v1/messages/{id}/cancel`: the message can no longer be withdrawn (a channel has taken it, a part was sent, or it is final); `message` names its current status.",
    ),
    (
        "body_too_large",
        413,
        "The request body is larger than the node's `max_body_bytes`; `message` states the limit in bytes. A `Content-Length` over it is refused before the body is sent (no `100 Continue`).",
    ),
    (
        "rate_limited",
        429,
        "The tenant's request rate is above its limit; retry after `Retry-After` seconds.",
    ),
    (
        "queue_full",
        429,
        "Too many messages wait for this tenant (`queue_limit`) or node (`node_queue_limit`). Due-now and scheduled messages are counted apart; marketing is refused from 90 % of a limit, transactional from 95 %, otp may use all of it; `message` says which limit and share. Retry after `Retry-After` seconds (5 for messages due now, 60 for scheduled ones). A batch answers 200 with per-item `queue_full` and a `Retry-After` header, or 429 when every item was refused `queue_full`.",
    ),
    (
        "not_ready",
        503,
        "The node has no leader or cannot reach a quorum; nothing was stored. Retry (with the same Idempotency-Key).",
    ),
    (
        "outcome_unknown",
        503,
        "The write was under way when the leader changed, or when the node's storage failed (a full disk: the node stops); the message may or may not be stored. Retry with the same Idempotency-Key (or look it up by `client_ref`).",
    ),
    (
        "method_not_allowed",
        405,
        "This path does not take this HTTP method.",
    ),
    (
        "unsupported_media_type",
        415,
        "Send `Content-Type: application/json`, uncompressed: a `Content-Encoding` other than `identity` (gzip, br, ...) is refused with `field` `Content-Encoding`.",
    ),
    (
        "origin_not_allowed",
        403,
        "A cross-origin request (CORS preflight) from an origin that is not a cluster member's dashboard. Call the API from a server, or open the dashboard of a member.",
    ),
    (
        "content_blocked",
        403,
        "A content rule with action `reject` matched the text; `message` names the rule id. Change the text or the rule.",
    ),
    (
        "sender_not_allowed",
        403,
        "The sender id may not be used for this destination: the country requires registered senders, forbids alphanumeric ids without a tenant `sender_pool`, or the toll-free number / short code is not registered for the tenant.",
    ),
    (
        "unregistered_10dlc",
        403,
        "A US long-code sender is not registered to a 10DLC campaign of the tenant (or not to the `campaign_id` given). Register it with `POST /admin/v1/tenants/{id}/campaigns`.",
    ),
    (
        "opted_out",
        403,
        "The recipient is on the tenant's opt-out list for this category.",
    ),
    (
        "dlt_required",
        422,
        "Messages to this country (India) need `dlt.entity_id` and `dlt.template_id`.",
    ),
    (
        "dlt_template_mismatch",
        422,
        "The DLT template is not registered for the tenant, belongs to another entity, or the text does not match it (`{#var#}` stands for up to 30 characters).",
    ),
    (
        "frequency_capped",
        429,
        "The tenant's frequency cap for this category and recipient is reached; retry after `Retry-After` seconds.",
    ),
];

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }
    /// A JSON value that must be an object and is not (a whole body, a batch item).
    pub fn not_an_object(field: &str) -> Self {
        Self::invalid(field, "expected a JSON object")
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }
    /// The JSON body of this error (batch items carry it inline).
    pub fn body(&self) -> serde_json::Value {
        let mut inner = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            inner["field"] = serde_json::Value::String(f.clone());
        }
        serde_json::json!({ "error": inner })
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        let (code, msg) = match &e {
            WriteError::Ambiguous(_) => ("outcome_unknown", e.to_string()),
            _ => ("not_ready", e.to_string()),
        };
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, msg)
        }
    }
}

impl From<crate::state::StoreError> for ApiError {
    fn from(e: crate::state::StoreError) -> Self {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 names the scheme the credentials are expected in.
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            set_retry_after(&mut resp, s);
        }
        resp
    }
}

/// Puts `Retry-After: secs` on `resp` (an error's 429/503, or a batch's 200 whose items
/// were refused with one).
pub fn set_retry_after(resp: &mut Response, secs: u64) {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!("malformed JSON: {e}"),
    )
}

/// A query string that does not parse, naming the parameter when the parser says which
/// (`limit=abc` → field `limit`), else `query`.
pub fn bad_query(rejection: &axum::extract::rejection::QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    let named = detail.split_once(": ").filter(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    match named {
        Some((name, why)) => ApiError::invalid(name, format!("query parameter {name}: {why}")),
        // "unknown field `foo`, expected one of ..." names it in backticks.
        None => match detail.split('`').nth(1) {
            Some(name) if detail.starts_with("unknown field") => {
                ApiError::invalid(name, format!("unknown query parameter: {detail}"))
            }
            _ => ApiError::invalid("query", detail.to_string()),
        },
    }
}

/// Parses a JSON body into `T`, naming the offending field on type errors. Every body
/// of the API is a JSON object: anything else is refused here, since serde would read
/// an array into a struct field by field.
pub fn parse_json<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    // serde_json skips over the strings of a body it only checks for shape, so bytes that
    // are not UTF-8 would otherwise read as "a field of the wrong type".
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "malformed JSON: the body is not UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        ));
    }
    if let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace())
        && *first != b'{'
    {
        // Malformed JSON stays a 400; well-formed JSON of another kind is a 422.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::not_an_object("body"),
                Err(e) => malformed(&e),
            },
        );
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end().map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("trailing data after JSON: {e}"),
                )
            })?;
            Ok(v)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                // serde_json reports a number or a list where an enum's name belongs as a
                // syntax error ("expected value"); in a well-formed body it is a field of
                // the wrong type.
                let well_formed = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
                // A lone surrogate escape (`"\ud800"`) is no text at all: malformed, too.
                let bad_text = {
                    let m = inner.to_string();
                    m.contains("surrogate") || m.contains("escape")
                };
                if well_formed
                    && !bad_text
                    && inner.is_syntax()
                    && !(path == "." || path.is_empty())
                {
                    return Err(ApiError::invalid(
                        &path,
                        format!("{path} has the wrong type: expected one of the documented values"),
                    ));
                }
                return Err(malformed(&inner));
            }
            let msg = without_rust_names(&inner.to_string());
            let field = if path == "." || path.is_empty() {
                // Missing or unknown fields are reported at the parent; pull the name out of the message.
                msg.split('`').nth(1).unwrap_or("body").to_string()
            } else {
                path
            };
            Err(ApiError::invalid(&field, msg))
        }
    }
}

/// serde names the Rust type it expected ("expected struct DltIds", "expected enum
/// Category", "expected struct X with 2 elements"); callers know only JSON.
fn without_rust_names(msg: &str) -> String {
    let mut msg = msg.to_string();
    for (marker, plain) in [
        ("expected struct ", "expected a JSON object"),
        ("expected enum ", "expected one of the documented values"),
    ] {
        let Some(at) = msg.find(marker) else {
            continue;
        };
        let tail = &msg[at + marker.len()..];
        let name = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut tail = &tail[name..];
        // " with 13 elements" after a struct read from an array.
        if let Some(rest) = tail.strip_prefix(" with ")
            && let Some(end) = rest.find(" elements")
        {
            tail = &rest[end + " elements".len()..];
        }
        msg = format!("{}{plain}{tail}", &msg[..at]);
    }
    // serde_json's " at line 1 column 31" points into JSON the caller may never have
    // written (the CLI builds it); `field` already says where.
    if let Some(at) = msg.rfind(" at line ") {
        let rest = &msg[at + " at line ".len()..];
        let position = rest.split_once(" column ").is_some_and(|(l, c)| {
            !l.is_empty()
                && !c.is_empty()
                && l.bytes().all(|b| b.is_ascii_digit())
                && c.bytes().all(|b| b.is_ascii_digit())
        });
        if position {
            msg.truncate(at);
        }
    }
    msg
}

/// Converts 413 and other body rejections from axum into the contract's shape.
pub fn body_rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body is too large",
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_doc_lists_every_code() {
        let doc = include_str!("../../docs/error-codes.md");
        for (code, status, _) in ERROR_CODES {
            assert!(
                doc.contains(&format!("| `{code}` | {status} |")),
                "docs/error-codes.md misses {code}"
            );
        }
    }

    #[test]
    fn parse_json_names_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            to: String,
            n: Option<u32>,
        }
        let e = parse_json::<B>(br#"{"to": 5}"#).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code, e.field.as_deref()),
            (422, "invalid_field", Some("to"))
        );
        let e = parse_json::<B>(br#"{"to": "x", "zz": 1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("zz"));
        assert!(!e.message.contains(" at line "), "{}", e.message);
        let e = parse_json::<B>(br#"{}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("to"));
        let e = parse_json::<B>(br#"{"to": "#).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_json"));
        let e = parse_json::<B>(b"\xff\xfe").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        // Bytes that are not UTF-8 inside a string, and a lone surrogate escape: a
        // malformed body (400), not a field of the wrong type (422).
        let e = parse_json::<B>(b"{\"to\": \"\xff\xfe\"}").unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code),
            (400, "invalid_json"),
            "{}",
            e.message
        );
        let e = parse_json::<B>(br#"{"to": "\ud800"}"#).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code),
            (400, "invalid_json"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_number_for_an_enum_names_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            category: crate::state::Category,
        }
        let e = parse_json::<Body>(br#"{"category": 5}"#).expect_err("a number is no category");
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.field.as_deref(), Some("category"));
        let e = parse_json::<Body>(br#"{"category": 5"#).expect_err("cut off");
        assert_eq!(e.status.as_u16(), 400);
    }

    #[test]
    fn parse_json_takes_only_objects() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            a: String,
            b: String,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            to: String,
            n: Option<Inner>,
        }
        for body in [
            &br#"["x", null]"#[..],
            b" [\"x\"]",
            b"\"x\"",
            b"5",
            b"null",
            b"true",
        ] {
            let e = parse_json::<B>(body).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code, e.field.as_deref()),
                (422, "invalid_field", Some("body")),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(e.message, "expected a JSON object");
        }
        for body in [&b"["[..], b"[1,", b"nul", b"[1] x", b"", b"  "] {
            let e = parse_json::<B>(body).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (400, "invalid_json"));
        }
        let e = parse_json::<B>(br#"{"to": "x", "n": 5}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("n"));
        assert!(
            e.message
                .starts_with("invalid type: integer `5`, expected a JSON object"),
            "{}",
            e.message
        );
        let e = parse_json::<B>(br#"{"to": "x", "n": ["a"]}"#).unwrap_err();
        assert!(!e.message.contains("Inner"), "{}", e.message);
    }

    #[test]
    fn messages_name_no_rust_types() {
        for (serde, public) in [
            (
                "invalid type: integer `1`, expected struct SendRequest at line 1 column 1",
                "invalid type: integer `1`, expected a JSON object",
            ),
            (
                "invalid length 1, expected struct DltIds with 2 elements",
                "invalid length 1, expected a JSON object",
            ),
            (
                "invalid type: integer `5`, expected enum Category at line 1 column 40",
                "invalid type: integer `5`, expected one of the documented values",
            ),
            ("missing field `to`", "missing field `to`"),
        ] {
            assert_eq!(without_rust_names(serde), public);
        }
    }

    /// Numbers in request bodies (and in answers read back) parse to the exact f64 their
    /// text names: serde_json's default parser can be one ULP off (`float_roundtrip`).
    #[test]
    fn json_numbers_parse_exactly() {
        #[derive(serde::Deserialize)]
        struct B {
            v: f64,
        }
        let text = "0.9064327485380117";
        let b: B = parse_json(format!(r#"{{"v": {text}}}"#).as_bytes()).expect("a number");
        assert_eq!(b.v.to_bits(), text.parse::<f64>().expect("std").to_bits());
    }
}
