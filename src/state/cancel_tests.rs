//! `Op::Cancel` is decided in apply: a scheduled message, or an accepted one no channel
//! has claimed, becomes `canceled`; one claimed or sent first is not canceled; another
//! tenant's id is not found; a release after the cancel changes nothing.

use super::cache_tests::{CHANNEL, apply, message, placed_store};
use super::store::StateStore;
use super::*;

fn one(store: &StateStore, op: Op) -> OpResult {
    let p = Proposal {
        ops: vec![op].into(),
    };
    let mut out = store.apply(&[&p], &[]).expect("apply");
    out.remove(0).results.remove(0)
}

fn cancel(id: &str, tenant: &str) -> Op {
    Op::Cancel {
        id: id.into(),
        tenant: tenant.into(),
        at: crate::clock::now_ms(),
    }
}

fn claim(id: &str) -> Op {
    Op::Claim {
        channel: CHANNEL.into(),
        node: 1,
        epoch: 1,
        ids: vec![id.into()],
        at: crate::clock::now_ms(),
    }
}

#[test]
fn scheduled_and_unclaimed_messages_cancel_and_stay_canceled() {
    let (_dir, _db, store) = placed_store();
    let scheduled = "01CANCEL000000000000000001";
    let mut m = message(scheduled);
    m.status = Status::Scheduled;
    m.send_at = Some(m.created_at + 3_600_000);
    m.events = vec![transitions::event(Status::Scheduled, m.created_at)];
    apply(&store, vec![Op::Accept(Box::new(m))]);
    let waiting = "01CANCEL000000000000000002";
    apply(&store, vec![Op::Accept(Box::new(message(waiting)))]);
    assert_eq!(store.work().waiting_total, 2);

    assert_eq!(one(&store, cancel(scheduled, "other")), OpResult::NotFound);
    assert_eq!(
        one(&store, cancel("01NOPE00000000000000000000", "acme")),
        OpResult::NotFound
    );
    for id in [scheduled, waiting] {
        assert_eq!(one(&store, cancel(id, "acme")), OpResult::Done, "{id}");
        let m = store.get_message(id).expect("read").expect("row");
        assert_eq!(m.status, Status::Canceled);
        assert_eq!(m.events.last().map(|e| e.status), Some(Status::Canceled));
        assert!(m.error.is_none());
    }
    assert_eq!(store.work().waiting_total, 0, "no longer waiting");
    // Again: nothing changes, the answer names the status.
    assert_eq!(
        one(&store, cancel(waiting, "acme")),
        OpResult::NotCancelable {
            status: Status::Canceled
        }
    );
    // A release or a claim after the cancel does nothing.
    assert_eq!(
        one(
            &store,
            Op::Release {
                id: scheduled.into(),
                at: crate::clock::now_ms()
            }
        ),
        OpResult::Stale
    );
    assert_eq!(
        one(&store, claim(waiting)),
        OpResult::Claimed {
            granted: vec![],
            reclaimed: 0
        }
    );
    assert_eq!(
        store.get_message(waiting).expect("read").map(|m| m.status),
        Some(Status::Canceled)
    );
}

#[test]
fn a_claimed_or_requeued_message_is_not_canceled() {
    let (_dir, _db, store) = placed_store();
    let claimed = "01CANCEL000000000000000003";
    apply(&store, vec![Op::Accept(Box::new(message(claimed)))]);
    assert!(matches!(
        one(&store, claim(claimed)),
        OpResult::Claimed { .. }
    ));
    assert_eq!(
        one(&store, cancel(claimed, "acme")),
        OpResult::NotCancelable {
            status: Status::Accepted
        }
    );
    // Claimed and canceled in one batch: the claim came first, it wins.
    let same_batch = "01CANCEL000000000000000004";
    apply(&store, vec![Op::Accept(Box::new(message(same_batch)))]);
    let p = Proposal {
        ops: vec![claim(same_batch), cancel(same_batch, "acme")].into(),
    };
    let out = store.apply(&[&p], &[]).expect("apply");
    assert_eq!(
        out[0].results[1],
        OpResult::NotCancelable {
            status: Status::Accepted
        }
    );
    // A requeue drops the claim row, but the attempt may have reached the operator.
    apply(
        &store,
        vec![Op::Requeue {
            id: claimed.into(),
            note: "response timeout".into(),
            at: crate::clock::now_ms(),
        }],
    );
    assert_eq!(
        one(&store, cancel(claimed, "acme")),
        OpResult::NotCancelable {
            status: Status::Accepted
        }
    );
}
