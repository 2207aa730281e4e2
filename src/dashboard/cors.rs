//! Cross-origin access for the dashboard's failover: a page served by node A keeps
//! working after A dies by calling node B's API directly. B answers such requests (and
//! their preflights) only when the page's origin is the HTTP address of a cluster member,
//! so no other site's script can read the API, even with a token.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;

/// True when `origin` (`scheme://host[:port]`) is one of `members` (`host:port` HTTP
/// addresses). A member listening on an unspecified address (0.0.0.0, [::]) is reached
/// under any host name, so only its port must match.
pub fn origin_allowed(origin: &str, members: &[String]) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if rest.is_empty() || rest.contains('/') {
        return false;
    }
    members.iter().any(|m| {
        if m.eq_ignore_ascii_case(rest) {
            return true;
        }
        let (Some((mh, mp)), Some((_, op))) = (m.rsplit_once(':'), rest.rsplit_once(':')) else {
            return false;
        };
        let unspecified = mh == "0.0.0.0" || mh == "[::]";
        let loopback = |h: &str| h == "127.0.0.1" || h == "localhost" || h == "[::1]";
        let oh = rest.rsplit_once(':').map(|x| x.0).unwrap_or(rest);
        mp == op && (unspecified || (loopback(mh) && loopback(oh)))
    })
}

fn member_http(st: &AppState) -> Vec<String> {
    st.consensus
        .members()
        .into_iter()
        .map(|(_, info, _)| info.http_addr)
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
        .is_ok_and(|o| origin_allowed(o, &member_http(&st)));
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
    use super::origin_allowed;

    #[test]
    fn only_member_origins() {
        let m = vec!["127.0.0.1:8081".to_string(), "0.0.0.0:8082".to_string()];
        assert!(origin_allowed("http://127.0.0.1:8081", &m));
        assert!(
            origin_allowed("http://localhost:8081", &m),
            "loopback names"
        );
        assert!(
            origin_allowed("https://gw.example:8082", &m),
            "unspecified host"
        );
        assert!(!origin_allowed("http://127.0.0.1:8083", &m));
        assert!(!origin_allowed("http://evil.example:8081", &m));
        assert!(!origin_allowed("null", &m));
        assert!(!origin_allowed("http://127.0.0.1:8081/x", &m));
        assert!(!origin_allowed("ftp://127.0.0.1:8081", &m));
    }
}
