//! The tenant's `queue_limit` as the state machine decides it on `Accept` (audit: a
//! marketing backlog refused the tenant's OTPs, and a campaign scheduled for next week
//! refused messages for now): each category has its share of the limit, and messages
//! due now and scheduled ones are counted apart.

use super::admission::Queue;
use super::cache_tests::{apply, message, placed_store, tenant};
use super::store::StateStore;
use super::*;

/// The tenant's queue limit in these tests.
const LIMIT: u64 = 100;

fn store_with_limit() -> (tempfile::TempDir, fjall::Database, StateStore) {
    let (dir, db, store) = placed_store();
    let mut t = tenant();
    t.queue_limit = LIMIT;
    apply(&store, vec![Op::PutTenant(Box::new(t))]);
    (dir, db, store)
}

/// A message of `category`, due now or scheduled an hour ahead.
fn msg(n: u32, category: Category, queue: Queue) -> Message {
    let mut m = message(&format!("01ADMIT{n:019}"));
    m.category = category;
    if queue == Queue::Scheduled {
        m.status = Status::Scheduled;
        m.send_at = Some(m.created_at + 3_600_000);
        m.events = vec![transitions::event(Status::Scheduled, m.created_at)];
    }
    m
}

/// Proposes the accepts in one entry (as a batch is) and returns their answers.
fn accept_all(store: &StateStore, ms: Vec<Message>) -> Vec<OpResult> {
    let ops: Vec<Op> = ms.into_iter().map(|m| Op::Accept(Box::new(m))).collect();
    let p = Proposal { ops: ops.into() };
    let mut out = store.apply(&[&p], &[]).expect("apply");
    out.remove(0).results
}

fn accepted(rs: &[OpResult]) -> usize {
    rs.iter()
        .filter(|r| matches!(r, OpResult::Accepted { .. }))
        .count()
}

#[test]
fn marketing_stops_at_90_percent_transactional_at_95_otp_uses_the_whole_limit() {
    let (_dir, _db, store) = store_with_limit();
    let mut n = 0;
    let mut next = |c| {
        n += 1;
        msg(n, c, Queue::DueNow)
    };
    // 95 marketing offered: 90 fit, the rest are refused.
    let rs = accept_all(&store, (0..95).map(|_| next(Category::Marketing)).collect());
    assert_eq!(accepted(&rs), 90);
    assert!(rs[90..].iter().all(|r| *r == OpResult::QueueFull), "{rs:?}");
    // The tenant's OTPs and transactional messages still get in.
    let rs = accept_all(
        &store,
        (0..10).map(|_| next(Category::Transactional)).collect(),
    );
    assert_eq!(accepted(&rs), 5, "transactional up to 95: {rs:?}");
    let rs = accept_all(&store, (0..10).map(|_| next(Category::Otp)).collect());
    assert_eq!(accepted(&rs), 5, "otp up to the whole limit: {rs:?}");
    assert_eq!(store.work().tenant_count("acme", Queue::DueNow), LIMIT);
    for c in [Category::Otp, Category::Transactional, Category::Marketing] {
        assert_eq!(accept_all(&store, vec![next(c)]), vec![OpResult::QueueFull]);
    }
}

#[test]
fn scheduled_messages_do_not_take_the_room_of_messages_due_now() {
    let (_dir, db, store) = store_with_limit();
    // A campaign booked for later fills the scheduled count (otp: its whole limit).
    let rs = accept_all(
        &store,
        (0..LIMIT as u32 + 1)
            .map(|i| msg(i, Category::Otp, Queue::Scheduled))
            .collect(),
    );
    assert_eq!(accepted(&rs), LIMIT as usize);
    assert_eq!(
        rs.last(),
        Some(&OpResult::QueueFull),
        "one scheduled too many"
    );
    // Messages for now are held to their own count: all categories still get in.
    let rs = accept_all(
        &store,
        vec![
            msg(1000, Category::Marketing, Queue::DueNow),
            msg(1001, Category::Transactional, Queue::DueNow),
            msg(1002, Category::Otp, Queue::DueNow),
        ],
    );
    assert_eq!(accepted(&rs), 3, "{rs:?}");
    {
        let w = store.work();
        assert_eq!(w.tenant_count("acme", Queue::Scheduled), LIMIT);
        assert_eq!(w.tenant_count("acme", Queue::DueNow), 3);
        assert_eq!(
            w.waiting.get("acme").copied(),
            Some(LIMIT + 3),
            "waiting is both"
        );
        assert_eq!(w.total_count(Queue::Scheduled), LIMIT);
        assert_eq!(w.total_count(Queue::DueNow), 3);
    }
    // Canceling a scheduled message frees a scheduled slot (and only that).
    let p = Proposal {
        ops: vec![Op::Cancel {
            id: msg(0, Category::Otp, Queue::Scheduled).id,
            tenant: "acme".into(),
            at: crate::clock::now_ms(),
        }]
        .into(),
    };
    store.apply(&[&p], &[]).expect("cancel");
    assert_eq!(
        store.work().tenant_count("acme", Queue::Scheduled),
        LIMIT - 1
    );
    let rs = accept_all(&store, vec![msg(2000, Category::Otp, Queue::Scheduled)]);
    assert_eq!(accepted(&rs), 1, "{rs:?}");
    // The counts are rebuilt alike from the rows at start.
    drop(store);
    let store = StateStore::open(&db).expect("reopen");
    let w = store.work();
    assert_eq!(w.tenant_count("acme", Queue::Scheduled), LIMIT);
    assert_eq!(w.tenant_count("acme", Queue::DueNow), 3);
}

#[test]
fn a_tenant_without_a_config_row_is_not_limited() {
    let (_dir, _db, store) = placed_store();
    let mut m = msg(1, Category::Marketing, Queue::DueNow);
    m.tenant = "ghost".into();
    assert_eq!(accepted(&accept_all(&store, vec![m])), 1);
}
