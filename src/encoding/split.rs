//! Splitting rules for long messages, shared by the counting path (`plan`)
//! and the encoding path (`encode_parts`) so the two can never disagree.
//!
//! A text fits one SMS when its total units (septets or UTF-16 code units)
//! are within the single-message limit. Otherwise it is cut greedily into
//! parts of at most the per-part limit, where each character is an atom
//! costing 1 or 2 units: an ESC pair or a surrogate pair that would not fit
//! moves whole to the next part.

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

/// Collects encoded characters into parts, applying [`starts_new_part`].
#[derive(Debug)]
pub(crate) struct PartWriter {
    limit: usize,
    octets_per_unit: usize,
    fill: usize,
    current: Vec<u8>,
    done: Vec<Vec<u8>>,
}

impl PartWriter {
    /// `limit` comes from [`PartCounter::part_limit`], `expected_parts` from
    /// [`PartCounter::parts`] (only used to size the allocation).
    pub(crate) fn new(limit: usize, octets_per_unit: usize, expected_parts: usize) -> Self {
        Self {
            limit,
            octets_per_unit,
            fill: 0,
            current: Vec::with_capacity(limit * octets_per_unit),
            done: Vec::with_capacity(expected_parts),
        }
    }

    /// The buffer to write a character costing `cost` units into, opening a
    /// new part first if the character does not fit the current one.
    #[inline]
    pub(crate) fn slot(&mut self, cost: usize) -> &mut Vec<u8> {
        if starts_new_part(self.fill, cost, self.limit) {
            let next = Vec::with_capacity(self.limit * self.octets_per_unit);
            self.done.push(std::mem::replace(&mut self.current, next));
            self.fill = 0;
        }
        self.fill += cost;
        &mut self.current
    }

    /// The finished parts (the last one included).
    pub(crate) fn finish(mut self) -> Vec<Vec<u8>> {
        self.done.push(self.current);
        self.done
    }
}
