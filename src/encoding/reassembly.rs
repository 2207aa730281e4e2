//! Reassembly of concatenated inbound messages. Parts may arrive in any
//! order, twice, or not at all: a group is delivered as soon as every part
//! is there, and when its timeout passes it is delivered with what arrived
//! and `complete: false`. Pure: the caller passes the time.

use std::collections::{BTreeMap, HashMap};

use super::inbound::{Body, Part};

/// Default time a group waits for its missing parts.
pub const DEFAULT_TIMEOUT_MS: i64 = 5 * 60 * 1000;
/// Default most groups held at once; the oldest is delivered incomplete beyond it.
pub const DEFAULT_MAX_GROUPS: usize = 10_000;

/// Who sent what to whom: parts of one message share it. Public so that a caller can
/// keep something per group (the parts' unanswered acknowledgements) beside the parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    source: String,
    dest: String,
    reference: u16,
    sixteen_bit: bool,
    total: u8,
}

#[derive(Debug)]
struct Group {
    first_seen: i64,
    body_kind: Body,
    parts: BTreeMap<u8, Vec<u8>>,
    duplicates: u32,
}

/// A message put back together (or a single-part one passed through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// Sender (MSISDN as the SMSC wrote it).
    pub source: String,
    /// Recipient (our number / short code).
    pub dest: String,
    /// The decoded text (binary as hex).
    pub text: String,
    /// Parts the message announced (1 for a single message).
    pub total: u8,
    /// All parts arrived.
    pub complete: bool,
    /// Sequence numbers that never arrived (empty when complete).
    pub missing: Vec<u8>,
    /// Parts received more than once (ignored copies).
    pub duplicates: u32,
    /// The group it was put together from (None for a single-part message).
    pub group: Option<GroupKey>,
}

/// Holds incomplete groups for one channel.
#[derive(Debug)]
pub struct Reassembler {
    groups: HashMap<GroupKey, Group>,
    timeout_ms: i64,
    max_groups: usize,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT_MS, DEFAULT_MAX_GROUPS)
    }
}

impl Reassembler {
    /// A reassembler with its timeout and capacity.
    #[must_use]
    pub fn new(timeout_ms: i64, max_groups: usize) -> Self {
        Self {
            groups: HashMap::new(),
            timeout_ms,
            max_groups: max_groups.max(1),
        }
    }

    /// Groups waiting for parts.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.groups.len()
    }

    /// Adds one part. Returns the messages it completes: the message itself
    /// when it is single or the last missing part, plus any group pushed out
    /// incomplete because the capacity is reached.
    pub fn push(&mut self, source: &str, dest: &str, part: Part, now_ms: i64) -> Vec<Assembled> {
        let Some(concat) = part.concat else {
            return vec![Assembled {
                source: source.to_string(),
                dest: dest.to_string(),
                text: part.body_kind.decode(&part.body),
                total: 1,
                complete: true,
                missing: Vec::new(),
                duplicates: 0,
                group: None,
            }];
        };
        let key = GroupKey {
            source: source.to_string(),
            dest: dest.to_string(),
            reference: concat.reference,
            sixteen_bit: concat.sixteen_bit,
            total: concat.total,
        };
        let mut out = Vec::new();
        if !self.groups.contains_key(&key) && self.groups.len() >= self.max_groups {
            let oldest = self
                .groups
                .iter()
                .min_by_key(|(k, g)| (g.first_seen, (*k).clone()))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest
                && let Some(g) = self.groups.remove(&k)
            {
                out.push(finish(k, g));
            }
        }
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            first_seen: now_ms,
            body_kind: part.body_kind,
            parts: BTreeMap::new(),
            duplicates: 0,
        });
        match group.parts.entry(concat.seq) {
            std::collections::btree_map::Entry::Occupied(_) => group.duplicates += 1,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(part.body);
            }
        }
        if group.parts.len() == usize::from(concat.total)
            && let Some(g) = self.groups.remove(&key)
        {
            out.push(finish(key, g));
        }
        out
    }

    /// The group `part` belongs to (None for a single-part message).
    #[must_use]
    pub fn group_of(source: &str, dest: &str, part: &Part) -> Option<GroupKey> {
        part.concat.as_ref().map(|concat| GroupKey {
            source: source.to_string(),
            dest: dest.to_string(),
            reference: concat.reference,
            sixteen_bit: concat.sixteen_bit,
            total: concat.total,
        })
    }

    /// Delivers (incomplete) every group older than the timeout.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Assembled> {
        let due: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, g)| now_ms - g.first_seen >= self.timeout_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Assembled> = due
            .into_iter()
            .filter_map(|k| self.groups.remove(&k).map(|g| finish(k, g)))
            .collect();
        out.sort_by(|a, b| (&a.source, &a.dest).cmp(&(&b.source, &b.dest)));
        out
    }
}

fn finish(key: GroupKey, g: Group) -> Assembled {
    let missing: Vec<u8> = (1..=key.total)
        .filter(|s| !g.parts.contains_key(s))
        .collect();
    let body: Vec<u8> = g.parts.into_values().flatten().collect();
    Assembled {
        source: key.source.clone(),
        dest: key.dest.clone(),
        text: g.body_kind.decode(&body),
        total: key.total,
        complete: missing.is_empty(),
        missing,
        duplicates: g.duplicates,
        group: Some(key),
    }
}
