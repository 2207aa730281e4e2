//! A webhook secret rotation is replicated state: the new secret in the tenant row, the
//! old one in its own row while the overlap lasts, both rebuilt from the rows at start,
//! and gone with the tenant.

use super::cache_tests::{apply, placed_store, tenant};
use super::store::StateStore;
use super::*;

fn rotate(until: i64) -> Op {
    Op::RotateWebhookSecret {
        tenant: "acme".into(),
        secret: "whsec_new".into(),
        previous_until: until,
    }
}

#[test]
fn a_rotation_keeps_the_old_secret_for_the_overlap_and_survives_a_restart() {
    let (_dir, db, store) = placed_store();
    let old = tenant().webhook_secret;
    apply(&store, vec![rotate(5_000)]);
    let secrets = |s: &StateStore, now| s.config().webhook_secrets("acme", now);
    assert_eq!(
        secrets(&store, 4_999),
        Some(vec!["whsec_new".to_string(), old.clone()])
    );
    assert_eq!(secrets(&store, 5_000), Some(vec!["whsec_new".to_string()]));
    drop(store);
    let store = StateStore::open(&db).expect("reopen");
    assert_eq!(
        secrets(&store, 4_999),
        Some(vec!["whsec_new".to_string(), old])
    );
    // Overlap 0: the old secret is dropped at once.
    apply(&store, vec![rotate(0)]);
    assert_eq!(secrets(&store, 0), Some(vec!["whsec_new".to_string()]));
    apply(
        &store,
        vec![rotate(9_000), Op::DeleteTenant { id: "acme".into() }],
    );
    assert_eq!(secrets(&store, 0), None);
    assert!(store.config().previous_secrets.is_empty());
    drop(store);
    let store = StateStore::open(&db).expect("reopen");
    assert!(store.config().previous_secrets.is_empty());
}
