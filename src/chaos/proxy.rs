//! The TCP fault proxy: sits in front of one link (node → peer, or nodes → SMSC) and can
//! hang it, reset it, slow it (latency per chunk, bandwidth cap), each one direction or
//! both. Partitions therefore need no root: every inter-node and SMSC link of a chaos run
//! goes through one of these, in the runner's process.
//!
//! "Up" is what the connecting side sends (client → upstream), "down" the answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The live settings of one proxy; the runner changes them while traffic flows.
#[derive(Debug, Default)]
pub struct LinkFaults {
    /// Hold client → upstream bytes.
    pub hang_up: AtomicBool,
    /// Hold upstream → client bytes.
    pub hang_down: AtomicBool,
    /// Refuse new connections (accepted and closed at once, with RST).
    pub refuse: AtomicBool,
    /// Added before each forwarded chunk, ms.
    pub latency_ms: AtomicU64,
    /// Bytes per second per direction per connection, 0 = unlimited.
    pub bandwidth_bps: AtomicU64,
}

impl LinkFaults {
    /// Back to a clean link (does not reopen closed connections).
    pub fn clear(&self) {
        self.hang_up.store(false, Ordering::Relaxed);
        self.hang_down.store(false, Ordering::Relaxed);
        self.refuse.store(false, Ordering::Relaxed);
        self.latency_ms.store(0, Ordering::Relaxed);
        self.bandwidth_bps.store(0, Ordering::Relaxed);
    }
}

/// One running proxy. Dropping it stops accepting and closes its connections.
pub struct FaultProxy {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where bytes go.
    pub upstream: SocketAddr,
    /// Its switches.
    pub faults: Arc<LinkFaults>,
    resets: watch::Sender<u64>,
    stop: watch::Sender<bool>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let faults = Arc::new(LinkFaults::default());
        let (resets, resets_rx) = watch::channel(0u64);
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            upstream,
            faults.clone(),
            resets_rx,
            stop_rx,
        ));
        Ok(FaultProxy {
            listen,
            upstream,
            faults,
            resets,
            stop,
        })
    }

    /// Resets every open connection now (new ones are still accepted unless `refuse`).
    pub fn reset_all(&self) {
        self.resets.send_modify(|n| *n += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.resets.send_modify(|n| *n += 1);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: Arc<LinkFaults>,
    resets: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if faults.refuse.load(Ordering::Relaxed) {
            rst(client);
            continue;
        }
        tokio::spawn(connection(client, upstream, faults.clone(), resets.clone()));
    }
}

/// Closes with RST (linger 0) so the peer sees a reset, not a clean FIN.
fn rst(s: TcpStream) {
    if let Ok(std) = s.into_std() {
        let sock = socket2_linger_zero(std);
        drop(sock);
    }
}

fn socket2_linger_zero(s: std::net::TcpStream) -> std::net::TcpStream {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid, owned fd with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    s
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    faults: Arc<LinkFaults>,
    mut resets: watch::Receiver<u64>,
) {
    resets.mark_unchanged();
    let server = tokio::select! {
        _ = resets.changed() => { rst(client); return; }
        s = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(upstream)) => s,
    };
    let server = match server {
        Ok(Ok(s)) => s,
        _ => {
            rst(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, faults.clone(), true);
    let down = pump(sr, cw, faults.clone(), false);
    tokio::select! {
        _ = resets.changed() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
    // On a reset both halves are dropped with the pump futures: the connection closes.
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Arc<LinkFaults>,
    up: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let hang = if up {
            &faults.hang_up
        } else {
            &faults.hang_down
        };
        while hang.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lat = faults.latency_ms.load(Ordering::Relaxed);
        if lat > 0 {
            tokio::time::sleep(Duration::from_millis(lat)).await;
        }
        let bw = faults.bandwidth_bps.load(Ordering::Relaxed);
        if let Some(us) = (n as u64 * 1_000_000).checked_div(bw) {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        a
    }

    async fn roundtrip(c: &mut TcpStream, ms: u64) -> Option<Vec<u8>> {
        c.write_all(b"ping").await.ok()?;
        let mut b = [0u8; 4];
        match tokio::time::timeout(Duration::from_millis(ms), c.read_exact(&mut b)).await {
            Ok(Ok(_)) => Some(b.to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn passes_hangs_one_way_and_resets() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        let mut c = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(roundtrip(&mut c, 2000).await.as_deref(), Some(&b"ping"[..]));
        // Answers held: the request gets through, the echo does not, until released.
        p.faults.hang_down.store(true, Ordering::Relaxed);
        assert!(roundtrip(&mut c, 200).await.is_none());
        p.faults.hang_down.store(false, Ordering::Relaxed);
        let mut b = [0u8; 4];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        // Latency is added per chunk.
        p.faults.latency_ms.store(150, Ordering::Relaxed);
        let t = std::time::Instant::now();
        assert!(roundtrip(&mut c, 2000).await.is_some());
        assert!(t.elapsed() >= Duration::from_millis(290));
        p.faults.clear();
        // Reset: the open connection dies, and refused new ones die at once.
        p.faults.refuse.store(true, Ordering::Relaxed);
        p.reset_all();
        assert!(roundtrip(&mut c, 1000).await.is_none());
        let mut c2 = TcpStream::connect(p.listen).await.unwrap();
        assert!(roundtrip(&mut c2, 1000).await.is_none());
        p.faults.clear();
        let mut c3 = TcpStream::connect(p.listen).await.unwrap();
        assert!(roundtrip(&mut c3, 2000).await.is_some());
    }
}
