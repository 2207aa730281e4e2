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

use super::trie::{DigitTrie, PackedTrie};
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
#[cfg(test)]
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
/// The readable definition of the precedence; [`RouteIndex`] computes the same from its
/// compact filters (the property tests below compare the two).
#[cfg(test)]
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

/// Interned string id meaning "the route leaves this field open".
const ANY: u32 = 0;
/// Interned id of an input value no route names: equals no route's condition.
const UNKNOWN: u32 = u32::MAX;
/// Tag of a trie value that is a single route index (else an offset into `lists`).
const SINGLE: u32 = 1 << 31;
/// Prefix lengths are kept in 27 bits of the sort key (numbers have at most 15 digits).
const MAX_LEN: u64 = (1 << 27) - 1;

/// FNV-1a for the interner: the keys are short ids ("acme", "26201", "DE") where
/// SipHash's setup costs more than the hashing; the table only holds strings from the
/// configuration, so lookups with other strings cannot grow its collision chains.
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// One route's conditions as interned ids, so scoring a candidate reads one small row
/// (24 bytes, 10,000 routes ≈ 240 KB) instead of the `Route` and the strings it points to.
#[derive(Debug, Clone, Copy)]
struct Filter {
    tenant: u32,
    operator: u32,
    country: u32,
    sender_type: u32,
    /// 0 = any, else the category's discriminant + 1.
    category: u8,
    /// The fields it names, tenant/category/sender type/operator as bits 3..0 (the
    /// first four places of the score, so a larger value is more specific).
    named: u8,
    /// The place of the route's id among all ids (sorted): ties go to the smaller id.
    rank: u32,
}

/// The input's fields as interned ids.
struct InputIds {
    tenant: u32,
    operator: u32,
    country: u32,
    sender_type: u32,
    category: u8,
}

impl Filter {
    /// The route's sort key for this input (larger wins), or None when it does not match.
    /// Ordered like [`Score`] then the smaller id: named fields, prefix length, country,
    /// rank.
    #[inline]
    fn key(&self, m: &InputIds, prefix_len: usize) -> Option<u64> {
        let ok = |want: u32, have: u32| want == ANY || want == have;
        if !(ok(self.tenant, m.tenant)
            && (self.category == 0 || self.category == m.category)
            && ok(self.sender_type, m.sender_type)
            && ok(self.operator, m.operator)
            && ok(self.country, m.country))
        {
            return None;
        }
        Some(
            (u64::from(self.named) << 60)
                | ((prefix_len as u64).min(MAX_LEN) << 33)
                | (u64::from(self.country != ANY) << 32)
                | u64::from(u32::MAX - self.rank),
        )
    }
}

/// The routes compiled for fast matching.
pub struct RouteIndex {
    routes: Vec<Route>,
    /// Per route (same index), its conditions as ids.
    filters: Vec<Filter>,
    /// Every string a route condition names → its id (from 1).
    strings: FastMap<Box<str>, u32>,
    /// Prefix → `SINGLE | route` or an offset into `lists`.
    prefixes: PackedTrie,
    /// Distinct prefixes stored.
    prefix_count: usize,
    /// Route lists of prefixes named by several routes: a length, then the indexes.
    lists: Vec<u32>,
    /// Routes without prefixes that name a tenant, by the tenant's string id.
    by_tenant: FastMap<u32, Vec<u32>>,
    /// Routes without prefixes and without tenant.
    open: Vec<u32>,
    /// Whether any route names an operator, a country or a sender type (else the
    /// input's value is not looked up).
    names_operator: bool,
    names_country: bool,
    names_sender_type: bool,
}

impl Default for RouteIndex {
    fn default() -> Self {
        RouteIndex::build(std::iter::empty())
    }
}

impl RouteIndex {
    /// Compiles `routes` (any order).
    pub fn build<'a>(routes: impl IntoIterator<Item = &'a Route>) -> RouteIndex {
        let routes: Vec<Route> = routes.into_iter().cloned().collect();
        let mut strings: FastMap<Box<str>, u32> = FastMap::default();
        let mut intern = |s: &Option<String>| match s {
            None => ANY,
            Some(s) => {
                let next = strings.len() as u32 + 1;
                *strings.entry(s.as_str().into()).or_insert(next)
            }
        };
        let mut ids: Vec<(&str, u32)> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i as u32))
            .collect();
        ids.sort_unstable();
        let mut rank = vec![0u32; routes.len()];
        let mut place = 0u32;
        for (k, &(id, i)) in ids.iter().enumerate() {
            if k > 0 && ids[k - 1].0 != id {
                place += 1;
            }
            rank[i as usize] = place;
        }
        let mut filters = Vec::with_capacity(routes.len());
        let mut trie: DigitTrie<Vec<u32>> = DigitTrie::default();
        let mut by_tenant: FastMap<u32, Vec<u32>> = FastMap::default();
        let mut open = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let i = i as u32;
            let f = Filter {
                tenant: intern(&r.tenant),
                operator: intern(&r.operator),
                country: intern(&r.country),
                sender_type: intern(&r.sender_type),
                category: r.category.map_or(0, |c| c as u8 + 1),
                named: (u8::from(r.tenant.is_some()) << 3)
                    | (u8::from(r.category.is_some()) << 2)
                    | (u8::from(r.sender_type.is_some()) << 1)
                    | u8::from(r.operator.is_some()),
                rank: rank[i as usize],
            };
            filters.push(f);
            if r.prefixes.is_empty() {
                match r.tenant {
                    Some(_) => by_tenant.entry(f.tenant).or_default().push(i),
                    None => open.push(i),
                }
            } else {
                for p in &r.prefixes {
                    let list = trie.entry(p, Vec::new);
                    if !list.contains(&i) {
                        list.push(i);
                    }
                }
            }
        }
        let mut lists = Vec::new();
        let prefixes = PackedTrie::pack(&trie, |list| match list.as_slice() {
            [one] => SINGLE | one,
            many => {
                let at = lists.len() as u32;
                lists.push(many.len() as u32);
                lists.extend_from_slice(many);
                at
            }
        });
        RouteIndex {
            names_operator: routes.iter().any(|r| r.operator.is_some()),
            names_country: routes.iter().any(|r| r.country.is_some()),
            names_sender_type: routes.iter().any(|r| r.sender_type.is_some()),
            routes,
            filters,
            strings,
            prefixes,
            prefix_count: trie.len(),
            lists,
            by_tenant,
            open,
        }
    }

    /// Number of routes and of distinct prefixes.
    pub fn size(&self) -> (usize, usize) {
        (self.routes.len(), self.prefix_count)
    }

    fn id_of(&self, s: &str) -> u32 {
        self.strings.get(s).copied().unwrap_or(UNKNOWN)
    }

    /// The route this message takes, if any. Allocates nothing; reads the trie nodes of
    /// the number's digits, the filters of the routes listed there and of the prefix-less
    /// ones, and the chosen `Route` once at the end.
    pub fn choose(&self, m: &MatchInput<'_>) -> Option<&Route> {
        let ids = InputIds {
            tenant: self.id_of(m.tenant),
            operator: match m.operator {
                Some(op) if self.names_operator => self.id_of(op),
                _ => UNKNOWN,
            },
            country: match m.country {
                Some(cc) if self.names_country => self.id_of(cc),
                _ => UNKNOWN,
            },
            sender_type: if self.names_sender_type {
                self.id_of(m.sender_type)
            } else {
                UNKNOWN
            },
            category: m.category as u8 + 1,
        };
        let mut best: Option<(u64, u32)> = None;
        let mut offer = |i: u32, prefix_len: usize| {
            let Some(f) = self.filters.get(i as usize) else {
                return;
            };
            if let Some(k) = f.key(&ids, prefix_len)
                && best.is_none_or(|(bk, _)| k > bk)
            {
                best = Some((k, i));
            }
        };
        // Shortest prefix first: a route listed under several prefixes of the number is
        // offered again with the longer length, and the higher key replaces the lower.
        self.prefixes.for_each_prefix(m.to, |len, v| {
            if v & SINGLE != 0 {
                offer(v & !SINGLE, len);
            } else {
                let at = v as usize;
                let n = self.lists.get(at).copied().unwrap_or(0) as usize;
                for &i in self.lists.get(at + 1..at + 1 + n).unwrap_or(&[]) {
                    offer(i, len);
                }
            }
        });
        if ids.tenant != UNKNOWN
            && let Some(list) = self.by_tenant.get(&ids.tenant)
        {
            for &i in list {
                offer(i, 0);
            }
        }
        for &i in &self.open {
            offer(i, 0);
        }
        best.and_then(|(_, i)| self.routes.get(i as usize))
    }
}

/// How a new route and an existing one make one of them unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shadow {
    /// Both match exactly the same messages: the one with the larger id is never chosen.
    SameMatch,
    /// The existing route matches every number the new one matches, as specifically,
    /// and wins ties (smaller id): the new route would never be chosen.
    NewIsShadowed,
    /// The new route would match every number the existing one matches, as
    /// specifically, and win ties: the existing route would never be chosen again.
    ShadowsExisting,
}

/// The first route of `existing` (other than `new.id`) that `new` conflicts with: same
/// fields besides the prefixes (so the same specificity) and one route's prefixes a
/// subset of the other's, with ties going to the smaller id. For any number the route
/// with more prefixes then finds a prefix at least as long, so the other never wins.
pub fn shadowing<'a>(
    existing: impl IntoIterator<Item = &'a Route>,
    new: &Route,
) -> Option<(&'a Route, Shadow)> {
    use std::collections::BTreeSet;
    let set = |r: &Route| -> BTreeSet<String> { r.prefixes.iter().cloned().collect() };
    let mine = set(new);
    existing.into_iter().find_map(|o| {
        if o.id == new.id
            || o.country != new.country
            || o.tenant != new.tenant
            || o.category != new.category
            || o.operator != new.operator
            || o.sender_type != new.sender_type
        {
            return None;
        }
        let theirs = set(o);
        if theirs == mine {
            Some((o, Shadow::SameMatch))
        } else if !mine.is_empty() && mine.is_subset(&theirs) && o.id < new.id {
            Some((o, Shadow::NewIsShadowed))
        } else if !theirs.is_empty() && theirs.is_subset(&mine) && new.id < o.id {
            Some((o, Shadow::ShadowsExisting))
        } else {
            None
        }
    })
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

    #[test]
    fn shadowing_finds_routes_that_could_never_be_chosen() {
        let o1 = route("o1", &["+49", "+43"]);
        let existing = [o1.clone()];
        let check = |r: &Route| shadowing(&existing, r).map(|(o, k)| (o.id.clone(), k));
        // Covered and loses ties: dead.
        assert_eq!(
            check(&route("o2", &["+43"])),
            Some(("o1".into(), Shadow::NewIsShadowed))
        );
        assert_eq!(
            check(&route("v8", &["+49"])),
            Some(("o1".into(), Shadow::NewIsShadowed))
        );
        // Would cover o1 and win ties: o1 dead.
        assert_eq!(
            check(&route("a", &["+43", "+49", "+41"])),
            Some(("o1".into(), Shadow::ShadowsExisting))
        );
        assert_eq!(
            check(&route("z", &["+43", "+49"])),
            Some(("o1".into(), Shadow::SameMatch))
        );
        // Covered but wins ties (smaller id): both stay reachable.
        assert_eq!(check(&route("a", &["+43"])), None);
        // Longer prefixes are more specific; prefix-less routes match other numbers.
        assert_eq!(check(&route("o3", &["+4915"])), None);
        assert_eq!(check(&route("o3", &[])), None);
        // Another field named: a different specificity.
        let mut de = route("o4", &["+49"]);
        de.country = Some("DE".into());
        assert_eq!(check(&de), None);
        // The index agrees: o2 is never chosen.
        let o2 = route("o2", &["+43"]);
        let idx = RouteIndex::build([&o1, &o2]);
        let chosen = idx.choose(&input("+4366412345678", "t", Category::Otp));
        assert_eq!(chosen.map(|r| r.id.as_str()), Some("o1"));
        // The same route id (a replacement) is not a conflict with itself.
        assert_eq!(check(&route("o1", &["+43"])), None);
    }

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

    /// A route with random conditions: (prefix, tenant, category, sender type, operator,
    /// country), each absent or one of a few values.
    type Conds = (
        Option<String>,
        Option<u8>,
        Option<u8>,
        Option<u8>,
        Option<u8>,
        Option<u8>,
    );

    fn pick<T: Copy>(pool: &[T], i: u8) -> T {
        pool[i as usize % pool.len()]
    }

    const TENANTS: &[&str] = &["t", "acme", "26201"];
    const CATEGORIES: &[Category] = &[Category::Otp, Category::Transactional, Category::Marketing];
    const SENDERS: &[&str] = &["alphanumeric", "short_code", "long_code"];
    const OPERATORS: &[&str] = &["26201", "26202", "DE"];
    const COUNTRIES: &[&str] = &["DE", "FR", "acme"];

    proptest::proptest! {
        /// With every kind of condition (values shared between fields on purpose, ids in
        /// an order unrelated to the list order) the index picks what a scan picks.
        #[test]
        fn index_equals_scan_with_conditions(
            conds in proptest::collection::vec((
                proptest::option::of("\\+[1-9][0-9]{0,2}"),
                proptest::option::of(0u8..3), proptest::option::of(0u8..3),
                proptest::option::of(0u8..3), proptest::option::of(0u8..3),
                proptest::option::of(0u8..3),
            ), 1..40),
            num in "[1-9][0-9]{4,8}",
            input_pick in (0u8..3, 0u8..3, 0u8..3, proptest::option::of(0u8..3), proptest::option::of(0u8..3)),
        ) {
            let routes: Vec<Route> = conds.iter().enumerate().map(|(i, c): (usize, &Conds)| {
                let prefixes: Vec<&str> = c.0.iter().map(String::as_str).collect();
                let mut r = route(&format!("r{:03}", (i * 37) % 101), &prefixes);
                r.tenant = c.1.map(|x| pick(TENANTS, x).to_string());
                r.category = c.2.map(|x| pick(CATEGORIES, x));
                r.sender_type = c.3.map(|x| pick(SENDERS, x).to_string());
                r.operator = c.4.map(|x| pick(OPERATORS, x).to_string());
                r.country = c.5.map(|x| pick(COUNTRIES, x).to_string());
                r
            }).collect();
            let to = format!("+{num}");
            let (t, c, snd, op, cc) = input_pick;
            let m = MatchInput {
                to: &to,
                country: cc.map(|x| pick(COUNTRIES, x)),
                operator: op.map(|x| pick(OPERATORS, x)),
                tenant: pick(TENANTS, t),
                category: pick(CATEGORIES, c),
                sender_type: pick(SENDERS, snd),
            };
            let ix = RouteIndex::build(&routes);
            let scan = routes.iter()
                .filter_map(|r| {
                    let l = if r.prefixes.is_empty() {
                        0
                    } else {
                        r.prefixes.iter().filter(|p| to.starts_with(p.as_str())).map(|p| p.len() - 1).max()?
                    };
                    score(r, &m, l).map(|s| (s, std::cmp::Reverse(r.id.clone())))
                })
                .max()
                .map(|(_, id)| id.0);
            proptest::prop_assert_eq!(ix.choose(&m).map(|r| r.id.clone()), scan);
        }
    }
}
