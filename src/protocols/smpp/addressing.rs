//! A channel's SMPP addressing options (`service_type`, `source_ton`, `source_npi`,
//! `dest_ton`, `dest_npi`): many operators require fixed values where the gateway
//! would otherwise infer TON/NPI from each address's form (`codec::address_ton_npi`).
//! Pure: parsed and checked when the channel is stored, applied to every submit_sm.

use serde_json::{Map, Value};

/// The option keys this module reads.
pub const KEYS: &[&str] = &[
    "service_type",
    "source_ton",
    "source_npi",
    "dest_ton",
    "dest_npi",
];

/// NPI values SMPP 3.4 defines (§5.2.6).
const NPIS: &[u8] = &[0, 1, 3, 4, 6, 8, 9, 10, 14, 18];

/// Fixed submit_sm addressing; `None` keeps the automatic choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addressing {
    /// submit_sm service_type ("" = the SMSC's default; at most 5 characters).
    pub service_type: String,
    /// source_addr_ton (0..=6).
    pub source_ton: Option<u8>,
    /// source_addr_npi (an SMPP 3.4 NPI).
    pub source_npi: Option<u8>,
    /// dest_addr_ton (0..=6).
    pub dest_ton: Option<u8>,
    /// dest_addr_npi (an SMPP 3.4 NPI).
    pub dest_npi: Option<u8>,
}

/// A bad addressing option: the field (`options.<key>`) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AddressingError {
    /// `options.<key>`.
    pub field: String,
    /// What the option accepts.
    pub message: String,
}

impl Addressing {
    /// Reads the options (absent keys keep today's automatic values).
    pub fn parse(options: &Map<String, Value>) -> Result<Addressing, AddressingError> {
        let bad = |key: &str, message: &str| AddressingError {
            field: format!("options.{key}"),
            message: message.to_string(),
        };
        let service_type = match options.get("service_type") {
            None => String::new(),
            Some(v) => match v.as_str() {
                Some(s) if s.len() <= 5 && s.bytes().all(|b| b.is_ascii_graphic()) => s.to_string(),
                _ => {
                    return Err(bad(
                        "service_type",
                        "up to 5 printable ASCII characters, e.g. \"CMT\" (default empty: the SMSC's default)",
                    ));
                }
            },
        };
        let ton = |key: &str| -> Result<Option<u8>, AddressingError> {
            options
                .get(key)
                .map(|v| {
                    v.as_u64()
                        .filter(|n| *n <= 6)
                        .map(|n| n as u8)
                        .ok_or_else(|| bad(key, "a TON 0..6 (0 unknown, 1 international, 2 national, 3 network specific, 4 subscriber number, 5 alphanumeric, 6 abbreviated); default: chosen from the address"))
                })
                .transpose()
        };
        let npi = |key: &str| -> Result<Option<u8>, AddressingError> {
            options
                .get(key)
                .map(|v| {
                    v.as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .filter(|n| NPIS.contains(n))
                        .ok_or_else(|| bad(key, "an NPI: 0 unknown, 1 ISDN/E.164, 3 data, 4 telex, 6 land mobile, 8 national, 9 private, 10 ERMES, 14 internet, 18 WAP; default: chosen from the address"))
                })
                .transpose()
        };
        Ok(Addressing {
            service_type,
            source_ton: ton("source_ton")?,
            source_npi: npi("source_npi")?,
            dest_ton: ton("dest_ton")?,
            dest_npi: npi("dest_npi")?,
        })
    }

    /// The options of a stored channel (`options_json`); a channel stored before these
    /// options existed, or unreadable options, get the automatic values.
    pub fn of_options_json(options_json: &str) -> Addressing {
        serde_json::from_str::<Map<String, Value>>(options_json)
            .ok()
            .and_then(|o| Addressing::parse(&o).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn options_parsed_and_defaults_kept() {
        assert_eq!(
            Addressing::parse(&opts(serde_json::json!({}))),
            Ok(Addressing::default())
        );
        let a = Addressing::parse(&opts(serde_json::json!({"service_type": "CMT",
            "source_ton": 5, "source_npi": 0, "dest_ton": 1, "dest_npi": 1})));
        assert_eq!(
            a,
            Ok(Addressing {
                service_type: "CMT".into(),
                source_ton: Some(5),
                source_npi: Some(0),
                dest_ton: Some(1),
                dest_npi: Some(1),
            })
        );
    }

    #[test]
    fn bad_values_name_the_option() {
        let rows = [
            (
                serde_json::json!({"service_type": "TOOLONG"}),
                "options.service_type",
            ),
            (
                serde_json::json!({"service_type": 3}),
                "options.service_type",
            ),
            (serde_json::json!({"source_ton": 7}), "options.source_ton"),
            (serde_json::json!({"dest_ton": "1"}), "options.dest_ton"),
            (serde_json::json!({"source_npi": 2}), "options.source_npi"),
            (serde_json::json!({"dest_npi": 300}), "options.dest_npi"),
        ];
        for (o, field) in rows {
            match Addressing::parse(&opts(o.clone())) {
                Err(e) => assert_eq!(e.field, field, "{o}"),
                Ok(a) => panic!("{o} accepted as {a:?}"),
            }
        }
    }
}
