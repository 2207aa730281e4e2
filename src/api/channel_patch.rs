//! The body of `PATCH /admin/v1/channels/{id}`: a JSON merge patch (RFC 7396) laid over
//! the channel as its create body would describe it. Operators change a channel's `tps`,
//! `window`, password or host far more often than they create one; without a patch the only
//! way was to take the channel out of every route, delete it and create it again. The
//! merged body goes through the very checks a create goes through, so a patch cannot store
//! what a create would refuse.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::state::Channel;

/// The create body that describes `c`, password included (it is parsed, never shown).
pub fn channel_as_body(c: &Channel) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("id".into(), json!(c.id));
    body.insert("protocol".into(), json!(c.protocol));
    // An HTTP channel's host and port come from `options.request.url`.
    if c.protocol != "http" {
        body.insert("host".into(), json!(c.host));
        body.insert("port".into(), json!(c.port));
    }
    body.insert("system_id".into(), json!(c.system_id));
    body.insert("password".into(), json!(c.password));
    body.insert("system_type".into(), json!(c.system_type));
    body.insert("bind".into(), json!(c.bind));
    body.insert("binds".into(), json!(c.binds));
    body.insert("tps".into(), json!(c.tps));
    body.insert("window".into(), json!(c.window));
    body.insert("enquire_link_seconds".into(), json!(c.enquire_link_seconds));
    body.insert("cost".into(), json!(c.cost));
    let options = serde_json::from_str::<Value>(&c.options_json)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    body.insert("options".into(), options);
    if let Some(s) = &c.sla {
        let mut sla = Map::new();
        sla.insert("window".into(), json!(s.window));
        for (k, v) in [
            ("min_availability", s.min_availability),
            ("min_success_rate", s.min_success_rate),
            ("max_submit_latency_ms_p99", s.max_submit_latency_ms_p99),
        ] {
            if let Some(v) = v {
                sla.insert(k.into(), json!(v));
            }
        }
        if !s.alert_url.is_empty() {
            sla.insert("alert_url".into(), json!(s.alert_url));
            sla.insert("alert_secret".into(), json!(s.alert_secret));
        }
        body.insert("sla".into(), Value::Object(sla));
    }
    body
}

/// Lays `patch` over `target` as RFC 7396 says: objects merge key by key, `null` removes
/// the key, anything else replaces what was there.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(fields) = target {
        for (key, change) in changes {
            if change.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), change);
            }
        }
    }
}

/// The create body of `c` with `patch` laid over it, as bytes for the create's parser.
/// A patch may not change what makes the channel itself: its `id` or its `protocol`.
pub fn patched_body(c: &Channel, patch: Map<String, Value>) -> Result<Vec<u8>, ApiError> {
    for (field, now) in [("id", &c.id), ("protocol", &c.protocol)] {
        if patch
            .get(field)
            .is_some_and(|v| v.as_str() != Some(now.as_str()))
        {
            return Err(ApiError::invalid(
                field,
                format!(
                    "the {field} of a channel cannot change (it is {now:?}); create another channel instead"
                ),
            ));
        }
    }
    let mut body = Value::Object(channel_as_body(c));
    merge_patch(&mut body, &Value::Object(patch));
    serde_json::to_vec(&body).map_err(|e| ApiError::invalid("body", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{BindKind, SlaPolicy, UdhMode};

    fn channel() -> Channel {
        Channel {
            id: "op-a".into(),
            protocol: "smpp".into(),
            host: "127.0.0.1".into(),
            port: 2775,
            system_id: "acme".into(),
            password: "secret".into(),
            system_type: String::new(),
            bind: BindKind::Transmitter,
            binds: 2,
            tps: 100,
            window: 10,
            enquire_link_seconds: 30,
            cost: [("default".to_string(), 0.004), ("+49".to_string(), 0.006)].into(),
            udh: UdhMode::Udh8,
            dlr_timeout_seconds: 3600,
            options_json: r#"{"udh":"8bit","dlr_timeout_seconds":3600}"#.into(),
            drained: true,
            created_at: 7,
            sla: Some(SlaPolicy {
                window: "1h".into(),
                min_availability: Some(0.99),
                min_success_rate: None,
                max_submit_latency_ms_p99: None,
                alert_url: String::new(),
                alert_secret: String::new(),
            }),
            text: Default::default(),
        }
    }

    fn patched(patch: Value) -> Value {
        let Value::Object(p) = patch else {
            panic!("a patch is an object")
        };
        let bytes = patched_body(&channel(), p).unwrap_or_else(|e| panic!("{}", e.message));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let b = patched(json!({"tps": 250, "password": "new"}));
        assert_eq!(b["tps"], 250);
        assert_eq!(b["password"], "new");
        assert_eq!(b["window"], 10);
        assert_eq!(b["bind"], "transmitter");
        assert_eq!(b["binds"], 2);
        assert_eq!(b["cost"]["+49"], 0.006);
        assert_eq!(b["options"]["dlr_timeout_seconds"], 3600);
        assert_eq!(b["sla"]["min_availability"], 0.99);
    }

    #[test]
    fn nested_objects_merge_and_null_removes() {
        let b = patched(json!({
            "options": {"udh": null, "dlr_id_format": "hex"},
            "cost": {"+49": null, "+33": 0.01},
            "sla": null,
        }));
        assert_eq!(
            b["options"],
            json!({"dlr_id_format": "hex", "dlr_timeout_seconds": 3600})
        );
        assert_eq!(b["cost"], json!({"default": 0.004, "+33": 0.01}));
        assert!(b.get("sla").is_none());
    }

    #[test]
    fn id_and_protocol_cannot_change() {
        for (field, patch) in [
            ("id", json!({"id": "other"})),
            ("protocol", json!({"protocol": "cmpp"})),
        ] {
            let Value::Object(p) = patch else {
                panic!("a patch is an object")
            };
            let e = patched_body(&channel(), p).err();
            assert_eq!(e.and_then(|e| e.field), Some(field.to_string()));
        }
        // Naming them unchanged is fine (a client sending back what it read).
        let b = patched(json!({"id": "op-a", "protocol": "smpp", "tps": 5}));
        assert_eq!(b["tps"], 5);
    }

    #[test]
    fn an_http_channel_keeps_its_url_as_its_address() {
        let mut c = channel();
        c.protocol = "http".into();
        let b = channel_as_body(&c);
        assert!(!b.contains_key("host") && !b.contains_key("port"));
    }
}
