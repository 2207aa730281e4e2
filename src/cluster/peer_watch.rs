//! Start-up warnings about `peers`: an entry naming a node that never answers (a typo in
//! an id or address, a host that was never started) is a member like any other at first
//! formation, so it counts toward quorum and the cluster tolerates one failure fewer,
//! silently. This task probes every peer's cluster port until it answers and WARNs, a
//! bounded number of times, about those that never did.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::consensus::Consensus;

/// How often a peer that has not answered yet is probed.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long one probe waits.
const PROBE_WAIT: Duration = Duration::from_millis(500);
/// When (after start) the peers that never answered are named: a few times, then never
/// again, so a long-lived node does not log it forever.
const WARN_AT: [Duration; 5] = [
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1800),
];

/// What a probe of a peer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Never,
    /// Another node answers at the address.
    OtherNode(u64),
}

/// Probes `peers` (id → cluster address, this node's own entry included and skipped)
/// until each has answered as itself, and WARNs at [`WARN_AT`] about those that have not.
/// A peer that is no longer a member (removed) is dropped.
pub async fn run(consensus: Arc<Consensus>, peers: BTreeMap<u64, String>) {
    let me = consensus.node_id();
    let mut waiting: BTreeMap<u64, (String, Answer)> = peers
        .into_iter()
        .filter(|(id, _)| *id != me)
        .map(|(id, addr)| (id, (addr, Answer::Never)))
        .collect();
    let started = tokio::time::Instant::now();
    let mut next_warning = 0;
    while !waiting.is_empty() && next_warning < WARN_AT.len() {
        let members: Vec<u64> = consensus.members().iter().map(|(id, _, _)| *id).collect();
        if !members.is_empty() {
            waiting.retain(|id, _| members.contains(id));
        }
        let probes: Vec<_> = waiting
            .iter()
            .map(|(&id, (addr, _))| {
                let c = consensus.clone();
                let addr = addr.clone();
                tokio::spawn(async move { (id, c.whoami(&addr, PROBE_WAIT).await) })
            })
            .collect();
        for probe in probes {
            let Ok((id, answer)) = probe.await else {
                continue;
            };
            match answer {
                Some(n) if n == id => {
                    waiting.remove(&id);
                }
                Some(other) => {
                    if let Some(w) = waiting.get_mut(&id) {
                        w.1 = Answer::OtherNode(other);
                    }
                }
                None => {}
            }
        }
        if started.elapsed() >= WARN_AT[next_warning] {
            next_warning += 1;
            for (id, (addr, answer)) in &waiting {
                warn_never_answered(*id, addr, *answer, started.elapsed());
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// One WARN naming a peer that has not answered and what to do.
fn warn_never_answered(id: u64, addr: &str, answer: Answer, since: Duration) {
    match answer {
        Answer::Never => tracing::warn!(
            peer = id,
            addr,
            since_start_s = since.as_secs(),
            "a node in `peers` has never answered at its cluster address (or refuses this \
             node's cluster_secret): as a member it counts \
             toward quorum, so the cluster tolerates one failure fewer; start it with \
             --node-id {id} --cluster-addr {addr}, correct the entry, or remove it with \
             `smsgw cluster remove-node {id}`"
        ),
        Answer::OtherNode(other) => tracing::warn!(
            peer = id,
            addr,
            answers_as = other,
            since_start_s = since.as_secs(),
            "the cluster address of a node in `peers` is answered by another node: correct \
             the entry (each member needs its own cluster address), or remove the member \
             with `smsgw cluster remove-node {id}`"
        ),
    }
}
