//! The decoded-row cache must never hold an older copy of a row than fjall does: found by
//! a member catching up from its log, where one apply covers many entries and a message's
//! claim, submit response and receipt land in the same batch.

use std::sync::Arc;

use super::store::StateStore;
use super::*;
use crate::protocols::smpp::id_keys;

pub(super) const CHANNEL: &str = "smsc-a";

/// A plain tenant (also the base of the snapshot tests' tenants).
pub(super) fn tenant() -> Tenant {
    Tenant {
        id: "acme".into(),
        name: "acme".into(),
        api_key_hash: "h".into(),
        webhook_secret: "s".into(),
        rate_limit: RateLimit {
            per_second: 100,
            burst: 100,
        },
        callback_url: None,
        max_parts: 10,
        queue_limit: 1000,
        smart_encoding: false,
        senders: Vec::new(),
        created_at: 0,
        frequency_caps: Vec::new(),
        sender_pool: Vec::new(),
        opt_out_categories: Vec::new(),
    }
}

pub(super) fn channel() -> Channel {
    Channel {
        id: CHANNEL.into(),
        protocol: "smpp".into(),
        host: "127.0.0.1".into(),
        port: 2775,
        system_id: "smsc".into(),
        password: "pw".into(),
        system_type: String::new(),
        bind: BindKind::Transceiver,
        binds: 1,
        tps: 100,
        window: 10,
        enquire_link_seconds: 30,
        cost: Default::default(),
        udh: UdhMode::Udh8,
        dlr_timeout_seconds: 3600,
        options_json: "{}".into(),
        drained: false,
        created_at: 0,
        sla: None,
        text: Default::default(),
    }
}

pub(super) fn apply(store: &StateStore, ops: Vec<Op>) {
    let p = Proposal { ops: ops.into() };
    store.apply(&[&p], &[]).expect("apply");
}

pub(super) fn message(id: &str) -> Message {
    let req = crate::messages::intake::SendRequest {
        to: "+4917012345678".into(),
        text: "code 482913".into(),
        from: Some("ACME".into()),
        encoding: None,
        category: Some(Category::Otp),
        smart_encoding: None,
        callback_url: None,
        client_ref: None,
        validity_seconds: None,
        send_at: None,
        dlt: None,
        campaign_id: None,
        udh: None,
    };
    let mut m = crate::messages::intake::build(
        &req,
        &tenant(),
        &ConfigView::default(),
        id.into(),
        crate::clock::now_ms(),
        &crate::encoding::ConcatRefs::default(),
    )
    .expect("a valid request")
    .message;
    m.route = Arc::from(vec![CHANNEL.to_string()]);
    m
}

/// A store in a fresh directory with the tenant and the channel, placed on node 1.
pub(super) fn placed_store() -> (tempfile::TempDir, fjall::Database, StateStore) {
    let dir = tempfile::tempdir().expect("dir");
    let db = fjall::Database::builder(dir.path()).open().expect("db");
    let store = StateStore::open(&db).expect("store");
    apply(
        &store,
        vec![
            Op::PutTenant(Box::new(tenant())),
            Op::PutChannel(Box::new(channel())),
            Op::Place {
                channel: CHANNEL.into(),
                expected_epoch: 0,
                owner: Some(1),
                handoff_to: None,
            },
        ],
    );
    (dir, db, store)
}

#[test]
fn a_row_claimed_and_finished_in_one_batch_is_not_cached_stale() {
    let (_dir, _db, store) = placed_store();
    let id = "01CACHE0000000000000000001";
    apply(&store, vec![Op::Accept(Box::new(message(id)))]);
    // Not in the cache (as when it is full): the claim reads the row from fjall.
    store.evict_cached(id);
    let now = crate::clock::now_ms();
    let smsc_id = "a1b2c3".to_string();
    apply(
        &store,
        vec![
            Op::Claim {
                channel: CHANNEL.into(),
                node: 1,
                epoch: 1,
                ids: vec![id.into()],
                at: now,
            },
            Op::PartSubmitted {
                id: id.into(),
                part: 0,
                channel: CHANNEL.into(),
                smsc_message_id: smsc_id.clone(),
                keys: id_keys(&smsc_id),
                at: now + 1,
            },
            Op::Receipt {
                channel: CHANNEL.into(),
                smsc_message_id: smsc_id.clone(),
                keys: id_keys(&smsc_id),
                outcome: ReceiptOutcome::Delivered,
                error: None,
                at: now + 2,
            },
        ],
    );
    let read = store.get_message(id).expect("read").expect("the row");
    assert_eq!(read.status, Status::Delivered, "what readers see");
    assert_eq!(store.active_count(), 0, "a final row is not cached");
}
