//! Receipts parked before their submit response, indexed in memory.
//!
//! A receipt whose SMSC id no message carries yet is parked in `sm_orphans` and applied
//! when the submit response is recorded. Two things need to know which receipts are
//! parked without reading fjall: every recorded submit response (almost always none is
//! parked for it, and a fjall miss per part was a visible share of apply), and the
//! expiry of receipts that will never match (an SMSC reporting on ids it never gave us,
//! a submit whose response was lost and which went out again under a new id), which
//! would otherwise stay in the replicated state and every snapshot forever.
//!
//! The index mirrors the committed rows: rebuilt from them at start and after a
//! snapshot install, and changed only after an apply batch commits.

use std::collections::{BTreeSet, HashMap};

/// How long a parked receipt waits for its submit response. A response normally follows
/// its receipt within milliseconds, and a message whose response is lost goes out again
/// under a new id, so an hour is far beyond any wait that can still end in a match.
pub const PARKED_RECEIPT_TTL_MS: i64 = 3600 * 1000;

/// The parked receipts' keys (`channel \0 id`) and when each was parked.
#[derive(Debug, Default)]
pub struct ParkedIndex {
    by_key: HashMap<Vec<u8>, i64>,
    by_time: BTreeSet<(i64, Vec<u8>)>,
}

impl ParkedIndex {
    /// Is a receipt parked under `key`?
    pub fn contains(&self, key: &[u8]) -> bool {
        self.by_key.contains_key(key)
    }

    /// Records a parked receipt (or moves an existing one to its new time).
    pub fn insert(&mut self, key: Vec<u8>, at: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key));
    }

    /// Forgets a parked receipt (matched or expired).
    pub fn remove(&mut self, key: &[u8]) {
        if let Some(at) = self.by_key.remove(key) {
            self.by_time.remove(&(at, key.to_vec()));
        }
    }

    /// The keys parked before `before`, oldest first.
    pub fn parked_before(&self, before: i64) -> impl Iterator<Item = (i64, &[u8])> {
        self.by_time
            .range(..(before, Vec::new()))
            .map(|(at, k)| (*at, k.as_slice()))
    }

    /// How many receipts are parked.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is parked.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// The channel a parked key belongs to (the part before the separator), for metrics.
pub fn channel_of(key: &[u8]) -> String {
    let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
    String::from_utf8_lossy(&key[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_and_times_in_step() {
        let mut p = ParkedIndex::default();
        p.insert(b"ch\0a".to_vec(), 10);
        p.insert(b"ch\0b".to_vec(), 5);
        p.insert(b"ch\0a".to_vec(), 20);
        assert_eq!(p.len(), 2);
        let old: Vec<_> = p
            .parked_before(15)
            .map(|(at, k)| (at, k.to_vec()))
            .collect();
        assert_eq!(old, vec![(5, b"ch\0b".to_vec())]);
        p.remove(b"ch\0b");
        p.remove(b"ch\0missing");
        assert!(!p.contains(b"ch\0b"));
        assert!(p.contains(b"ch\0a"));
        assert_eq!(p.parked_before(i64::MAX).count(), 1);
        p.remove(b"ch\0a");
        assert!(p.is_empty());
    }

    #[test]
    fn names_the_channel_of_a_key() {
        assert_eq!(channel_of(b"smpp-1\0abc"), "smpp-1");
        assert_eq!(channel_of(b"no-separator"), "no-separator");
    }
}
