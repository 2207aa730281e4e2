//! A route never names a channel that does not exist, even when the API's checks raced:
//! the state machine refuses a route naming an unknown channel and the deletion of a
//! channel a route names, whatever was committed between the API's check and the write.

use super::cache_tests::{CHANNEL, apply, placed_store};
use super::store::StateStore;
use super::*;

fn route(id: &str, channel: &str, variant_b: Option<&str>) -> Route {
    let to = |c: &str| RouteChannel {
        id: c.into(),
        weight: 1,
        priority: 0,
    };
    Route {
        id: id.into(),
        prefixes: Vec::new(),
        country: None,
        tenant: None,
        category: None,
        strategy: "priority".into(),
        channels: vec![to(channel)],
        created_at: 0,
        operator: None,
        sender_type: None,
        min_success_rate: None,
        ab: variant_b.map(|b| AbSplit {
            split_percent: 50,
            strategy: "priority".into(),
            channels: vec![to(b)],
            min_success_rate: None,
        }),
    }
}

fn write(store: &StateStore, op: Op) -> OpResult {
    let p = Proposal {
        ops: vec![op].into(),
    };
    let mut out = store.apply(&[&p], &[]).expect("apply");
    out.pop()
        .and_then(|mut o| o.results.pop())
        .expect("one result")
}

#[test]
fn a_route_naming_an_unknown_channel_is_refused_and_not_stored() {
    let (_dir, _db, store) = placed_store();
    let refused = write(&store, Op::PutRoute(Box::new(route("r1", "gone", None))));
    assert_eq!(
        refused,
        OpResult::MissingChannels {
            ids: vec!["gone".into()]
        }
    );
    // Variant B's channels count as well.
    let refused = write(
        &store,
        Op::PutRoute(Box::new(route("r2", CHANNEL, Some("gone-b")))),
    );
    assert_eq!(
        refused,
        OpResult::MissingChannels {
            ids: vec!["gone-b".into()]
        }
    );
    assert!(store.config().routes.is_empty());
    assert_eq!(
        write(&store, Op::PutRoute(Box::new(route("r3", CHANNEL, None)))),
        OpResult::Done
    );
    assert!(store.config().routes.contains_key("r3"));
}

#[test]
fn a_channel_a_route_names_is_not_deleted() {
    let (_dir, _db, store) = placed_store();
    apply(
        &store,
        vec![Op::PutRoute(Box::new(route("r1", CHANNEL, None)))],
    );
    let refused = write(&store, Op::DeleteChannel { id: CHANNEL.into() });
    assert_eq!(
        refused,
        OpResult::InUse {
            by: vec!["r1".into()]
        }
    );
    assert!(store.config().channels.contains_key(CHANNEL));
    // Once no route names it, it goes.
    apply(&store, vec![Op::DeleteRoute { id: "r1".into() }]);
    assert_eq!(
        write(&store, Op::DeleteChannel { id: CHANNEL.into() },),
        OpResult::Done
    );
    assert!(!store.config().channels.contains_key(CHANNEL));
}
