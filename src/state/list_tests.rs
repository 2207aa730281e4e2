//! Listing a tenant's messages: a client_ref is found through its index however many
//! newer messages the tenant has (rows written before the index existed included), and
//! a filtered scan that runs out of budget says so (`partial`) with a cursor to go on,
//! instead of an empty page that reads as "none".

use std::sync::Arc;

use super::cache_tests::{apply, message, placed_store};
use super::store::StateStore;
use super::*;

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
        .list_messages("acme", None, 10, Some("needle"), budget(5), |_| true)
        .expect("list");
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].id, ids[0]);
    assert!(!page.partial && page.next.is_none());
    // Other filters on top of it, and another tenant's client_ref.
    let page = store
        .list_messages("acme", None, 10, Some("needle"), budget(5), |m| {
            m.status == Status::Sent
        })
        .expect("list");
    assert!(page.messages.is_empty() && !page.partial);
    let page = store
        .list_messages("other", None, 10, Some("needle"), budget(5), |_| true)
        .expect("list");
    assert!(page.messages.is_empty());
    // Newest first, paged with the cursor.
    let page = store
        .list_messages("acme", None, 30, Some("hay"), budget(1000), |_| true)
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
            Some("hay"),
            budget(1000),
            |_| true,
        )
        .expect("list");
    assert_eq!(page.messages.len() + rest.messages.len(), 59);

    // A store written before the index existed is indexed when it opens.
    store.forget_client_ref_index().expect("forget");
    let none = store
        .list_messages("acme", None, 10, Some("needle"), budget(100), |_| true)
        .expect("list");
    assert!(none.messages.is_empty(), "the index is really gone");
    drop(store);
    let store = StateStore::open(&db).expect("reopen");
    let page = store
        .list_messages("acme", None, 10, Some("needle"), budget(5), |_| true)
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
        .list_messages("acme", None, 10, Some("needle"), budget(5), |_| true)
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
            .list_messages("acme", cursor.as_deref(), 10, None, budget(25), oldest)
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
