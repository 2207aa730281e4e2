//! What a request body may be, decided from the headers before a byte of it is read:
//! no larger than the node's `max_body_bytes` (a `Content-Length` over it is refused at
//! once, so a client sending `Expect: 100-continue` gets the 413 instead of `100
//! Continue` and never uploads the body), and not compressed (the API reads plain JSON:
//! a `Content-Encoding` other than `identity` is 415 naming the header, never a body
//! misread as malformed JSON). A body without a `Content-Length` (chunked) is still cut
//! at the limit while it is read; that 413 gets the same message.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The limits the guard applies (one per router; every route shares them today).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `max_body_bytes`: the largest request body of any endpoint.
    pub max_body: usize,
}

/// Why a request's headers already refuse its body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    /// `Content-Length` is over the limit.
    #[error(
        "request body is too large: Content-Length is {length} bytes, the limit of this endpoint is {limit} bytes (max_body_bytes)"
    )]
    TooLarge {
        /// The declared length.
        length: u64,
        /// The limit it is over.
        limit: usize,
    },
    /// A `Content-Encoding` the API does not decode.
    #[error(
        "Content-Encoding {encoding:?} is not supported: send the body uncompressed (identity)"
    )]
    Encoded {
        /// The header's value as sent.
        encoding: String,
    },
}

impl From<BodyRefusal> for ApiError {
    fn from(r: BodyRefusal) -> Self {
        match &r {
            BodyRefusal::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                r.to_string(),
            ),
            BodyRefusal::Encoded { .. } => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                r.to_string(),
            )
            .field("Content-Encoding"),
        }
    }
}

/// The refusal the headers alone decide, if any (pure: tested below).
pub fn check(headers: &HeaderMap, limits: BodyLimits) -> Option<BodyRefusal> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = length
        && length > limits.max_body as u64
    {
        return Some(BodyRefusal::TooLarge {
            length,
            limit: limits.max_body,
        });
    }
    // A request without a body (GET, an empty POST) may carry the header harmlessly.
    let has_body = length.map_or_else(
        || headers.contains_key(header::TRANSFER_ENCODING),
        |n| n > 0,
    );
    if !has_body {
        return None;
    }
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let plain = text
            .split(',')
            .map(str::trim)
            .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"));
        if !plain {
            return Some(BodyRefusal::Encoded {
                encoding: text.trim().to_string(),
            });
        }
    }
    None
}

/// The middleware: refuses from the headers before the handler reads the body, and gives
/// the 413 of a body cut while it was read (no `Content-Length`) the limit in words.
pub async fn layer(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    if let Some(refusal) = check(req.headers(), limits) {
        return ApiError::from(refusal).into_response();
    }
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "request body is too large: the limit of this endpoint is {} bytes (max_body_bytes)",
                limits.max_body
            ),
        )
        .into_response();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const LIMITS: BodyLimits = BodyLimits { max_body: 2048 };

    #[test]
    fn refusals_from_headers() {
        /// Request headers, and the status they are refused with (None: let through).
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[], None),
            (&[("content-length", "2048")], None),
            (&[("content-length", "2049")], Some("413")),
            (
                &[("content-length", "9999999"), ("expect", "100-continue")],
                Some("413"),
            ),
            (
                &[("content-length", "10"), ("content-encoding", "gzip")],
                Some("415"),
            ),
            (
                &[("content-length", "10"), ("content-encoding", "identity")],
                None,
            ),
            (
                &[("content-length", "10"), ("content-encoding", "Identity, ")],
                None,
            ),
            (
                &[
                    ("content-length", "10"),
                    ("content-encoding", "identity, br"),
                ],
                Some("415"),
            ),
            (
                &[
                    ("transfer-encoding", "chunked"),
                    ("content-encoding", "deflate"),
                ],
                Some("415"),
            ),
            // No body: the header describes nothing.
            (&[("content-encoding", "gzip")], None),
            (
                &[("content-length", "0"), ("content-encoding", "gzip")],
                None,
            ),
        ];
        for (pairs, want) in cases {
            let got = check(&headers(pairs), LIMITS)
                .map(|r| ApiError::from(r).status.as_str().to_string());
            assert_eq!(got.as_deref(), *want, "{pairs:?}");
        }
    }

    #[test]
    fn messages_state_the_limit_and_name_the_header() {
        let e = ApiError::from(
            check(&headers(&[("content-length", "3000")]), LIMITS).expect("refused"),
        );
        assert_eq!(e.code, "body_too_large");
        assert!(e.message.contains("2048 bytes"), "{}", e.message);
        assert!(e.message.contains("3000"), "{}", e.message);
        let e = ApiError::from(
            check(
                &headers(&[("content-length", "5"), ("content-encoding", "gzip")]),
                LIMITS,
            )
            .expect("refused"),
        );
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("unsupported_media_type", Some("Content-Encoding"))
        );
        assert!(e.message.contains("gzip"), "{}", e.message);
    }
}
