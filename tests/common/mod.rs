//! Black-box harness: starts the real `smsgw` binary (nodes and SMSC simulators) as
//! child processes on free 127.0.0.1 ports, drives them over HTTP, and kills them on drop.
#![allow(dead_code)]

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smsgw")
}

/// A free 127.0.0.1 port for a child to listen on, outside the kernel's ephemeral range
/// so no client socket of a parallel test can take it first (see `smsgw::chaos::ports`).
pub fn free_port() -> u16 {
    smsgw::chaos::ports::free_port().expect("a free port below the ephemeral range")
}

/// Polls `f` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(args: &[String], envs: &[(String, String)], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "info")
            // The test receivers (webhooks) listen on 127.0.0.1; a test of the SSRF
            // guard sets it back to false in `envs`.
            .env("SMSGW_WEBHOOK_ALLOW_PRIVATE", "true")
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn smsgw");
        Proc {
            child: Some(child),
            log,
        }
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A simulated SMSC process.
pub struct Smsc {
    pub proc: Proc,
    pub port: u16,
    pub control: u16,
    pub system_id: String,
    pub ledger: PathBuf,
    /// "smpp", "cmpp", "smgp" or "sgip".
    pub protocol: String,
}

impl Smsc {
    /// Starts `smsgw sim smsc` with extra flags; waits until it answers /stats.
    pub async fn start(dir: &Path, name: &str, extra: &[&str]) -> Smsc {
        Smsc::start_protocol(dir, name, "smpp", extra).await
    }

    /// Like [`Smsc::start`] for another operator protocol (`--protocol cmpp|smgp|sgip`).
    pub async fn start_protocol(dir: &Path, name: &str, protocol: &str, extra: &[&str]) -> Smsc {
        let port = free_port();
        let control = free_port();
        let ledger = dir.join(format!("{name}.ledger.jsonl"));
        let mut args: Vec<String> = vec![
            "sim".into(),
            "smsc".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--control".into(),
            format!("127.0.0.1:{control}"),
            "--system-id".into(),
            name.into(),
            "--password".into(),
            "pw".into(),
            "--ledger".into(),
            ledger.display().to_string(),
        ];
        if protocol != "smpp" {
            args.extend(["--protocol".to_string(), protocol.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(&args, &[], dir.join(format!("{name}.log")));
        let s = Smsc {
            proc,
            port,
            control,
            system_id: name.into(),
            ledger,
            protocol: protocol.into(),
        };
        eventually("smsc up", Duration::from_secs(20), || async {
            s.stats().await
        })
        .await;
        s
    }

    /// The simulator's counters.
    pub async fn stats(&self) -> Option<Value> {
        let r = client()
            .get(format!("http://127.0.0.1:{}/stats", self.control))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Accepted submits recorded in the ledger.
    pub fn ledger_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.ledger)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The JSON body to create a channel pointing at this simulator.
    pub fn channel(&self, id: &str) -> Value {
        json!({"id": id, "protocol": self.protocol, "host": "127.0.0.1", "port": self.port,
               "system_id": self.system_id, "password": "pw", "tps": 2000, "window": 16, "enquire_link_seconds": 5})
    }
}

/// A gateway node process.
pub struct GwNode {
    /// Its id in the cluster (1 for a single node).
    pub node_id: u64,
    pub proc: Proc,
    pub http: u16,
    pub cluster: u16,
    pub dir: PathBuf,
    pub token: String,
    pub extra: Vec<String>,
    /// Environment of the node process (e.g. SMSGW_FAILPOINTS).
    pub envs: Vec<(String, String)>,
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn client() -> reqwest::Client {
    smsgw::http_client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

impl GwNode {
    /// Starts `smsgw start` on fresh ports with its data in `dir`.
    pub async fn start(dir: &Path, extra: &[&str]) -> GwNode {
        Self::start_with_env(dir, extra, &[]).await
    }

    /// Like `start`, with environment variables for the node process.
    pub async fn start_with_env(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> GwNode {
        let mut n = GwNode {
            node_id: 1,
            proc: Proc {
                child: None,
                log: dir.join("node.log"),
            },
            http: free_port(),
            cluster: free_port(),
            dir: dir.to_path_buf(),
            token: ADMIN_TOKEN.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        n.restart().await;
        n
    }

    /// (Re)starts the process on the same ports and data dir and waits for /readyz.
    pub async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// (Re)starts the process on the same ports and data dir without waiting.
    pub fn spawn(&mut self) {
        let mut args: Vec<String> = vec![
            "start".into(),
            "--node-id".into(),
            self.node_id.to_string(),
            "--http".into(),
            format!("127.0.0.1:{}", self.http),
            "--cluster-addr".into(),
            format!("127.0.0.1:{}", self.cluster),
            "--data-dir".into(),
            self.dir.join("data").display().to_string(),
            "--admin-token".into(),
            self.token.clone(),
        ];
        args.extend(self.extra.iter().cloned());
        let n = std::fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0);
        self.proc = Proc::spawn(&args, &self.envs, self.dir.join(format!("node-{n}.log")));
    }

    /// Waits (bounded) until /readyz answers 200.
    pub async fn wait_ready(&self) {
        let url = self.url("/readyz");
        eventually("node ready", Duration::from_secs(60), || async {
            let r = client().get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// An admin call; returns (status, body).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = client()
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("admin request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a tenant and returns its API key.
    pub async fn tenant(&self, id: &str, extra: Value) -> String {
        let mut body =
            json!({"id": id, "name": id, "rate_limit": {"per_second": 10000, "burst": 20000}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (s, v) = self
            .admin(reqwest::Method::POST, "/admin/v1/tenants", Some(body))
            .await;
        assert_eq!(s, 201, "create tenant: {v}");
        v["api_key"].as_str().expect("api_key").to_string()
    }

    /// Creates a channel and a default route over `channels` (in order).
    pub async fn channels_and_route(&self, channels: &[Value]) {
        let mut ids = Vec::new();
        for c in channels {
            let (s, v) = self
                .admin(reqwest::Method::POST, "/admin/v1/channels", Some(c.clone()))
                .await;
            assert_eq!(s, 201, "create channel: {v}");
            ids.push(json!({"id": c["id"]}));
        }
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/routes",
                Some(json!({"id": "default", "match": {}, "channels": ids})),
            )
            .await;
        assert_eq!(s, 201, "create route: {v}");
    }

    /// Waits until every channel reports `bound`.
    pub async fn wait_bound(&self) {
        eventually("channels bound", Duration::from_secs(60), || async {
            let (_, v) = self
                .admin(reqwest::Method::GET, "/admin/v1/channels", None)
                .await;
            let all = v.as_array()?;
            (!all.is_empty() && all.iter().all(|c| c["state"] == "bound")).then_some(())
        })
        .await;
    }

    /// POST /v1/messages; returns (status, body).
    pub async fn send(&self, key: &str, body: Value) -> (u16, Value) {
        let r = client()
            .post(self.url("/v1/messages"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("send");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// GET /v1/messages/{id}.
    pub async fn message(&self, key: &str, id: &str) -> (u16, Value) {
        let r = client()
            .get(self.url(&format!("/v1/messages/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("get");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the message has `status`.
    pub async fn wait_status(&self, key: &str, id: &str, status: &str, timeout: Duration) -> Value {
        eventually(&format!("message {id} {status}"), timeout, || async {
            let (s, v) = self.message(key, id).await;
            (s == 200 && v["status"] == status).then_some(v)
        })
        .await
    }
}

/// A temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("smsgw-test-")
        .tempdir()
        .expect("tempdir")
}

// ---------- helpers added for t30..t90 (append only) ----------

/// A raw HTTP answer: status, headers, body text and the body parsed as JSON (Null if not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// The `Retry-After` header as whole seconds, if present and numeric.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// The final statuses of the contract.
pub const FINAL_STATUSES: &[&str] = &[
    "delivered",
    "partially_delivered",
    "undelivered",
    "expired",
    "failed",
    "canceled",
];

/// The normalised error codes of the contract (section 4).
pub const NORMALISED_ERROR_CODES: &[&str] = &[
    "invalid_destination",
    "blocked",
    "rejected_by_carrier",
    "throttled",
    "no_route",
    "channel_unavailable",
    "expired",
    "unknown",
];

impl GwNode {
    /// Any request with optional bearer, extra headers and raw body bytes.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = client().request(method.clone(), self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    /// POST a JSON body with a bearer token.
    pub async fn post_json(&self, path: &str, bearer: &str, body: &Value) -> Resp {
        self.request(
            reqwest::Method::POST,
            path,
            Some(bearer),
            &[],
            Some(serde_json::to_vec(body).expect("json")),
        )
        .await
    }

    /// Creates a tenant and returns (api_key, webhook_secret).
    pub async fn tenant_with_secret(&self, id: &str, extra: Value) -> (String, String) {
        let mut body =
            json!({"id": id, "name": id, "rate_limit": {"per_second": 10000, "burst": 20000}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (s, v) = self
            .admin(reqwest::Method::POST, "/admin/v1/tenants", Some(body))
            .await;
        assert_eq!(s, 201, "create tenant: {v}");
        (
            v["api_key"].as_str().expect("api_key").to_string(),
            v["webhook_secret"]
                .as_str()
                .expect("webhook_secret")
                .to_string(),
        )
    }

    /// GET /v1/messages with a query string (without the `?`).
    pub async fn list(&self, key: &str, query: &str) -> (u16, Value) {
        let r = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/messages?{query}"),
                Some(key),
                &[],
                None,
            )
            .await;
        (r.status, r.json)
    }

    /// The Prometheus text of /metrics.
    pub async fn metrics_text(&self) -> String {
        let r = client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics");
        r.text().await.unwrap_or_default()
    }

    /// Sends every body concurrently over one shared client (building a client per request
    /// costs ~3 ms of CPU each and starves a 2-core box); answers in input order.
    pub async fn send_all(&self, key: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
        let c = client();
        let futs = bodies.into_iter().map(|b| {
            let req = c.post(self.url("/v1/messages")).bearer_auth(key).json(&b);
            async move {
                let r = req.send().await.expect("send");
                let s = r.status().as_u16();
                (s, r.json().await.unwrap_or(Value::Null))
            }
        });
        futures::future::join_all(futs).await
    }

    /// Sends every body concurrently, asserts each got 202, returns the ids in input order.
    pub async fn send_all_accepted(&self, key: &str, bodies: Vec<Value>) -> Vec<String> {
        self.send_all(key, bodies)
            .await
            .into_iter()
            .map(|(s, v)| {
                assert_eq!(s, 202, "send: {v}");
                v["id"].as_str().expect("id").to_string()
            })
            .collect()
    }

    /// Waits until the message has any final status; returns its status body.
    pub async fn wait_final(&self, key: &str, id: &str, timeout: Duration) -> Value {
        eventually(&format!("message {id} final"), timeout, || async {
            let (s, v) = self.message(key, id).await;
            (s == 200
                && v["status"]
                    .as_str()
                    .is_some_and(|st| FINAL_STATUSES.contains(&st)))
            .then_some(v)
        })
        .await
    }

    /// Waits until every message in `ids` has `status` (polling the list API, not one by one).
    pub async fn wait_all_status(
        &self,
        key: &str,
        ids: &[String],
        status: &str,
        timeout: Duration,
    ) {
        for id in ids {
            self.wait_status(key, id, status, timeout).await;
        }
    }

    /// The channel's view from GET /admin/v1/channels/{id}.
    pub async fn channel_view(&self, id: &str) -> Value {
        let (s, v) = self
            .admin(
                reqwest::Method::GET,
                &format!("/admin/v1/channels/{id}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "channel {id}: {v}");
        v
    }
}

/// Copies sent more than once at an SMSC: ledger lines with the same destination and
/// payload beyond the first (tests give every message a distinct text).
pub fn ledger_duplicates(lines: &[Value]) -> usize {
    let mut copies: std::collections::HashMap<(String, String), usize> =
        std::collections::HashMap::new();
    for l in lines {
        let k = (
            l["dest"].as_str().unwrap_or("").to_string(),
            l["short_message_hex"].as_str().unwrap_or("").to_string(),
        );
        *copies.entry(k).or_default() += 1;
    }
    copies.values().map(|c| c - 1).sum()
}

/// The value of one Prometheus sample: `name` with every `labels` pair (`k="v"`) present;
/// summed over the matching series.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, lbls) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| lbls.split(',').any(|p| p == format!("{k}=\"{v}\"")))
        {
            let v: f64 = value.trim().parse().ok()?;
            total = Some(total.unwrap_or(0.0) + v);
        }
    }
    total
}

/// Prints the tail of every `*.log` in a test's directory when the test panics, so a
/// failure carries the node's and the simulators' logs. Declare it after the tempdir.
pub struct LogsOnFailure(pub PathBuf);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(rd) = std::fs::read_dir(&self.0) else {
            return;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(80);
            eprintln!(
                "===== {} (last {} of {} lines) =====",
                f.display(),
                lines.len() - from,
                lines.len()
            );
            for l in &lines[from..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Lines of a node log that look like a panic or an error.
pub fn log_problems(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("panicked") || l.contains(" ERROR "))
        .map(String::from)
        .collect()
}

/// Runs the binary with `args` to completion (bounded); returns (exit code, stdout, stderr).
/// The exit code is None when it had to be killed after `timeout`.
pub fn run_bounded(
    args: &[&str],
    envs: &[(&str, &str)],
    dir: &Path,
    timeout: Duration,
) -> (Option<i32>, String, String) {
    let out_path = dir.join(format!("run-{}.out", free_port()));
    let err_path = out_path.with_extension("err");
    let out = std::fs::File::create(&out_path).expect("out file");
    let err = std::fs::File::create(&err_path).expect("err file");
    let mut child = Command::new(bin())
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn smsgw");
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        code,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

impl Smsc {
    /// The ledger once it holds at least `n` lines (it is flushed every 100 ms), read again
    /// a little later so that late copies are in it too.
    pub async fn ledger_at_least(&self, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} ledger lines"),
            Duration::from_secs(10),
            || async { (self.ledger_lines().len() >= n).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.ledger_lines()
    }
}

/// One SMSC simulator (started with `smsc_flags`), one node (with `envs`), a channel "a"
/// to the simulator as the default route, tenant "acme", all binds up: the setup most
/// black-box tests start from. Returns the simulator, the node and the tenant's API key.
pub async fn gateway_with_smsc(
    dir: &Path,
    name: &str,
    smsc_flags: &[&str],
    envs: &[(&str, &str)],
) -> (Smsc, GwNode, String) {
    let smsc = Smsc::start(dir, name, smsc_flags).await;
    let node = GwNode::start_with_env(dir, &[], envs).await;
    node.channels_and_route(&[smsc.channel("a")]).await;
    let key = node.tenant("acme", json!({})).await;
    node.wait_bound().await;
    (smsc, node, key)
}

// ---------- HTTP upstream provider simulator (t96) ----------

/// A `smsgw sim http-provider` process (a REST SMS provider) on a free port.
pub struct HttpProvider {
    pub proc: Proc,
    pub port: u16,
}

impl HttpProvider {
    /// Starts the provider with extra flags; waits until it answers /stats.
    pub async fn start(dir: &Path, name: &str, extra: &[&str]) -> HttpProvider {
        Self::start_on(free_port(), dir, name, extra).await
    }

    /// Like `start`, on a given port (e.g. one a channel already points at).
    pub async fn start_on(port: u16, dir: &Path, name: &str, extra: &[&str]) -> HttpProvider {
        let mut args: Vec<String> = vec![
            "sim".into(),
            "http-provider".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(&args, &[], dir.join(format!("{name}.log")));
        let p = HttpProvider { proc, port };
        eventually("http provider up", Duration::from_secs(20), || async {
            p.stats().await
        })
        .await;
        p
    }

    /// The provider's counters.
    pub async fn stats(&self) -> Option<Value> {
        let r = client()
            .get(format!("http://127.0.0.1:{}/stats", self.port))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// The messages the provider received, oldest first.
    pub async fn messages(&self) -> Vec<Value> {
        let r = client()
            .get(format!("http://127.0.0.1:{}/messages", self.port))
            .send()
            .await
            .expect("provider /messages");
        r.json::<Vec<Value>>().await.unwrap_or_default()
    }

    /// A channel body for this provider: JSON request template with an API key in
    /// `{password}`, id at `/message/id`, the simulator's error codes mapped, receipts
    /// authenticated with `receipt_token`.
    pub fn channel(&self, id: &str, receipt_token: &str) -> Value {
        json!({"id": id, "protocol": "http", "tps": 500, "window": 16,
        "system_id": "acct-1", "password": "provider-api-key",
        "options": {
            "request": {
                "url": format!("http://127.0.0.1:{}/sms", self.port),
                "method": "POST",
                "headers": {"Authorization": "Bearer {password}"},
                "body": {"to": "{to}", "from": "{from}", "text": "{text}", "reference": "{reference}"}
            },
            "response": {"id_path": "/message/id", "error_code_path": "error.code",
                         "error_map": {"21211": "invalid_destination"}},
            "receipts": {
                "auth": {"type": "token", "token": receipt_token},
                "id_path": "data.id", "status_path": "data.status", "error_code_path": "data.error_code"
            }
        }})
    }
}

// ---------- a cluster of node processes (added for t65, append only) ----------

/// Starts `n` gateway nodes (ids 1..=n) as one Raft cluster with `--peers`, each with its
/// data in `dir/n<id>`; returns them once every node answers /readyz (has a leader).
pub async fn start_cluster(dir: &Path, n: u64) -> Vec<GwNode> {
    let members: Vec<(u64, u16, u16)> = (1..=n).map(|id| (id, free_port(), free_port())).collect();
    let peers = members
        .iter()
        .map(|(id, _, c)| format!("{id}@127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (id, http, cluster) in &members {
        let ndir = dir.join(format!("n{id}"));
        std::fs::create_dir_all(&ndir).expect("node dir");
        let args: Vec<String> = vec![
            "start".into(),
            "--node-id".into(),
            id.to_string(),
            "--http".into(),
            format!("127.0.0.1:{http}"),
            "--cluster-addr".into(),
            format!("127.0.0.1:{cluster}"),
            "--data-dir".into(),
            ndir.join("data").display().to_string(),
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
            "--peers".into(),
            peers.clone(),
        ];
        let proc = Proc::spawn(&args, &[], dir.join(format!("node-{id}.log")));
        nodes.push(GwNode {
            node_id: *id,
            proc,
            http: *http,
            cluster: *cluster,
            dir: ndir,
            token: ADMIN_TOKEN.into(),
            extra: vec!["--peers".into(), peers.clone()],
            envs: Vec::new(),
        });
    }
    for node in &nodes {
        let url = node.url("/readyz");
        eventually("cluster node ready", Duration::from_secs(60), || async {
            let r = client().get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }
    nodes
}
