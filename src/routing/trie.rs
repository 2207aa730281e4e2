//! A digit trie over E.164 prefixes: the index behind route matching and the operator
//! table. A lookup walks the number's digits once, so its cost depends on the number's
//! length, not on how many prefixes are stored (100,000 prefixes cost the same as 10).

/// Sentinel for "no child" / "no value".
const NONE: u32 = u32::MAX;

#[derive(Clone)]
struct Node {
    children: [u32; 10],
    value: u32,
}

impl Node {
    fn empty() -> Node {
        Node {
            children: [NONE; 10],
            value: NONE,
        }
    }
}

/// Maps digit prefixes (a leading `+` is ignored) to values of type `V`.
#[derive(Clone)]
pub struct DigitTrie<V> {
    nodes: Vec<Node>,
    values: Vec<V>,
}

impl<V> Default for DigitTrie<V> {
    fn default() -> Self {
        DigitTrie {
            nodes: vec![Node::empty()],
            values: Vec::new(),
        }
    }
}

fn digits(s: &str) -> impl Iterator<Item = usize> + '_ {
    s.bytes()
        .skip_while(|b| *b == b'+')
        .filter(u8::is_ascii_digit)
        .map(|b| (b - b'0') as usize)
}

impl<V> DigitTrie<V> {
    /// Number of prefixes with a value.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value slot of `prefix`, created with `init` if absent.
    pub fn entry(&mut self, prefix: &str, init: impl FnOnce() -> V) -> &mut V {
        let mut at = 0usize;
        for d in digits(prefix) {
            let next = self.nodes[at].children[d];
            at = if next == NONE {
                self.nodes.push(Node::empty());
                let n = (self.nodes.len() - 1) as u32;
                self.nodes[at].children[d] = n;
                n as usize
            } else {
                next as usize
            };
        }
        if self.nodes[at].value == NONE {
            self.values.push(init());
            self.nodes[at].value = (self.values.len() - 1) as u32;
        }
        let v = self.nodes[at].value as usize;
        &mut self.values[v]
    }

    /// Calls `f(prefix_len_in_digits, value)` for every stored prefix of `number`,
    /// shortest first.
    pub fn for_each_prefix<'a>(&'a self, number: &str, mut f: impl FnMut(usize, &'a V)) {
        let mut at = 0usize;
        if self.nodes[0].value != NONE {
            f(0, &self.values[self.nodes[0].value as usize]);
        }
        for (depth, d) in digits(number).enumerate() {
            let next = self.nodes[at].children[d];
            if next == NONE {
                return;
            }
            at = next as usize;
            let v = self.nodes[at].value;
            if v != NONE {
                f(depth + 1, &self.values[v as usize]);
            }
        }
    }

    /// The value of the longest stored prefix of `number`, with its length in digits.
    pub fn longest(&self, number: &str) -> Option<(usize, &V)> {
        let mut best = None;
        self.for_each_prefix(number, |len, v| best = Some((len, v)));
        best
    }
}

/// A read-only copy of a [`DigitTrie`] laid out for lookups on the hot path (the route
/// index): 12-byte nodes, a node's children stored next to each other in breadth-first
/// order (so the top levels, which every lookup walks, share a few cache lines), and a
/// `u32` per node that the owner interprets. A [`DigitTrie`] node is 44 bytes with one
/// more indirection per value; the bench's 100,000 prefixes (~124,000 nodes) take ~5.5 MB
/// there and ~1.5 MB here.
#[derive(Clone)]
pub struct PackedTrie {
    nodes: Vec<PackedNode>,
}

#[derive(Clone, Copy)]
struct PackedNode {
    /// Bit `d` is set when digit `d` has a child.
    children: u16,
    /// Index of the node's first child; the others follow in digit order.
    first: u32,
    /// The owner's value, or `NONE`.
    value: u32,
}

impl Default for PackedTrie {
    fn default() -> Self {
        PackedTrie {
            nodes: vec![PackedNode {
                children: 0,
                first: 0,
                value: NONE,
            }],
        }
    }
}

impl PackedTrie {
    /// The packed copy of `trie`, each stored value mapped to a `u32` by `value`
    /// (`u32::MAX` is reserved for "no value").
    pub fn pack<V>(trie: &DigitTrie<V>, mut value: impl FnMut(&V) -> u32) -> PackedTrie {
        let mut order = Vec::with_capacity(trie.nodes.len());
        order.push(0usize);
        let mut nodes = Vec::with_capacity(trie.nodes.len());
        let mut i = 0;
        while let Some(&old) = order.get(i) {
            let node = &trie.nodes[old];
            let first = order.len() as u32;
            let mut children = 0u16;
            for (d, &c) in node.children.iter().enumerate() {
                if c != NONE {
                    children |= 1 << d;
                    order.push(c as usize);
                }
            }
            nodes.push(PackedNode {
                children,
                first,
                value: match node.value {
                    NONE => NONE,
                    v => value(&trie.values[v as usize]),
                },
            });
            i += 1;
        }
        PackedTrie { nodes }
    }

    /// Calls `f(prefix_len_in_digits, value)` for every stored prefix of `number`,
    /// shortest first (the same walk as [`DigitTrie::for_each_prefix`]).
    #[inline]
    pub fn for_each_prefix(&self, number: &str, mut f: impl FnMut(usize, u32)) {
        let Some(mut n) = self.nodes.first().copied() else {
            return;
        };
        if n.value != NONE {
            f(0, n.value);
        }
        for (depth, d) in digits(number).enumerate() {
            let bit = 1u16 << d;
            if n.children & bit == 0 {
                return;
            }
            let at = n.first + (n.children & (bit - 1)).count_ones();
            let Some(next) = self.nodes.get(at as usize) else {
                return;
            };
            n = *next;
            if n.value != NONE {
                f(depth + 1, n.value);
            }
        }
    }

    /// Number of nodes (for tests and sizing).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_plus_is_ignored() {
        let mut t = DigitTrie::default();
        *t.entry("+49", || 0) = 49;
        *t.entry("+4915", || 0) = 4915;
        *t.entry("1", || 0) = 1;
        assert_eq!(
            t.longest("+4915112345678").map(|(l, v)| (l, *v)),
            Some((4, 4915))
        );
        assert_eq!(t.longest("+4930123").map(|(l, v)| (l, *v)), Some((2, 49)));
        assert_eq!(
            t.longest("+12025550100").map(|(l, v)| (l, *v)),
            Some((1, 1))
        );
        assert!(t.longest("+33612345678").is_none());
        let mut seen = Vec::new();
        t.for_each_prefix("+491511", |l, v| seen.push((l, *v)));
        assert_eq!(seen, vec![(2, 49), (4, 4915)]);
        assert_eq!(t.len(), 3);
    }

    proptest::proptest! {
        /// The packed copy reports exactly the prefixes the builder trie reports.
        #[test]
        fn packed_walk_equals_builder_walk(prefixes in proptest::collection::vec("\\+?[0-9]{0,6}", 0..60), num in "\\+?[0-9 ]{0,12}") {
            let mut t = DigitTrie::default();
            for (i, p) in prefixes.iter().enumerate() {
                *t.entry(p, || 0u32) = i as u32;
            }
            let packed = PackedTrie::pack(&t, |v| *v);
            let mut want = Vec::new();
            t.for_each_prefix(&num, |l, v| want.push((l, *v)));
            let mut got = Vec::new();
            packed.for_each_prefix(&num, |l, v| got.push((l, v)));
            proptest::prop_assert_eq!(got, want);
        }
    }
}
