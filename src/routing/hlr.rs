//! The number-portability / HLR hook: asks an HTTP endpoint which operator serves a
//! number now, so a ported number is routed to its real operator. Answers are cached
//! for a while; a slow or failing endpoint never blocks a send longer than the timeout
//! (the number-range table answers instead).
//!
//! Protocol: `GET <url>?msisdn=%2B4915112345678` → 200 with `{"mccmnc": "26202"}` (or
//! `{"mcc": "262", "mnc": "02"}`); anything else means "unknown".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cached answers at most (the cache is cleared when full: it only saves round trips).
const CACHE_MAX: usize = 100_000;

/// (endpoint, msisdn).
type CacheKey = (String, String);

/// HLR client with its cache.
pub struct Hlr {
    /// Built on first use (an engine without an HLR hook never builds one).
    client: std::sync::OnceLock<reqwest::Client>,
    /// (endpoint, msisdn) → (fetched at, MCC+MNC or None = endpoint said unknown).
    /// Keyed by endpoint too, so switching providers never serves the old one's answers.
    cache: Mutex<HashMap<CacheKey, (Instant, Option<String>)>>,
}

impl Default for Hlr {
    fn default() -> Self {
        Hlr {
            client: std::sync::OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

fn parse_answer(v: &serde_json::Value) -> Option<String> {
    let ok = |s: &str| (5..=6).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(s) = v.get("mccmnc").and_then(|x| x.as_str())
        && ok(s)
    {
        return Some(s.to_string());
    }
    let mcc = v.get("mcc")?.as_str()?;
    let mnc = v.get("mnc")?.as_str()?;
    let s = format!("{mcc}{mnc}");
    ok(&s).then_some(s)
}

impl Hlr {
    /// The operator of `msisdn` per the endpoint (cached for `ttl`), or None when the
    /// endpoint does not know, fails or takes longer than `timeout`.
    pub async fn lookup(
        &self,
        url: &str,
        msisdn: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Option<String> {
        let key = (url.to_string(), msisdn.to_string());
        if let Some((at, v)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < ttl
        {
            metrics::counter!("smsgw_hlr_lookups_total", "result" => "cached").increment(1);
            return v.clone();
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        let full = format!("{url}{sep}msisdn={}", msisdn.replace('+', "%2B"));
        let client = self.client.get_or_init(|| {
            crate::http_client::builder()
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        });
        let req = client.get(full).send();
        let answer = match tokio::time::timeout(timeout, req).await {
            Ok(Ok(r)) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                Ok(v) => Ok(parse_answer(&v)),
                Err(_) => Err("bad_body"),
            },
            Ok(Ok(_)) => Ok(None),
            Ok(Err(_)) => Err("error"),
            Err(_) => Err("timeout"),
        };
        match answer {
            Ok(v) => {
                metrics::counter!("smsgw_hlr_lookups_total", "result" => "ok").increment(1);
                let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if c.len() >= CACHE_MAX {
                    c.clear();
                }
                c.insert(key, (Instant::now(), v.clone()));
                v
            }
            Err(why) => {
                // Not cached: the next message asks again.
                metrics::counter!("smsgw_hlr_lookups_total", "result" => why).increment(1);
                tracing::debug!(
                    msisdn,
                    why,
                    "HLR lookup failed; using the number-range table"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers() {
        assert_eq!(
            parse_answer(&json!({"mccmnc": "26202"})),
            Some("26202".into())
        );
        assert_eq!(
            parse_answer(&json!({"mcc": "405", "mnc": "857"})),
            Some("405857".into())
        );
        assert_eq!(parse_answer(&json!({"mccmnc": "x"})), None);
        assert_eq!(parse_answer(&json!({})), None);
    }

    #[tokio::test]
    async fn timeout_and_cache() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h2 = hits.clone();
        let app = axum::Router::new()
            .route(
                "/fast",
                axum::routing::get(move || {
                    h2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { axum::Json(json!({"mccmnc": "26203"})) }
                }),
            )
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    axum::Json(json!({"mccmnc": "26203"}))
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(l, app).await });
        let h = Hlr::default();
        let ttl = Duration::from_secs(60);
        let t = Duration::from_millis(300);
        let fast = format!("http://{addr}/fast");
        assert_eq!(
            h.lookup(&fast, "+4915112345678", t, ttl).await,
            Some("26203".into())
        );
        assert_eq!(
            h.lookup(&fast, "+4915112345678", t, ttl).await,
            Some("26203".into())
        );
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "second answer cached"
        );
        let started = Instant::now();
        let slow = format!("http://{addr}/slow");
        assert_eq!(h.lookup(&slow, "+4915199999999", t, ttl).await, None);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
