//! A node that has lost its state does not vote. A member whose data dir was wiped (or
//! lost to a disk) restarts with no log, no snapshot and no vote: it may have acknowledged
//! entries before, which then count toward their quorum, and if it now voted for a
//! candidate that lacks them, they would be gone. So a node with nothing stored refuses
//! to vote for a candidate whose log has moved past the cluster's first entries, until
//! the leader has refilled it (`Config::allow_log_reversion` lets the leader do so). A
//! brand-new cluster still forms (its first candidate's log holds only the initial
//! membership), and a node added later never needs to vote before it has caught up (it
//! joins as a learner).

use openraft::RaftMetrics;

use super::TypeConfig;

/// The last log index a candidate of a cluster being formed can have: the initial
/// membership entry (0) and the first leader's blank entry (1).
const FORMATION_LAST_INDEX: u64 = 1;

/// Why this node refuses to vote for a candidate whose last log entry is at
/// `candidate_last`, or None when it may vote.
pub(super) fn refusal(
    own: &RaftMetrics<TypeConfig>,
    candidate_last: Option<u64>,
) -> Option<String> {
    let stored_nothing =
        own.last_log_index.is_none() && own.snapshot.is_none() && own.last_applied.is_none();
    refuses(stored_nothing, candidate_last).then(|| {
        format!(
            "node {} has no stored state (a new or wiped data dir) and the cluster's log is at \
             {}: it votes once the leader has refilled it",
            own.id,
            candidate_last.unwrap_or_default()
        )
    })
}

/// The rule, apart from how "stored nothing" is read.
fn refuses(stored_nothing: bool, candidate_last: Option<u64>) -> bool {
    stored_nothing && candidate_last.is_some_and(|i| i > FORMATION_LAST_INDEX)
}

#[cfg(test)]
mod tests {
    use super::refuses;

    #[test]
    fn only_an_empty_node_facing_an_established_log_refuses() {
        // Formation: the first candidate holds the initial membership (and a blank entry).
        assert!(!refuses(true, None));
        assert!(!refuses(true, Some(0)));
        assert!(!refuses(true, Some(1)));
        // Established cluster, wiped voter: no vote until refilled.
        assert!(refuses(true, Some(2)));
        assert!(refuses(true, Some(50_000)));
        // A node with any state votes as Raft says (openraft compares the logs).
        assert!(!refuses(false, Some(50_000)));
    }
}
