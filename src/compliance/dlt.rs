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
}
