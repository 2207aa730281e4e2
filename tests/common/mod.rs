//! Black-box harness: starts the real `smsgw` binary (nodes and SMSC simulators) as
//! child processes on free 127.0.0.1 ports, drives them over HTTP, and kills them on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smsgw")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind("127.0.0.1:0")
            && let Ok(a) = l.local_addr()
        {
            return a.port();
        }
    }
    panic!("no free port");
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
    fn spawn(args: &[String], envs: &[(String, String)], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "info")
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
}

impl Smsc {
    /// Starts `smsgw sim smsc` with extra flags; waits until it answers /stats.
    pub async fn start(dir: &Path, name: &str, extra: &[&str]) -> Smsc {
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
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(&args, &[], dir.join(format!("{name}.log")));
        let s = Smsc {
            proc,
            port,
            control,
            system_id: name.into(),
            ledger,
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
        json!({"id": id, "protocol": "smpp", "host": "127.0.0.1", "port": self.port,
               "system_id": self.system_id, "password": "pw", "tps": 2000, "window": 16, "enquire_link_seconds": 5})
    }
}

/// A gateway node process.
pub struct GwNode {
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
        let mut args: Vec<String> = vec![
            "start".into(),
            "--node-id".into(),
            "1".into(),
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
        eventually("channels bound", Duration::from_secs(20), || async {
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
