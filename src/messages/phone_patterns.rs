//! Whether a parsed number is valid and which region it belongs to, as libphonenumber
//! decides them, with each region's patterns compiled once per process.
//!
//! Why: the `phonenumber` crate keeps its patterns in one shared LRU cache behind a
//! mutex and looks each one up by its source text on every use, so every check hashed
//! patterns of up to a few kilobytes (Germany's fixed-line pattern is one) under a lock
//! the HTTP workers share: about 2 % of a loaded node's CPU went to validity alone. Here a
//! region's patterns become plain `regex::Regex`es the first time a number of that region
//! is checked, built from the same sources with the same options, and matched the same
//! way (the possible lengths first, then a match that starts at the first digit), so the
//! answers are the library's; `agrees_with_libphonenumber` compares the two over every
//! country code.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};

/// The number types libphonenumber's validity accepts, likeliest for SMS first.
const VALID_TYPES: [phonenumber::Type; 10] = [
    phonenumber::Type::Mobile,
    phonenumber::Type::FixedLine,
    phonenumber::Type::TollFree,
    phonenumber::Type::PremiumRate,
    phonenumber::Type::SharedCost,
    phonenumber::Type::Voip,
    phonenumber::Type::PersonalNumber,
    phonenumber::Type::Pager,
    phonenumber::Type::Uan,
    phonenumber::Type::Voicemail,
];

/// `n.country().id()`, the number's region as the library finds it (from the national
/// number without its leading zeros, as the library does), with the compiled patterns.
pub fn country(n: &phonenumber::PhoneNumber) -> Option<phonenumber::country::Id> {
    region_of(
        source_for(n.country().code(), &n.national().value().to_string()),
        n,
    )
}

/// `phonenumber::is_valid`'s answer, with `country`'s. Valid: the number's region (the
/// only one of its country code, or among several the first whose leading digits or
/// patterns take it) has a general pattern and one type pattern that match its national
/// number; non-geographic codes (`001`) keep the library's own path. The region is
/// chosen once when both answers read the same national number (one without leading
/// zeros: nearly every number).
pub fn validity_and_country(
    n: &phonenumber::PhoneNumber,
) -> (bool, Option<phonenumber::country::Id>) {
    let code = n.country().code();
    let national = n.national().to_string();
    let source = source_for(code, &national);
    let valid = match &source {
        Some(Source::Region(_, region)) => region.is_valid(&national),
        Some(Source::Library) => phonenumber::is_valid(n),
        None => false,
    };
    let stripped = n.national().value().to_string();
    let region_source = if stripped == national {
        source
    } else {
        source_for(code, &stripped)
    };
    (valid, region_of(region_source, n))
}

/// The region a source names (the library's answer where the library decides).
fn region_of(
    source: Option<Source>,
    n: &phonenumber::PhoneNumber,
) -> Option<phonenumber::country::Id> {
    match source? {
        Source::Region(id, _) => id.parse().ok(),
        Source::Library => n.country().id(),
    }
}

/// Where a number's patterns come from.
enum Source {
    /// A region, by id, compiled here.
    Region(&'static str, Arc<Region>),
    /// A non-geographic code (`001`), or a region whose patterns did not compile: the
    /// library decides.
    Library,
}

/// The library's `validator::source_for`: the only region of the country code, or the
/// first of several whose leading digits match the national number or, when it has none,
/// whose patterns take it.
fn source_for(code: u16, national: &str) -> Option<Source> {
    let regions = DATABASE.region(&code)?;
    if let [only] = regions.as_slice() {
        if *only == "001" {
            return Some(Source::Library);
        }
        only.parse::<phonenumber::country::Id>().ok()?;
        return Some(compiled(only).map_or(Source::Library, |r| Source::Region(only, r)));
    }
    for id in regions {
        let Some(region) = compiled(id) else {
            return Some(Source::Library);
        };
        let chosen = match &region.leading_digits {
            Some(leading) => leading.is_match(national),
            None => region.is_valid(national),
        };
        if chosen {
            return Some(Source::Region(id, region));
        }
    }
    None
}

/// One region's patterns, compiled.
struct Region {
    general: Pattern,
    /// The types of [`VALID_TYPES`] the region has, in that order.
    types: Vec<Pattern>,
    /// Picks this region among those sharing its country code.
    leading_digits: Option<Regex>,
}

impl Region {
    fn compile(meta: &Metadata) -> Option<Region> {
        let d = meta.descriptors();
        Some(Region {
            general: Pattern::compile(d.general())?,
            types: VALID_TYPES
                .iter()
                .filter_map(|t| d.get(*t))
                .map(Pattern::compile)
                .collect::<Option<_>>()?,
            leading_digits: match meta.leading_digits() {
                Some(p) => Some(build(p.as_str())?),
                None => None,
            },
        })
    }

    fn is_valid(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// A descriptor's national-number pattern and possible lengths.
struct Pattern {
    regex: Regex,
    possible_length: Vec<u16>,
}

impl Pattern {
    fn compile(d: &Descriptor) -> Option<Pattern> {
        Some(Pattern {
            regex: build(d.national_number().as_str())?,
            possible_length: d.possible_length().to_vec(),
        })
    }

    /// As `Descriptor::is_match`: a listed length, then a match at the first digit.
    fn is_match(&self, national: &str) -> bool {
        let len_ok = self.possible_length.is_empty()
            || u16::try_from(national.len()).is_ok_and(|l| self.possible_length.contains(&l));
        len_ok && self.regex.is_match(national)
    }
}

/// A pattern that matches where the library's does at the first digit. The library asks
/// `find(national)` for a match that starts at 0; a match starting at 0 exists exactly
/// when the leftmost one starts there, so `^(?:pattern)` and `is_match` give the same
/// answer without searching the rest of the string or for the match's ends (2.5× faster).
/// The library builds its patterns with `ignore_whitespace` and otherwise `regex`'s
/// defaults; the newline ends any `#` comment before the closing parenthesis. Unicode is
/// off: a national number is ASCII digits, in which `\d` as `[0-9]` matches exactly what
/// Unicode's `\d` does, and the patterns of every region then take about 9 MB and compile
/// in 0.2 s instead of 80 MB and 1.4 s (a pattern that needs Unicode would fail to build
/// and leave its region to the library).
fn build(source: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{source}\n)"))
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .ok()
}

/// Compiled regions by id; `None` records a region whose patterns did not compile (never
/// seen with the bundled metadata): it is left to the library and not tried again.
type Compiled = HashMap<String, Option<Arc<Region>>>;

static COMPILED: LazyLock<RwLock<Compiled>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// The region's compiled patterns, compiled on first use.
fn compiled(id: &str) -> Option<Arc<Region>> {
    if let Some(found) = COMPILED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(id)
    {
        return found.clone();
    }
    let region = DATABASE.by_id(id).and_then(Region::compile).map(Arc::new);
    COMPILED
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(id.to_string())
        .or_insert(region)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_libphonenumber() {
        // Every country code, numbers of every length from a fixed pseudo-random stream
        // plus the patterns' own examples: the compiled patterns must answer as the
        // library does.
        let mut seed: u64 = 0x5eed;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        let mut valid = 0;
        let mut shared_code_valid = 0;
        for meta in DATABASE.iter() {
            let Some(code) = meta.country_code().to_string().parse::<u16>().ok() else {
                continue;
            };
            let mut nationals: Vec<String> = VALID_TYPES
                .iter()
                .filter_map(|t| meta.descriptors().get(*t)?.example().map(str::to_string))
                .collect();
            for len in 4..=13 {
                for _ in 0..20 {
                    let digits: String = (0..len)
                        .map(|_| char::from(b'0' + (next() % 10) as u8))
                        .collect();
                    nationals.push(digits);
                }
            }
            let shared = DATABASE.region(&code).is_some_and(|r| r.len() > 1);
            for national in nationals {
                let Ok(n) = phonenumber::parse(None, format!("+{code}{national}")) else {
                    continue;
                };
                let expected = phonenumber::is_valid(&n);
                assert_eq!(country(&n), n.country().id(), "+{code}{national}");
                assert_eq!(
                    validity_and_country(&n),
                    (expected, n.country().id()),
                    "+{code}{national}"
                );
                checked += 1;
                valid += usize::from(expected);
                shared_code_valid += usize::from(expected && shared);
            }
        }
        assert!(
            checked > 10_000 && valid > 500 && shared_code_valid > 50,
            "{checked} numbers, {valid} valid, {shared_code_valid} valid under a shared code"
        );
    }

    #[test]
    fn every_region_compiles_here() {
        // None is left to the library: with Unicode off every pattern still builds.
        for meta in DATABASE.iter().filter(|m| m.id() != "001") {
            assert!(compiled(meta.id()).is_some(), "{}", meta.id());
        }
    }

    #[test]
    fn shared_country_codes_pick_their_region() {
        // +1, +44 and +7 are shared by several regions: the region is chosen by leading
        // digits or patterns before the number is checked against it.
        for number in [
            "+12015550123",
            "+14165550123",
            "+18095551234",
            "+447911123456",
            "+441534123456",
            "+79123456789",
            "+77012345678",
        ] {
            let n = phonenumber::parse(None, number).expect("parses");
            assert_eq!(country(&n), n.country().id(), "{number}");
            assert_eq!(
                validity_and_country(&n),
                (phonenumber::is_valid(&n), n.country().id()),
                "{number}"
            );
        }
    }
}
