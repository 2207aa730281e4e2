//! The JSON shapes of a message's parts and errors, shared by the status answer
//! (`api::messages::status_body`) and the webhook body (`store::webhook_body`), so a
//! webhook receiver and a poller read the same fields the same way.

use serde_json::{Value, json};

use super::model::{ErrorInfo, Message, PartStatus};

/// `{"code", "message", "smsc_code"}`.
pub fn error_json(e: &ErrorInfo) -> Value {
    json!({"code": e.code, "message": e.message, "smsc_code": e.smsc_code})
}

/// `part_states`: `[{"part", "smsc_message_id", "status", "error"}]`, parts from 1. A part
/// never submitted ended with its message (failed, expired, rejected): it shows that end
/// rather than a `pending` that will never move.
pub fn part_states_json(m: &Message) -> Vec<Value> {
    m.part_states
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ended_unsent = p.status == PartStatus::Pending && m.status.is_final();
            let status = if ended_unsent {
                json!(m.status.as_str())
            } else {
                serde_json::to_value(p.status).unwrap_or(Value::Null)
            };
            let error = p
                .error
                .as_ref()
                .or(if ended_unsent { m.error.as_ref() } else { None })
                .map(error_json);
            json!({"part": i + 1, "smsc_message_id": p.smsc_message_id,
                   "status": status, "error": error})
        })
        .collect()
}
