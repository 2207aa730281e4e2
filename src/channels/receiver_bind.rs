//! The receiver bind of an SMPP channel bound as `transmitter`: SMSCs send delivery
//! receipts and MO only on a receiver or transceiver bind, so a transmitter-only
//! channel would request receipts it can never get (every message would sit in `sent`
//! until `dlr_timeout_seconds`). As Kannel does, each transmitter bind gets a
//! `bind_receiver` with the same credentials beside it, on its own session and
//! reconnect loop; what arrives on it goes through the same inbound path as a
//! transceiver's (committed to Raft before deliver_sm_resp, matched the same way).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::registry::ChannelRegistry;
use crate::consensus::Consensus;
use crate::protocols::smpp::{BindMode, Session};
use crate::state::Channel;

use super::bind_actor::{FIRST_BACKOFF, HEALTHY_SESSION, MAX_BACKOFF};

/// How long stopping waits for the receiver to unbind.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// A running receiver bind; stop it with [`ReceiverBind::stop`].
pub struct ReceiverBind {
    /// Set to true to unbind and end the loop.
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Whether a channel needs a receiver bind beside its binds.
pub fn needed(c: &Channel) -> bool {
    c.protocol == "smpp" && c.bind == crate::state::BindKind::Transmitter
}

/// Resolves once stopping was asked for (or the handle is gone).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

impl ReceiverBind {
    /// Starts binding a receiver for bind #`index` of `channel` (retrying with a
    /// jittered, doubling back-off while the SMSC refuses or drops it).
    pub fn start(
        channel: &Channel,
        index: usize,
        consensus: Arc<Consensus>,
        registry: Arc<ChannelRegistry>,
    ) -> ReceiverBind {
        let (stop, stopped) = watch::channel(false);
        let mut cfg = crate::protocols::session::smpp_config(channel);
        cfg.bind = BindMode::Receiver;
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(super::bind_actor::inbound_loop(
            channel.id.clone(),
            consensus,
            registry.clone(),
            rx,
        ));
        let name = format!("{}#{}/receiver", channel.id, index);
        let channel_id = channel.id.clone();
        let task = tokio::spawn(async move {
            let mut stopped = stopped;
            let mut backoff = FIRST_BACKOFF;
            loop {
                let stop_now = *stopped.borrow();
                if stop_now {
                    registry.receiver_state(&channel_id, index, None, None);
                    return;
                }
                let wait = match Session::connect(cfg.clone(), tx.clone()).await {
                    Ok(session) => {
                        info!(bind = %name, "receiver bound (receipts and MO of a transmitter channel)");
                        registry.receiver_state(&channel_id, index, Some("bound"), None);
                        let since = Instant::now();
                        tokio::select! {
                            _ = session.closed() => {}
                            _ = stop_requested(&mut stopped) => {
                                session.unbind().await;
                                info!(bind = %name, "receiver unbound");
                                registry.receiver_state(&channel_id, index, None, None);
                                return;
                            }
                        }
                        if since.elapsed() >= HEALTHY_SESSION {
                            backoff = FIRST_BACKOFF;
                        }
                        warn!(bind = %name, reason = ?session.close_reason(), retry_ms = backoff.as_millis() as u64, "receiver session lost; binding again");
                        // Counted under the channel, as a transmitter's or transceiver's loss.
                        metrics::counter!("smsgw_session_losses_total", "channel" => channel_id.clone())
                            .increment(1);
                        if let Some(rt) = registry.find(&channel_id) {
                            rt.session_losses
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        let why = session
                            .close_reason()
                            .map(|r| format!("receiver session lost: {r}"));
                        registry.receiver_state(&channel_id, index, Some("connecting"), why);
                        backoff
                    }
                    Err(e) => {
                        warn!(bind = %name, error = %e, retry_ms = backoff.as_millis() as u64, "receiver bind failed; receipts wait until it is bound");
                        registry.receiver_state(
                            &channel_id,
                            index,
                            Some("connecting"),
                            Some(e.to_string()),
                        );
                        backoff
                    }
                };
                backoff = (backoff * 2).min(MAX_BACKOFF);
                tokio::select! {
                    _ = tokio::time::sleep(super::bind_actor::jittered(wait)) => {}
                    _ = stop_requested(&mut stopped) => {
                        registry.receiver_state(&channel_id, index, None, None);
                        return;
                    }
                }
            }
        });
        ReceiverBind { stop, task }
    }

    /// Unbinds the receiver and ends its loop (bounded wait).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}
