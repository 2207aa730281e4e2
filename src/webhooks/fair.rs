//! The webhook due-queue, fair between tenants: each tenant has its own queue ordered by
//! due time, and tenants take turns (round-robin) when the dispatcher picks the next job;
//! a tenant at its in-flight cap is skipped. So one tenant's slow receiver (each attempt
//! may wait the full 5 s timeout) holds at most its share of the delivery slots and never
//! delays another tenant's webhooks behind its backlog. Pure: no I/O, no clock.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// Queued webhook jobs per tenant, and the tenants' turn order.
#[derive(Debug, Default)]
pub struct FairQueue {
    /// (due ms, event id) per tenant; a tenant with no queued job has no entry.
    queues: HashMap<String, BTreeSet<(i64, String)>>,
    /// Tenants with queued jobs, in turn order (each appears once).
    order: VecDeque<String>,
}

impl FairQueue {
    /// Queues job `id` of `tenant`, due at `due` (ms).
    pub fn insert(&mut self, tenant: &str, due: i64, id: String) {
        match self.queues.get_mut(tenant) {
            Some(q) => {
                q.insert((due, id));
            }
            None => {
                self.queues
                    .insert(tenant.to_string(), BTreeSet::from([(due, id)]));
                self.order.push_back(tenant.to_string());
            }
        }
    }

    /// Removes job `id` of `tenant` queued under `due`; false when it was not queued.
    pub fn remove(&mut self, tenant: &str, due: i64, id: &str) -> bool {
        let Some(q) = self.queues.get_mut(tenant) else {
            return false;
        };
        let removed = q.remove(&(due, id.to_string()));
        if q.is_empty() {
            self.drop_tenant(tenant);
        }
        removed
    }

    /// Queued jobs of every tenant.
    pub fn len(&self) -> usize {
        self.queues.values().map(BTreeSet::len).sum()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Takes the next job to start: the earliest due job (due at or before `now`) of the
    /// next tenant in turn that is not `at_cap`; that tenant then goes to the back of the
    /// turn order. None when no tenant below its cap has a due job.
    pub fn pop_due(
        &mut self,
        now: i64,
        mut at_cap: impl FnMut(&str) -> bool,
    ) -> Option<(String, i64, String)> {
        for _ in 0..self.order.len() {
            let tenant = self.order.pop_front()?;
            self.order.push_back(tenant.clone());
            if at_cap(&tenant) {
                continue;
            }
            let Some(q) = self.queues.get_mut(&tenant) else {
                continue;
            };
            let Some((due, _)) = q.first() else {
                continue;
            };
            if *due > now {
                continue;
            }
            let (due, id) = q.pop_first()?;
            if q.is_empty() {
                self.drop_tenant(&tenant);
            }
            return Some((tenant, due, id));
        }
        None
    }

    fn drop_tenant(&mut self, tenant: &str) {
        self.queues.remove(tenant);
        self.order.retain(|t| t != tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_take_turns_whatever_the_due_times() {
        let mut q = FairQueue::default();
        for i in 0..100 {
            q.insert("a", i, format!("a{i}"));
        }
        q.insert("b", 500, "b0".into());
        q.insert("b", 501, "b1".into());
        let picked: Vec<String> = (0..4)
            .filter_map(|_| q.pop_due(1000, |_| false).map(|(_, _, id)| id))
            .collect();
        assert_eq!(picked, ["a0", "b0", "a1", "b1"]);
        assert_eq!(q.len(), 98);
    }

    #[test]
    fn a_tenant_at_its_cap_is_skipped_and_nothing_early_is_taken() {
        let mut q = FairQueue::default();
        q.insert("a", 0, "a0".into());
        q.insert("b", 10, "b0".into());
        assert_eq!(q.pop_due(5, |t| t == "a"), None);
        assert_eq!(
            q.pop_due(10, |t| t == "a"),
            Some(("b".into(), 10, "b0".into()))
        );
        assert!(q.remove("a", 0, "a0"));
        assert!(q.is_empty());
        assert!(!q.remove("a", 0, "a0"));
    }
}
