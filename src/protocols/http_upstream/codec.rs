//! The HTTP channel's "codec": request templates with `{placeholder}`s rendered for one
//! part (URL, headers, JSON or form body), and the provider's answer read back into a
//! submit outcome. Pure: no sockets here (the session sends what this builds).

use std::collections::BTreeMap;

use serde_json::Value;

use super::path::ValuePath;
use super::status_map::SubmitErrorClass;

/// Every placeholder a template may use, with what it becomes.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("to", "recipient in E.164 with the leading +"),
    ("to_digits", "recipient without the +"),
    ("from", "sender id (alphanumeric, short code or number)"),
    ("text", "this part's text (UDH removed)"),
    ("message_id", "the gateway's message id"),
    ("part", "this part's number, from 1"),
    ("parts", "how many parts the message has"),
    ("reference", "{message_id}-{part}: unique per part"),
    ("encoding", "gsm7, ucs2, latin1, ascii or binary"),
    ("data_coding", "the SMPP data_coding value (0, 8, ...)"),
    (
        "udh",
        "the part's user data header in hex (empty for one-part messages)",
    ),
    (
        "system_id",
        "the channel's system_id (e.g. the provider's account id)",
    ),
    (
        "password",
        "the channel's password (e.g. the provider's API key)",
    ),
];

/// Placeholders whose value is a number: a JSON leaf that is exactly one of them is sent
/// as a JSON number.
const NUMERIC: &[&str] = &["part", "parts", "data_coding"];

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var(&'static str),
}

/// A string with `{placeholder}`s (`{{` and `}}` are literal braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// The values of one part's placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartVars {
    pub to: String,
    pub from: String,
    pub text: String,
    pub message_id: String,
    pub part: u32,
    pub parts: u32,
    pub data_coding: u8,
    pub udh_hex: String,
    pub system_id: String,
    pub password: String,
}

impl PartVars {
    fn get(&self, name: &str) -> String {
        match name {
            "to" => {
                if self.to.starts_with('+') {
                    self.to.clone()
                } else {
                    format!("+{}", self.to)
                }
            }
            "to_digits" => self.to.trim_start_matches('+').to_string(),
            "from" => self.from.clone(),
            "text" => self.text.clone(),
            "message_id" => self.message_id.clone(),
            "part" => self.part.to_string(),
            "parts" => self.parts.to_string(),
            "reference" => format!("{}-{}", self.message_id, self.part),
            "encoding" => match self.data_coding {
                0x00 => "gsm7",
                0x01 => "ascii",
                0x03 => "latin1",
                0x08 => "ucs2",
                _ => "binary",
            }
            .to_string(),
            "data_coding" => self.data_coding.to_string(),
            "udh" => self.udh_hex.clone(),
            "system_id" => self.system_id.clone(),
            "password" => self.password.clone(),
            _ => String::new(),
        }
    }
}

impl Template {
    /// Parses a template; the error names the bad placeholder or brace.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if name.len() < 64 => name.push(c),
                            _ => {
                                return Err(format!(
                                    "unclosed '{{' in {s:?}; write {{{{ for a literal brace"
                                ));
                            }
                        }
                    }
                    let Some((known, _)) = PLACEHOLDERS.iter().find(|(n, _)| *n == name) else {
                        let names: Vec<&str> = PLACEHOLDERS.iter().map(|(n, _)| *n).collect();
                        return Err(format!(
                            "unknown placeholder {{{name}}}; use one of {{{}}}",
                            names.join("}, {")
                        ));
                    };
                    if !lit.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Var(known));
                }
                '}' => {
                    return Err(format!(
                        "a lone '}}' in {s:?}; write }}}} for a literal brace"
                    ));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Template { pieces })
    }

    /// The text with every placeholder replaced; `escape` is applied to values only.
    pub fn render_with(&self, vars: &PartVars, escape: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Literal(l) => out.push_str(l),
                Piece::Var(v) => out.push_str(&escape(&vars.get(v))),
            }
        }
        out
    }

    /// The text with every placeholder replaced as is.
    pub fn render(&self, vars: &PartVars) -> String {
        self.render_with(vars, str::to_string)
    }

    /// The placeholder if the template is exactly one placeholder and nothing else.
    fn only_var(&self) -> Option<&'static str> {
        match self.pieces.as_slice() {
            [Piece::Var(v)] => Some(v),
            _ => None,
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL values).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON body template: the same shape as the JSON given, string leaves compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// A string leaf with placeholders.
    Text(Template),
    /// Anything without strings inside (number, bool, null) is sent as written.
    Fixed(Value),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Compiles `v`; errors carry the dotted path below the body (`to`, `messages.0.text`).
    pub fn compile(v: &Value) -> Result<JsonTemplate, (String, String)> {
        Ok(match v {
            Value::String(s) => {
                JsonTemplate::Text(Template::parse(s).map_err(|e| (String::new(), e))?)
            }
            Value::Array(a) => JsonTemplate::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        JsonTemplate::compile(x).map_err(|(p, e)| (join(&i.to_string(), &p), e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => JsonTemplate::Object(
                m.iter()
                    .map(|(k, x)| {
                        JsonTemplate::compile(x)
                            .map(|t| (k.clone(), t))
                            .map_err(|(p, e)| (join(k, &p), e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => JsonTemplate::Fixed(other.clone()),
        })
    }

    /// The JSON value for one part.
    pub fn render(&self, vars: &PartVars) -> Value {
        match self {
            JsonTemplate::Text(t) => match t.only_var() {
                Some(v) if NUMERIC.contains(&v) => {
                    Value::from(vars.get(v).parse::<u64>().unwrap_or(0))
                }
                _ => Value::String(t.render(vars)),
            },
            JsonTemplate::Fixed(v) => v.clone(),
            JsonTemplate::Array(a) => Value::Array(a.iter().map(|t| t.render(vars)).collect()),
            JsonTemplate::Object(m) => {
                Value::Object(m.iter().map(|(k, t)| (k.clone(), t.render(vars))).collect())
            }
        }
    }
}

fn join(head: &str, tail: &str) -> String {
    if tail.is_empty() {
        head.to_string()
    } else {
        format!("{head}.{tail}")
    }
}

/// The request body of one part.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    /// No body (e.g. a GET with everything in the URL).
    None,
    /// `Content-Type: application/json`.
    Json(JsonTemplate),
    /// `Content-Type: application/x-www-form-urlencoded`, fields in the order given.
    Form(Vec<(String, Template)>),
}

/// A rendered request body with its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedBody {
    pub content_type: Option<&'static str>,
    pub bytes: Vec<u8>,
}

impl BodyTemplate {
    /// The body for one part.
    pub fn render(&self, vars: &PartVars) -> RenderedBody {
        match self {
            BodyTemplate::None => RenderedBody {
                content_type: None,
                bytes: Vec::new(),
            },
            BodyTemplate::Json(t) => RenderedBody {
                content_type: Some("application/json"),
                bytes: t.render(vars).to_string().into_bytes(),
            },
            BodyTemplate::Form(fields) => {
                let mut ser = form_urlencoded::Serializer::new(String::new());
                for (k, t) in fields {
                    ser.append_pair(k, &t.render(vars));
                }
                RenderedBody {
                    content_type: Some("application/x-www-form-urlencoded"),
                    bytes: ser.finish().into_bytes(),
                }
            }
        }
    }
}

/// How a provider's answer is read: where the id is, where its error code is, and which
/// of its error codes mean what in the gateway's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseReader {
    pub id_path: ValuePath,
    pub error_code_path: Option<ValuePath>,
    /// Provider error code → the contract's error code (`invalid_destination`, ...).
    pub error_map: BTreeMap<String, String>,
}

/// What one HTTP answer means for the part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderAnswer {
    /// 2xx with the provider's id.
    Accepted { provider_id: String },
    /// The provider refused; `provider_code` is its own code (or `HTTP <status>`).
    Refused {
        class: SubmitErrorClass,
        code: String,
        provider_code: String,
        message: String,
    },
}

impl ResponseReader {
    /// Reads the answer to one part's request. `fallback_id` is used when a 2xx carries
    /// no id and no error code (receipts can then match on the gateway's reference).
    pub fn read(&self, status: u16, body: &[u8], fallback_id: &str) -> ProviderAnswer {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let provider_code = self
            .error_code_path
            .as_ref()
            .and_then(|p| p.find_text(&json));
        if (200..300).contains(&status) {
            if let Some(id) = self.id_path.find_text(&json) {
                return ProviderAnswer::Accepted { provider_id: id };
            }
            if let Some(pc) = provider_code {
                // A 200 that carries an error code and no id: a refusal in the body.
                return self.refused(SubmitErrorClass::Permanent, pc, status, body);
            }
            return ProviderAnswer::Accepted {
                provider_id: fallback_id.to_string(),
            };
        }
        let class = super::status_map::classify_http_status(status);
        let pc = provider_code.unwrap_or_else(|| format!("HTTP {status}"));
        self.refused(class, pc, status, body)
    }

    fn refused(
        &self,
        class: SubmitErrorClass,
        provider_code: String,
        status: u16,
        body: &[u8],
    ) -> ProviderAnswer {
        let code = self
            .error_map
            .get(&provider_code)
            .cloned()
            .unwrap_or_else(|| super::status_map::default_error_code(class).to_string());
        let excerpt: String = String::from_utf8_lossy(body).chars().take(200).collect();
        ProviderAnswer::Refused {
            class,
            code,
            provider_code,
            message: format!("provider answered HTTP {status}: {excerpt}"),
        }
    }
}
