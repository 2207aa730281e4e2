//! The operations dashboard: `GET /dashboard` on every node, a single page whose HTML,
//! script, styles and icon are compiled into the binary (no CDN, works offline). The page
//! reads the admin API with the admin token the operator types once (kept in the tab's
//! `sessionStorage` only) and switches to another node's address from the cluster view
//! when the node that served it stops answering (`cors` lets those nodes answer it).
//!
//! - `history`: the 15-minute ring buffer behind the charts (`GET /admin/v1/stats/history`).
//! - `prom`: reads this node's Prometheus text back into numbers for `history`.
//! - `lookup`: admin message lookup by id or client_ref across tenants.
//! - `cors`: cross-origin access to the API for the pages of the other cluster nodes.

pub mod cors;
pub mod history;
pub mod lookup;
pub mod prom;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;

/// The page's files: (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("assets/icon.svg"),
    ),
];

const INDEX: &str = include_str!("assets/index.html");

/// Scripts and styles only from this node; data from this node or another node's
/// address (failover); never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn with_headers(mut resp: Response, content_type: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// `GET /dashboard`: the page (public; every figure on it needs the admin token).
pub async fn page() -> Response {
    with_headers(INDEX.into_response(), "text/html; charset=utf-8")
}

/// `GET /dashboard/{asset}`: the page's script, styles and icon.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, ct, body) = ASSETS
        .iter()
        .find(|(n, ..)| *n == name)
        .ok_or_else(|| ApiError::not_found("asset"))?;
    Ok(with_headers(body.into_response(), ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the page names is served, and nothing is fetched from elsewhere.
    #[test]
    fn page_refers_only_to_embedded_assets() {
        for (name, ..) in ASSETS {
            if *name != "icon.svg" {
                assert!(INDEX.contains(&format!("/dashboard/{name}")), "{name}");
            }
        }
        for (name, _, body) in ASSETS {
            let text = String::from_utf8_lossy(body);
            for bad in ["https://", "cdn.", "googleapis", "unpkg"] {
                assert!(
                    !text.contains(bad) && !INDEX.contains(bad),
                    "{name} refers to {bad}"
                );
            }
        }
    }
}
