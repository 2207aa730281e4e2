//! The node's `node_queue_limit`, decided at intake with the same rule as the tenant's
//! limit (`state::admission`: due-now and scheduled messages counted apart, headroom
//! kept for otp and transactional traffic).
//!
//! Messages admitted here are counted as in flight until their accept has been answered,
//! so concurrent requests (and the items of one batch) see each other's messages before
//! they are applied: on the node that applies first (the leader, or a single node) the
//! limit is not overshot. What the bound still allows is documented in
//! `docs/architecture.md` ("Queue admission").

use std::sync::{Arc, Mutex};

use crate::state::admission::{self, Queue, Scope};
use crate::state::{Message, StateStore};

use super::error::ApiError;

/// The node's limit and the messages admitted against it whose accept is not yet applied.
#[derive(Debug)]
pub struct NodeQueue {
    /// `node_queue_limit`: bounds this node's memory (every waiting message costs an
    /// index entry on every member and a queue entry on its channel's owner).
    limit: u64,
    /// Admitted, not yet answered: [due now, scheduled].
    in_flight: Mutex<[u64; 2]>,
}

fn slot(q: Queue) -> usize {
    match q {
        Queue::DueNow => 0,
        Queue::Scheduled => 1,
    }
}

/// Messages a request admitted against the node's limit; they stop counting as in
/// flight when it is dropped (after the accept was answered, or the request failed).
#[derive(Debug)]
pub struct Held {
    queue: Arc<NodeQueue>,
    counts: [u64; 2],
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut f = self
            .queue
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (f, c) in f.iter_mut().zip(self.counts) {
            *f = f.saturating_sub(c);
        }
    }
}

impl NodeQueue {
    /// A node's queue with `limit` (`node_queue_limit`).
    pub fn new(limit: u64) -> Arc<NodeQueue> {
        Arc::new(NodeQueue {
            limit,
            in_flight: Mutex::new([0; 2]),
        })
    }

    /// An empty hold for one request's messages.
    pub fn hold(self: &Arc<Self>) -> Held {
        Held {
            queue: self.clone(),
            counts: [0; 2],
        }
    }

    /// Admits `m` against the node's limit (counting it in `held`), or the 429
    /// `queue_full` that says which count and share is full.
    pub fn admit(&self, held: &mut Held, store: &StateStore, m: &Message) -> Result<(), ApiError> {
        let queue = Queue::of_status(m.status);
        let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = store
            .work()
            .total_count(queue)
            .saturating_add(f[slot(queue)]);
        if !admission::admits(waiting, self.limit, m.category) {
            return Err(ApiError::too_many(
                "queue_full",
                admission::refusal_message(Scope::Node, queue, waiting, self.limit, m.category),
                queue.retry_after_s(),
            ));
        }
        f[slot(queue)] += 1;
        held.counts[slot(queue)] += 1;
        Ok(())
    }

    /// When no message of any category can be admitted (both counts at the limit): a
    /// batch is then refused whole before any item is built.
    pub fn full(&self, store: &StateStore) -> Option<ApiError> {
        let f = *self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let work = store.work();
        let due = work.total_count(Queue::DueNow).saturating_add(f[0]);
        let scheduled = work.total_count(Queue::Scheduled).saturating_add(f[1]);
        (due >= self.limit && scheduled >= self.limit).then(|| {
            ApiError::too_many(
                "queue_full",
                format!(
                    "this node's queue holds {due} messages due now and {scheduled} scheduled: \
                     node_queue_limit {} is reached for both",
                    self.limit
                ),
                Queue::DueNow.retry_after_s(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_gives_its_messages_back_when_dropped() {
        let q = NodeQueue::new(10);
        let mut h = q.hold();
        h.counts = [3, 1];
        *q.in_flight.lock().expect("lock") = [5, 1];
        drop(h);
        assert_eq!(*q.in_flight.lock().expect("lock"), [2, 0]);
    }
}
