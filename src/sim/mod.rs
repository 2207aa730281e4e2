//! Simulated operator endpoints, for tests, demos and load runs without a real
//! carrier.
//!
//! - [`smsc`]: `smsgw sim smsc`, an SMPP 3.4 SMSC simulator (binds, windowed
//!   submit_sm, delivery receipts with a configurable outcome mix, throttling,
//!   errors, connection drops, a JSONL ledger and a `/stats` endpoint).
//! - [`cn`]: the same with `--protocol cmpp|smgp|sgip` (ISMG, SMGW, SMG).

//! - [`http_provider`]: `smsgw sim http-provider`, a REST SMS provider for the HTTP
//!   upstream channel (ids, 429/500/400 on demand, receipts POSTed back).

pub mod cn;
pub mod http_provider;
pub mod smsc;

pub use smsc::{IdFormat, SimProtocol, SmscSim, SmscSimArgs, StatsSnapshot};

/// A simulator cannot start with what it was given (an address in use or not
/// bindable, a ledger path it cannot open): the binary exits 2 with this one line, as
/// for a bad flag value, rather than 1 as for a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartRefused(pub String);

/// Opens the ledger file (`--ledger`) for appending, refusing a path it cannot open.
pub(crate) fn open_ledger(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            anyhow::Error::new(StartRefused(format!(
                "--ledger {}: {}",
                path.display(),
                crate::data_dir::io_reason(&e)
            )))
        })
}

/// Binds a simulator listener (`--listen`, `--control`). tokio already sets SO_REUSEADDR
/// on Unix, so a port held only by TIME_WAIT sockets of *accepted* connections (a
/// restarted simulator) binds again. Linux still refuses a port that a TIME_WAIT of an
/// *outgoing* connection holds as its local port, whatever the options; the error then
/// says so, since such ports come from the ephemeral range (audit s18 defect 12).
pub(crate) async fn bind_listener(
    what: &str,
    addr: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::Error::new(StartRefused(bind_error_text(what, addr, &e))))
}

/// The one-line message of a failed listener bind.
fn bind_error_text(what: &str, addr: &str, e: &std::io::Error) -> String {
    let mut text = format!("binding {what}{addr}: {e}");
    if e.kind() == std::io::ErrorKind::AddrInUse {
        text.push_str(
            " (with no listener there, an outgoing connection's TIME_WAIT may hold the port: \
             ports in the ephemeral range, see /proc/sys/net/ipv4/ip_local_port_range, are \
             reused for outgoing connections; pick a port below it, or port 0 for any free one)",
        );
    }
    text
}

/// An operator's contracted submit rate over all binds (`--max-tps`), which real SMSCs
/// enforce by answering the surplus "throttled". No limit when absent.
pub(crate) struct Contract(Option<crate::channels::tps_window::TpsWindow>);

impl Contract {
    /// The contract of `--max-tps` (none when absent): at most that many submits in any
    /// one second, as an SMSC counting per second sees them.
    pub(crate) fn new(max_tps: Option<u32>) -> Contract {
        Contract(max_tps.filter(|n| *n > 0).map(|n| {
            crate::channels::tps_window::TpsWindow::new(n, std::time::Duration::from_secs(1))
        }))
    }

    /// Whether a submit now is above the contract (one that is not takes its share).
    pub(crate) fn exceeded(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|c| c.try_take(tokio::time::Instant::now()).is_err())
    }
}

#[cfg(test)]
mod bind_tests {
    use super::*;

    #[test]
    fn address_in_use_explains_time_wait_and_ephemeral_ports() {
        let e = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let t = bind_error_text("control address ", "127.0.0.1:43510", &e);
        assert!(
            t.starts_with("binding control address 127.0.0.1:43510: "),
            "{t}"
        );
        assert!(t.contains("TIME_WAIT") && t.contains("port 0"), "{t}");
        let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!bind_error_text("", "127.0.0.1:80", &e).contains("TIME_WAIT"));
    }

    #[tokio::test]
    async fn a_port_left_in_time_wait_by_accepted_connections_binds_again() {
        use tokio::io::AsyncWriteExt;
        let l = bind_listener("", "127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let client = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (mut server_side, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
        // The server closes first: its side of the connection goes to TIME_WAIT.
        let _ = server_side.shutdown().await;
        drop(server_side);
        drop(client);
        drop(l);
        let again = bind_listener("", &addr.to_string()).await;
        assert!(again.is_ok(), "{:?}", again.err());
    }
}
