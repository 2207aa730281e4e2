//! # smsgw: a clustered, durable enterprise SMS gateway
//!
//! HTTP/JSON in, operator protocols out, Raft underneath: a message that got a
//! `202 Accepted` is in the fsync'd Raft log and is never lost.
//!
//! # Layout
//! - `clock`: timestamps as stored (ms) and shown (RFC 3339).
//! - `wire`: the binary format of stored rows and Raft RPC bodies.
//! - `encoding`: GSM 03.38 / UCS-2 encoding and long-message splitting (pure).
//! - `state`: the replicated rows, the operations Raft carries, the status machine.
//! - `consensus`: openraft + fjall: the durable write path and Raft RPC.
//! - `cluster`: leases and the leader's placement of channels on live nodes; how members'
//!   state, replication lag and never-answering peers are judged for the operator.
//! - `protocols::smpp`: SMPP 3.4 session (bind, window, keepalive), receipt parsing, status mapping.
//! - `protocols::http_upstream`: REST provider channels: request templates, id paths, receipt auth and status tables.
//! - `protocols::{cmpp, smgp, sgip}`: the Chinese operators' PDU codecs and status maps;
//!   `protocols::cn` their shared session engine and SGIP listener; `protocols::session`
//!   the protocol-neutral session the bind actors drive.
//! - `sim`: the SMSC simulator behind `smsgw sim smsc` (SMPP, CMPP, SMGP, SGIP), the REST provider behind `smsgw sim http-provider`.
//! - `compliance`: content rules, frequency caps, DLT, 10DLC, quiet hours, sender ids, opt-outs (checked before the Raft write).
//! - `routing`: which route (and so which channels) a message takes (pure).
//! - `messages`: intake (request → row, pure), dispatcher, its tenant-fair lanes, message
//!   actors, sweeper.
//! - `channels`: channel supervisor, bind actors, the node-local channel registry.
//! - `tenants`: per-tenant rate-limiter actors.
//! - `webhooks`: signed status callbacks from the durable outbox.
//! - `api`: the HTTP API (axum), its error codes and the OpenAPI document.
//! - `dashboard`: `GET /dashboard` (embedded page), its 15-minute metrics history, admin lookup, CORS.
//! - `config`, `cli`: configuration loading and the command line.
//! - `node`: wires one node together and drains it on SIGTERM.
//! - `serve`: both HTTP listeners' accept loop: connection cap, header and idle timeouts, open-file limit.
//! - `data_dir`: the node's directory: created, checked, and claimed for one node id.
//! - `metric_handles`: metric handles registered once per label value (hot paths).
//! - `chaos`: chaos/failover simulation runs (`smsgw sim run`) and the deterministic simulation.
pub mod api;
pub mod channels;
pub mod chaos;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod compliance;
pub mod config;
pub mod consensus;
pub mod dashboard;
pub mod data_dir;
pub mod demo;
pub mod encoding;
pub mod failpoints;
pub mod http_client;
pub mod inbound;
pub mod messages;
pub mod metric_handles;
pub mod node;
pub mod protocols;
pub mod routing;
pub mod runtime_metrics;
pub mod serve;
pub mod sim;
pub mod state;
pub mod tenants;
pub mod webhooks;
pub mod wire;
