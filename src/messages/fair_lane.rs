//! One priority lane of a channel queue, fair between tenants: each tenant waits in a
//! queue of its own, and the tenants with something waiting take turns, one entry each
//! per turn (round-robin). A tenant's campaign or OTP flood on a shared channel then
//! delays another tenant's next message by at most one entry per waiting tenant, not by
//! the whole backlog ahead of it. Within a tenant the order stays first-in-first-out.
//!
//! Taking the next entry costs what a plain `VecDeque` did plus one index into the turn
//! ring: no hashing, no allocation, no pass over the tenants.

use std::collections::VecDeque;

/// A tenant as the dispatcher's queues know it: a small number the dispatcher gives each
/// tenant name it meets, so that a queued entry carries four bytes instead of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantId(pub u32);

/// An entry of a fair lane says whose it is: the lane files it under that tenant, also
/// when it is handed back after a failed claim.
pub trait OfTenant {
    /// The tenant the entry belongs to.
    fn tenant(&self) -> TenantId;
}

/// One tenant's waiting entries in a lane.
struct Slot<T> {
    tenant: TenantId,
    /// First-in-first-out within the tenant.
    items: VecDeque<T>,
}

/// A tenant's queue whose buffer grew beyond this many entries gives the memory back
/// when it empties (a campaign's backlog must not stay allocated per tenant and lane).
const KEEP_CAPACITY: usize = 1_024;

/// A lane of a channel queue: per-tenant queues taken round-robin.
///
/// Invariant: a slot is in `ring` exactly once when it holds entries, and not at all
/// when it is empty.
pub struct FairLane<T> {
    /// Tenant → its slot in `slots`: looked up when an entry is added, never when one is
    /// taken.
    index: rustc_hash::FxHashMap<TenantId, u32>,
    /// The tenants' queues. An emptied one stays (with its buffer, so a tenant sending
    /// one message at a time does not allocate for each) until `retain` or `drain`
    /// compacts; there are at most as many as tenants that queued on this lane.
    slots: Vec<Slot<T>>,
    /// The slots with entries, in the order of their turns.
    ring: VecDeque<u32>,
    /// Entries over all tenants, so `len` needs no pass over them.
    len: usize,
}

impl<T> Default for FairLane<T> {
    fn default() -> Self {
        FairLane {
            index: Default::default(),
            slots: Vec::new(),
            ring: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T: OfTenant> FairLane<T> {
    /// Entries waiting, over all tenants.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot of `tenant`, made if it has none.
    fn slot_of(&mut self, tenant: TenantId) -> u32 {
        if let Some(&at) = self.index.get(&tenant) {
            return at;
        }
        let at = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            tenant,
            items: VecDeque::new(),
        });
        self.index.insert(tenant, at);
        at
    }

    /// Queues `item` behind its tenant's other entries; a tenant that had nothing waiting
    /// takes its turn after every tenant waiting now.
    pub fn push_back(&mut self, item: T) {
        let at = self.slot_of(item.tenant());
        let Some(slot) = self.slots.get_mut(at as usize) else {
            return;
        };
        if slot.items.is_empty() {
            self.ring.push_back(at);
        }
        slot.items.push_back(item);
        self.len += 1;
    }

    /// Puts `item` back in front of its tenant's entries and gives that tenant the next
    /// turn: for entries taken by `pop_front` and handed back (a claim that was not
    /// written). Handing a batch back in reverse order restores both the order within
    /// each tenant and the order of the turns. Moving a waiting tenant to the front is a
    /// pass over the turn ring: this is the rare path, not the pump's.
    pub fn push_front(&mut self, item: T) {
        let at = self.slot_of(item.tenant());
        let Some(slot) = self.slots.get_mut(at as usize) else {
            return;
        };
        if !slot.items.is_empty()
            && let Some(pos) = self.ring.iter().position(|&s| s == at)
        {
            self.ring.remove(pos);
        }
        self.ring.push_front(at);
        slot.items.push_front(item);
        self.len += 1;
    }

    /// The oldest entry of the tenant whose turn it is; that tenant's next turn comes
    /// after every other waiting tenant's.
    pub fn pop_front(&mut self) -> Option<T> {
        while let Some(at) = self.ring.pop_front() {
            let Some(slot) = self.slots.get_mut(at as usize) else {
                continue;
            };
            let Some(item) = slot.items.pop_front() else {
                continue;
            };
            if slot.items.is_empty() {
                if slot.items.capacity() > KEEP_CAPACITY {
                    slot.items = VecDeque::new();
                }
            } else {
                self.ring.push_back(at);
            }
            self.len -= 1;
            return Some(item);
        }
        None
    }

    /// Keeps only the entries for which `keep` is true (each is offered once, tenant by
    /// tenant in turn order), and drops the tenants left with nothing; the turn order of
    /// the others is kept.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut old = std::mem::take(&mut self.slots);
        let turns = std::mem::take(&mut self.ring);
        self.index.clear();
        self.len = 0;
        for at in turns {
            let Some(slot) = old.get_mut(at as usize) else {
                continue;
            };
            slot.items.retain(|item| keep(item));
            if slot.items.is_empty() {
                continue;
            }
            let items = std::mem::take(&mut slot.items);
            let new_at = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
            self.len += items.len();
            self.index.insert(slot.tenant, new_at);
            self.ring.push_back(new_at);
            self.slots.push(Slot {
                tenant: slot.tenant,
                items,
            });
        }
    }

    /// Takes every entry out (tenant by tenant, each tenant's in order), leaving the lane
    /// empty.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + use<T> {
        self.index.clear();
        self.ring.clear();
        self.len = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flat_map(|slot| slot.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry: (tenant, number within the tenant).
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct E(u32, u32);

    impl OfTenant for E {
        fn tenant(&self) -> TenantId {
            TenantId(self.0)
        }
    }

    fn take_all(lane: &mut FairLane<E>) -> Vec<E> {
        std::iter::from_fn(|| lane.pop_front()).collect()
    }

    fn lane_of(items: &[E]) -> FairLane<E> {
        let mut lane = FairLane::default();
        for &e in items {
            lane.push_back(e);
        }
        lane
    }

    #[test]
    fn tenants_take_turns_and_each_keeps_its_order() {
        // Tenant 1's backlog came first; tenant 2 and 3 queued behind it.
        let mut items: Vec<E> = (0..5).map(|i| E(1, i)).collect();
        items.extend([E(2, 0), E(2, 1), E(3, 0)]);
        let mut lane = lane_of(&items);
        assert_eq!(lane.len(), 8);
        assert_eq!(
            take_all(&mut lane),
            [
                E(1, 0),
                E(2, 0),
                E(3, 0),
                E(1, 1),
                E(2, 1),
                E(1, 2),
                E(1, 3),
                E(1, 4)
            ]
        );
        assert!(lane.is_empty());
        assert_eq!(lane.len(), 0);
        assert_eq!(lane.pop_front(), None);
    }

    #[test]
    fn a_single_tenant_is_first_in_first_out() {
        let items: Vec<E> = (0..100).map(|i| E(7, i)).collect();
        let mut lane = lane_of(&items);
        assert_eq!(take_all(&mut lane), items);
    }

    #[test]
    fn a_tenant_arriving_later_waits_one_turn_not_the_backlog() {
        let items: Vec<E> = (0..1_000).map(|i| E(1, i)).collect();
        let mut lane = lane_of(&items);
        // Some of the backlog went out before tenant 2 queued.
        for i in 0..10 {
            assert_eq!(lane.pop_front(), Some(E(1, i)));
        }
        lane.push_back(E(2, 0));
        assert_eq!(lane.pop_front(), Some(E(1, 10)));
        assert_eq!(lane.pop_front(), Some(E(2, 0)));
        assert_eq!(lane.pop_front(), Some(E(1, 11)));
    }

    #[test]
    fn handed_back_in_reverse_the_order_is_as_before() {
        let items = [E(1, 0), E(1, 1), E(1, 2), E(2, 0), E(2, 1), E(3, 0)];
        let mut expected = lane_of(&items);
        let expected = take_all(&mut expected);
        let mut lane = lane_of(&items);
        // A claim took four and was not written: they come back in reverse.
        let taken: Vec<E> = (0..4).filter_map(|_| lane.pop_front()).collect();
        assert_eq!(taken, [E(1, 0), E(2, 0), E(3, 0), E(1, 1)]);
        for &e in taken.iter().rev() {
            lane.push_front(e);
        }
        assert_eq!(lane.len(), items.len());
        assert_eq!(take_all(&mut lane), expected);
    }

    #[test]
    fn a_handed_back_entry_of_an_emptied_tenant_goes_first() {
        let mut lane = lane_of(&[E(1, 0), E(2, 0), E(2, 1)]);
        assert_eq!(lane.pop_front(), Some(E(1, 0)));
        // Tenant 1 has nothing left; its entry comes back and takes the next turn.
        lane.push_front(E(1, 0));
        assert_eq!(take_all(&mut lane), [E(1, 0), E(2, 0), E(2, 1)]);
    }

    #[test]
    fn emptied_tenants_leave_the_ring() {
        let mut lane = lane_of(&[E(1, 0), E(2, 0), E(2, 1), E(2, 2)]);
        assert_eq!(lane.pop_front(), Some(E(1, 0)));
        assert_eq!(lane.ring.len(), 1, "tenant 1 has no turn left");
        assert_eq!(take_all(&mut lane), [E(2, 0), E(2, 1), E(2, 2)]);
        assert!(lane.ring.is_empty());
        // The emptied queues are kept for reuse: a tenant coming back needs no new slot.
        let slots = lane.slots.len();
        lane.push_back(E(1, 1));
        assert_eq!(lane.slots.len(), slots);
        assert_eq!(lane.ring.len(), 1);
        assert_eq!(take_all(&mut lane), [E(1, 1)]);
    }

    #[test]
    fn retain_drops_entries_and_emptied_tenants_and_keeps_the_turns() {
        let items = [E(1, 0), E(1, 1), E(2, 0), E(3, 0), E(3, 1), E(4, 0)];
        let mut lane = lane_of(&items);
        // Tenant 1 had its turn: tenant 2 is next.
        assert_eq!(lane.pop_front(), Some(E(1, 0)));
        let mut offered = Vec::new();
        lane.retain(|e| {
            offered.push(*e);
            e.0 != 2 && *e != E(3, 0)
        });
        assert_eq!(offered.len(), 5, "each entry offered once: {offered:?}");
        assert_eq!(lane.len(), 3);
        assert_eq!(lane.slots.len(), 3, "tenant 2 is gone, its slot too");
        assert_eq!(lane.ring.len(), 3);
        assert_eq!(take_all(&mut lane), [E(3, 1), E(4, 0), E(1, 1)]);
        // Compacted slots are found again by tenant.
        lane.push_back(E(4, 1));
        lane.push_back(E(2, 5));
        assert_eq!(take_all(&mut lane), [E(4, 1), E(2, 5)]);
    }

    #[test]
    fn drain_takes_everything() {
        let mut lane = lane_of(&[E(1, 0), E(2, 0), E(1, 1)]);
        let mut all: Vec<E> = lane.drain().collect();
        all.sort_by_key(|e| (e.0, e.1));
        assert_eq!(all, [E(1, 0), E(1, 1), E(2, 0)]);
        assert!(lane.is_empty());
        assert_eq!(lane.pop_front(), None);
        lane.push_back(E(2, 1));
        assert_eq!(take_all(&mut lane), [E(2, 1)]);
    }

    #[test]
    fn a_shrunk_queue_still_works() {
        let n = KEEP_CAPACITY as u32 * 2;
        let items: Vec<E> = (0..n).map(|i| E(1, i)).collect();
        let mut lane = lane_of(&items);
        assert_eq!(take_all(&mut lane).len(), n as usize);
        assert!(lane.slots[0].items.capacity() <= KEEP_CAPACITY);
        lane.push_back(E(1, n));
        assert_eq!(take_all(&mut lane), [E(1, n)]);
    }
}
