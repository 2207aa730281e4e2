//! The cluster port's shared secret (`cluster_secret`): when set, every request between
//! members (Raft RPC, forwarded writes, the actor mesh's upgrade) carries it in one
//! header and the cluster port refuses a request without it, so that reaching the port is
//! no longer enough to propose entries. Unset, the port takes anyone who reaches it (the
//! README's advice: a private network or a firewall).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header that carries the secret.
pub const HEADER: &str = "x-smsgw-cluster-secret";

/// Compares without leaking where the first difference is (only the length).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `router` refusing, with 401 in the contract's error shape, every request that does not
/// carry `secret` (unchanged when there is no secret).
pub fn guard(router: axum::Router, secret: Option<Arc<str>>) -> axum::Router {
    let Some(secret) = secret else {
        return router;
    };
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let secret = secret.clone();
            async move {
                let given = req.headers().get(HEADER).map(HeaderValue::as_bytes);
                if given.is_some_and(|g| same(g, secret.as_bytes())) {
                    return next.run(req).await;
                }
                refusal()
            }
        },
    ))
}

fn refusal() -> Response {
    let body = serde_json::json!({"error": {"code": "unauthorized",
        "message": "the cluster port needs this cluster's secret (cluster_secret)"}});
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comparison_needs_every_byte() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcde"));
    }
}
