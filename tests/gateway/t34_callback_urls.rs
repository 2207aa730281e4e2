//! Webhook URLs are parsed, not prefix-checked: a URL the dispatcher could never call
//! (`http://`, a space in the host) is refused with 422 naming the field on every path
//! that takes one (send, batch item, tenant create and patch), instead of being accepted
//! and every webhook then dropped (audit: "bad callback URL ... empty host").
use reqwest::Method;
use serde_json::json;

use crate::common::*;

const TO: &str = "+4915112345678";

const BAD: &[&str] = &[
    "http://",
    "https://",
    "http://exa mple.com/x",
    "http:// example.com",
    "ftp://x",
    "not a url",
    "http//example.com",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_callback_urls_are_422_everywhere() {
    let dir = tempdir();
    let _logs = LogsOnFailure(dir.path().to_path_buf());
    let node = GwNode::start(dir.path(), &[]).await;
    let key = node.tenant("acme", json!({})).await;
    for url in BAD {
        let body = json!({"to": TO, "text": "cb", "callback_url": url});
        let r = node.post_json("/v1/messages", &key, &body).await;
        assert_eq!(r.status, 422, "send {url:?}: {}", r.text);
        assert_eq!(r.json["error"]["field"], "callback_url", "send {url:?}");
        // A batch item fails alone, with the same error.
        let r = node
            .post_json(
                "/v1/messages/batch",
                &key,
                &json!({"messages": [{"to": TO, "text": "ok"}, body]}),
            )
            .await;
        assert_eq!(r.status, 200, "batch {url:?}: {}", r.text);
        assert!(r.json["results"][0]["id"].is_string(), "{}", r.text);
        assert_eq!(
            r.json["results"][1]["error"]["field"], "callback_url",
            "batch {url:?}: {}",
            r.text
        );
        // Tenant create and patch.
        let (s, v) = node
            .admin(
                Method::POST,
                "/admin/v1/tenants",
                Some(json!({"id": "bad", "name": "bad", "callback_url": url,
                            "rate_limit": {"per_second": 1, "burst": 1}})),
            )
            .await;
        assert_eq!(s, 422, "create {url:?}: {v}");
        assert_eq!(v["error"]["field"], "callback_url", "create {url:?}: {v}");
        let (s, v) = node
            .admin(
                Method::PATCH,
                "/admin/v1/tenants/acme",
                Some(json!({"callback_url": url})),
            )
            .await;
        assert_eq!(s, 422, "patch {url:?}: {v}");
        assert_eq!(v["error"]["field"], "callback_url", "patch {url:?}: {v}");
    }
    // Usable ones still pass: ports, paths, queries, IPv6, and null removes it.
    for url in [
        "http://127.0.0.1:9/hook?x=1",
        "https://example.com",
        "http://[::1]:8080/h",
    ] {
        let r = node
            .post_json(
                "/v1/messages",
                &key,
                &json!({"to": TO, "text": "cb", "callback_url": url}),
            )
            .await;
        assert_eq!(r.status, 202, "send {url:?}: {}", r.text);
        let (s, v) = node
            .admin(
                Method::PATCH,
                "/admin/v1/tenants/acme",
                Some(json!({"callback_url": url})),
            )
            .await;
        assert_eq!(s, 200, "patch {url:?}: {v}");
    }
    let (s, v) = node
        .admin(
            Method::PATCH,
            "/admin/v1/tenants/acme",
            Some(json!({"callback_url": null})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["callback_url"].is_null(), "{v}");
}
