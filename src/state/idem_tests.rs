//! Idempotency rows follow their message: `Op::Purge` deletes the row the accept wrote,
//! and a row whose message is gone (purged before the key's 24 h ran out, as with a
//! `retention_hours` shorter than that) is absent to the next accept: a retry with the
//! same key is a new message, not a 404 or a 409 naming an id nobody can read.

use super::cache_tests::{apply, message, placed_store};
use super::store::StateStore;
use super::*;

fn one(store: &StateStore, op: Op) -> OpResult {
    let p = Proposal {
        ops: vec![op].into(),
    };
    let mut out = store.apply(&[&p], &[]).expect("apply");
    out.remove(0).results.remove(0)
}

fn keyed(id: &str, key: &str, hash: &str) -> Message {
    let mut m = message(id);
    m.idempotency_key = Some(key.into());
    m.body_hash = Some(hash.into());
    m
}

/// Cancels (a final status) and purges `id`.
fn cancel_and_purge(store: &StateStore, id: &str) {
    let at = crate::clock::now_ms();
    assert_eq!(
        one(
            store,
            Op::Cancel {
                id: id.into(),
                tenant: "acme".into(),
                at
            }
        ),
        OpResult::Done
    );
    apply(
        store,
        vec![Op::Purge {
            ids: vec![id.into()],
        }],
    );
    assert!(store.get_message(id).expect("read").is_none(), "purged");
}

#[test]
fn a_purge_deletes_the_idempotency_row_and_the_key_accepts_anew() {
    let (_dir, _db, store) = placed_store();
    let first = "01IDEM0000000000000000001A";
    let r = one(&store, Op::Accept(Box::new(keyed(first, "k1", "h1"))));
    assert!(matches!(r, OpResult::Accepted { .. }), "{r:?}");
    // A replay while the message exists answers it.
    let again = one(
        &store,
        Op::Accept(Box::new(keyed("01IDEM0000000000000000001B", "k1", "h1"))),
    );
    assert_eq!(again, OpResult::Duplicate { id: first.into() });
    assert_eq!(
        store.idem_row("acme", "k1").expect("read"),
        Some(first.into())
    );

    cancel_and_purge(&store, first);
    assert_eq!(
        store.idem_row("acme", "k1").expect("read"),
        None,
        "row gone"
    );
    let now = crate::clock::now_ms();
    assert_eq!(
        store.idempotent_lookup("acme", "k1", now).expect("read"),
        None
    );

    let second = "01IDEM0000000000000000001C";
    let r = one(&store, Op::Accept(Box::new(keyed(second, "k1", "h1"))));
    assert!(
        matches!(r, OpResult::Accepted { .. }),
        "a new message: {r:?}"
    );
    assert_eq!(
        store.idem_row("acme", "k1").expect("read"),
        Some(second.into())
    );
}

#[test]
fn a_row_whose_message_is_gone_is_absent_to_accept_and_lookup() {
    let (_dir, _db, store) = placed_store();
    // A row left behind by a purge before rows were deleted with their message.
    let gone = "01IDEM0000000000000000002A";
    let now = crate::clock::now_ms();
    store.put_idem_row("acme", "k2", gone, "h2", now);
    assert_eq!(
        store.idempotent_lookup("acme", "k2", now).expect("read"),
        None
    );
    let r = one(
        &store,
        Op::Accept(Box::new(keyed("01IDEM0000000000000000002B", "k2", "h2"))),
    );
    assert!(matches!(r, OpResult::Accepted { .. }), "same body: {r:?}");
    store.put_idem_row("acme", "k3", gone, "h3", now);
    let r = one(
        &store,
        Op::Accept(Box::new(keyed("01IDEM0000000000000000002C", "k3", "other"))),
    );
    assert!(matches!(r, OpResult::Accepted { .. }), "other body: {r:?}");
}

#[test]
fn a_purge_keeps_a_row_a_newer_message_took() {
    let (_dir, _db, store) = placed_store();
    let old = "01IDEM0000000000000000003A";
    let r = one(&store, Op::Accept(Box::new(keyed(old, "k4", "h4"))));
    assert!(matches!(r, OpResult::Accepted { .. }), "{r:?}");
    // The key now names a newer message (as after the 24 h TTL ran out).
    let newer = "01IDEM0000000000000000003B";
    let r = one(&store, Op::Accept(Box::new(message(newer))));
    assert!(matches!(r, OpResult::Accepted { .. }), "{r:?}");
    store.put_idem_row("acme", "k4", newer, "h4", crate::clock::now_ms());
    cancel_and_purge(&store, old);
    assert_eq!(
        store.idem_row("acme", "k4").expect("read"),
        Some(newer.into())
    );
}
