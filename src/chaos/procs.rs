//! Node processes of a chaos run: `smsgw start` children on 127.0.0.1 with kill -9,
//! SIGSTOP/SIGCONT, SIGTERM and restart on the same ports and data dir. Every child is
//! killed when its handle is dropped (also on panic and ctrl-c) and, on Linux, when the
//! runner itself dies (`PR_SET_PDEATHSIG`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How one node is started (kept so it can be restarted identically).
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Raft node id.
    pub id: u64,
    /// HTTP API port.
    pub http: u16,
    /// Raft port (the real one; peers reach it through proxies).
    pub cluster: u16,
    /// Data dir.
    pub data_dir: PathBuf,
    /// `--peers` (initial members, real addresses).
    pub peers: String,
    /// Extra environment (peer proxy addresses, faults file).
    pub env: Vec<(String, String)>,
    /// Extra flags.
    pub args: Vec<String>,
}

/// The life of one node process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Up,
    /// SIGSTOPped.
    Paused,
    /// Not running (killed, stopped, exited, removed).
    Down,
}

/// One node and its current process.
pub struct NodeProc {
    /// How to start it.
    pub spec: NodeSpec,
    child: Option<Child>,
    /// Up, paused or down.
    pub state: NodeState,
    /// Log files, one per start.
    pub logs: Vec<PathBuf>,
    bin: PathBuf,
    dir: PathBuf,
}

impl NodeProc {
    /// A node not yet started; logs go to `dir`.
    pub fn new(bin: &Path, dir: &Path, spec: NodeSpec) -> NodeProc {
        NodeProc {
            spec,
            child: None,
            state: NodeState::Down,
            logs: Vec::new(),
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    /// HTTP base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.http)
    }

    /// Starts the process (no wait for readiness).
    pub fn start(&mut self, admin_token: &str) -> std::io::Result<()> {
        self.reap();
        if self.child.is_some() {
            return Ok(());
        }
        let s = &self.spec;
        let log = self
            .dir
            .join(format!("node-{}.{}.log", s.id, self.logs.len()));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("start")
            .args(["--node-id", &s.id.to_string()])
            .args(["--http", &format!("127.0.0.1:{}", s.http)])
            .args(["--cluster-addr", &format!("127.0.0.1:{}", s.cluster)])
            .arg("--data-dir")
            .arg(&s.data_dir)
            .args(["--admin-token", admin_token])
            // The chaos webhook receiver listens on 127.0.0.1.
            .arg("--webhook-allow-private")
            .args(&s.args)
            .env("RUST_LOG", "info")
            .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if !s.peers.is_empty() {
            cmd.args(["--peers", &s.peers]);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL this
            // child when the runner's thread dies, so no node outlives a killed runner.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn()?);
        self.logs.push(log);
        self.state = NodeState::Up;
        Ok(())
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the pid of our own child, which we have not reaped.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.state = NodeState::Down;
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGSTOP);
            self.state = NodeState::Paused;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGCONT);
            self.state = NodeState::Up;
        }
    }

    /// SIGTERM and wait (bounded; kill -9 after `timeout`). True when it exited by itself
    /// with status 0.
    pub async fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        // SAFETY: as in `signal`; a paused process gets SIGCONT so it can drain.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
            libc::kill(c.id() as i32, libc::SIGCONT);
        }
        let deadline = Instant::now() + timeout;
        let clean = loop {
            match c.try_wait() {
                Ok(Some(s)) => break s.success(),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break false;
                }
            }
        };
        self.state = NodeState::Down;
        clean
    }

    /// Notices a process that exited by itself (crash, fatal storage error).
    pub fn reap(&mut self) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(s)) => {
                self.child = None;
                self.state = NodeState::Down;
                Some(s)
            }
            _ => None,
        }
    }

    /// The running process's pid (for RSS readings), if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Is a process running (maybe paused)?
    pub fn alive(&mut self) -> bool {
        self.reap();
        self.child.is_some()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}
