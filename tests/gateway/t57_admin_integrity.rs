//! The admin API keeps its configuration consistent: a channel a route uses cannot be
//! deleted, a message whose channel went away fails instead of waiting for ever, a
//! re-created tenant id never shows an earlier tenant's messages, country codes and
//! tenant scopes must name something real, two routes cannot have the same match, a
//! sender is not silently registered twice, a tenant's `senders` and its sender
//! registry are one list, a preview without a route says what the send would do, and a
//! channel is changed in place by a merge patch checked as a create is.
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

const TO: &str = "+4915112345678";

/// A channel to a port nothing listens on: it never binds, so messages on it wait.
fn dead_channel(id: &str) -> Value {
    json!({"id": id, "protocol": "smpp", "host": "127.0.0.1", "port": free_port(),
           "system_id": "nobody", "password": "pw"})
}

fn assert_refused(status: u16, v: &Value, want: u16, code: &str, what: &str) {
    assert_eq!(status, want, "{what}: {v}");
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_in_use_is_not_deleted_and_a_deleted_channel_fails_its_messages() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[dead_channel("smsc-b")]).await;
    let key = node.tenant("acme", json!({})).await;
    let (s, sent) = node.send(&key, json!({"to": TO, "text": "waits"})).await;
    assert_eq!(s, 202, "{sent}");
    let id = sent["id"].as_str().expect("id").to_string();

    // The route still uses the channel: 409 naming the route; nothing changes.
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/channels/smsc-b", None)
        .await;
    assert_refused(s, &v, 409, "conflict", "delete a channel a route uses");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("default"), "names the route: {v}");
    let (s, _) = node
        .admin(Method::GET, "/admin/v1/channels/smsc-b", None)
        .await;
    assert_eq!(s, 200, "the channel is still there");
    let (_, routes) = node.admin(Method::GET, "/admin/v1/routes", None).await;
    assert_eq!(routes[0]["channels"][0]["id"], "smsc-b", "{routes}");
    // An unknown channel is still 404.
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/channels/nope", None)
        .await;
    assert_refused(s, &v, 404, "not_found", "delete an unknown channel");

    // Removed from the routes first, the channel can go; its waiting message fails with
    // the contract's code instead of staying `accepted` for ever.
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/routes/default", None)
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/channels/smsc-b", None)
        .await;
    assert_eq!(s, 204, "{v}");
    let v = node
        .wait_status(&key, &id, "failed", Duration::from_secs(20))
        .await;
    assert_eq!(v["error"]["code"], "no_route", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("smsc-b"),
        "{v}"
    );

    // No route now: the preview keeps the contract's route object and says what the send
    // will do (accepted, then failed with no_route), and the send does exactly that.
    let r = node
        .post_json(
            "/v1/messages/preview",
            &key,
            &json!({"to": TO, "text": "hi"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let route = &r.json["route"];
    assert!(route.is_object(), "route is an object: {}", r.text);
    assert_eq!(route["channel"], Value::Null, "{}", r.text);
    assert_eq!(route["error"]["code"], "no_route", "{}", r.text);
    let (s, sent) = node.send(&key, json!({"to": TO, "text": "hi"})).await;
    assert_eq!(s, 202, "{sent}");
    let v = node
        .wait_status(
            &key,
            sent["id"].as_str().unwrap_or(""),
            "failed",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(v["error"]["code"], "no_route", "{v}");

    // A/B variant channels count as uses too.
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels", Some(dead_channel("a")))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels", Some(dead_channel("b")))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": "ab", "match": {}, "channels": [{"id": "a"}],
                        "ab": {"split_percent": 10, "variant_b": {"channels": [{"id": "b"}]}}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/channels/b", None)
        .await;
    assert_refused(s, &v, 409, "conflict", "delete a variant-B channel");
    assert!(
        v["error"]["message"].as_str().unwrap_or("").contains("ab"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_tenant_id_never_sees_the_earlier_tenants_messages() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let old_key = node.tenant("tmp", json!({})).await;
    let (s, sent) = node
        .send(&old_key, json!({"to": TO, "text": "private"}))
        .await;
    assert_eq!(s, 202, "{sent}");
    let old_id = sent["id"].as_str().expect("id").to_string();
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/tenants/tmp", None)
        .await;
    assert_eq!(s, 204, "{v}");

    let body =
        json!({"id": "tmp", "name": "someone else", "rate_limit": {"per_second": 10, "burst": 10}});
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/tenants", Some(body))
        .await;
    if s == 201 {
        // The old code: the new key lists the deleted tenant's message.
        let key = v["api_key"].as_str().unwrap_or("").to_string();
        let (_, list) = node.list(&key, "").await;
        let (st, one) = node.message(&key, &old_id).await;
        panic!("tenant id reused while its messages are kept: list {list}, GET {st} {one}");
    }
    assert_refused(s, &v, 409, "conflict", "re-create a deleted tenant's id");
    assert_eq!(v["error"]["field"], "id", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("retain"),
        "says why: {v}"
    );
    // The tenant is not created; any other id works at once.
    let (s, _) = node.admin(Method::GET, "/admin/v1/tenants/tmp", None).await;
    assert_eq!(s, 404);
    let key = node.tenant("tmp2", json!({})).await;
    let (s, list) = node.list(&key, "").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(0), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_must_name_real_countries_and_tenants_and_routes_cannot_share_a_match() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[dead_channel("a")]).await;
    node.tenant("acme", json!({})).await;

    // Countries: ISO 3166-1 alpha-2 codes that phone numbers have.
    let rules = json!({"alphanumeric_allowed": true});
    for bad in ["XX", "DEU", "ZZ"] {
        let (s, v) = node
            .admin(
                Method::PUT,
                &format!("/admin/v1/compliance/countries/{bad}"),
                Some(rules.clone()),
            )
            .await;
        assert_refused(s, &v, 422, "invalid_field", &format!("country {bad}"));
        assert_eq!(v["error"]["field"], "country", "{v}");
    }
    let (s, v) = node
        .admin(
            Method::PUT,
            "/admin/v1/compliance/countries/de",
            Some(rules),
        )
        .await;
    assert_eq!((s, &v["country"]), (200, &json!("DE")), "{v}");
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": "xx", "match": {"country": "XX"}, "channels": [{"id": "a"}]})),
        )
        .await;
    assert_refused(s, &v, 422, "invalid_field", "route match.country XX");
    assert_eq!(v["error"]["field"], "match.country", "{v}");
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/tenants/acme/senders",
            Some(json!({"sender": "ACME", "type": "alphanumeric", "countries": ["DE", "XX"]})),
        )
        .await;
    assert_refused(s, &v, 422, "invalid_field", "sender country XX");
    assert_eq!(v["error"]["field"], "countries[1]", "{v}");

    // A rule scoped to a tenant that does not exist.
    let rule = |scope: &str| json!({"scope": scope, "kind": "keyword", "pattern": "casino", "action": "reject"});
    let (s, v) = node
        .admin(
            Method::PUT,
            "/admin/v1/compliance/rules/r1",
            Some(rule("tenant:nope")),
        )
        .await;
    assert_refused(s, &v, 422, "invalid_field", "rule scope tenant:nope");
    assert_eq!(v["error"]["field"], "scope", "{v}");
    let (s, v) = node
        .admin(
            Method::PUT,
            "/admin/v1/compliance/rules/r1",
            Some(rule("tenant:acme")),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // Routes: a second route with the same match would never be chosen.
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(json!({"id": "def2", "match": {}, "channels": [{"id": "a"}]})),
        )
        .await;
    assert_refused(s, &v, 409, "conflict", "second empty match");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("default"),
        "names the existing route: {v}"
    );
    let route = |id: &str, prefixes: Value| json!({"id": id, "match": {"prefix": prefixes, "country": "DE"}, "channels": [{"id": "a"}]});
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(route("de1", json!(["+4915", "+4930"]))),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(route("de2", json!(["+4930", "+4915"]))),
        )
        .await;
    assert_refused(s, &v, 409, "conflict", "same prefixes in another order");
    // Audit s18 defect 4: prefixes covered by de1 at the same specificity, and de1 wins
    // ties (smaller id): de3 would never be chosen.
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(route("de3", json!(["+4930"]))),
        )
        .await;
    assert_refused(s, &v, 409, "conflict", "prefixes covered by de1");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("de1") && msg.contains("PATCH"), "{v}");
    // ... and the other way round: a smaller id covering de1 would make de1 dead.
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(route("de0", json!(["+4915", "+4930", "+4940"]))),
        )
        .await;
    assert_refused(s, &v, 409, "conflict", "covers de1 and wins ties");
    assert!(
        v["error"]["message"].as_str().unwrap_or("").contains("de1"),
        "{v}"
    );
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/routes",
            Some(route("de4", json!(["+4916"]))),
        )
        .await;
    assert_eq!(s, 201, "a different match is fine: {v}");
    let (_, routes) = node.admin(Method::GET, "/admin/v1/routes", None).await;
    let ids: Vec<&str> = routes
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["de1", "de4", "default"], "{routes}");
}

/// Audit s18 defect 8: every route and channel field that can never work is 422 with
/// the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_channels_that_could_never_work_are_refused_naming_the_field() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    node.channels_and_route(&[dead_channel("a"), dead_channel("b")])
        .await;
    let routes = [
        (
            json!({"id": "r1", "match": {"prefix": ["+49"]}, "channels": [{"id": "a"}, {"id": "a"}]}),
            "channels[1].id",
        ),
        (
            json!({"id": "r2", "match": {"prefix": ["+4912345678901234567"]}, "channels": [{"id": "a"}]}),
            "match.prefix[0]",
        ),
        (
            json!({"id": "r3", "match": {"prefix": ["+33", "+49"], "country": "FR"}, "channels": [{"id": "a"}]}),
            "match.prefix[1]",
        ),
        (
            json!({"id": "r4", "match": {"tenant": "no such tenant!"}, "channels": [{"id": "a"}]}),
            "match.tenant",
        ),
        (
            json!({"id": "r5", "match": {"prefix": ["+49"]}, "channels": [{"id": "a"}],
                   "ab": {"split_percent": 10, "variant_b": {"channels": [{"id": "b", "weight": 0}]}}}),
            "ab.variant_b.channels",
        ),
    ];
    for (body, field) in routes {
        let (s, v) = node
            .admin(Method::POST, "/admin/v1/routes", Some(body.clone()))
            .await;
        assert_refused(s, &v, 422, "invalid_field", &body.to_string());
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    // Still fine: a prefix of the country, and a shorter prefix covering it.
    for (id, p) in [("de", "+4930"), ("four", "+4")] {
        let (s, v) = node
            .admin(
                Method::POST,
                "/admin/v1/routes",
                Some(json!({"id": id, "match": {"prefix": [p], "country": "DE"}, "channels": [{"id": "a"}]})),
            )
            .await;
        assert_eq!(s, 201, "{p}: {v}");
    }

    let sla = |extra: Value| {
        let mut c = dead_channel("s");
        c["sla"] = extra;
        c
    };
    for (body, field) in [
        (
            sla(
                json!({"window": "5m", "alert_url": "http://127.0.0.1:9/x", "alert_secret": "secret-123"}),
            ),
            "sla",
        ),
        (
            sla(
                json!({"min_success_rate": 0.9, "alert_url": "ftp://x/y", "alert_secret": "secret-123"}),
            ),
            "sla.alert_url",
        ),
    ] {
        let (s, v) = node
            .admin(Method::POST, "/admin/v1/channels", Some(body.clone()))
            .await;
        assert_refused(s, &v, 422, "invalid_field", &body.to_string());
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_are_one_list_and_are_not_registered_twice() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    node.tenant("demo", json!({"senders": ["SMSGW"]})).await;
    let senders = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["sender"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The tenant's senders are its registered senders.
    let (s, v) = node
        .admin(Method::GET, "/admin/v1/tenants/demo/senders", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(senders(&v), ["SMSGW"], "{v}");
    assert_eq!(v[0]["type"], "alphanumeric", "{v}");

    // Registering one: 201; the same again: 409, the first record unchanged.
    let body = json!({"sender": "ACME", "type": "alphanumeric", "countries": ["DE"]});
    let (s, first) = node
        .admin(
            Method::POST,
            "/admin/v1/tenants/demo/senders",
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 201, "{first}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = json!({"sender": "ACME", "type": "alphanumeric", "countries": ["FR"]});
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/tenants/demo/senders", Some(again))
        .await;
    assert_refused(s, &v, 409, "conflict", "register the same sender again");
    let (_, v) = node
        .admin(Method::GET, "/admin/v1/tenants/demo/senders", None)
        .await;
    let acme = v
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sender"] == "ACME"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(acme["created_at"], first["created_at"], "{v}");
    assert_eq!(acme["countries"], json!(["DE"]), "{v}");

    // A registration for some countries is not a tenant-wide sender; one for every
    // country is, and the tenant record lists it after the others.
    let (_, t) = node
        .admin(Method::GET, "/admin/v1/tenants/demo", None)
        .await;
    assert_eq!(t["senders"], json!(["SMSGW"]), "{t}");
    let (s, v) = node
        .admin(
            Method::POST,
            "/admin/v1/tenants/demo/senders",
            Some(json!({"sender": "55555", "type": "short_code"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, t) = node
        .admin(Method::GET, "/admin/v1/tenants/demo", None)
        .await;
    assert_eq!(t["senders"], json!(["SMSGW", "55555"]), "{t}");

    // Deleting one removes it from both.
    let (s, _) = node
        .admin(Method::DELETE, "/admin/v1/tenants/demo/senders/SMSGW", None)
        .await;
    assert_eq!(s, 204);
    let (_, t) = node
        .admin(Method::GET, "/admin/v1/tenants/demo", None)
        .await;
    assert_eq!(t["senders"], json!(["55555"]), "{t}");
    let (_, v) = node
        .admin(Method::GET, "/admin/v1/tenants/demo/senders", None)
        .await;
    let mut got = senders(&v);
    got.sort();
    assert_eq!(got, ["55555", "ACME"], "{v}");

    // PATCH replaces the tenant's list and registers what is new; the registration for
    // some countries stays as it was.
    let (s, t) = node
        .admin(
            Method::PATCH,
            "/admin/v1/tenants/demo",
            Some(json!({"senders": ["12345", "+4915112345000"]})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["senders"], json!(["12345", "+4915112345000"]), "{t}");
    let (_, v) = node
        .admin(Method::GET, "/admin/v1/tenants/demo/senders", None)
        .await;
    let mut got = senders(&v);
    got.sort();
    assert_eq!(got, ["+4915112345000", "12345", "ACME"], "{v}");
    let find = |s: &str| {
        v.as_array()
            .and_then(|a| a.iter().find(|r| r["sender"] == s))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(find("12345")["type"], "short_code", "{v}");
    assert_eq!(find("+4915112345000")["type"], "long_code", "{v}");
    assert_eq!(find("ACME")["countries"], json!(["DE"]), "{v}");
}

/// Deleting a tenant removes what only it used (DLT templates, 10DLC campaigns, opt-outs,
/// content rules scoped to it, sender registrations): a tenant created later under the
/// same id starts clean instead of inheriting another customer's compliance rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenants_compliance_rows_go_with_it() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    node.tenant("gone", json!({})).await;
    let creates = [
        (
            Method::POST,
            "/admin/v1/tenants/gone/dlt_templates",
            json!({"template_id": "1107000000000000001", "entity_id": "1101234567890123456", "text": "Code {#var#}"}),
        ),
        (
            Method::POST,
            "/admin/v1/tenants/gone/campaigns",
            json!({"id": "CAMP1", "use_case": "2fa", "numbers": ["+12025550123"]}),
        ),
        (
            Method::POST,
            "/admin/v1/tenants/gone/opt_outs",
            json!({"numbers": ["+4915112340000"]}),
        ),
        (
            Method::POST,
            "/admin/v1/tenants/gone/senders",
            json!({"sender": "GONE", "type": "alphanumeric"}),
        ),
        (
            Method::PUT,
            "/admin/v1/compliance/rules/gone-only",
            json!({"scope": "tenant:gone", "kind": "keyword", "pattern": "casino", "action": "reject"}),
        ),
    ];
    for (method, path, body) in creates {
        let (s, v) = node.admin(method, path, Some(body)).await;
        assert!(s == 200 || s == 201, "{path}: {s} {v}");
    }
    let (s, v) = node
        .admin(Method::DELETE, "/admin/v1/tenants/gone", None)
        .await;
    assert_eq!(s, 204, "{v}");
    // No message was sent, so the id is free again.
    node.tenant("gone", json!({})).await;
    for path in [
        "/admin/v1/tenants/gone/dlt_templates",
        "/admin/v1/tenants/gone/campaigns",
        "/admin/v1/tenants/gone/senders",
    ] {
        let (s, v) = node.admin(Method::GET, path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        let rows = v
            .as_array()
            .or_else(|| v["items"].as_array())
            .or_else(|| v["data"].as_array());
        assert!(
            rows.is_some_and(|r| r.is_empty()),
            "{path} starts empty: {v}"
        );
    }
    let (_, v) = node
        .admin(Method::GET, "/admin/v1/tenants/gone/opt_outs", None)
        .await;
    assert_eq!(v["total"], 0, "{v}");
    let (s, v) = node
        .admin(Method::GET, "/admin/v1/compliance/rules/gone-only", None)
        .await;
    assert_eq!(s, 404, "the scoped rule went with the tenant: {v}");
}

/// PATCH on a channel changes it in place: `tps` at once without a rebind, a wrong
/// password rebinds and fails, the right one binds again and sends; what a create would
/// refuse is refused naming the field; id and protocol stay; a drained channel stays
/// drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_changed_in_place_by_a_merge_patch() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let (smsc, node, key) = gateway_with_smsc(dir.path(), "patched", &[], &[]).await;
    let binds = |v: Option<Value>| v.and_then(|s| s["binds"].as_u64()).unwrap_or(0);
    let bound_before = binds(smsc.stats().await);
    let patch = |body: Value| node.admin(Method::PATCH, "/admin/v1/channels/a", Some(body));

    let (s, v) = patch(json!({"tps": 50, "cost": {"+49": 0.007}})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["tps"].as_u64(), v["window"].as_u64()),
        (Some(50), Some(16)),
        "{v}"
    );
    let (_, v) = node.admin(Method::GET, "/admin/v1/channels/a", None).await;
    assert_eq!(v["tps"], 50, "a GET shows the patch: {v}");
    let (s, sent) = node
        .send(&key, json!({"to": TO, "text": "after tps"}))
        .await;
    assert_eq!(s, 202, "{sent}");
    node.wait_status(
        &key,
        sent["id"].as_str().unwrap_or(""),
        "delivered",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        binds(smsc.stats().await),
        bound_before,
        "tps alone does not rebind"
    );

    // Session settings rebind: a wrong password is refused by the SMSC, messages wait.
    let (s, v) = patch(json!({"password": "wrong"})).await;
    assert_eq!(s, 200, "{v}");
    let refused = eventually(
        "the SMSC refuses the bind",
        Duration::from_secs(30),
        || async {
            let v = node.channel_view("a").await;
            (v["state"] != "bound" && !v["last_error"].is_null()).then_some(v)
        },
    )
    .await;
    let why = refused["last_error"].as_str().unwrap_or("");
    assert!(why.contains("bind rejected"), "{refused}");
    let (s, waiting) = node
        .send(&key, json!({"to": TO, "text": "waits for the password"}))
        .await;
    assert_eq!(s, 202, "{waiting}");
    let (s, v) = patch(json!({"password": "pw"})).await;
    assert_eq!(s, 200, "{v}");
    node.wait_status(
        &key,
        waiting["id"].as_str().unwrap_or(""),
        "delivered",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        binds(smsc.stats().await) > bound_before,
        "the password change rebound"
    );

    // Refused as a create would be, naming the field; nothing changes.
    for (body, field) in [
        (json!({"window": 0}), "window"),
        (json!({"tps": "fast"}), "tps"),
        (json!({"bogus": 1}), "bogus"),
        (json!({"id": "b"}), "id"),
        (json!({"protocol": "cmpp"}), "protocol"),
        (
            json!({"options": {"dlr_timeout_second": 5}}),
            "options.dlr_timeout_second",
        ),
        (json!({"sla": {"window": "2h"}}), "sla"),
    ] {
        let (s, v) = patch(body.clone()).await;
        assert_refused(s, &v, 422, "invalid_field", &format!("{body}"));
        let named = v["error"]["field"].as_str().unwrap_or("");
        assert!(named.starts_with(field), "{body} names {field}: {v}");
    }
    let (_, v) = node.admin(Method::GET, "/admin/v1/channels/a", None).await;
    assert_eq!(
        (v["tps"].as_u64(), v["window"].as_u64()),
        (Some(50), Some(16)),
        "{v}"
    );
    let (s, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/channels/nope",
            Some(json!({"tps": 1})),
        )
        .await;
    assert_refused(s, &v, 404, "not_found", "patch an unknown channel");

    // A drained channel stays drained through a patch.
    let (s, v) = node
        .admin(Method::POST, "/admin/v1/channels/a/drain", None)
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = patch(json!({"window": 8})).await;
    assert_eq!(s, 200, "{v}");
    eventually(
        "drained after the patch",
        Duration::from_secs(30),
        || async {
            let v = node.channel_view("a").await;
            (v["state"] == "draining" || v["state"] == "down").then_some(v)
        },
    )
    .await;
}
