//! Listening ports for the child processes a run (or a test) starts on 127.0.0.1.
//!
//! Asking the kernel for `bind(0)` and releasing the port races with every outgoing
//! connection on the machine: the kernel draws client source ports from the same ephemeral
//! range, so between choosing the port and the child binding it another socket may take it
//! ("Address already in use"). Ports below the ephemeral range (32768 on Linux) are never
//! chosen by the kernel on its own. Each process walks its own stretch of them, offset by
//! its pid, and never hands out the same port twice.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// First port handed out.
const LOW: u32 = 10_000;
/// How many ports above `LOW` are used (up to 31999, below Linux's ephemeral range).
const SPAN: u32 = 22_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A 127.0.0.1 port no one listens on now, outside the kernel's ephemeral range, not
/// handed out before by this process.
pub fn free_port() -> std::io::Result<u16> {
    // Knuth's multiplicative hash spreads neighbouring pids over the span.
    let base = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(LOW + (base.wrapping_add(step)) % SPAN) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "no free 127.0.0.1 port below the ephemeral range",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..200).filter_map(|_| free_port().ok()).collect();
        assert_eq!(ports.len(), 200);
        assert!(ports.iter().all(|p| (10_000..32_000).contains(p)));
        let unique: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len());
    }
}
