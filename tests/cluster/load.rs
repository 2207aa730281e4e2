//! A steady stream of sends spread over several nodes, retrying once on another node,
//! as a client of a cluster would: the accepted ids and the failed attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;

use crate::common::client;

/// What a stream saw.
#[derive(Default, Debug)]
pub struct StreamResult {
    pub accepted: Vec<String>,
    /// Requests that failed even after the retry on another node.
    pub failed: usize,
    /// Requests that needed the retry.
    pub retried: usize,
}

/// Sends one message every `every` through `urls` (round robin; a failure is retried
/// once on the next url) until `stop` is set. Texts are unique (`tag` + counter).
pub fn stream(
    urls: Arc<Mutex<Vec<String>>>,
    key: String,
    tag: &'static str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<StreamResult> {
    tokio::spawn(async move {
        let http = client();
        let mut out = StreamResult::default();
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) && i < 100_000 {
            let targets = urls.lock().await.clone();
            if targets.is_empty() {
                break;
            }
            let body = json!({"to": "+4915112345678", "text": format!("{tag} {i}"), "client_ref": format!("{tag}-{i}")});
            let mut ok = false;
            for attempt in 0..2 {
                let url = &targets[(i + attempt) % targets.len()];
                let r = http
                    .post(format!("{url}/v1/messages"))
                    .bearer_auth(&key)
                    .header("Idempotency-Key", format!("{tag}-{i}"))
                    .timeout(Duration::from_secs(5))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = r
                    && (r.status().as_u16() == 202 || r.status().as_u16() == 200)
                    && let Ok(v) = r.json::<serde_json::Value>().await
                    && let Some(id) = v["id"].as_str()
                {
                    out.accepted.push(id.to_string());
                    if attempt > 0 {
                        out.retried += 1;
                    }
                    ok = true;
                    break;
                }
            }
            if !ok {
                out.failed += 1;
            }
            i += 1;
            tokio::time::sleep(every).await;
        }
        out.accepted.sort();
        out.accepted.dedup();
        out
    })
}
