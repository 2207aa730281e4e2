//! India DLT template matching (pure): a registered template is literal text with
//! `{#var#}` placeholders; a message matches when its text is the template with each
//! placeholder replaced by at most [`VAR_MAX_CHARS`] characters.

use std::collections::HashSet;

/// The placeholder of DLT templates.
pub const PLACEHOLDER: &str = "{#var#}";
/// Longest text one placeholder stands for (the DLT portals' limit).
pub const VAR_MAX_CHARS: usize = 30;

/// TLV tag of the DLT principal entity id when the channel sets none (`dlt_tlvs.entity_id`).
pub const DEFAULT_ENTITY_TLV: u16 = 0x1400;
/// TLV tag of the DLT template id when the channel sets none (`dlt_tlvs.template_id`).
pub const DEFAULT_TEMPLATE_TLV: u16 = 0x1401;

/// (entity, template) TLV tags of a channel: its `options.dlt_tlvs`, else 0x1400/0x1401.
pub fn tlv_tags(channel: Option<&crate::state::Channel>) -> (u16, u16) {
    let opts: serde_json::Value = channel
        .and_then(|c| serde_json::from_str(&c.options_json).ok())
        .unwrap_or_default();
    let tag = |k: &str, d: u16| {
        opts["dlt_tlvs"][k]
            .as_u64()
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(d)
    };
    (
        tag("entity_id", DEFAULT_ENTITY_TLV),
        tag("template_id", DEFAULT_TEMPLATE_TLV),
    )
}

/// The DLT TLVs (ASCII ids) of a message, for every part it sends on `channel`.
pub fn tlvs(
    m: &crate::state::Message,
    channel: Option<&crate::state::Channel>,
) -> Vec<(u16, Vec<u8>)> {
    let Some(c) = &m.compliance else {
        return Vec::new();
    };
    let (et, tt) = tlv_tags(channel);
    let mut out = Vec::new();
    if let Some(e) = &c.dlt_entity_id {
        out.push((et, e.as_bytes().to_vec()));
    }
    if let Some(t) = &c.dlt_template_id {
        out.push((tt, t.as_bytes().to_vec()));
    }
    out
}

/// Digits in a DLT principal entity id and in a template id (TRAI DLT portals).
pub const ID_DIGITS: usize = 19;

/// Whether `id` is a DLT entity or template id: exactly [`ID_DIGITS`] ASCII digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == ID_DIGITS && id.bytes().all(|b| b.is_ascii_digit())
}

/// The first near-miss of a placeholder in a template text (`{#var}`, `{#VAR#}`,
/// `{var}`, `{#var #}`, a stray `{#` or `#}`...), which the portals would not treat as a
/// variable and no real message would match as literal text. `None` when the text has
/// only exact `{#var#}` placeholders (or none).
pub fn near_miss(text: &str) -> Option<String> {
    for literal in text.split(PLACEHOLDER) {
        let mut rest = literal;
        while let Some(open) = rest.find(['{', '#']) {
            let tail = &rest[open..];
            if tail.starts_with("{#") || tail.starts_with("#}") {
                let end = tail.find('}').map(|e| e + 1).unwrap_or(2).min(tail.len());
                return Some(tail[..end].to_string());
            }
            if tail.starts_with('{')
                && let Some(close) = tail[1..].find('}')
                && close <= 16
            {
                let inner: String = tail[1..1 + close]
                    .chars()
                    .filter(|c| *c != '#' && !c.is_whitespace())
                    .collect();
                if inner.eq_ignore_ascii_case("var") {
                    return Some(tail[..close + 2].to_string());
                }
            }
            rest = &tail[1..];
        }
    }
    None
}

/// A template split at its placeholders, ready to match many texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Literal pieces: one more than there are placeholders.
    literals: Vec<Vec<char>>,
}

impl Template {
    /// Splits `text` at every `{#var#}`.
    pub fn parse(text: &str) -> Template {
        Template {
            literals: text
                .split(PLACEHOLDER)
                .map(|s| s.chars().collect())
                .collect(),
        }
    }

    /// Number of placeholders.
    pub fn vars(&self) -> usize {
        self.literals.len().saturating_sub(1)
    }

    /// Whether `text` is this template with its placeholders filled in.
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        let mut failed = HashSet::new();
        self.match_from(&t, 0, 0, &mut failed)
    }

    /// Does `text[pos..]` match literal `seg` followed by the rest of the template?
    fn match_from(
        &self,
        text: &[char],
        seg: usize,
        pos: usize,
        failed: &mut HashSet<(usize, usize)>,
    ) -> bool {
        let lit = &self.literals[seg];
        if text.len() < pos + lit.len() || text[pos..pos + lit.len()] != lit[..] {
            return false;
        }
        let after = pos + lit.len();
        if seg + 1 == self.literals.len() {
            return after == text.len();
        }
        if !failed.insert((seg, after)) {
            return false;
        }
        // The placeholder after this literal takes 1..=VAR_MAX_CHARS characters.
        let max = VAR_MAX_CHARS.min(text.len() - after);
        (1..=max).any(|n| self.match_from(text, seg + 1, after + n, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("Your OTP is {#var#}", "Your OTP is 123456", true),
            ("Your OTP is {#var#}", "Your OTP is ", false),
            ("Your OTP is {#var#}", "Your OTP: 123456", false),
            (
                "Dear {#var#}, your order {#var#} ships today",
                "Dear Asha, your order A-17 ships today",
                true,
            ),
            (
                "Dear {#var#}, your order {#var#} ships today",
                "Dear Asha, your order A-17 ships tomorrow",
                false,
            ),
            ("Hi {#var#}", &format!("Hi {}", "x".repeat(31)), false),
            ("Hi {#var#}", &format!("Hi {}", "x".repeat(30)), true),
            ("{#var#} is {#var#}", "a is b is c", true),
            ("No vars here", "No vars here", true),
            ("No vars here", "No vars here!", false),
        ];
        for (tpl, text, want) in cases {
            assert_eq!(
                Template::parse(tpl).matches(text),
                *want,
                "{tpl:?} vs {text:?}"
            );
        }
        assert_eq!(Template::parse("a {#var#} b {#var#}").vars(), 2);
    }

    #[test]
    fn ids_and_near_miss_placeholders() {
        assert!(valid_id("1107000000000000001"));
        for bad in [
            "123",
            "abc",
            "11070000000000000011",
            "110700000000000000a",
            "",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        let cases: &[(&str, Option<&str>)] = &[
            ("Your OTP is {#var#}", None),
            ("No variables at all", None),
            ("Price {x} and #hashtag", None),
            ("Your code {#var}", Some("{#var}")),
            ("Hi {#VAR#} there", Some("{#VAR#}")),
            ("Hi {var}", Some("{var}")),
            ("Hi {#var #}", Some("{#var #}")),
            ("Hi { #var# }", Some("{ #var# }")),
            ("Ok {#var#} then {Var}", Some("{Var}")),
            ("Hi var#} there", Some("#}")),
        ];
        for (text, want) in cases {
            assert_eq!(near_miss(text).as_deref(), *want, "{text:?}");
        }
    }
}
