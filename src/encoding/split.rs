//! Splitting rules for long messages, shared by the counting path (`plan`)
//! and the encoding path (`encode_parts`) so the two can never disagree.
//!
//! A text fits one SMS when its total units (septets or UTF-16 code units)
//! are within the single-message limit. Otherwise it is cut greedily into
//! parts of at most the per-part limit, where each character is an atom
//! costing 1 or 2 units: an ESC pair or a surrogate pair that would not fit
//! moves whole to the next part.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

use super::Alphabet;

/// Unit limits of one encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Units a text may have and still go as one SMS without UDH.
    pub(crate) single: usize,
    /// Units per part of a concatenated message (UDH takes the rest).
    pub(crate) part: usize,
}

/// The one rule deciding where a part ends: a character starts a new part
/// when the current part is non-empty and the character does not fit.
#[inline]
pub(crate) fn starts_new_part(fill: usize, cost: usize, limit: usize) -> bool {
    fill > 0 && fill + cost > limit
}

/// Streaming counter: feed it each character's cost, read total units and
/// parts at the end. No allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartCounter {
    limits: Limits,
    units: usize,
    /// Parts so far if the text turns out to need concatenation.
    multi_parts: usize,
    /// Units in the current (last) multi-part part.
    fill: usize,
}

impl PartCounter {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            units: 0,
            multi_parts: 1,
            fill: 0,
        }
    }

    /// Account for one character costing `cost` units.
    #[inline]
    pub(crate) fn push(&mut self, cost: usize) {
        self.units += cost;
        if starts_new_part(self.fill, cost, self.limits.part) {
            self.multi_parts += 1;
            self.fill = cost;
        } else {
            self.fill += cost;
        }
    }

    /// Total units pushed so far.
    pub(crate) fn units(&self) -> usize {
        self.units
    }

    /// Parts the text pushed so far needs (1 when it fits a single SMS).
    pub(crate) fn parts(&self) -> usize {
        if self.units <= self.limits.single {
            1
        } else {
            self.multi_parts
        }
    }

    /// The per-part unit limit the writer must use for this text.
    pub(crate) fn part_limit(&self) -> usize {
        if self.units <= self.limits.single {
            self.limits.single
        } else {
            self.limits.part
        }
    }
}

/// Where to cut a text that needs `parts` parts of at most `limit` units:
/// byte ranges of the text, one per part. Grapheme clusters stay whole
/// when cutting only at cluster boundaries still gives `parts` parts (the
/// minimum, which the character-level greedy cut reaches); otherwise the
/// cut is per character (an ESC pair or surrogate pair is one character, so
/// it is never split either way). A cluster larger than a part is cut per
/// character inside it.
pub(crate) fn cut<A: Alphabet>(text: &str, a: &A, limit: usize, parts: usize) -> Vec<Range<usize>> {
    let cost = |c: char| a.cost(c).unwrap_or(1);
    let mut by_cluster = Vec::with_capacity(parts);
    let mut start = 0;
    let mut fill = 0;
    for (at, g) in text.grapheme_indices(true) {
        let g_cost: usize = g.chars().map(cost).sum();
        if g_cost <= limit {
            if starts_new_part(fill, g_cost, limit) {
                by_cluster.push(start..at);
                start = at;
                fill = 0;
            }
            fill += g_cost;
        } else {
            for (off, c) in g.char_indices() {
                let c_cost = cost(c);
                if starts_new_part(fill, c_cost, limit) {
                    by_cluster.push(start..at + off);
                    start = at + off;
                    fill = 0;
                }
                fill += c_cost;
            }
        }
        if by_cluster.len() >= parts {
            break; // already worse than the minimum
        }
    }
    if by_cluster.len() + 1 == parts {
        by_cluster.push(start..text.len());
        return by_cluster;
    }
    // Per character: the greedy cut, minimal by construction.
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    let mut fill = 0;
    for (at, c) in text.char_indices() {
        let c_cost = cost(c);
        if starts_new_part(fill, c_cost, limit) {
            out.push(start..at);
            start = at;
            fill = 0;
        }
        fill += c_cost;
    }
    out.push(start..text.len());
    out
}
