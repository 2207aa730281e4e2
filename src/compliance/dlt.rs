//! India DLT template matching (pure): a registered template is literal text with
//! `{#var#}` placeholders; a message matches when its text is the template with each
//! placeholder replaced by at most [`VAR_MAX_CHARS`] characters.

use std::collections::HashSet;

/// The placeholder of DLT templates.
pub const PLACEHOLDER: &str = "{#var#}";
/// Longest text one placeholder stands for (the DLT portals' limit).
pub const VAR_MAX_CHARS: usize = 30;

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
