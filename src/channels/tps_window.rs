//! The per-second cap of a channel (`tps`, the operator's contract) and of the SMSC
//! simulator's `--max-tps`: a sliding window over the instants of the last `tps` sends,
//! so no window of one second ever holds more than `tps` of them, parts counted.
//!
//! A token bucket that starts full (`Quota::per_second(tps).allow_burst(tps)`) lets
//! `tps` sends out at once and then refills one every 1/tps s: up to 2·tps − 1 in the
//! first second, which an SMSC counting per second answers with 0x58. The window keeps
//! the full rate (a busy channel still sends `tps` every second, without a sleep per
//! send) and never exceeds it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The gateway's window: one second plus a margin, so the delay between a send's pace
/// time and its write on the wire (the message actor, the bind actor, the session's
/// writer, the network: tens of ms on a loaded host, not 10) cannot push `tps + 1` sends
/// into one second as the operator counts them, which is what arrives. Costs 5% of the
/// nominal rate; an operator that enforces `tps` strictly never throttles the line.
pub const GATEWAY_SPAN: Duration = Duration::from_millis(1050);

/// At most `tps` takes in any `span`.
#[derive(Debug)]
pub struct TpsWindow {
    /// Sends allowed per `span` (≥ 1).
    tps: usize,
    /// The window's length (1 s for the simulator, [`GATEWAY_SPAN`] for channels).
    span: Duration,
    /// Instants of the sends still inside the window, oldest first (at most `tps`).
    sent: Mutex<VecDeque<Instant>>,
}

impl TpsWindow {
    /// A window allowing `tps` (at least 1) takes per `span`.
    pub fn new(tps: u32, span: Duration) -> TpsWindow {
        TpsWindow {
            tps: (tps as usize).max(1),
            span,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes a send at `now` if the window has room; else the instant it will.
    pub fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&oldest) = sent.front() {
            if now.saturating_duration_since(oldest) >= self.span {
                sent.pop_front();
            } else {
                break;
            }
        }
        if sent.len() < self.tps {
            sent.push_back(now);
            return Ok(());
        }
        Err(sent.front().map_or(now, |oldest| *oldest + self.span))
    }

    /// Waits until a send may go and takes it.
    pub async fn until_ready(&self) {
        loop {
            match self.try_take(Instant::now()) {
                Ok(()) => return,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Most takes inside any window of `span` starting at a take.
    fn busiest(at: &[Instant], span: Duration) -> usize {
        (0..at.len())
            .map(|i| at[i..].iter().take_while(|t| **t - at[i] < span).count())
            .max()
            .unwrap_or(0)
    }

    /// Senders that go as soon as the window lets them (a virtual clock: no sleeping).
    fn greedy(w: &TpsWindow, n: u32, start: Instant) -> Vec<Instant> {
        let (mut t, mut at) = (start, Vec::new());
        while at.len() < n as usize {
            match w.try_take(t) {
                Ok(()) => at.push(t),
                Err(next) => t = next,
            }
        }
        at
    }

    #[test]
    fn no_second_holds_more_than_tps_and_the_rate_is_kept() {
        for tps in [1u32, 5, 50, 1000] {
            let w = TpsWindow::new(tps, Duration::from_secs(1));
            let start = Instant::now();
            let at = greedy(&w, tps * 3, start);
            let most = busiest(&at, Duration::from_secs(1));
            assert!(most <= tps as usize, "tps {tps}: {most} in one second");
            // Full rate: 3·tps sends take two seconds, not three.
            let took = at[at.len() - 1] - start;
            assert!(took <= Duration::from_secs(2), "tps {tps}: {took:?}");
        }
    }

    #[test]
    fn the_gateway_window_leaves_room_for_jitter() {
        let w = TpsWindow::new(5, GATEWAY_SPAN);
        let at = greedy(&w, 20, Instant::now());
        // Even shifted by up to 50 ms on the way, no SMSC second sees a sixth.
        assert!(busiest(&at, Duration::from_millis(1050)) <= 5);
    }

    #[test]
    fn a_full_window_says_when_it_frees() {
        let w = TpsWindow::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(w.try_take(t0).is_ok());
        assert!(w.try_take(t0 + Duration::from_millis(300)).is_ok());
        assert_eq!(
            w.try_take(t0 + Duration::from_millis(500)),
            Err(t0 + Duration::from_secs(1))
        );
        assert!(w.try_take(t0 + Duration::from_secs(1)).is_ok());
        assert_eq!(
            w.try_take(t0 + Duration::from_millis(1100)),
            Err(t0 + Duration::from_millis(1300))
        );
    }
}
