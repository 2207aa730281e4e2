//! The content rules engine (pure once compiled): every keyword of every rule in one
//! Aho-Corasick automaton, every regular expression in one `RegexSet`, URL domains in
//! hash maps. A compiled set is cached by the registry's rules version, so it is built
//! once per rule change, not per message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{RegexSet, RegexSetBuilder};

use crate::state::compliance::{ContentRule, RuleAction, RuleKind};

/// Link shorteners a `link_shortener` rule with pattern `*` stands for.
pub const SHORTENERS: &[&str] = &[
    "bit.ly",
    "bitly.com",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "t.ly",
    "rb.gy",
    "s.id",
];

/// Largest compiled size the regex set may take (bytes).
const REGEX_SIZE_LIMIT: usize = 256 << 20;

#[derive(Debug, Clone)]
struct Meta {
    id: String,
    scope: Option<String>,
    kind: RuleKind,
    action: RuleAction,
}

/// One rule that matched a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: String,
    pub kind: RuleKind,
    pub action: RuleAction,
}

/// Why a rule's pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("not a valid regular expression: {0}")]
    Regex(String),
    #[error("not a domain name like \"example.com\"")]
    Domain,
    #[error("empty pattern")]
    Empty,
}

/// Checks a rule's pattern before it is stored, so compiling never meets a bad one.
pub fn validate(kind: RuleKind, pattern: &str) -> Result<(), PatternError> {
    let p = pattern.trim();
    if p.is_empty() {
        return Err(PatternError::Empty);
    }
    match kind {
        RuleKind::Keyword => Ok(()),
        RuleKind::Regex => RegexSetBuilder::new([p])
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(|_| ())
            .map_err(|e| PatternError::Regex(e.to_string())),
        RuleKind::LinkShortener if p == "*" => Ok(()),
        RuleKind::UrlDomain | RuleKind::UrlAllow | RuleKind::LinkShortener => {
            let d = p.to_ascii_lowercase();
            let ok = d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if ok {
                Ok(())
            } else {
                Err(PatternError::Domain)
            }
        }
    }
}

/// Every content rule, compiled.
pub struct RuleSet {
    version: u64,
    rules: Vec<Meta>,
    keywords: Option<AhoCorasick>,
    /// Automaton pattern → rules with that keyword.
    keyword_rules: Vec<Vec<usize>>,
    regexes: Option<RegexSet>,
    regex_rules: Vec<usize>,
    /// Blocked domain (url_domain, link_shortener) → rules.
    blocked: HashMap<String, Vec<usize>>,
    /// Scope (None = global) → (the scope's first allow rule, allowed domains).
    allow: HashMap<Option<String>, (usize, HashSet<String>)>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("version", &self.version)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// Compiles `rules` (patterns were validated when stored; one that still fails is skipped
    /// with a warning rather than disabling every other rule).
    pub fn compile(rules: &BTreeMap<String, ContentRule>, version: u64) -> RuleSet {
        let mut set = RuleSet {
            version,
            rules: Vec::with_capacity(rules.len()),
            keywords: None,
            keyword_rules: Vec::new(),
            regexes: None,
            regex_rules: Vec::new(),
            blocked: HashMap::new(),
            allow: HashMap::new(),
        };
        let mut kw_index: HashMap<String, usize> = HashMap::new();
        let mut kw_patterns: Vec<String> = Vec::new();
        let mut re_patterns: Vec<&str> = Vec::new();
        for r in rules.values() {
            let idx = set.rules.len();
            set.rules.push(Meta {
                id: r.id.clone(),
                scope: r.scope.clone(),
                kind: r.kind,
                action: r.action,
            });
            let p = r.pattern.trim();
            match r.kind {
                RuleKind::Keyword => {
                    let k = fold(p);
                    let n = *kw_index.entry(k.clone()).or_insert_with(|| {
                        kw_patterns.push(k);
                        set.keyword_rules.push(Vec::new());
                        kw_patterns.len() - 1
                    });
                    set.keyword_rules[n].push(idx);
                }
                RuleKind::Regex => {
                    if validate(RuleKind::Regex, p).is_ok() {
                        re_patterns.push(p);
                        set.regex_rules.push(idx);
                    } else {
                        tracing::warn!(rule = %r.id, "regex rule does not compile; skipped");
                    }
                }
                RuleKind::UrlDomain => set
                    .blocked
                    .entry(p.to_ascii_lowercase())
                    .or_default()
                    .push(idx),
                RuleKind::LinkShortener => {
                    if p == "*" {
                        for d in SHORTENERS {
                            set.blocked.entry(d.to_string()).or_default().push(idx);
                        }
                    } else {
                        set.blocked
                            .entry(p.to_ascii_lowercase())
                            .or_default()
                            .push(idx);
                    }
                }
                RuleKind::UrlAllow => {
                    set.allow
                        .entry(r.scope.clone())
                        .or_insert_with(|| (idx, HashSet::new()))
                        .1
                        .insert(p.to_ascii_lowercase());
                }
            }
        }
        if !kw_patterns.is_empty() {
            set.keywords = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(&kw_patterns)
                .map_err(|e| tracing::warn!(error = %e, "keyword automaton failed"))
                .ok();
        }
        if !re_patterns.is_empty() {
            set.regexes = RegexSetBuilder::new(&re_patterns)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| tracing::warn!(error = %e, "regex set failed"))
                .ok();
        }
        set
    }

    /// The registry's rules version this set was compiled from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of compiled rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn applies(&self, idx: usize, tenant: &str) -> bool {
        self.rules[idx].scope.as_deref().is_none_or(|s| s == tenant)
    }

    /// Every rule (global or `tenant`'s) that `text` hits: rejects first, then by rule id.
    pub fn evaluate(&self, tenant: &str, text: &str) -> Vec<Hit> {
        let mut hits: Vec<usize> = Vec::new();
        if let Some(ac) = &self.keywords {
            let lower = fold(text);
            for m in ac.find_overlapping_iter(&lower) {
                let before = lower[..m.start()].chars().next_back();
                let after = lower[m.end()..].chars().next();
                let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
                if boundary(before) && boundary(after) {
                    for &idx in &self.keyword_rules[m.pattern().as_usize()] {
                        if self.applies(idx, tenant) {
                            hits.push(idx);
                        }
                    }
                }
            }
        }
        if let Some(rs) = &self.regexes
            && rs.is_match(text)
        {
            for i in rs.matches(text).iter() {
                let idx = self.regex_rules[i];
                if self.applies(idx, tenant) {
                    hits.push(idx);
                }
            }
        }
        if !self.blocked.is_empty() || !self.allow.is_empty() {
            for domain in url_domains(text) {
                for suffix in domain_suffixes(&domain) {
                    if let Some(rules) = self.blocked.get(suffix) {
                        hits.extend(rules.iter().copied().filter(|i| self.applies(*i, tenant)));
                    }
                }
                for scope in [None, Some(tenant.to_string())] {
                    if let Some((first, allowed)) = self.allow.get(&scope)
                        && !domain_suffixes(&domain).any(|s| allowed.contains(s))
                    {
                        hits.push(*first);
                    }
                }
            }
        }
        hits.sort_unstable();
        hits.dedup();
        let mut out: Vec<Hit> = hits
            .into_iter()
            .map(|i| Hit {
                rule: self.rules[i].id.clone(),
                kind: self.rules[i].kind,
                action: self.rules[i].action,
            })
            .collect();
        out.sort_by(|a, b| {
            (a.action != RuleAction::Reject, &a.rule)
                .cmp(&(b.action != RuleAction::Reject, &b.rule))
        });
        out
    }
}

/// The form keywords are matched in, for patterns and texts alike: compatibility
/// characters folded (full-width letters, ligatures: NFKC), invisible format characters
/// dropped (soft hyphen, zero-width space and joiners, word joiner, BOM), every run of
/// white space (line breaks, no-break spaces) one space, letters of other scripts that
/// look like Latin ones read as those (Cyrillic "р", Greek "ο", accented "ó": see
/// [`latin_lookalike`]), lower case. So "payday loan" also finds "PAYDAY  LOAN",
/// "payday\nloan", "pay\u{ad}day\u{a0}loan" and "раydаy lоаn" in Cyrillic.
fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.nfkc() {
        if matches!(
            c,
            '\u{ad}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}'
        ) {
            continue;
        }
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        if !c.is_ascii()
            && let Some(latin) = latin_lookalike(c)
        {
            out.extend(latin.chars().flat_map(char::to_lowercase));
            continue;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The ASCII letters or digits a non-ASCII character is made to look like (Unicode's
/// confusables, UTS #39 skeletons, with accents dropped), or None when it looks like
/// nothing in ASCII (most of every other script). ASCII itself is never changed, so a
/// Latin text and the patterns fold as before.
fn latin_lookalike(c: char) -> Option<String> {
    let mut buf = [0u8; 4];
    let mut latin = String::new();
    for p in unicode_security::skeleton(c.encode_utf8(&mut buf)) {
        if unicode_normalization::char::is_combining_mark(p) {
            continue;
        }
        if !p.is_ascii_alphanumeric() {
            return None;
        }
        latin.push(p);
    }
    (!latin.is_empty()).then_some(latin)
}

/// `a.b.example.com` → `a.b.example.com`, `b.example.com`, `example.com`, `com`.
fn domain_suffixes(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::once(domain).chain(
        domain
            .match_indices('.')
            .map(move |(i, _)| &domain[i + 1..]),
    )
}

/// Host names of the links in `text`: `http(s)://host/...`, `www.host`, and bare
/// `host.tld/path` words; lowercased, without port or trailing punctuation.
pub fn url_domains(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"') {
        if !word.contains('.') {
            continue;
        }
        let w = word.to_ascii_lowercase();
        let (rest, explicit) = if let Some(r) = w.strip_prefix("https://") {
            (r, true)
        } else if let Some(r) = w.strip_prefix("http://") {
            (r, true)
        } else {
            (w.as_str(), false)
        };
        let host = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
        let host = host.split(':').next().unwrap_or("");
        let host = host.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if !host.contains('.')
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            continue;
        }
        // Bare words need a letter TLD ("3.50" is a price, "e.g." no host).
        let tld = host.rsplit('.').next().unwrap_or("");
        if explicit || (tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())) {
            out.push(host.to_string());
        }
    }
    out
}

static CACHE: Mutex<Option<Arc<RuleSet>>> = Mutex::new(None);

/// The compiled rules for `reg`'s current version (compiled on first use after a change;
/// the registry lock is not held while compiling).
pub fn compiled(store: &crate::state::StateStore) -> Arc<RuleSet> {
    let version = store.compliance().rules_version;
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.as_ref()
        && c.version == version
    {
        return c.clone();
    }
    let (rules, version) = {
        let r = store.compliance();
        (r.rules.clone(), r.rules_version)
    };
    let set = Arc::new(RuleSet::compile(&rules, version));
    *cache = Some(set.clone());
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, scope: Option<&str>, kind: RuleKind, p: &str, a: RuleAction) -> ContentRule {
        ContentRule {
            id: id.into(),
            scope: scope.map(String::from),
            kind,
            pattern: p.into(),
            action: a,
            created_at: 0,
        }
    }

    fn set(rules: Vec<ContentRule>) -> RuleSet {
        let map = rules.into_iter().map(|r| (r.id.clone(), r)).collect();
        RuleSet::compile(&map, 1)
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.rule.as_str()).collect()
    }

    #[test]
    fn keywords_on_word_boundaries_case_insensitive() {
        let s = set(vec![
            rule("k1", None, RuleKind::Keyword, "Loan", RuleAction::Reject),
            rule(
                "k2",
                Some("acme"),
                RuleKind::Keyword,
                "free gift",
                RuleAction::Flag,
            ),
        ]);
        assert_eq!(ids(&s.evaluate("x", "Cheap LOAN today")), ["k1"]);
        assert!(s.evaluate("x", "Sloane square").is_empty());
        assert!(
            s.evaluate("x", "a FREE GIFT").is_empty(),
            "tenant rule only for acme"
        );
        assert_eq!(
            ids(&s.evaluate("acme", "a FREE GIFT and a loan")),
            ["k1", "k2"]
        );
    }

    #[test]
    fn a_keyword_phrase_is_found_through_spacing_tricks() {
        let s = set(vec![rule(
            "loans",
            None,
            RuleKind::Keyword,
            "Payday  Loan",
            RuleAction::Reject,
        )]);
        for text in [
            "get a PAYDAY  LOAN now",
            "payday\nloan",
            "payday\r\n\tloan",
            "payday\u{a0}loan",
            "pay\u{ad}day loan",
            "pay\u{200b}day loan",
            "\u{ff50}\u{ff41}\u{ff59}\u{ff44}\u{ff41}\u{ff59} loan",
        ] {
            assert_eq!(ids(&s.evaluate("x", text)), ["loans"], "{text:?}");
        }
        assert!(s.evaluate("x", "paydayloan").is_empty());
        assert!(s.evaluate("x", "payday loans").is_empty());
    }

    #[test]
    fn a_keyword_is_found_through_letters_of_other_scripts() {
        let s = set(vec![rule(
            "loans",
            None,
            RuleKind::Keyword,
            "payday loan",
            RuleAction::Reject,
        )]);
        for text in [
            // Cyrillic а, о, р, у; Greek ο; accented ó; Cyrillic capitals.
            "\u{440}\u{430}yd\u{430}y l\u{43e}\u{430}n",
            "payd\u{430}\u{443} l\u{3bf}an",
            "payday l\u{f3}an",
            "\u{420}\u{410}YDAY LOAN",
        ] {
            assert_eq!(ids(&s.evaluate("x", text)), ["loans"], "{text:?}");
        }
        // Other scripts and plain Latin text are left as they are.
        assert!(
            s.evaluate("x", "\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442} loan")
                .is_empty()
        );
        assert!(s.evaluate("x", "\u{6211} payday").is_empty());
        assert!(s.evaluate("x", "paybay loan").is_empty());
    }

    #[test]
    fn regex_and_urls() {
        let s = set(vec![
            rule(
                "r1",
                None,
                RuleKind::Regex,
                r"(?i)\bwin\s+\$\d+",
                RuleAction::Reject,
            ),
            rule(
                "d1",
                None,
                RuleKind::UrlDomain,
                "evil.example",
                RuleAction::Reject,
            ),
            rule("ls", None, RuleKind::LinkShortener, "*", RuleAction::Flag),
            rule(
                "al",
                Some("acme"),
                RuleKind::UrlAllow,
                "acme.com",
                RuleAction::Reject,
            ),
        ]);
        assert_eq!(ids(&s.evaluate("x", "WIN $500 now")), ["r1"]);
        assert_eq!(
            ids(&s.evaluate("x", "see https://login.evil.example/x")),
            ["d1"]
        );
        assert_eq!(ids(&s.evaluate("x", "see bit.ly/abc")), ["ls"]);
        assert!(s.evaluate("x", "pay 3.50 today").is_empty());
        assert!(
            s.evaluate("acme", "go to https://shop.acme.com/a")
                .is_empty()
        );
        assert_eq!(ids(&s.evaluate("acme", "go to www.other.org")), ["al"]);
        assert!(s.evaluate("x", "go to www.other.org").is_empty());
    }

    #[test]
    fn patterns_are_validated() {
        assert!(validate(RuleKind::Regex, "(").is_err());
        assert!(validate(RuleKind::UrlDomain, "no spaces.com x").is_err());
        assert!(validate(RuleKind::UrlDomain, "example.com").is_ok());
        assert!(validate(RuleKind::LinkShortener, "*").is_ok());
        assert!(validate(RuleKind::Keyword, "  ").is_err());
        assert_eq!(
            url_domains("Visit HTTPS://Www.Example.COM:8080/path?q=1."),
            ["www.example.com"]
        );
    }
}
