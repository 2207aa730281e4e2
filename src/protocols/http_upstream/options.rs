//! The options of an HTTP channel (`options` of `POST /admin/v1/channels` with
//! `"protocol": "http"`), checked and compiled once: every error names the field
//! (`options.request.body.text`), so a bad template is refused at create time, never
//! discovered at send time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::codec::{BodyTemplate, JsonTemplate, ResponseReader, Template};
use super::path::ValuePath;
use super::status_map::{CommonStatus, ERROR_CODES, StatusTable};

/// Option keys every protocol shares (handled by the admin API, not here).
const COMMON_KEYS: &[&str] = &["udh", "dlr_timeout_seconds"];

/// A bad option: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OptionsError {
    /// Full field path, e.g. `options.request.url`.
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> OptionsError {
    OptionsError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    request: RawRequest,
    #[serde(default)]
    response: RawResponse,
    #[serde(default)]
    receipts: Option<RawReceipts>,
    #[serde(default)]
    inbound: Option<RawInbound>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    auth: ReceiptAuth,
    #[serde(default)]
    items_path: Option<String>,
    #[serde(default)]
    from_path: Option<String>,
    #[serde(default)]
    to_path: Option<String>,
    #[serde(default)]
    text_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    basic_auth: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    #[serde(default)]
    id_path: Option<String>,
    #[serde(default)]
    error_code_path: Option<String>,
    #[serde(default)]
    error_map: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceipts {
    auth: ReceiptAuth,
    #[serde(default)]
    items_path: Option<String>,
    #[serde(default)]
    id_path: Option<String>,
    #[serde(default)]
    status_path: Option<String>,
    #[serde(default)]
    error_code_path: Option<String>,
    #[serde(default)]
    status_map: BTreeMap<String, CommonStatus>,
}

/// How the provider proves a receipt POST is its own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiptAuth {
    /// A shared token in a header: `Authorization: Bearer <token>` by default, or the
    /// whole value of `header` (e.g. `X-Receipt-Token: <token>`).
    Token {
        token: String,
        #[serde(default)]
        header: Option<String>,
    },
    /// HMAC-SHA256 of the raw body with `secret`, hex, in `header` (default
    /// `X-Signature`); a `sha256=` prefix is accepted.
    HmacSha256 {
        secret: String,
        #[serde(default)]
        header: Option<String>,
    },
}

/// The compiled request template.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    pub url: Template,
    pub method: reqwest::Method,
    pub headers: Vec<(reqwest::header::HeaderName, Template)>,
    pub body: BodyTemplate,
    /// Send the channel's system_id / password as HTTP basic auth.
    pub basic_auth: bool,
    /// Whole-request timeout; a timeout is an unknown outcome (requeued, counted).
    pub timeout: Duration,
    /// Host and port of the URL: what "bound" probes, and what GET shows.
    pub host: String,
    pub port: u16,
}

/// The compiled receipt settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptSettings {
    pub auth: ReceiptAuth,
    /// Where a list of receipts is, when the provider posts several at once.
    pub items_path: Option<ValuePath>,
    pub id_path: ValuePath,
    pub status_path: ValuePath,
    pub error_code_path: Option<ValuePath>,
    pub statuses: StatusTable,
}

/// Where a provider's mobile-originated messages (POSTed to `/v1/mo/{channel}`) keep
/// their fields, and how the provider proves a POST is its own.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundSettings {
    pub auth: ReceiptAuth,
    /// Where a list of messages is, when the provider posts several at once.
    pub items_path: Option<ValuePath>,
    pub from_path: ValuePath,
    pub to_path: ValuePath,
    pub text_path: ValuePath,
}

/// Everything an HTTP channel needs, compiled from its options.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpChannelOptions {
    pub request: RequestTemplate,
    pub response: ResponseReader,
    /// `None`: the provider sends no receipts (parts settle after `dlr_timeout_seconds`).
    pub receipts: Option<ReceiptSettings>,
    /// `None`: the provider delivers no MO to this gateway.
    pub inbound: Option<InboundSettings>,
}

fn path(field: &str, s: &str) -> Result<ValuePath, OptionsError> {
    ValuePath::parse(s).map_err(|e| bad(field, e))
}

impl HttpChannelOptions {
    /// Checks and compiles a channel's `options` object.
    pub fn parse(options: &serde_json::Map<String, Value>) -> Result<Self, OptionsError> {
        let own: serde_json::Map<String, Value> = options
            .iter()
            .filter(|(k, _)| !COMMON_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let raw: RawOptions =
            serde_path_to_error::deserialize(Value::Object(own)).map_err(|e| {
                let p = e.path().to_string();
                let msg = e.inner().to_string();
                let field = if p == "." || p.is_empty() {
                    match msg.split('`').nth(1) {
                        Some(name) => format!("options.{name}"),
                        None => "options".into(),
                    }
                } else if msg.starts_with("missing field") {
                    format!("options.{p}.{}", msg.split('`').nth(1).unwrap_or(""))
                } else {
                    format!("options.{p}")
                };
                bad(field, msg)
            })?;
        let request = compile_request(raw.request)?;
        let r = raw.response;
        let id_path = path(
            "options.response.id_path",
            r.id_path.as_deref().unwrap_or("id"),
        )?;
        let error_code_path = r
            .error_code_path
            .as_deref()
            .map(|p| path("options.response.error_code_path", p))
            .transpose()?;
        for (k, v) in &r.error_map {
            if !ERROR_CODES.contains(&v.as_str()) {
                return Err(bad(
                    format!("options.response.error_map.{k}"),
                    format!(
                        "{v:?} is not an error code; use one of {}",
                        ERROR_CODES.join(", ")
                    ),
                ));
            }
        }
        let response = ResponseReader {
            id_path,
            error_code_path,
            error_map: r.error_map,
        };
        let receipts = raw.receipts.map(compile_receipts).transpose()?;
        let inbound = raw.inbound.map(compile_inbound).transpose()?;
        Ok(HttpChannelOptions {
            request,
            response,
            receipts,
            inbound,
        })
    }
}

fn compile_request(r: RawRequest) -> Result<RequestTemplate, OptionsError> {
    let url = Template::parse(&r.url).map_err(|e| bad("options.request.url", e))?;
    // The URL with every placeholder filled must be a valid http(s) URL.
    let probe = reqwest::Url::parse(&url.render(&super::codec::PartVars {
        to: "+10000000000".into(),
        message_id: "x".into(),
        part: 1,
        parts: 1,
        ..Default::default()
    }))
    .map_err(|e| bad("options.request.url", format!("not a URL: {e}")))?;
    if !matches!(probe.scheme(), "http" | "https") {
        return Err(bad(
            "options.request.url",
            "must start with http:// or https://",
        ));
    }
    let host = probe
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("options.request.url", "has no host"))?
        .to_string();
    let port = probe.port_or_known_default().unwrap_or(443);
    let method = match r
        .method
        .as_deref()
        .unwrap_or("POST")
        .to_ascii_uppercase()
        .as_str()
    {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        "PATCH" => reqwest::Method::PATCH,
        other => {
            return Err(bad(
                "options.request.method",
                format!("{other:?}: use GET, POST, PUT or PATCH"),
            ));
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &r.headers {
        let field = format!("options.request.headers.{name}");
        let hn = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(&field, "not a valid header name"))?;
        if value.contains(['\r', '\n']) {
            return Err(bad(&field, "a header value cannot contain line breaks"));
        }
        headers.push((hn, Template::parse(value).map_err(|e| bad(&field, e))?));
    }
    let format = r.format.as_deref().unwrap_or("json");
    let body = match (format, &r.body) {
        (_, None) => BodyTemplate::None,
        ("json", Some(v)) => BodyTemplate::Json(JsonTemplate::compile(v).map_err(|(p, e)| {
            bad(
                if p.is_empty() {
                    "options.request.body".to_string()
                } else {
                    format!("options.request.body.{p}")
                },
                e,
            )
        })?),
        ("form", Some(Value::Object(m))) => {
            let mut fields = Vec::new();
            for (k, v) in m {
                let field = format!("options.request.body.{k}");
                let Value::String(s) = v else {
                    return Err(bad(&field, "form fields are strings"));
                };
                fields.push((k.clone(), Template::parse(s).map_err(|e| bad(&field, e))?));
            }
            BodyTemplate::Form(fields)
        }
        ("form", Some(_)) => {
            return Err(bad(
                "options.request.body",
                "a form body is an object of string fields",
            ));
        }
        (other, _) => {
            return Err(bad(
                "options.request.format",
                format!("{other:?}: use json or form"),
            ));
        }
    };
    if method == reqwest::Method::GET && body != BodyTemplate::None {
        return Err(bad(
            "options.request.body",
            "a GET request has no body; put the fields in the URL",
        ));
    }
    let timeout_ms = r.timeout_ms.unwrap_or(10_000);
    if !(100..=120_000).contains(&timeout_ms) {
        return Err(bad("options.request.timeout_ms", "100 to 120000"));
    }
    Ok(RequestTemplate {
        url,
        method,
        headers,
        body,
        basic_auth: r.basic_auth,
        timeout: Duration::from_millis(timeout_ms),
        host,
        port,
    })
}

/// Checks the credentials of `options.<section>.auth`.
fn check_auth(section: &str, auth: &ReceiptAuth) -> Result<(), OptionsError> {
    match auth {
        ReceiptAuth::Token { token, header }
        | ReceiptAuth::HmacSha256 {
            secret: token,
            header,
        } => {
            let which = if matches!(auth, ReceiptAuth::Token { .. }) {
                "token"
            } else {
                "secret"
            };
            if token.len() < 16 || token.len() > 512 {
                return Err(bad(
                    format!("options.{section}.auth.{which}"),
                    "16 to 512 characters",
                ));
            }
            if let Some(h) = header
                && reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
            {
                return Err(bad(
                    format!("options.{section}.auth.header"),
                    "not a valid header name",
                ));
            }
        }
    }
    Ok(())
}

fn compile_inbound(r: RawInbound) -> Result<InboundSettings, OptionsError> {
    check_auth("inbound", &r.auth)?;
    let field = |name: &str, given: Option<&str>| {
        path(
            &format!("options.inbound.{name}_path"),
            given.unwrap_or(name),
        )
    };
    Ok(InboundSettings {
        items_path: r
            .items_path
            .as_deref()
            .map(|p| path("options.inbound.items_path", p))
            .transpose()?,
        from_path: field("from", r.from_path.as_deref())?,
        to_path: field("to", r.to_path.as_deref())?,
        text_path: field("text", r.text_path.as_deref())?,
        auth: r.auth,
    })
}

fn compile_receipts(r: RawReceipts) -> Result<ReceiptSettings, OptionsError> {
    check_auth("receipts", &r.auth)?;
    Ok(ReceiptSettings {
        items_path: r
            .items_path
            .as_deref()
            .map(|p| path("options.receipts.items_path", p))
            .transpose()?,
        id_path: path(
            "options.receipts.id_path",
            r.id_path.as_deref().unwrap_or("id"),
        )?,
        status_path: path(
            "options.receipts.status_path",
            r.status_path.as_deref().unwrap_or("status"),
        )?,
        error_code_path: r
            .error_code_path
            .as_deref()
            .map(|p| path("options.receipts.error_code_path", p))
            .transpose()?,
        statuses: StatusTable::new(&r.status_map),
        auth: r.auth,
    })
}

/// A copy of a channel's options with the receipt and MO secrets hidden (for GET).
pub fn redacted(mut options: Value) -> Value {
    for auth in ["/receipts/auth", "/inbound/auth"] {
        crate::protocols::redact_keys(
            options.pointer_mut(auth).and_then(Value::as_object_mut),
            &["token", "secret"],
        );
    }
    options
}
