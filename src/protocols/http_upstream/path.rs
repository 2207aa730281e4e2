//! Path expressions that find one value in a provider's JSON (or form) body: the
//! provider's message id in a submit response, the id and status in a receipt.
//!
//! Two spellings: a JSON pointer (RFC 6901, starts with `/`, e.g. `/messages/0/id`) or a
//! dotted path (`messages.0.id`; a segment of digits indexes an array). Pure.

use serde_json::Value;

/// A compiled path: the segments to follow from the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath {
    /// As the user wrote it (shown in errors).
    source: String,
    segments: Vec<String>,
}

impl ValuePath {
    /// Parses `/a/b/0` (JSON pointer, `~0` = `~`, `~1` = `/`) or `a.b.0`.
    pub fn parse(s: &str) -> Result<ValuePath, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("an empty path; use a JSON pointer like /message/id or a dotted path like message.id".into());
        }
        let segments: Vec<String> = if let Some(rest) = t.strip_prefix('/') {
            rest.split('/')
                .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
                .collect()
        } else {
            t.split('.').map(str::to_string).collect()
        };
        if segments.iter().any(String::is_empty) {
            return Err(format!("{t:?} has an empty segment"));
        }
        Ok(ValuePath {
            source: t.to_string(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The value at this path, if any.
    pub fn find<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut cur = root;
        for seg in &self.segments {
            cur = match cur {
                Value::Object(m) => m.get(seg)?,
                Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The value at this path as text: strings as they are, numbers and booleans
    /// written out; `None` for a missing value, null, an object, an array or "".
    pub fn find_text(&self, root: &Value) -> Option<String> {
        let s = match self.find(root)? {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        (!s.is_empty()).then_some(s)
    }
}
