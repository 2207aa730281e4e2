//! Channel options of the Chinese protocols (the channel's `options` object),
//! validated when the channel is created and read again when a session opens.

use serde_json::{Map, Value};

use super::text::TextPreference;
use crate::protocols::cmpp::codec::Version;

/// Protocol specifics of a CMPP, SMGP or SGIP channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnOptions {
    /// CMPP `version`: "2.0" or "3.0" (default).
    pub cmpp_version: Version,
    /// `service_id` (alias `service_type`, the contract's SGIP name): CMPP Service_Id /
    /// SMGP ServiceID / SGIP ServiceType, ≤ 10.
    pub service_id: String,
    /// `src_id` (alias `sp_code`): the SP access number shown to handsets
    /// (CMPP Src_Id, SMGP SrcTermID, SGIP SPNumber, ≤ 21 digits). A numeric
    /// sender that starts with it is sent as is (extension numbers).
    pub src_id: String,
    /// CMPP `msg_src` (≤ 6), default the account (SP_Id).
    pub msg_src: String,
    /// `fee_type` (CMPP/SMGP FeeType, 2 digits), default "01" (free).
    pub fee_type: String,
    /// SGIP `node_id`: our node id in sequence numbers (3AAAAQQQQQ), default 3000000000.
    pub node_id: u32,
    /// SGIP `corp_id` (≤ 5).
    pub corp_id: String,
    /// SGIP `listen`: address the SMG connects to with Deliver/Report, e.g. "0.0.0.0:8801".
    pub listen: Option<String>,
    /// SGIP `login_name` (alias `listen_login_name`): the login name the SMG must bind
    /// to the listener with.
    pub listen_login_name: String,
    /// SGIP `login_password` (alias `listen_password`).
    pub listen_password: String,
    /// SMGP `login_mode`: 0 send only, 1 receive only, 2 both (default).
    pub login_mode: u8,
    /// `msg_fmt`: "auto" (UCS-2 for non-ASCII) or "gb" (GBK / GB18030 first).
    pub text: TextPreference,
    /// `keepalive_retries` (N): unanswered active tests before the session is closed (default 3).
    pub keepalive_retries: u32,
}

/// A bad option: the field (as `options.x`) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// `options.<name>` or the top-level field.
    pub field: String,
    /// What is allowed.
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> OptionError {
    OptionError {
        field: field.to_string(),
        message: message.into(),
    }
}

fn text_opt(
    o: &Map<String, Value>,
    name: &str,
    max: usize,
    digits: bool,
) -> Result<Option<String>, OptionError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if s.len() <= max && (!digits || s.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(bad(
            &format!("options.{name}"),
            if digits {
                format!("a string of at most {max} digits")
            } else {
                format!("a string of at most {max} octets")
            },
        )),
    }
}

/// A text option with two names (the contract's and an older one); both given is refused.
fn aliased_text_opt(
    o: &Map<String, Value>,
    name: &str,
    alias: &str,
    max: usize,
) -> Result<String, OptionError> {
    match (
        text_opt(o, name, max, false)?,
        text_opt(o, alias, max, false)?,
    ) {
        (Some(_), Some(_)) => Err(bad(
            &format!("options.{alias}"),
            format!("another name of options.{name}: give one of them"),
        )),
        (Some(v), None) | (None, Some(v)) => Ok(v),
        (None, None) => Ok(String::new()),
    }
}

/// Every option key a `cmpp`, `smgp` or `sgip` channel understands (besides the keys
/// every protocol has).
pub const KEYS: &[&str] = &[
    "version",
    "service_id",
    "service_type",
    "src_id",
    "sp_code",
    "msg_src",
    "fee_type",
    "node_id",
    "corp_id",
    "listen",
    "login_name",
    "login_password",
    "listen_login_name",
    "listen_password",
    "login_mode",
    "msg_fmt",
    "keepalive_retries",
];

/// The SGIP `listen` address of a channel's stored options, if it has one.
pub fn listen_addr(options_json: &str) -> Option<std::net::SocketAddr> {
    let v: Value = serde_json::from_str(options_json).ok()?;
    v.get("listen")?.as_str()?.parse().ok()
}

/// Whether two listeners cannot both bind: the same port on the same address, or on
/// the wildcard address and any other.
pub fn listeners_clash(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The SGIP listener's password (`login_password`, older `listen_password`) shown as
/// `<redacted>` in the channel's answers, as the channel `password` is left out.
pub fn redacted(mut options: Value) -> Value {
    crate::protocols::redact_keys(
        options.as_object_mut(),
        &["login_password", "listen_password"],
    );
    options
}

/// Validates the account, password and `options` of a `cmpp`, `smgp` or `sgip` channel.
pub fn parse(
    protocol: &str,
    account: &str,
    password: &str,
    o: &Map<String, Value>,
) -> Result<CnOptions, OptionError> {
    let (max_account, max_password) = match protocol {
        "cmpp" => (6, 64),
        "smgp" => (8, 15),
        _ => (16, 16),
    };
    if account.is_empty() || account.len() > max_account {
        return Err(bad(
            "system_id",
            format!("1 to {max_account} characters ({protocol} account)"),
        ));
    }
    if password.len() > max_password {
        return Err(bad(
            "password",
            format!("at most {max_password} characters ({protocol} limit)"),
        ));
    }
    let cmpp_version = match o.get("version").and_then(Value::as_str) {
        None => Version::V30,
        Some("3.0" | "3") => Version::V30,
        Some("2.0" | "2") => Version::V20,
        Some(_) => return Err(bad("options.version", "\"2.0\" or \"3.0\"")),
    };
    if o.contains_key("version") && o.get("version").and_then(Value::as_str).is_none() {
        return Err(bad("options.version", "\"2.0\" or \"3.0\""));
    }
    let src_id = match text_opt(o, "src_id", 21, true)? {
        Some(s) => s,
        None => text_opt(o, "sp_code", 21, true)?.unwrap_or_default(),
    };
    let node_id = match o.get("node_id") {
        None => 3_000_000_000,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("options.node_id", "a number up to 4294967295 (3AAAAQQQQQ)"))?,
    };
    let listen = text_opt(o, "listen", 255, false)?;
    if let Some(l) = &listen
        && l.parse::<std::net::SocketAddr>().is_err()
    {
        return Err(bad("options.listen", "an address like \"0.0.0.0:8801\""));
    }
    let text = match o.get("msg_fmt").and_then(Value::as_str) {
        None | Some("auto") => TextPreference::Auto,
        Some("gb" | "gbk" | "gb18030") => TextPreference::Gb,
        Some(_) => return Err(bad("options.msg_fmt", "\"auto\" or \"gb\"")),
    };
    let keepalive_retries = match o.get("keepalive_retries") {
        None => 3,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=10).contains(n))
            .ok_or_else(|| bad("options.keepalive_retries", "1 to 10"))? as u32,
    };
    let login_mode = match o.get("login_mode") {
        None => 2,
        Some(v) => v.as_u64().filter(|n| *n <= 2).ok_or_else(|| {
            bad(
                "options.login_mode",
                "0 (send), 1 (receive) or 2 (both, default)",
            )
        })? as u8,
    };
    Ok(CnOptions {
        cmpp_version,
        service_id: aliased_text_opt(o, "service_id", "service_type", 10)?,
        src_id,
        msg_src: text_opt(o, "msg_src", 6, false)?.unwrap_or_else(|| account.to_string()),
        fee_type: text_opt(o, "fee_type", 2, true)?.unwrap_or_else(|| "01".into()),
        node_id,
        corp_id: text_opt(o, "corp_id", 5, false)?.unwrap_or_default(),
        listen,
        listen_login_name: aliased_text_opt(o, "login_name", "listen_login_name", 16)?,
        listen_password: aliased_text_opt(o, "login_password", "listen_password", 16)?,
        login_mode,
        text,
        keepalive_retries,
    })
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_and_limits() {
        let o = parse("cmpp", "901234", "secret", &Map::new()).unwrap();
        assert_eq!(o.cmpp_version, Version::V30);
        assert_eq!(o.msg_src, "901234");
        assert_eq!(o.fee_type, "01");
        assert!(parse("cmpp", "9012345", "s", &Map::new()).is_err());
        assert!(parse("smgp", "123456789", "s", &Map::new()).is_err());
        assert!(parse("smgp", "12345678", &"x".repeat(16), &Map::new()).is_err());
        let o = parse(
            "sgip",
            "sp",
            "pw",
            &map(json!({"listen": "127.0.0.1:8801", "node_id": 3010012345u64, "sp_code": "10655"})),
        )
        .unwrap();
        assert_eq!(o.node_id, 3_010_012_345);
        assert_eq!(o.src_id, "10655");
        let e = parse("sgip", "sp", "pw", &map(json!({"listen": "nope"}))).unwrap_err();
        assert_eq!(e.field, "options.listen");
        let e = parse("cmpp", "sp", "pw", &map(json!({"version": 2}))).unwrap_err();
        assert_eq!(e.field, "options.version");
        let e = parse("cmpp", "sp", "pw", &map(json!({"src_id": "10a"}))).unwrap_err();
        assert_eq!(e.field, "options.src_id");
        let o = parse(
            "cmpp",
            "sp",
            "pw",
            &map(json!({"version": "2.0", "msg_fmt": "gb"})),
        )
        .unwrap();
        assert_eq!((o.cmpp_version, o.text), (Version::V20, TextPreference::Gb));
    }

    #[test]
    fn listener_addresses_clash_on_the_same_port_of_one_address_or_the_wildcard() {
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert!(listeners_clash(a("127.0.0.1:8801"), a("127.0.0.1:8801")));
        assert!(listeners_clash(a("0.0.0.0:8801"), a("127.0.0.1:8801")));
        assert!(!listeners_clash(a("127.0.0.1:8801"), a("127.0.0.2:8801")));
        assert!(!listeners_clash(a("127.0.0.1:8801"), a("127.0.0.1:8802")));
        assert_eq!(
            listen_addr(r#"{"listen": "127.0.0.1:8801"}"#),
            Some(a("127.0.0.1:8801"))
        );
        assert_eq!(listen_addr("{}"), None);
    }

    /// Audit defects 7 and 8: the contract's SGIP `service_type` was refused, and the
    /// listener's `login_password` was shown in channel answers.
    #[test]
    fn service_type_is_service_id_and_listener_password_is_redacted() {
        let o = parse("sgip", "sp", "pw", &map(json!({"service_type": "USVC001"}))).unwrap();
        assert_eq!(o.service_id, "USVC001");
        let both = json!({"service_type": "A", "service_id": "B"});
        assert!(parse("sgip", "sp", "pw", &map(both)).is_err());
        let shown =
            redacted(json!({"login_password": "smgpw", "listen_password": "x", "node_id": 1}));
        assert_eq!(shown["login_password"], "<redacted>");
        assert_eq!(shown["listen_password"], "<redacted>");
        assert_eq!(shown["node_id"], 1);
    }
}
