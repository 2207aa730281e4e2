//! SGIP's reverse direction: the SMG connects to the SP to send Deliver (MO)
//! and Report (status reports). An SGIP channel therefore runs this listener
//! with its own credentials (`listen_login_name` / `listen_password`): Bind
//! (LoginType 2) → Bind_Resp, then Deliver/Report answered after the gateway
//! has committed them, Unbind → Unbind_Resp. A malformed PDU closes that
//! connection only; the listener stays up.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::dialect::{Dialect, Event};
use super::session::{Out, forward_inbound_with, frame_codec, write_frames};
use crate::protocols::smpp::{DeliverAck, Inbound};

/// A running SGIP listener; dropping it stops accepting and closes its connections.
#[derive(Debug)]
pub struct SgipListener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl SgipListener {
    /// Binds `addr` and serves SMG connections, handing reports and MO
    /// messages to `inbound`.
    pub async fn start(
        addr: &str,
        dialect: Dialect,
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<SgipListener> {
        // A restarted bind actor may start before its predecessor's listener task
        // has closed the socket: retry for up to 2 s.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 40 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let local = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let dialect = Arc::new(dialect);
        info!(addr = %local, account = %dialect.account, "SGIP listener up for Deliver/Report");
        tokio::spawn(accept_loop(listener, dialect, inbound, stop_rx));
        Ok(SgipListener { addr: local, stop })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SgipListener {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(
    listener: TcpListener,
    dialect: Arc<Dialect>,
    inbound: mpsc::Sender<Inbound>,
    stop: watch::Receiver<bool>,
) {
    let stopped = wait_stop(stop.clone());
    tokio::pin!(stopped);
    let overflow = Arc::new(Semaphore::new(1024));
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    debug!(%peer, "SMG connected to the SGIP listener");
                    tokio::spawn(connection(stream, dialect.clone(), inbound.clone(), overflow.clone(), stop.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "SGIP listener accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    dialect: Arc<Dialect>,
    inbound: mpsc::Sender<Inbound>,
    overflow: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) {
    let stopped = wait_stop(stop);
    tokio::pin!(stopped);
    let _ = stream.set_nodelay(true);
    let label = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(async move { write_frames(&mut wr, &mut rx).await });
    let mut reader = FramedRead::new(rd, frame_codec());
    let mut bound = false;
    loop {
        let frame = tokio::select! {
            _ = &mut stopped => break,
            f = reader.next() => f,
        };
        let Some(Ok(frame)) = frame else { break };
        let event = match dialect.decode(&frame) {
            Ok(e) => e,
            Err(e) => {
                warn!(peer = %label, error = %e, "malformed PDU on the SGIP listener; closing that connection");
                break;
            }
        };
        match event {
            Event::Bind {
                seq,
                name,
                password,
            } => {
                let ok = name == dialect.opts.listen_login_name
                    && password == dialect.opts.listen_password;
                let _ = tx.send(Out::Frame(dialect.bind_resp(seq, if ok { 0 } else { 1 })));
                if !ok {
                    warn!(peer = %label, login = %name, "SGIP listener bind refused");
                    break;
                }
                bound = true;
            }
            Event::Exit(seq) => {
                let _ = tx.send(Out::Frame(dialect.exit_resp(seq)));
                break;
            }
            Event::Report { seq, receipt, ctx } if bound => {
                let (out, d) = (tx.clone(), dialect.clone());
                let ack = DeliverAck::from_fn(seq.n, move |status| {
                    let _ = out.send(Out::Frame(d.deliver_resp(seq, ctx, status == 0)));
                });
                forward_inbound_with(
                    &label,
                    &overflow,
                    &inbound,
                    Inbound::Receipt { receipt, ack },
                );
            }
            Event::Mobile {
                seq,
                source,
                dest,
                msg_fmt,
                udhi,
                content,
                ctx,
            } if bound => {
                let (out, d) = (tx.clone(), dialect.clone());
                let ack = DeliverAck::from_fn(seq.n, move |status| {
                    let _ = out.send(Out::Frame(d.deliver_resp(seq, ctx, status == 0)));
                });
                forward_inbound_with(
                    &label,
                    &overflow,
                    &inbound,
                    Inbound::Mobile {
                        sar: None,
                        source,
                        dest,
                        data_coding: msg_fmt,
                        esm_class: if udhi { 0x40 } else { 0 },
                        payload: content,
                        ack,
                    },
                );
            }
            Event::Report { .. } | Event::Mobile { .. } => {
                warn!(peer = %label, "Deliver/Report before Bind; closing");
                break;
            }
            Event::Resp { .. } | Event::KeepAlive(_) => {}
        }
    }
    // Let pending acks (answered after the Raft commit) go out before closing.
    drop(reader);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let _ = tx.send(Out::Close);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
}
