//! Which state the cluster view shows for a member, and where that verdict comes from.
//! The replicated heartbeat rows are the cluster's own view (placement and leases follow
//! them), but they only move while a quorum commits: without one, every row goes stale and
//! every member, the answering node included, would look `down`. So when this node's own
//! row is stale the verdict comes from what it knows without a quorum: itself (it is
//! answering), the leader's acknowledgements, the last contact from the leader, or a direct
//! probe of the member's cluster port. Pure: the inputs are gathered by `api::cluster`.

use std::time::Duration;

use serde::Serialize;

use super::lease::DEAD_AFTER;
use super::replication_watch::Replicating;

/// What the replicated rows say of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// No heartbeat of it ever committed: the cluster has never seen it.
    Never,
    /// Its last committed heartbeat is younger than [`DEAD_AFTER`].
    Fresh { draining: bool },
    /// Older.
    Stale,
}

/// What this node knows of a member without a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Nothing asked (the rows are current, so none is needed).
    NotAsked,
    /// On the leader: how long ago the member last answered an append or heartbeat
    /// (`None`: never since this node leads).
    LeaderAck(Option<Duration>),
    /// The member is the leader; how long ago it last contacted this follower.
    LeaderContact(Option<Duration>),
    /// A direct probe of the member's cluster port: the id that answered (`None`: none).
    Probe(Option<u64>),
}

/// Where a verdict came from (the view's `state_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The replicated heartbeat rows: what placement and leases act on.
    Replicated,
    /// The answering node itself.
    ThisNode,
    /// The leader's record of the member's last answer.
    LeaderAck,
    /// This follower's last contact from the leader.
    LeaderContact,
    /// A direct probe of the member's cluster port.
    Probe,
}

/// A member's state in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Up,
    Draining,
    /// Sends heartbeats but the leader's log does not reach it (`replication_watch`).
    Lagging,
    Down,
}

/// Everything the verdict on one member depends on.
#[derive(Debug, Clone, Copy)]
pub struct Evidence {
    pub id: u64,
    /// The node answering the view.
    pub is_self: bool,
    pub row: Row,
    /// The answering node's own row is fresh: its heartbeats commit, so the rows are
    /// the cluster's current view.
    pub rows_current: bool,
    pub local: Local,
    /// On the leader: how the member keeps up with its log.
    pub replicating: Option<Replicating>,
}

/// The state shown for a member and where it came from.
pub fn verdict(e: &Evidence) -> (State, Source) {
    let draining = matches!(e.row, Row::Fresh { draining: true });
    let alive = if draining { State::Draining } else { State::Up };
    let (state, source) = if e.is_self {
        (alive, Source::ThisNode)
    } else if e.rows_current {
        match e.row {
            Row::Fresh { .. } => (alive, Source::Replicated),
            Row::Never | Row::Stale => (State::Down, Source::Replicated),
        }
    } else {
        let recent = |age: Option<Duration>| age.is_some_and(|a| a < DEAD_AFTER);
        match e.local {
            Local::NotAsked => match e.row {
                Row::Fresh { .. } => (alive, Source::Replicated),
                Row::Never | Row::Stale => (State::Down, Source::Replicated),
            },
            Local::LeaderAck(age) if recent(age) => (alive, Source::LeaderAck),
            Local::LeaderAck(_) => (State::Down, Source::LeaderAck),
            Local::LeaderContact(age) if recent(age) => (alive, Source::LeaderContact),
            Local::LeaderContact(_) => (State::Down, Source::LeaderContact),
            Local::Probe(Some(id)) if id == e.id => (alive, Source::Probe),
            Local::Probe(_) => (State::Down, Source::Probe),
        }
    };
    match (state, e.replicating) {
        (State::Up | State::Draining, Some(Replicating::NotReplicating)) => {
            (State::Lagging, source)
        }
        _ => (state, source),
    }
}

/// What the replicated rows alone would show (the view's `replicated_state`, given when
/// the verdict differs from it).
pub fn replicated_state(row: Row) -> State {
    match row {
        Row::Fresh { draining: true } => State::Draining,
        Row::Fresh { draining: false } => State::Up,
        Row::Never | Row::Stale => State::Down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(is_self: bool, row: Row, rows_current: bool, local: Local) -> Evidence {
        Evidence {
            id: 2,
            is_self,
            row,
            rows_current,
            local,
            replicating: None,
        }
    }

    #[test]
    fn the_verdict_follows_the_rows_while_they_commit_and_local_evidence_without() {
        let ms = |n| Some(Duration::from_millis(n));
        let fresh = Row::Fresh { draining: false };
        let cases = [
            // The answering node is up whatever its row says (no quorum: stale).
            (
                ev(true, Row::Stale, false, Local::NotAsked),
                (State::Up, Source::ThisNode),
            ),
            (
                ev(true, Row::Never, false, Local::NotAsked),
                (State::Up, Source::ThisNode),
            ),
            (
                ev(true, Row::Fresh { draining: true }, true, Local::NotAsked),
                (State::Draining, Source::ThisNode),
            ),
            // Rows current: they decide, a probe is not even made.
            (
                ev(false, fresh, true, Local::NotAsked),
                (State::Up, Source::Replicated),
            ),
            (
                ev(false, Row::Stale, true, Local::NotAsked),
                (State::Down, Source::Replicated),
            ),
            // No quorum: the leader's acks, the follower's leader contact, a probe.
            (
                ev(false, Row::Stale, false, Local::LeaderAck(ms(200))),
                (State::Up, Source::LeaderAck),
            ),
            (
                ev(false, fresh, false, Local::LeaderAck(ms(5000))),
                (State::Down, Source::LeaderAck),
            ),
            (
                ev(false, Row::Stale, false, Local::LeaderAck(None)),
                (State::Down, Source::LeaderAck),
            ),
            (
                ev(false, Row::Stale, false, Local::LeaderContact(ms(100))),
                (State::Up, Source::LeaderContact),
            ),
            (
                ev(false, Row::Stale, false, Local::LeaderContact(ms(9000))),
                (State::Down, Source::LeaderContact),
            ),
            (
                ev(false, Row::Stale, false, Local::Probe(Some(2))),
                (State::Up, Source::Probe),
            ),
            // Another node answers at its address: not this member.
            (
                ev(false, Row::Stale, false, Local::Probe(Some(5))),
                (State::Down, Source::Probe),
            ),
            (
                ev(false, Row::Never, false, Local::Probe(None)),
                (State::Down, Source::Probe),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(verdict(&e), want, "{e:?}");
        }
    }

    #[test]
    fn a_member_that_heartbeats_but_does_not_replicate_is_lagging() {
        let mut e = ev(false, Row::Fresh { draining: false }, true, Local::NotAsked);
        e.replicating = Some(Replicating::NotReplicating);
        assert_eq!(verdict(&e), (State::Lagging, Source::Replicated));
        e.replicating = Some(Replicating::CatchingUp);
        assert_eq!(verdict(&e), (State::Up, Source::Replicated));
        // A down member stays down, whatever its replication.
        e.row = Row::Stale;
        e.replicating = Some(Replicating::NotReplicating);
        assert_eq!(verdict(&e), (State::Down, Source::Replicated));
    }
}
