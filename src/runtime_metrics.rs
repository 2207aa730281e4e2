//! The node's async runtime in `/metrics`: how busy its threads are, how many tasks are
//! alive, how many wait in the shared queue.
//!
//! Why: rate and latency alone do not say whether a node is the limit. A node whose
//! runtime threads are busy nearly all the time answers later the more it is sent (add a
//! node, or give it cores); one that is busy half the time and still slow waits on
//! something else (the disk, a peer, the operator). Found that way: one runtime thread
//! carried a single-message load alone (`docs/benchmarks.md`, "Runtime threads").

use std::time::{Duration, Instant};

use tokio::runtime::Handle;

/// How often the gauges are refreshed; the busy ratio is the average over this window.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Measures the share of time the runtime's threads were busy between two samples.
pub struct BusySampler {
    handle: Handle,
    last_busy: Duration,
    last_at: Instant,
}

impl BusySampler {
    /// Starts measuring the runtime of `handle` from now.
    pub fn new(handle: Handle) -> Self {
        let last_busy = total_busy(&handle);
        BusySampler {
            handle,
            last_busy,
            last_at: Instant::now(),
        }
    }

    /// The busy share (0..=1) of the runtime's threads, averaged over the threads, since
    /// the previous call (or `new`).
    pub fn sample(&mut self) -> f64 {
        let busy = total_busy(&self.handle);
        let now = Instant::now();
        let workers = self.handle.metrics().num_workers().max(1) as f64;
        let window = now.duration_since(self.last_at).as_secs_f64();
        let spent = busy.saturating_sub(self.last_busy).as_secs_f64();
        self.last_busy = busy;
        self.last_at = now;
        if window <= 0.0 {
            return 0.0;
        }
        (spent / (window * workers)).clamp(0.0, 1.0)
    }
}

/// Busy time of all the runtime's threads since it started.
fn total_busy(handle: &Handle) -> Duration {
    let m = handle.metrics();
    (0..m.num_workers())
        .map(|w| m.worker_total_busy_duration(w))
        .sum()
}

/// Refreshes the runtime gauges every [`SAMPLE_EVERY`] for as long as the node runs: the
/// counts at once, the busy share once it has a whole window behind it.
pub async fn run() {
    let handle = Handle::current();
    let publish_counts = || {
        let m = handle.metrics();
        metrics::gauge!("smsgw_runtime_workers").set(m.num_workers() as f64);
        metrics::gauge!("smsgw_runtime_alive_tasks").set(m.num_alive_tasks() as f64);
        metrics::gauge!("smsgw_runtime_global_queue_depth").set(m.global_queue_depth() as f64);
    };
    publish_counts();
    let mut sampler = BusySampler::new(handle.clone());
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        publish_counts();
        metrics::gauge!("smsgw_runtime_busy_ratio").set(sampler.sample());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thread_kept_busy_shows_and_an_idle_runtime_does_not() {
        let mut sampler = BusySampler::new(Handle::current());
        // One of the two threads spins for 200 ms: about half of the runtime's time.
        tokio::spawn(async {
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        })
        .await
        .expect("spin task");
        // A thread hands its busy time to the runtime's metrics when it parks or every so
        // many tasks: wait (bounded) until most of the spin is counted.
        let handle = Handle::current();
        let deadline = Instant::now() + Duration::from_secs(2);
        while total_busy(&handle).saturating_sub(sampler.last_busy) < Duration::from_millis(150) {
            assert!(
                Instant::now() < deadline,
                "the spin was never counted as busy"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // At least 150 ms busy of two threads over at most 2.25 s.
        let busy = sampler.sample();
        assert!(busy > 0.03, "busy share {busy} after one thread spun");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let idle = sampler.sample();
        assert!(idle < 0.5, "busy share {idle} of a runtime that only slept");
    }
}
