//! Receipts parked before their submit response: matched when it comes, expired when it
//! never does, the same on every replica and after a restart.

use super::cache_tests::{CHANNEL, apply, message, placed_store};
use super::store::StateStore;
use super::*;
use crate::protocols::smpp::id_keys;

fn claimed(store: &StateStore, id: &str, at: i64) {
    apply(store, vec![Op::Accept(Box::new(message(id)))]);
    apply(
        store,
        vec![Op::Claim {
            channel: CHANNEL.into(),
            node: 1,
            epoch: 1,
            ids: vec![id.into()],
            at,
        }],
    );
}

fn receipt(smsc_id: &str, at: i64) -> Op {
    Op::Receipt {
        channel: CHANNEL.into(),
        smsc_message_id: smsc_id.into(),
        keys: id_keys(smsc_id),
        outcome: ReceiptOutcome::Delivered,
        error: None,
        at,
    }
}

fn submitted(id: &str, smsc_id: &str, at: i64) -> Op {
    Op::PartSubmitted {
        id: id.into(),
        part: 0,
        channel: CHANNEL.into(),
        smsc_message_id: smsc_id.into(),
        keys: id_keys(smsc_id),
        at,
    }
}

/// `op` (a submit response or a receipt) as it comes on channel `ch` instead.
fn on(op: Op, ch: &str) -> Op {
    match op {
        Op::PartSubmitted {
            id,
            part,
            smsc_message_id,
            keys,
            at,
            ..
        } => Op::PartSubmitted {
            id,
            part,
            channel: ch.into(),
            smsc_message_id,
            keys,
            at,
        },
        Op::Receipt {
            smsc_message_id,
            keys,
            outcome,
            error,
            at,
            ..
        } => Op::Receipt {
            channel: ch.into(),
            smsc_message_id,
            keys,
            outcome,
            error,
            at,
        },
        other => other,
    }
}

fn status(store: &StateStore, id: &str) -> Option<Status> {
    store.get_message(id).ok().flatten().map(|m| m.status)
}

#[test]
fn a_receipt_parked_before_its_response_is_matched_and_leaves_the_index() {
    let (_dir, _db, store) = placed_store();
    let id = "01PARKED000000000000000001";
    let now = crate::clock::now_ms();
    claimed(&store, id, now);
    apply(&store, vec![receipt("00FF", now + 1)]);
    assert!(store.unmatched_receipts_before(i64::MAX), "parked");
    // The response writes the id in another form (decimal): still the same receipt.
    apply(&store, vec![submitted(id, "255", now + 2)]);
    assert_eq!(status(&store, id), Some(Status::Delivered));
    assert!(
        !store.unmatched_receipts_before(i64::MAX),
        "matched: no longer parked"
    );
}

#[test]
fn unmatched_receipts_expire_and_the_index_survives_a_restart() {
    let (_dir, db, store) = placed_store();
    let id = "01PARKED000000000000000002";
    let now = crate::clock::now_ms();
    claimed(&store, id, now);
    apply(&store, vec![receipt("abc123", now)]);
    drop(store);
    let store = StateStore::open(&db).expect("reopened");
    assert!(
        store.unmatched_receipts_before(now + 1),
        "rebuilt from the rows"
    );
    assert!(
        !store.unmatched_receipts_before(now),
        "parked at `now`, not before"
    );
    apply(&store, vec![Op::DropUnmatchedReceipts { before: now }]);
    assert!(
        store.unmatched_receipts_before(now + 1),
        "kept: not older than `before`"
    );
    apply(&store, vec![Op::DropUnmatchedReceipts { before: now + 1 }]);
    assert!(!store.unmatched_receipts_before(i64::MAX), "dropped");
    // Its response, if it ever came, finds nothing parked: the message waits for a receipt.
    apply(&store, vec![submitted(id, "abc123", now + 2)]);
    assert_eq!(status(&store, id), Some(Status::Sent));
}

#[test]
fn a_receipt_parked_earlier_in_the_same_batch_expires_alike() {
    // A follower catching up applies many entries at once; it must drop what the leader
    // dropped when it applied them one by one.
    let (_dir, _db, store) = placed_store();
    let now = crate::clock::now_ms();
    apply(
        &store,
        vec![
            receipt("1111", now - 10),
            receipt("2222", now + 10),
            Op::DropUnmatchedReceipts { before: now },
        ],
    );
    assert!(
        !store.unmatched_receipts_before(now + 10),
        "the older one is gone"
    );
    assert!(
        store.unmatched_receipts_before(now + 11),
        "the newer one stays"
    );
}

/// Audit defect 3: an ISMG delivers a report on any connection of the account, an SGIP
/// SMG to any SP listener; matched only within the receiving channel, such a receipt was
/// acknowledged and parked for good. CN ids are matched across channels of the protocol;
/// SMPP ids stay per SMSC account (`smpp_receipts_match_on_a_channel_of_the_same_account`).
#[test]
fn cn_receipts_match_on_another_channel_of_the_protocol() {
    let (_dir, _db, store) = placed_store();
    let mut cm = super::cache_tests::channel();
    cm.protocol = "cmpp".into();
    let mut a = cm.clone();
    a.id = "cm-a".into();
    let mut b = cm;
    b.id = "cm-b".into();
    let mut smpp_b = super::cache_tests::channel();
    smpp_b.id = "smsc-b".into();
    smpp_b.host = "another-smsc.example".into();
    apply(
        &store,
        vec![
            Op::PutChannel(Box::new(a)),
            Op::PutChannel(Box::new(b)),
            Op::PutChannel(Box::new(smpp_b)),
        ],
    );
    let now = crate::clock::now_ms();
    // Sent on cm-a, receipt on cm-b: matched (also when the receipt comes first).
    let id = "01PARKED000000000000000010";
    claimed(&store, id, now);
    apply(
        &store,
        vec![on(submitted(id, "1234567890123", now + 1), "cm-a")],
    );
    apply(&store, vec![on(receipt("1234567890123", now + 2), "cm-b")]);
    assert_eq!(status(&store, id), Some(Status::Delivered));
    let early = "01PARKED000000000000000011";
    claimed(&store, early, now);
    apply(&store, vec![on(receipt("999000111", now + 3), "cm-b")]);
    apply(
        &store,
        vec![on(submitted(early, "999000111", now + 4), "cm-a")],
    );
    assert_eq!(status(&store, early), Some(Status::Delivered));
    // SMPP: an id is only that channel's; another SMSC's receipt with it is parked.
    let smpp = "01PARKED000000000000000012";
    claimed(&store, smpp, now);
    apply(&store, vec![submitted(smpp, "77", now + 5)]);
    apply(&store, vec![on(receipt("77", now + 6), "smsc-b")]);
    assert_eq!(status(&store, smpp), Some(Status::Sent));
}

#[test]
fn a_receipt_parked_long_before_the_submit_is_not_taken_for_it() {
    // An SMSC that restarted hands out its old ids again: a receipt parked for an older
    // message (or a stranger's) must not settle a new one that got the same id.
    let (_dir, _db, store) = placed_store();
    let id = "01PARKED000000000000000009";
    let now = crate::clock::now_ms();
    let long_ago = now - 20 * 60 * 1000;
    claimed(&store, id, now);
    apply(&store, vec![receipt("77AB", long_ago)]);
    apply(&store, vec![submitted(id, "77AB", now)]);
    assert_eq!(status(&store, id), Some(Status::Sent), "still waiting");
    assert!(
        store.unmatched_receipts_before(now),
        "left parked, to expire unmatched"
    );
    // Its own receipt then settles it.
    apply(&store, vec![receipt("77AB", now + 5)]);
    assert_eq!(status(&store, id), Some(Status::Delivered));
}

/// Two SMPP channels logged in to one SMSC account (same host, port and system_id) share
/// its id space, and the SMSC may deliver a receipt on either: one sent on smsc-a whose
/// receipt came on smsc-c (smsc-a drained, or its receiver bind elsewhere) was
/// acknowledged and parked for good (audit). Matched now, whichever comes first; a
/// channel of another account still does not take it.
#[test]
fn smpp_receipts_match_on_a_channel_of_the_same_account() {
    let (_dir, _db, store) = placed_store();
    let mut sibling = super::cache_tests::channel();
    sibling.id = "smsc-c".into();
    sibling.host = sibling.host.to_uppercase();
    let mut other_account = super::cache_tests::channel();
    other_account.id = "smsc-d".into();
    other_account.system_id = "someone-else".into();
    apply(
        &store,
        vec![
            Op::PutChannel(Box::new(sibling)),
            Op::PutChannel(Box::new(other_account)),
        ],
    );
    let now = crate::clock::now_ms();
    // Response first, receipt on the sibling.
    let id = "01PARKED000000000000000020";
    claimed(&store, id, now);
    apply(&store, vec![submitted(id, "5150", now + 1)]);
    apply(&store, vec![on(receipt("5150", now + 2), "smsc-c")]);
    assert_eq!(status(&store, id), Some(Status::Delivered));
    // Receipt first on the sibling (parked there), then the response on the channel.
    let early = "01PARKED000000000000000021";
    claimed(&store, early, now);
    apply(&store, vec![on(receipt("5151", now + 3), "smsc-c")]);
    apply(&store, vec![submitted(early, "5151", now + 4)]);
    assert_eq!(status(&store, early), Some(Status::Delivered));
    assert!(
        !store.unmatched_receipts_before(i64::MAX),
        "nothing left parked"
    );
    // Both in one apply batch.
    let same_batch = "01PARKED000000000000000022";
    claimed(&store, same_batch, now);
    apply(
        &store,
        vec![
            on(receipt("5152", now + 5), "smsc-c"),
            submitted(same_batch, "5152", now + 6),
        ],
    );
    assert_eq!(status(&store, same_batch), Some(Status::Delivered));
    // Another account's channel: its receipt with the same id is not this message's.
    let foreign = "01PARKED000000000000000023";
    claimed(&store, foreign, now);
    apply(&store, vec![submitted(foreign, "5153", now + 7)]);
    apply(&store, vec![on(receipt("5153", now + 8), "smsc-d")]);
    assert_eq!(status(&store, foreign), Some(Status::Sent));
}
