//! The load tool's HTTP/1.1 client for the send requests: one kept-alive connection per
//! worker and node, request bodies written by hand. The load generator shares the two
//! cores with the node it measures, so every microsecond it spends per request is taken
//! from the node: through reqwest (pool lookup, a channel hop per request, JSON values
//! built and serialised) it cost about 24 µs per single-message request, a fifth of what
//! the node spends on the message.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// How long one request may take before it counts as a timeout (as the reqwest path had).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One worker's connections, one per node, dialled on first use and again after an error.
pub struct LoadClient {
    nodes: Vec<Node>,
    authorization: String,
}

struct Node {
    /// `host:port`, what the connection dials and the Host header says.
    authority: String,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl LoadClient {
    /// A client for these node base URLs (`http://host:port`), sending with this API key.
    pub fn new(bases: &[String], key: &str) -> LoadClient {
        LoadClient {
            nodes: bases
                .iter()
                .map(|b| Node {
                    authority: b.trim_start_matches("http://").to_string(),
                    conn: None,
                })
                .collect(),
            authorization: format!("Bearer {key}"),
        }
    }

    /// Sends one request (`k` messages; a batch when `batch`) to node `node`; `Err` says
    /// why it was not accepted: the status, or "timeout" / "connection".
    pub async fn send(&mut self, node: usize, batch: bool, n: u64, k: u64) -> Result<(), String> {
        let (path, body, want) = if batch {
            ("/v1/messages/batch", batch_body(n, k), 200)
        } else {
            ("/v1/messages", single_body(n), 202)
        };
        self.call(node, hyper::Method::POST, path, Some(body), want)
            .await
    }

    /// `GET /healthz` on node `node`: a request the node answers without any work, so a
    /// run of them measures what HTTP alone costs here (`--mode http-floor`).
    pub async fn probe(&mut self, node: usize) -> Result<(), String> {
        self.call(node, hyper::Method::GET, "/healthz", None, 200)
            .await
    }

    async fn call(
        &mut self,
        node: usize,
        method: hyper::Method,
        path: &str,
        body: Option<String>,
        want: u16,
    ) -> Result<(), String> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.request(node, method, path, body)).await {
            Ok(Ok(status)) if status == want => Ok(()),
            Ok(Ok(status)) => Err(status.to_string()),
            Ok(Err(())) => Err("connection".into()),
            Err(_) => {
                // The connection may still carry the late answer: never reuse it.
                if let Some(n) = self.nodes.get_mut(node) {
                    n.conn = None;
                }
                Err("timeout".into())
            }
        }
    }

    async fn request(
        &mut self,
        node: usize,
        method: hyper::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<u16, ()> {
        let target = self.nodes.get_mut(node).ok_or(())?;
        let mut conn = match target.conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => dial(&target.authority).await?,
        };
        conn.ready().await.map_err(|_| ())?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, target.authority.as_str())
            .header(hyper::header::AUTHORIZATION, self.authorization.as_str());
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|_| ())?;
        let resp = conn.send_request(req).await.map_err(|_| ())?;
        let status = resp.status().as_u16();
        // Read the answer to its end so the connection can carry the next request.
        resp.into_body().collect().await.map_err(|_| ())?;
        target.conn = Some(conn);
        Ok(status)
    }
}

async fn dial(authority: &str) -> Result<SendRequest<Full<Bytes>>, ()> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|_| ())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// `{"to":…,"text":"load n","client_ref":"rn"}`: the fields are digits and ASCII, so no
/// escaping is needed.
fn single_body(n: u64) -> String {
    format!(r#"{{"to":"+4915112345678","text":"load {n}","client_ref":"r{n}"}}"#)
}

fn batch_body(n: u64, k: u64) -> String {
    let mut body = String::with_capacity(16 + 72 * k as usize);
    body.push_str(r#"{"messages":["#);
    for j in 0..k {
        if j > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"to":"+4915112345678","text":"load {n}-{j}","client_ref":"r{n}-{j}"}}"#
        ));
    }
    body.push_str("]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_the_json_the_reqwest_path_sent() {
        let single: serde_json::Value = serde_json::from_str(&single_body(7)).unwrap();
        assert_eq!(
            single,
            serde_json::json!({"to": "+4915112345678", "text": "load 7", "client_ref": "r7"})
        );
        let batch: serde_json::Value = serde_json::from_str(&batch_body(3, 2)).unwrap();
        assert_eq!(batch["messages"].as_array().map(Vec::len), Some(2));
        assert_eq!(batch["messages"][1]["client_ref"], "r3-1");
    }
}
