//! Who a process at a cluster address is, asked by the leader before it adds a node there:
//! its id, and the members of the cluster it already belongs to, if any. A member of
//! another cluster added here would take this cluster's log over its own (its entries
//! truncated, its own cluster a voter short), so the leader refuses it: two clusters never
//! share a member address, and a node that was a member of this one before (removed, now
//! added back with its data dir) still knows at least one of this cluster's members at
//! its address.

use serde::{Deserialize, Serialize};

/// The answer of `POST /raft/identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node's `--node-id`.
    pub node_id: u64,
    /// The members (id, cluster address) of the membership it has stored; empty for a
    /// node that never joined a cluster.
    pub members: Vec<(u64, String)>,
}

/// The members of another cluster `them` belongs to, when it does: it has a membership of
/// its own and shares no (id, address) member, itself apart, with `ours`.
pub fn foreign_members(them: &Identity, ours: &[(u64, String)]) -> Option<Vec<(u64, String)>> {
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    let others: Vec<(u64, String)> = them
        .members
        .iter()
        .filter(|(id, _)| *id != them.node_id)
        .cloned()
        .collect();
    let stored = !them.members.is_empty();
    let shared = others
        .iter()
        .any(|(id, addr)| ours.iter().any(|(o, a)| o == id && same(a, addr)));
    (stored && !shared).then_some(others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<(u64, String)> {
        vec![(1, "10.0.0.1:9081".into()), (2, "10.0.0.2:9082".into())]
    }

    #[test]
    fn a_fresh_node_or_a_former_member_may_join() {
        let fresh = Identity {
            node_id: 3,
            members: Vec::new(),
        };
        assert_eq!(foreign_members(&fresh, &ours()), None);
        // Removed earlier, added back with its data dir: it still knows node 1 there.
        let former = Identity {
            node_id: 3,
            members: vec![(1, "10.0.0.1:9081".into()), (3, "10.0.0.3:9083".into())],
        };
        assert_eq!(foreign_members(&former, &ours()), None);
    }

    #[test]
    fn a_member_of_another_cluster_is_named() {
        // Another cluster on the same hosts, other ports; its node 1 is not ours.
        let other = Identity {
            node_id: 3,
            members: vec![
                (1, "10.0.0.1:7081".into()),
                (2, "10.0.0.2:7082".into()),
                (3, "10.0.0.3:7083".into()),
            ],
        };
        assert_eq!(
            foreign_members(&other, &ours()),
            Some(vec![
                (1, "10.0.0.1:7081".into()),
                (2, "10.0.0.2:7082".into())
            ])
        );
        // A node that formed a cluster of its own (started without peers).
        let alone = Identity {
            node_id: 3,
            members: vec![(3, "10.0.0.3:9083".into())],
        };
        assert_eq!(foreign_members(&alone, &ours()), Some(Vec::new()));
    }
}
