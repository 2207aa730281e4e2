//! Batch (one bad item fails only itself, results in order), preview (stores and
//! sends nothing), and the list API (newest first, cursor pages, filters).
use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";
const TO2: &str = "+4915112345679";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_items_fail_alone_and_keep_their_order() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "sb", &["--dlr-delay-ms", "50"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let items = json!({"messages": [
        {"to": TO, "text": "good 0", "client_ref": "b0"},
        {"to": "not a number", "text": "bad 1", "client_ref": "b1"},
        {"to": "+49 151 1234 5679", "text": "good 2", "client_ref": "b2"},
        {"to": TO, "text": "Привет", "encoding": "gsm7", "client_ref": "b3"},
        {"to": TO, "text": "bad 4", "colour": "red"},
        {"to": TO, "text": "x".repeat(200), "client_ref": "b5"},
        null,
        {"to": TO, "text": ""},
        {"to": TO, "text": "bad 8", "validity_seconds": 1},
        {"to": TO2, "text": "good 9", "client_ref": "b9"},
    ]});
    let r = node.post_json("/v1/messages/batch", &key, &items).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {}", r.text));
    assert_eq!(results.len(), 10, "one result per item: {}", r.text);
    let good = [0usize, 2, 5, 9];
    let expect_codes = [
        (1usize, "invalid_phone_number"),
        (3, "encoding_mismatch"),
        (4, "invalid_field"),
        (6, "invalid_field"),
        (7, "invalid_field"),
        (8, "invalid_field"),
    ];
    let mut ids = Vec::new();
    for &i in &good {
        let v = &results[i];
        assert!(v.get("error").is_none(), "item {i} should be accepted: {v}");
        assert_eq!(v["status"], "accepted", "item {i}: {v}");
        assert_eq!(
            v["client_ref"], items["messages"][i]["client_ref"],
            "item {i} in order: {v}"
        );
        ids.push(
            v["id"]
                .as_str()
                .unwrap_or_else(|| panic!("item {i} id: {v}"))
                .to_string(),
        );
    }
    assert_eq!(
        results[2]["to"], TO2,
        "normalised number in the item answer"
    );
    assert_eq!(results[5]["parts"], 2);
    for (i, code) in expect_codes {
        let e = &results[i]["error"];
        assert_eq!(e["code"], code, "item {i}: {}", results[i]);
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "item {i}: {}",
            results[i]
        );
        assert!(
            results[i].get("id").is_none(),
            "a failed item has no id: {}",
            results[i]
        );
    }
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        good.len(),
        "distinct ids"
    );
    // Exactly the good ones were stored, and they are delivered.
    let (_, v) = node.list(&key, "limit=100").await;
    assert_eq!(
        v["messages"].as_array().map(Vec::len),
        Some(good.len()),
        "{v}"
    );
    node.wait_all_status(&key, &ids, "delivered", Duration::from_secs(30))
        .await;

    // Batch size bounds: 0 and 1001 are refused whole; nothing is stored.
    let one = json!({"to": TO, "text": "many"});
    for n in [0usize, 1001] {
        let r = node
            .post_json(
                "/v1/messages/batch",
                &key,
                &json!({"messages": vec![one.clone(); n]}),
            )
            .await;
        assert_eq!(
            r.status,
            422,
            "batch of {n}: {}",
            r.text.chars().take(300).collect::<String>()
        );
        assert_eq!(
            r.json["error"]["code"], "invalid_field",
            "batch of {n}: {}",
            r.text
        );
        assert_eq!(
            r.json["error"]["field"], "messages",
            "batch of {n}: {}",
            r.text
        );
    }
    let (_, v) = node.list(&key, "limit=100").await;
    assert_eq!(
        v["messages"].as_array().map(Vec::len),
        Some(good.len()),
        "{v}"
    );
    // 1000 is the maximum and is taken whole.
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"to": TO, "text": format!("bulk {i}"), "client_ref": format!("k{i}")}))
        .collect();
    let r = node
        .post_json("/v1/messages/batch", &key, &json!({"messages": many}))
        .await;
    assert_eq!(
        r.status,
        200,
        "batch of 1000: {}",
        r.text.chars().take(300).collect::<String>()
    );
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 1000);
    for (i, v) in results.iter().enumerate() {
        assert_eq!(v["status"], "accepted", "item {i}: {v}");
        assert_eq!(v["client_ref"], format!("k{i}"), "item {i} in order: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_tells_the_plan_and_stores_nothing() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "sp", &[]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    let mut ch = smsc.channel("a");
    ch["cost"] = json!({"default": 0.004, "+49": 0.006});
    node.channels_and_route(&[ch]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;

    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": "a".repeat(200)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = &r.json;
    assert_eq!(v["encoding"], "gsm7", "{v}");
    assert_eq!(v["parts"], 2, "{v}");
    assert_eq!(v["characters"], 200, "{v}");
    assert_eq!(v["route"]["channel"], "a", "{v}");
    assert_eq!(v["route"]["strategy"], "priority", "{v}");
    let cost = v["cost"].as_f64().unwrap_or_else(|| panic!("cost: {v}"));
    assert!(
        (cost - 0.012).abs() < 1e-9,
        "2 parts at the +49 price 0.006: {v}"
    );

    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": "+33612345678", "text": "Привет"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["encoding"], "ucs2", "{}", r.text);
    assert_eq!(r.json["parts"], 1, "{}", r.text);
    assert_eq!(r.json["characters"], 6, "{}", r.text);
    let cost = r.json["cost"]
        .as_f64()
        .unwrap_or_else(|| panic!("cost: {}", r.text));
    assert!(
        (cost - 0.004).abs() < 1e-9,
        "default price for +33: {}",
        r.text
    );

    // GSM extension characters count double toward the part size but are still gsm7.
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": "€".repeat(81)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["encoding"], "gsm7", "{}", r.text);
    assert_eq!(
        r.json["parts"], 2,
        "81 euro signs are 162 septets: {}",
        r.text
    );

    // Nothing was stored or sent.
    let (s, v) = node.list(&key, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["messages"].as_array().map(Vec::len),
        Some(0),
        "preview stored something: {v}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smsc.stats().await.map(|s| s["submits"].clone()),
        Some(json!(0)),
        "preview sent something"
    );
}

/// Ids of a list page.
fn page_ids(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_newest_first_with_cursor_and_filters() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "sl", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let key = node.tenant("acme", json!({})).await;
    let other = node.tenant("other", json!({})).await;
    node.wait_bound().await;

    // Sent one after the other so creation order is well defined.
    let mut sent = Vec::new();
    for i in 0..7 {
        let to = if i % 3 == 0 { TO2 } else { TO };
        let (s, v) = node
            .send(
                &key,
                json!({"to": to, "text": format!("list {i}"), "client_ref": format!("c{i}")}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        sent.push(v["id"].as_str().expect("id").to_string());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let (s, _) = node
        .send(
            &other,
            json!({"to": TO, "text": "not yours", "client_ref": "c1"}),
        )
        .await;
    assert_eq!(s, 202);
    node.wait_all_status(&key, &sent, "delivered", Duration::from_secs(30))
        .await;
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();

    // Whole list, newest first, only this tenant's messages.
    let (s, v) = node.list(&key, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(page_ids(&v), newest_first, "newest first");
    assert!(v["next"].is_null(), "no next page: {v}");
    let m0 = &v["messages"][0];
    for k in [
        "id",
        "status",
        "to",
        "from",
        "parts",
        "encoding",
        "client_ref",
        "created_at",
        "events",
    ] {
        assert!(m0.get(k).is_some(), "list item has {k}: {m0}");
    }

    // Pages of 3 with the cursor: 3 + 3 + 1, no overlap, same order.
    let mut all = Vec::new();
    let mut query = "limit=3".to_string();
    let mut pages = 0;
    loop {
        let (s, v) = node.list(&key, &query).await;
        assert_eq!(s, 200, "{query}: {v}");
        let ids = page_ids(&v);
        assert!(ids.len() <= 3, "{query}: page too long: {v}");
        all.extend(ids);
        pages += 1;
        assert!(pages <= 4, "cursor does not end: {v}");
        match v["next"].as_str() {
            // The answer's field name works as the parameter too (`next=`), as `cursor=`.
            Some(n) if !n.is_empty() && pages == 1 => query = format!("limit=3&next={n}"),
            Some(n) if !n.is_empty() => query = format!("limit=3&cursor={n}"),
            _ => break,
        }
    }
    // A cursor may point at an empty last page; the content must be exact.
    assert_eq!(all, newest_first, "pages in order without gaps or repeats");
    assert!(
        (3..=4).contains(&pages),
        "7 items in pages of 3: {pages} pages"
    );

    // Filters.
    let (_, v) = node.list(&key, "client_ref=c4").await;
    assert_eq!(
        page_ids(&v),
        vec![sent[4].clone()],
        "client_ref filter: {v}"
    );
    let (_, v) = node.list(&key, "to=%2B49%20151%201234%205679").await;
    let expect: Vec<String> = newest_first
        .iter()
        .filter(|id| [0, 3, 6].iter().any(|&i| &sent[i] == *id))
        .cloned()
        .collect();
    assert_eq!(page_ids(&v), expect, "to filter (formatted number): {v}");
    // The operator's lookup across tenants finds the same by recipient.
    let (s, v) = node
        .admin(
            reqwest::Method::GET,
            "/admin/v1/messages?to=%2B4915112345679",
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(page_ids(&v), expect, "admin lookup by recipient: {v}");
    let (s, v) = node
        .admin(reqwest::Method::GET, "/admin/v1/messages?tenant=acme", None)
        .await;
    assert_eq!(s, 422, "a lookup needs client_ref or to: {v}");
    let (_, v) = node.list(&key, "status=delivered").await;
    assert_eq!(page_ids(&v), newest_first, "status filter: {v}");
    let (_, v) = node.list(&key, "status=failed").await;
    assert_eq!(page_ids(&v).len(), 0, "no failed: {v}");
    let (_, v) = node
        .list(&key, "status=delivered&to=%2B4915112345678&limit=2")
        .await;
    let expect: Vec<String> = newest_first
        .iter()
        .filter(|id| [1, 2, 4, 5].iter().any(|&i| &sent[i] == *id))
        .cloned()
        .collect();
    assert_eq!(
        page_ids(&v),
        expect[..2].to_vec(),
        "combined filters, first page: {v}"
    );
    let next = v["next"]
        .as_str()
        .unwrap_or_else(|| panic!("combined filters need a next page: {v}"))
        .to_string();
    let (_, v) = node
        .list(
            &key,
            &format!("status=delivered&to=%2B4915112345678&limit=2&cursor={next}"),
        )
        .await;
    assert_eq!(
        page_ids(&v),
        expect[2..].to_vec(),
        "combined filters, second page: {v}"
    );
    let since = v["messages"][0]["created_at"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (s, v) = node
        .list(&key, &format!("since={}", since.replace('+', "%2B")))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        !page_ids(&v).is_empty(),
        "since includes its own instant: {v}"
    );
    for m in v["messages"].as_array().into_iter().flatten() {
        assert!(
            m["created_at"].as_str().unwrap_or("") >= since.as_str(),
            "since filter: {m}"
        );
    }

    // Filters never leak the other tenant's message with the same client_ref.
    let (_, v) = node.list(&other, "client_ref=c1").await;
    assert_eq!(page_ids(&v).len(), 1, "{v}");
    let (_, v) = node.list(&key, "client_ref=c1").await;
    assert_eq!(page_ids(&v), vec![sent[1].clone()], "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_messages_wait_for_send_at() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let smsc = Smsc::start(dir.path(), "ss", &["--dlr-delay-ms", "20"]).await;
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let send_at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (s, v) = node
        .send(&key, json!({"to": TO, "text": "later", "send_at": send_at}))
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "scheduled", "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let (s, v) = node.send(&key, json!({"to": TO, "text": "now"})).await;
    assert_eq!(s, 202, "{v}");
    let now_id = v["id"].as_str().expect("id").to_string();
    node.wait_status(&key, &now_id, "delivered", Duration::from_secs(10))
        .await;
    let (_, v) = node.list(&key, "status=scheduled").await;
    assert_eq!(page_ids(&v), vec![id.clone()], "listed as scheduled: {v}");
    assert_eq!(
        smsc.stats().await.map(|s| s["submits"].clone()),
        Some(json!(1)),
        "the scheduled one is not sent early"
    );
    let v = node
        .wait_status(&key, &id, "delivered", Duration::from_secs(15))
        .await;
    let statuses: Vec<&str> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        ["scheduled", "accepted", "sent", "delivered"],
        "{v}"
    );
    let sent_at = v["events"][2]["at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .expect("sent at");
    assert!(
        sent_at.with_timezone(&chrono::Utc) >= at - chrono::Duration::milliseconds(1),
        "sent at {sent_at}, before send_at {at}"
    );
}
