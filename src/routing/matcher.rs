//! Which route a message takes (pure): the most specific matching route wins.
//!
//! Precedence, compared field by field (a route that names a field and matches beats
//! one that leaves it open; a route that names it and does not match is out):
//! tenant, then category, then sender type, then operator (MCC+MNC, from the
//! number-range table or the HLR hook), then the longest prefix (in digits), then
//! country. A route with an empty match is the default. Remaining ties go to the
//! lexicographically smaller route id, so every node picks the same route.
//!
//! [`RouteIndex`] compiles the routes once per configuration change: prefixes go into
//! a digit trie and routes without prefixes are grouped by tenant, so a decision looks
//! at the routes whose prefixes the number actually starts with plus the prefix-less
//! ones of its tenant, whatever the total number of routes.

use std::collections::HashMap;

use super::trie::DigitTrie;
use crate::state::{Category, Route};

/// What a route can match on, for one message.
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// E.164 with `+`.
    pub to: &'a str,
    /// ISO alpha-2 of the number.
    pub country: Option<&'a str>,
    /// MCC+MNC of the number's operator, when known.
    pub operator: Option<&'a str>,
    pub tenant: &'a str,
    pub category: Category,
    /// alphanumeric, short_code or long_code.
    pub sender_type: &'a str,
}

/// Specificity of a matching route: compared lexicographically.
type Score = (u8, u8, u8, u8, usize, u8);

/// The sender kind of a `from` value, as routes name it.
pub fn sender_type(from: &str) -> &'static str {
    if from.starts_with('+') {
        "long_code"
    } else if from.bytes().all(|b| b.is_ascii_digit()) {
        if from.len() <= 8 {
            "short_code"
        } else {
            "long_code"
        }
    } else {
        "alphanumeric"
    }
}

/// Score of `r` for this message given the longest matching prefix length, or None.
fn score(r: &Route, m: &MatchInput<'_>, prefix_len: usize) -> Option<Score> {
    if r.tenant.as_deref().is_some_and(|t| t != m.tenant) {
        return None;
    }
    if r.category.is_some_and(|c| c != m.category) {
        return None;
    }
    if r.sender_type.as_deref().is_some_and(|s| s != m.sender_type) {
        return None;
    }
    if let Some(op) = &r.operator
        && Some(op.as_str()) != m.operator
    {
        return None;
    }
    if let Some(cc) = &r.country
        && Some(cc.as_str()) != m.country
    {
        return None;
    }
    Some((
        r.tenant.is_some() as u8,
        r.category.is_some() as u8,
        r.sender_type.is_some() as u8,
        r.operator.is_some() as u8,
        prefix_len,
        r.country.is_some() as u8,
    ))
}

/// The routes compiled for fast matching.
#[derive(Default)]
pub struct RouteIndex {
    routes: Vec<Route>,
    /// Prefix → indexes of the routes listing it.
    prefixes: DigitTrie<Vec<u32>>,
    /// Routes without prefixes that name a tenant, by tenant.
    by_tenant: HashMap<String, Vec<u32>>,
    /// Routes without prefixes and without tenant.
    open: Vec<u32>,
}

impl RouteIndex {
    /// Compiles `routes` (any order).
    pub fn build<'a>(routes: impl IntoIterator<Item = &'a Route>) -> RouteIndex {
        let mut ix = RouteIndex::default();
        for r in routes {
            let i = ix.routes.len() as u32;
            ix.routes.push(r.clone());
            if r.prefixes.is_empty() {
                match &r.tenant {
                    Some(t) => ix.by_tenant.entry(t.clone()).or_default().push(i),
                    None => ix.open.push(i),
                }
            } else {
                for p in &r.prefixes {
                    let list = ix.prefixes.entry(p, Vec::new);
                    if !list.contains(&i) {
                        list.push(i);
                    }
                }
            }
        }
        ix
    }

    /// Number of routes and of distinct prefixes.
    pub fn size(&self) -> (usize, usize) {
        (self.routes.len(), self.prefixes.len())
    }

    /// The route this message takes, if any.
    pub fn choose(&self, m: &MatchInput<'_>) -> Option<&Route> {
        let mut best: Option<(&Route, Score)> = None;
        let mut offer = |i: u32, prefix_len: usize| {
            let r = &self.routes[i as usize];
            if let Some(s) = score(r, m, prefix_len)
                && best
                    .as_ref()
                    .is_none_or(|(b, bs)| s > *bs || (s == *bs && r.id < b.id))
            {
                best = Some((r, s));
            }
        };
        // Shortest prefix first: a route listed under several prefixes of the number is
        // offered again with the longer length, and the higher score replaces the lower.
        self.prefixes.for_each_prefix(m.to, |len, list| {
            for &i in list {
                offer(i, len);
            }
        });
        if let Some(list) = self.by_tenant.get(m.tenant) {
            for &i in list {
                offer(i, 0);
            }
        }
        for &i in &self.open {
            offer(i, 0);
        }
        best.map(|(r, _)| r)
    }
}

/// A plain route for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use crate::state::{Route, RouteChannel};

    /// A priority route with one channel `<id>-a`.
    pub fn route(id: &str, prefixes: &[&str]) -> Route {
        Route {
            id: id.into(),
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            country: None,
            tenant: None,
            category: None,
            strategy: "priority".into(),
            channels: vec![RouteChannel {
                id: format!("{id}-a"),
                weight: 1,
                priority: 1,
            }],
            created_at: 0,
            operator: None,
            sender_type: None,
            min_success_rate: None,
            ab: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::route;
    use super::*;

    fn input<'a>(to: &'a str, tenant: &'a str, category: Category) -> MatchInput<'a> {
        MatchInput {
            to,
            country: Some("DE"),
            operator: Some("26201"),
            tenant,
            category,
            sender_type: "alphanumeric",
        }
    }

    #[test]
    fn precedence_table() {
        let mut routes = vec![
            route("default", &[]),
            route("de", &["+49"]),
            route("de-mobile", &["+4915", "+4916"]),
            route("de-country", &[]),
            route("t-mobile-de", &[]),
            route("short", &[]),
            route("otp", &["+49"]),
            route("acme", &[]),
            route("acme-fr", &["+33"]),
            route("other-country", &[]),
        ];
        routes[3].country = Some("DE".into());
        routes[4].operator = Some("26201".into());
        routes[5].sender_type = Some("short_code".into());
        routes[6].category = Some(Category::Otp);
        routes[7].tenant = Some("acme".into());
        routes[8].tenant = Some("acme".into());
        routes[9].country = Some("FR".into());
        let ix = RouteIndex::build(&routes);
        let pick = |to: &str, t: &str, c: Category, op: Option<&str>, sender: &str| {
            let mut m = input(to, t, c);
            m.operator = op;
            m.sender_type = sender;
            if !to.starts_with("+49") {
                m.country = Some("FR");
            }
            ix.choose(&m).map(|r| r.id.clone())
        };
        use Category::*;
        type Case<'a> = (
            &'a str,
            &'a str,
            Category,
            Option<&'a str>,
            &'a str,
            &'a str,
        );
        let cases: &[Case] = &[
            // number, tenant, category, operator, sender type → route
            (
                "+33612345678",
                "x",
                Transactional,
                None,
                "alphanumeric",
                "other-country",
            ),
            (
                "+4930123456",
                "x",
                Transactional,
                None,
                "alphanumeric",
                "de",
            ),
            (
                "+4915112345678",
                "x",
                Transactional,
                None,
                "alphanumeric",
                "de-mobile",
            ),
            (
                "+4916112345678",
                "x",
                Transactional,
                None,
                "alphanumeric",
                "de-mobile",
            ),
            // operator beats prefix
            (
                "+4915112345678",
                "x",
                Transactional,
                Some("26201"),
                "alphanumeric",
                "t-mobile-de",
            ),
            // sender type beats operator
            (
                "+4915112345678",
                "x",
                Transactional,
                Some("26201"),
                "short_code",
                "short",
            ),
            // category beats sender type
            (
                "+4915112345678",
                "x",
                Otp,
                Some("26201"),
                "short_code",
                "otp",
            ),
            // tenant beats everything; among tenant routes the prefix decides
            (
                "+4915112345678",
                "acme",
                Otp,
                Some("26201"),
                "short_code",
                "acme",
            ),
            ("+33612345678", "acme", Otp, None, "alphanumeric", "acme-fr"),
        ];
        for (to, t, c, op, sender, want) in cases {
            assert_eq!(
                pick(to, t, *c, *op, sender).as_deref(),
                Some(*want),
                "{to} {t} {c:?} {op:?} {sender}"
            );
        }
    }

    #[test]
    fn country_beats_default_and_ties_go_to_smaller_id() {
        let mut routes = vec![route("z", &[]), route("b", &["+49"]), route("a", &["+49"])];
        routes[0].country = Some("DE".into());
        let ix = RouteIndex::build(&routes);
        let m = input("+4930123", "t", Category::Otp);
        assert_eq!(ix.choose(&m).map(|r| r.id.as_str()), Some("a"));
        let ix = RouteIndex::build(&routes[..1]);
        assert_eq!(ix.choose(&m).map(|r| r.id.as_str()), Some("z"));
        let ix = RouteIndex::build(&[]);
        assert!(ix.choose(&m).is_none());
    }

    #[test]
    fn sender_types() {
        assert_eq!(sender_type("ACME"), "alphanumeric");
        assert_eq!(sender_type("12345"), "short_code");
        assert_eq!(sender_type("+12025550100"), "long_code");
        assert_eq!(sender_type("4915112345678"), "long_code");
    }

    proptest::proptest! {
        /// The index picks exactly what a scan over every route picks.
        #[test]
        fn index_equals_scan(prefixes in proptest::collection::vec("\\+[1-9][0-9]{0,3}", 1..30), num in "[1-9][0-9]{6,10}") {
            let routes: Vec<Route> = prefixes.iter().enumerate()
                .map(|(i, p)| route(&format!("r{i:02}"), &[p.as_str()])).collect();
            let to = format!("+{num}");
            let m = input(&to, "t", Category::Otp);
            let ix = RouteIndex::build(&routes);
            let scan = routes.iter()
                .filter_map(|r| {
                    let l = r.prefixes.iter().filter(|p| to.starts_with(p.as_str())).map(|p| p.len() - 1).max()?;
                    score(r, &m, l).map(|s| (s, std::cmp::Reverse(r.id.clone())))
                })
                .max()
                .map(|(_, id)| id.0);
            proptest::prop_assert_eq!(ix.choose(&m).map(|r| r.id.clone()), scan);
        }
    }
}
