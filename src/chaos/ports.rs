//! Listening ports for the child processes a run (or a test) starts on 127.0.0.1.
//!
//! Asking the kernel for `bind(0)` and releasing the port races with every outgoing
//! connection on the machine: the kernel draws client source ports from the same ephemeral
//! range, so between choosing the port and the child binding it another socket may take it
//! ("Address already in use"). Ports below the ephemeral range (32768 on Linux) are never
//! chosen by the kernel on its own. Each process walks its own stretch of a range, offset by
//! its pid, and never hands out the same port twice. The range is 10000–31999 unless
//! `smsgw sim run --ports LOW-HIGH` (or `SMSGW_SIM_PORTS`) moves it, for users who share a
//! machine or keep other services in it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Steps taken by this process so far, over every range (no port is handed out twice
/// while a range has ports it has not handed out).
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The fewest ports a range may hold: one run of 7 nodes plus a spare needs 16.
pub const MIN_PORTS: u32 = 16;

/// An inclusive range of 127.0.0.1 ports child processes listen on (`LOW-HIGH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port handed out.
    pub low: u16,
    /// Last port handed out.
    pub high: u16,
}

impl Default for PortRange {
    /// 10000–31999: below Linux's ephemeral range (32768–60999).
    fn default() -> Self {
        PortRange {
            low: 10_000,
            high: 31_999,
        }
    }
}

/// A `--ports` / `SMSGW_SIM_PORTS` value that is not a usable range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// Not `LOW-HIGH` with two port numbers.
    #[error("{0:?} is not LOW-HIGH (e.g. 20000-20999)")]
    Syntax(String),
    /// Out of the unprivileged ports, reversed, or too small.
    #[error("{low}-{high}: want 1024 <= LOW <= HIGH <= 65535 and at least {MIN_PORTS} ports")]
    Range {
        /// As given.
        low: u32,
        /// As given.
        high: u32,
    },
}

impl std::str::FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PortRangeError::Syntax(s.to_string());
        let (a, b) = s.trim().split_once('-').ok_or_else(syntax)?;
        let low: u32 = a.trim().parse().map_err(|_| syntax())?;
        let high: u32 = b.trim().parse().map_err(|_| syntax())?;
        let range = PortRangeError::Range { low, high };
        if low < 1024 || high < low || high - low + 1 < MIN_PORTS {
            return Err(range);
        }
        Ok(PortRange {
            low: u16::try_from(low).map_err(|_| range.clone())?,
            high: u16::try_from(high).map_err(|_| range)?,
        })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

impl PortRange {
    fn span(&self) -> u32 {
        u32::from(self.high) - u32::from(self.low) + 1
    }

    /// A port in this range no one listens on now, not handed out before by this process
    /// (until the range is used up; then the walk wraps around).
    pub fn free_port(&self) -> std::io::Result<u16> {
        let span = self.span();
        // Knuth's multiplicative hash spreads neighbouring pids over the span.
        let base = std::process::id().wrapping_mul(2_654_435_761) % span;
        for _ in 0..span {
            let step = NEXT.fetch_add(1, Ordering::Relaxed);
            let Ok(port) = u16::try_from(u32::from(self.low) + base.wrapping_add(step) % span)
            else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no free 127.0.0.1 port in {self}"),
        ))
    }

    /// Where this range overlaps the kernel's ephemeral range (Linux,
    /// `/proc/sys/net/ipv4/ip_local_port_range`), for a warning: a port chosen there can be
    /// taken by an outgoing connection before the node binds it.
    pub fn ephemeral_overlap(&self) -> Option<(u16, u16)> {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let mut it = text
            .split_whitespace()
            .filter_map(|x| x.parse::<u16>().ok());
        let (lo, hi) = (it.next()?, it.next()?);
        (self.low <= hi && lo <= self.high).then_some((lo, hi))
    }
}

/// A 127.0.0.1 port in the default range (10000–31999) no one listens on now, not handed
/// out before by this process. Tests use it for the processes they start.
pub fn free_port() -> std::io::Result<u16> {
    PortRange::default().free_port()
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

    #[test]
    fn a_chosen_range_is_kept() {
        let r: PortRange = "44100-44199".parse().unwrap();
        assert_eq!(r.to_string(), "44100-44199");
        let ports: Vec<u16> = (0..40).filter_map(|_| r.free_port().ok()).collect();
        assert_eq!(ports.len(), 40);
        assert!(
            ports.iter().all(|p| (44_100..=44_199).contains(p)),
            "{ports:?}"
        );
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in [
            "",
            "44000",
            "a-b",
            "44000-",
            "-44000",
            "44010-44000",
            "80-200",
            "44000-44005",
            "60000-70000",
        ] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?}");
        }
        assert!(" 20000 - 20015 ".parse::<PortRange>().is_ok());
    }
}
