//! Concatenation references that rotate per destination. A handset
//! reassembles by (sender, reference), so two long messages to the same
//! number must not share a reference while both are in flight. Each
//! destination gets its own counter: consecutive long messages to one number
//! get consecutive references, 65 536 apart before a 16-bit reference
//! repeats (256 for the 8-bit carrier, which only has 8 bits).

use std::collections::HashMap;
use std::sync::Mutex;

/// Destinations remembered before the table is reset (bounded memory; a
/// reset only restarts counters at a random point).
const MAX_DESTINATIONS: usize = 200_000;

/// The per-destination reference counters of one node.
#[derive(Debug)]
pub struct ConcatRefs {
    next: Mutex<HashMap<String, u16>>,
    /// Start of a new destination's counter, different per node so that
    /// two nodes sending to the same number rarely start together.
    seed: u16,
}

impl Default for ConcatRefs {
    fn default() -> Self {
        Self::new(rand::random())
    }
}

impl ConcatRefs {
    /// Counters starting from `seed` (tests pass a fixed one).
    #[must_use]
    pub fn new(seed: u16) -> Self {
        Self {
            next: Mutex::new(HashMap::new()),
            seed,
        }
    }

    /// The next reference for `destination`: never 0 in its low byte, so
    /// that the 8-bit carrier (which uses the low byte) never sends 0.
    pub fn next(&self, destination: &str) -> u16 {
        let mut map = match self.next.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= MAX_DESTINATIONS && !map.contains_key(destination) {
            map.clear();
        }
        let seed = self.seed.wrapping_add(hash(destination));
        let slot = map.entry(destination.to_string()).or_insert(seed);
        let mut r = *slot;
        if r & 0xFF == 0 {
            r = r.wrapping_add(1);
        }
        *slot = r.wrapping_add(1);
        r
    }
}

/// A cheap stable spread of destinations over the counter space.
fn hash(s: &str) -> u16 {
    s.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    }) as u16
}
