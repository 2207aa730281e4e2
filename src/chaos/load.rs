//! The load generator: sends at a fixed offered rate with a concurrency cap, one unique
//! `client_ref` (also the `Idempotency-Key`) per request, round-robin over the nodes, and
//! on a failed attempt (connection error, timeout, 5xx) retries once on the next node after
//! the answer's `Retry-After` (at most 2 s) or 250 ms.
//! Every request is recorded for the oracle and the charts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::Semaphore;

/// The answer to one attempt: an HTTP status, or 0 for no answer (refused, reset, timeout).
pub type Code = u16;

/// One send request, with up to one retry.
#[derive(Debug, Clone)]
pub struct Request {
    /// The unique reference (also the text's tail and the idempotency key).
    pub client_ref: String,
    /// Started, ms since the run started.
    pub t_ms: u64,
    /// First attempt's answer.
    pub first: Code,
    /// First attempt's latency, ms.
    pub first_ms: f64,
    /// Retry's answer, if a retry was made.
    pub retry: Option<Code>,
    /// Latency of the answer the client finally got, ms.
    pub final_ms: f64,
    /// Message id from a 200/202.
    pub id: Option<String>,
    /// `Retry-After` on a 429.
    pub retry_after: bool,
}

impl Request {
    /// The answer the client was left with.
    pub fn final_code(&self) -> Code {
        self.retry.unwrap_or(self.first)
    }
}

/// An answer that counts as the API working: 2xx, or the 4xx the contract promises under
/// load (429 with Retry-After).
pub fn is_available(code: Code) -> bool {
    (200..300).contains(&code) || code == 429
}

/// Accepted (202, or 200 for an idempotent replay).
pub fn is_accepted(code: Code) -> bool {
    code == 202 || code == 200
}

/// Should the client try another node?
fn is_retryable(code: Code) -> bool {
    code == 0 || code >= 500
}

/// The running generator's shared parts.
pub struct Load {
    /// Every request made, in completion order.
    pub requests: Mutex<Vec<Request>>,
    /// Requests started.
    pub started: AtomicU64,
}

/// What to send and where.
pub struct LoadPlan {
    /// Node HTTP base URLs, in id order (the client's view of the cluster).
    pub urls: Vec<String>,
    /// Tenant API key.
    pub api_key: String,
    /// Requests per second.
    pub rate: u32,
    /// In flight at most.
    pub concurrency: usize,
    /// Total requests at most.
    pub max: u64,
    /// Load window.
    pub duration: Duration,
    /// Retry once on another node.
    pub retry: bool,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Prefix of every client_ref (the run's seed).
    pub prefix: String,
    /// RNG seed (destinations, first node).
    pub seed: u64,
}

/// The text of the message for `client_ref`: plain GSM 7-bit so the SMSC ledger shows it
/// byte for byte.
pub fn text_for(client_ref: &str) -> String {
    format!("chaos {client_ref}")
}

/// Recovers the client_ref from an SMSC ledger's `short_message_hex`.
pub fn client_ref_from_hex(hex_text: &str) -> Option<String> {
    let bytes = hex::decode(hex_text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("chaos ").map(str::to_string)
}

/// Sends one message with `key` through `url`; returns the answer code, the id and
/// the `Retry-After` seconds, if any.
pub async fn send_one(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    client_ref: &str,
    to: &str,
) -> (Code, Option<String>, Option<u64>) {
    let body = json!({"to": to, "text": text_for(client_ref), "client_ref": client_ref});
    let r = client
        .post(format!("{url}/v1/messages"))
        .bearer_auth(key)
        .header("Idempotency-Key", client_ref)
        .json(&body)
        .send()
        .await;
    match r {
        Err(_) => (0, None, None),
        Ok(r) => {
            let code = r.status().as_u16();
            let ra = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            (code, v["id"].as_str().map(str::to_string), ra)
        }
    }
}

impl Load {
    /// Runs the plan to its end (time or count), then waits for requests in flight.
    pub async fn run(plan: LoadPlan, clock: Instant) -> Arc<Load> {
        let load = Arc::new(Load {
            requests: Mutex::new(Vec::new()),
            started: AtomicU64::new(0),
        });
        let client = crate::http_client::builder()
            .timeout(plan.timeout)
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(plan.concurrency)
            .build()
            .unwrap_or_default();
        let sem = Arc::new(Semaphore::new(plan.concurrency));
        let mut rng = StdRng::seed_from_u64(plan.seed);
        let plan = Arc::new(plan);
        let period = Duration::from_secs_f64(1.0 / f64::from(plan.rate.max(1)));
        let begin = Instant::now();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut tasks = tokio::task::JoinSet::new();
        let mut n: u64 = 0;
        while n < plan.max && begin.elapsed() < plan.duration {
            tick.tick().await;
            // A full client (concurrency cap) skips the tick: the offered rate drops rather
            // than queueing without bound.
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                continue;
            };
            n += 1;
            load.started.fetch_add(1, Ordering::Relaxed);
            let client_ref = format!("{}-{n}", plan.prefix);
            let to = format!("+49151{:08}", rng.random_range(0..100_000_000u64));
            let first_node = rng.random_range(0..plan.urls.len());
            let (plan, client, load) = (plan.clone(), client.clone(), load.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let t0 = Instant::now();
                let t_ms = clock.elapsed().as_millis() as u64;
                let url = &plan.urls[first_node];
                let (first, mut id, mut ra) =
                    send_one(&client, url, &plan.api_key, &client_ref, &to).await;
                let first_ms = t0.elapsed().as_secs_f64() * 1000.0;
                let mut retry = None;
                if plan.retry && is_retryable(first) && plan.urls.len() > 1 {
                    // As a careful client does: wait what Retry-After asks (at most 2 s),
                    // else 250 ms, then try the next node once.
                    let wait = ra.map_or(250, |s| (s * 1000).min(2000));
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let url = &plan.urls[(first_node + 1) % plan.urls.len()];
                    let (code, rid, rra) =
                        send_one(&client, url, &plan.api_key, &client_ref, &to).await;
                    retry = Some(code);
                    id = rid;
                    ra = rra;
                }
                let req = Request {
                    client_ref,
                    t_ms,
                    first,
                    first_ms,
                    retry,
                    final_ms: t0.elapsed().as_secs_f64() * 1000.0,
                    id,
                    retry_after: ra.is_some(),
                };
                load.requests
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(req);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        load
    }

    /// A copy of the records.
    pub fn records(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ref_survives_the_ledger_encoding() {
        let t = text_for("s42-17");
        assert_eq!(
            client_ref_from_hex(&hex::encode(t.as_bytes())).as_deref(),
            Some("s42-17")
        );
        assert_eq!(client_ref_from_hex("zz"), None);
        assert_eq!(client_ref_from_hex(&hex::encode(b"other")), None);
    }

    #[test]
    fn availability_classes() {
        assert!(is_available(202) && is_available(429) && !is_available(503));
        assert!(!is_available(0) && is_accepted(200) && !is_accepted(429));
        assert!(is_retryable(0) && is_retryable(503) && !is_retryable(429));
    }
}
