//! Listing a tenant's messages: a client_ref is found through its index however many
//! newer messages the tenant has (rows written before the index existed included), and
//! a filtered scan that runs out of budget says so (`partial`) with a cursor to go on,
//! instead of an empty page that reads as "none".

use std::sync::Arc;

use super::cache_tests::{apply, message, placed_store};
use super::store::StateStore;
use super::*;

fn by_ref(r: &str) -> ListScope<'_> {
    ListScope {
        client_ref: Some(r),
        ..Default::default()
    }
}

fn budget(rows: usize) -> ScanBudget {
    ScanBudget {
        max_rows: rows,
        until: std::time::Instant::now() + std::time::Duration::from_secs(60),
    }
}

/// `n` messages, ids in time order; the oldest carries client_ref "needle".
fn fill(store: &StateStore, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("01LIST{i:020}")).collect();
    let ops = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut m = message(id);
            m.client_ref = Some(Arc::from(if i == 0 { "needle" } else { "hay" }));
            Op::Accept(Box::new(m))
        })
        .collect();
    apply(store, ops);
    ids
}

#[test]
fn a_client_ref_is_found_behind_any_number_of_newer_messages() {
    let (_dir, db, store) = placed_store();
    let ids = fill(&store, 60);
    let page = store
        .list_messages("acme", None, 10, by_ref("needle"), budget(5), |_| true)
        .expect("list");
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].id, ids[0]);
    assert!(!page.partial && page.next.is_none());
    // Other filters on top of it, and another tenant's client_ref.
    let page = store
        .list_messages("acme", None, 10, by_ref("needle"), budget(5), |m| {
            m.status == Status::Sent
        })
        .expect("list");
    assert!(page.messages.is_empty() && !page.partial);
    let page = store
        .list_messages("other", None, 10, by_ref("needle"), budget(5), |_| true)
        .expect("list");
    assert!(page.messages.is_empty());
    // Newest first, paged with the cursor.
    let page = store
        .list_messages("acme", None, 30, by_ref("hay"), budget(1000), |_| true)
        .expect("list");
    assert_eq!(
        page.messages.first().map(|m| m.id.as_str()),
        ids.last().map(String::as_str)
    );
    let rest = store
        .list_messages(
            "acme",
            page.next.as_deref(),
            100,
            by_ref("hay"),
            budget(1000),
            |_| true,
        )
        .expect("list");
    assert_eq!(page.messages.len() + rest.messages.len(), 59);

    // A store written before the index existed is indexed when it opens.
    store.forget_client_ref_index().expect("forget");
    let none = store
        .list_messages("acme", None, 10, by_ref("needle"), budget(100), |_| true)
        .expect("list");
    assert!(none.messages.is_empty(), "the index is really gone");
    drop(store);
    let store = StateStore::open(&db).expect("reopen");
    let page = store
        .list_messages("acme", None, 10, by_ref("needle"), budget(5), |_| true)
        .expect("list");
    assert_eq!(page.messages.len(), 1, "rows from before the index");

    // A purged message leaves no index row behind.
    let purged = ids[0].clone();
    apply(
        &store,
        vec![
            Op::Fail {
                id: purged.clone(),
                error: ErrorInfo {
                    code: "no_route".into(),
                    message: "x".into(),
                    smsc_code: None,
                },
                at: crate::clock::now_ms(),
            },
            Op::Purge { ids: vec![purged] },
        ],
    );
    let page = store
        .list_messages("acme", None, 10, by_ref("needle"), budget(5), |_| true)
        .expect("list");
    assert!(page.messages.is_empty() && page.next.is_none());
}

#[test]
fn a_scan_that_runs_out_of_budget_says_partial_and_continues() {
    let (_dir, _db, store) = placed_store();
    let ids = fill(&store, 60);
    let oldest = |m: &Message| m.id == ids[0];
    let mut cursor = None;
    let mut pages = 0;
    let found = loop {
        let page = store
            .list_messages(
                "acme",
                cursor.as_deref(),
                10,
                ListScope::default(),
                budget(25),
                oldest,
            )
            .expect("list");
        pages += 1;
        if !page.messages.is_empty() {
            break page.messages;
        }
        assert!(page.partial, "an empty page goes on only when partial");
        cursor = page.next;
        assert!(cursor.is_some());
    };
    assert_eq!(found[0].id, ids[0]);
    assert_eq!(pages, 3, "25 + 25 + 10 rows");
}

#[test]
fn a_recipient_is_found_through_its_index_and_purged_with_its_message() {
    let (_dir, db, store) = placed_store();
    let ids: Vec<String> = (0..60).map(|i| format!("01T0{i:022}")).collect();
    let ops = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut m = message(id);
            if i < 2 {
                m.to = Arc::from("+4915100000001");
            }
            Op::Accept(Box::new(m))
        })
        .collect();
    apply(&store, ops);
    let to = |t| ListScope {
        to: Some(t),
        ..Default::default()
    };
    // Two rows to read, behind 58 newer ones, within a budget of 3 rows.
    let page = store
        .list_messages("acme", None, 10, to("+4915100000001"), budget(3), |_| true)
        .expect("list");
    let found: Vec<&str> = page.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(found, [ids[1].as_str(), ids[0].as_str()], "newest first");
    assert!(!page.partial && page.next.is_none());
    // A number's prefix is not the number.
    let page = store
        .list_messages("acme", None, 10, to("+491510000000"), budget(3), |_| true)
        .expect("list");
    assert!(page.messages.is_empty() && !page.partial);
    // With a client_ref too, both hold.
    let both = ListScope {
        client_ref: Some("none"),
        to: Some("+4915100000001"),
        since_ms: None,
    };
    let page = store
        .list_messages("acme", None, 10, both, budget(3), |_| true)
        .expect("list");
    assert!(page.messages.is_empty());

    // A store written before the index existed is indexed when it opens.
    store.forget_client_ref_index().expect("forget");
    drop(store);
    let store = StateStore::open(&db).expect("reopen");
    let page = store
        .list_messages("acme", None, 10, to("+4915100000001"), budget(3), |_| true)
        .expect("list");
    assert_eq!(page.messages.len(), 2, "rows from before the index");

    apply(
        &store,
        vec![
            Op::Fail {
                id: ids[0].clone(),
                error: ErrorInfo {
                    code: "no_route".into(),
                    message: "x".into(),
                    smsc_code: None,
                },
                at: crate::clock::now_ms(),
            },
            Op::Purge {
                ids: vec![ids[0].clone()],
            },
        ],
    );
    let page = store
        .list_messages("acme", None, 10, to("+4915100000001"), budget(1), |_| true)
        .expect("list");
    let found: Vec<&str> = page.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        found,
        [ids[1].as_str()],
        "the purged message's index row went too"
    );
}

#[test]
fn since_ends_the_scan_at_ids_minted_before_it() {
    let (_dir, _db, store) = placed_store();
    let now = crate::clock::now_ms();
    // One message a minute over the last 100 minutes, ids minted when created.
    let ids: Vec<String> = (0..100i64)
        .map(|i| {
            let at = now - (100 - i) * 60_000;
            ulid::Ulid::from_parts(u64::try_from(at).unwrap_or(0), 7).to_string()
        })
        .collect();
    let ops = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut m = message(id);
            m.created_at = now - (100 - i as i64) * 60_000;
            Op::Accept(Box::new(m))
        })
        .collect();
    apply(&store, ops);
    let since = ListScope {
        since_ms: Some(now - 10 * 60_000 - 1),
        ..Default::default()
    };
    // Ten in the window; the scan reads them and one minute's more, not the other 89.
    let page = store
        .list_messages("acme", None, 50, since, budget(15), |_| true)
        .expect("list");
    assert_eq!(page.messages.len(), 10);
    assert!(
        !page.partial && page.next.is_none(),
        "complete, not partial"
    );
    assert!(
        page.messages
            .iter()
            .all(|m| m.created_at >= now - 10 * 60_000 - 1)
    );
}
