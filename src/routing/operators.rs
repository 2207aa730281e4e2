//! The number-range table: which operator (MCC+MNC) a number belongs to, by longest
//! prefix. Loaded from a CSV (`prefix,country,mcc,mnc,operator`; the default is
//! `config/number-ranges.csv`, built in) and replaceable at runtime through
//! `PUT /admin/v1/routing/number-ranges`. The HLR hook may override the answer for a
//! ported number.

use super::trie::DigitTrie;

/// The built-in table, from `config/number-ranges.csv`.
pub const DEFAULT_CSV: &str = include_str!("../../config/number-ranges.csv");

/// One number range's operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub country: String,
    pub mcc: String,
    pub mnc: String,
    pub name: String,
}

impl Operator {
    /// MCC+MNC, the key routes match on ("26201").
    pub fn mccmnc(&self) -> String {
        format!("{}{}", self.mcc, self.mnc)
    }
}

/// A CSV line that is not a number range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("number-range CSV line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// Longest-prefix lookup of operators.
#[derive(Default, Clone)]
pub struct OperatorTable {
    trie: DigitTrie<Operator>,
}

fn digits_only(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

impl OperatorTable {
    /// Parses the CSV; `#` lines, blank lines and a `prefix,...` header are skipped.
    pub fn parse(csv: &str) -> Result<OperatorTable, CsvError> {
        let mut t = OperatorTable::default();
        for (n, raw) in csv.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("prefix") {
                continue;
            }
            let bad = |reason: &str| CsvError {
                line: n + 1,
                reason: reason.to_string(),
            };
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() != 5 {
                return Err(bad("expected 5 fields: prefix,country,mcc,mnc,operator"));
            }
            let prefix = f[0].strip_prefix('+').unwrap_or(f[0]);
            if !digits_only(prefix, 1, 15) {
                return Err(bad("prefix must be 1 to 15 digits, e.g. +49151"));
            }
            if f[1].len() != 2 || !f[1].bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad("country must be ISO alpha-2, e.g. DE"));
            }
            if !digits_only(f[2], 3, 3) || !digits_only(f[3], 2, 3) {
                return Err(bad("mcc is 3 digits, mnc 2 or 3"));
            }
            *t.trie.entry(prefix, || Operator {
                country: String::new(),
                mcc: String::new(),
                mnc: String::new(),
                name: String::new(),
            }) = Operator {
                country: f[1].to_string(),
                mcc: f[2].to_string(),
                mnc: f[3].to_string(),
                name: f[4].to_string(),
            };
        }
        Ok(t)
    }

    /// The built-in table.
    pub fn builtin() -> OperatorTable {
        OperatorTable::parse(DEFAULT_CSV).unwrap_or_default()
    }

    /// The operator of the longest range `number` falls in.
    pub fn lookup(&self, number: &str) -> Option<&Operator> {
        self.trie.longest(number).map(|(_, o)| o)
    }

    /// Ranges loaded.
    pub fn len(&self) -> usize {
        self.trie.len()
    }

    /// True when no range is loaded.
    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_resolves() {
        let t = OperatorTable::parse(DEFAULT_CSV).expect("built-in CSV");
        assert!(t.len() > 20);
        assert_eq!(
            t.lookup("+4915112345678").map(|o| o.mccmnc()),
            Some("26201".into())
        );
        assert_eq!(
            t.lookup("+4917212345678").map(|o| o.mccmnc()),
            Some("26202".into())
        );
        assert_eq!(
            t.lookup("+447400123456").map(|o| o.mccmnc()),
            Some("23420".into())
        );
        assert!(t.lookup("+81312345678").is_none());
    }

    #[test]
    fn bad_lines_name_the_line() {
        for (csv, line) in [
            ("+49151,DE,262,01", 1),
            ("# c\n+49x,DE,262,01,X", 2),
            ("+49,Germany,262,01,X", 1),
            ("+49,DE,26,01,X", 1),
        ] {
            assert_eq!(
                OperatorTable::parse(csv).err().map(|e| e.line),
                Some(line),
                "{csv}"
            );
        }
    }
}
