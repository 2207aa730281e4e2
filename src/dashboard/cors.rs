//! Cross-origin access for the dashboard's failover: a page served by node A keeps
//! working after A dies by calling node B's API directly. B answers such requests (and
//! their preflights) only when the page's origin is the HTTP address of a cluster member
//! (or, while the membership does not know a member's HTTP address, a port on that
//! member's host), so scripts of other sites cannot read the API. The API takes only
//! bearer tokens, never cookies, so a browser never sends credentials on its own.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;

/// One cluster member's addresses as the membership knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// `host:port` of its HTTP API; empty while the membership does not know it.
    pub http: String,
    /// `host:port` of its Raft transport.
    pub cluster: String,
}

fn split_host(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').unwrap_or((addr, ""))
}

fn loopback(h: &str) -> bool {
    h == "127.0.0.1" || h == "localhost" || h == "[::1]"
}

fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (loopback(a) && loopback(b))
}

/// True when `origin` (`scheme://host[:port]`) is the HTTP address of a cluster member.
/// A member listening on an unspecified address (0.0.0.0, [::]) is reached under any host
/// name, so only its port must match; a member whose HTTP address the membership does
/// not know yet is matched by the host of its Raft address (any port on that host).
pub fn origin_allowed(origin: &str, members: &[Member]) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return false;
    }
    let (oh, op) = split_host(rest);
    members.iter().any(|m| {
        if m.http.is_empty() {
            let (ch, _) = split_host(&m.cluster);
            return !ch.is_empty() && same_host(ch, oh);
        }
        let (mh, mp) = split_host(&m.http);
        mp == op && (mh == "0.0.0.0" || mh == "[::]" || same_host(mh, oh))
    })
}

fn members(st: &AppState) -> Vec<Member> {
    st.consensus
        .members()
        .into_iter()
        .map(|(_, info, _)| Member {
            http: info.http_addr,
            cluster: info.cluster_addr,
        })
        .collect()
}

fn allow(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
}

/// The middleware: answers preflights of allowed origins and marks their responses
/// readable. Requests without an `Origin` header pass straight through.
pub async fn layer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| origin_allowed(o, &members(&st)));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !allowed {
            return StatusCode::FORBIDDEN.into_response();
        }
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        allow(h, &origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, idempotency-key"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return resp;
    }
    let mut resp = next.run(req).await;
    if allowed {
        allow(resp.headers_mut(), &origin);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::{Member, origin_allowed};

    fn m(http: &str, cluster: &str) -> Member {
        Member {
            http: http.into(),
            cluster: cluster.into(),
        }
    }

    #[test]
    fn only_member_origins() {
        let ms = vec![
            m("127.0.0.1:8081", "127.0.0.1:9081"),
            m("0.0.0.0:8082", "0.0.0.0:9082"),
        ];
        assert!(origin_allowed("http://127.0.0.1:8081", &ms));
        assert!(
            origin_allowed("http://localhost:8081", &ms),
            "loopback names"
        );
        assert!(
            origin_allowed("https://gw.example:8082", &ms),
            "unspecified host"
        );
        assert!(!origin_allowed("http://127.0.0.1:8083", &ms));
        assert!(!origin_allowed("http://evil.example:8081", &ms));
        assert!(!origin_allowed("null", &ms));
        assert!(!origin_allowed("http://127.0.0.1:8081/x", &ms));
        assert!(!origin_allowed("ftp://127.0.0.1:8081", &ms));
    }

    #[test]
    fn member_without_known_http_address_by_host() {
        let ms = vec![m("", "10.0.0.2:9080")];
        assert!(origin_allowed("http://10.0.0.2:8080", &ms));
        assert!(origin_allowed("http://10.0.0.2:1234", &ms));
        assert!(!origin_allowed("http://10.0.0.3:8080", &ms));
        assert!(!origin_allowed("http://x@10.0.0.2:8080", &ms));
    }
}
