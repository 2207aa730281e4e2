//! Smart encoding: look-alike characters that force UCS-2 (curly quotes,
//! dashes, odd spaces, ellipsis, ...) replaced by their GSM 03.38
//! equivalents, so that a text pasted from a word processor costs GSM-7
//! parts. The caller decides whether the replacement is worth it.

/// One kind of replacement made, for the preview.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replacement {
    /// The character that was in the text.
    pub from: char,
    /// What it became ("" when it was dropped, e.g. a zero-width space).
    pub to: &'static str,
    /// How many times.
    pub count: usize,
}

/// The GSM-7 stand-in for a look-alike character, or None if it is not one.
fn lookalike(c: char) -> Option<&'static str> {
    Some(match c {
        // Quotes and apostrophes.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{00B4}'
        | '\u{0060}' | '\u{02BC}' | '\u{02B9}' | '\u{FF07}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}'
        | '\u{00BB}' | '\u{02BA}' | '\u{FF02}' => "\"",
        '\u{2039}' => "<",
        '\u{203A}' => ">",
        // Dashes and minus signs.
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' | '\u{FE63}' | '\u{FF0D}' => "-",
        // Spaces.
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\t' => " ",
        // Invisible characters that only cost space.
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => "",
        // Punctuation.
        '\u{2026}' => "...",
        '\u{2022}' | '\u{2023}' | '\u{2043}' | '\u{00B7}' => "*",
        '\u{2044}' | '\u{2215}' => "/",
        '\u{02C6}' => "^",
        '\u{02DC}' => "~",
        '\u{FF01}' => "!",
        '\u{FF1F}' => "?",
        '\u{FF0C}' => ",",
        '\u{FF0E}' => ".",
        '\u{FF1A}' => ":",
        '\u{FF1B}' => ";",
        '\u{2024}' => ".",
        // A few letters GSM lacks in one case only.
        '\u{00E7}' => "\u{00C7}",
        _ => return None,
    })
}

/// The text with every look-alike replaced and what was replaced, or None
/// when there is nothing to replace.
pub(crate) fn replace(text: &str) -> Option<(String, Vec<Replacement>)> {
    if !text.chars().any(|c| lookalike(c).is_some()) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut reps: Vec<Replacement> = Vec::new();
    for c in text.chars() {
        match lookalike(c) {
            Some(to) => {
                out.push_str(to);
                match reps.iter_mut().find(|r| r.from == c) {
                    Some(r) => r.count += 1,
                    None => reps.push(Replacement {
                        from: c,
                        to,
                        count: 1,
                    }),
                }
            }
            None => out.push(c),
        }
    }
    Some((out, reps))
}
