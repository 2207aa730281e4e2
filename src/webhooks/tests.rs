//! The dispatcher against a single-node Raft on a temp dir and a local HTTP receiver.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ractor::{Actor, ActorRef};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{WebhookArgs, WebhookDispatcher, WebhookMsg, verify};
use crate::consensus::Consensus;
use crate::encoding::TextEncoding;
use crate::state::{
    Category, Event, Message, Notice, Notifier, Op, PartState, PartStatus, RateLimit, Status,
    Tenant,
};

const SECRET: &str = "whsec_test_secret";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// What the receiver answers, in order: (status, delay before answering). 200 when empty.
#[derive(Clone)]
struct Receiver {
    script: Arc<Mutex<VecDeque<(u16, Duration)>>>,
    seen: UnboundedSender<Seen>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _ = r.seen.send(Seen {
        headers,
        body,
        at: Instant::now(),
    });
    let next = r.script.lock().expect("script").pop_front();
    let (status, delay) = next.unwrap_or((200, Duration::ZERO));
    tokio::time::sleep(delay).await;
    StatusCode::from_u16(status).expect("status")
}

async fn receiver(script: Vec<(u16, Duration)>) -> (SocketAddr, UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    let state = Receiver {
        script: Arc::new(Mutex::new(script.into())),
        seen: tx,
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rx)
}

struct Node {
    _dir: tempfile::TempDir,
    consensus: Arc<Consensus>,
    webhooks: Option<UnboundedReceiver<Notice>>,
    _others: Vec<UnboundedReceiver<Notice>>,
}

async fn node(notify: bool) -> Node {
    let (dir, consensus) = crate::consensus::test_node::leading_single_node().await;
    let (mut webhooks, mut others) = (None, Vec::new());
    if notify {
        let (w, wr) = unbounded_channel();
        let (r, rr) = unbounded_channel();
        let (c, cr) = unbounded_channel();
        let (s, sr) = unbounded_channel();
        let (k, kr) = unbounded_channel();
        consensus.store().set_notifier(Notifier {
            ready: r,
            webhooks: w,
            config: c,
            status: s,
            cluster: k,
        });
        webhooks = Some(wr);
        others = vec![rr, cr, sr, kr];
    }
    Node {
        _dir: dir,
        consensus,
        webhooks,
        _others: others,
    }
}

fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: id.into(),
        api_key_hash: format!("hash-{id}"),
        webhook_secret: SECRET.into(),
        rate_limit: RateLimit {
            per_second: 10,
            burst: 10,
        },
        callback_url: None,
        max_parts: 10,
        queue_limit: 1000,
        smart_encoding: false,
        senders: vec![],
        created_at: 0,
        frequency_caps: Vec::new(),
        sender_pool: Vec::new(),
        opt_out_categories: vec![crate::state::Category::Marketing],
    }
}

/// A freshly accepted message with a callback: accepting it writes one webhook job,
/// `"<id>-0"`, created at `at`.
fn message(id: &str, tenant: &str, url: &str, at: i64) -> Message {
    Message {
        id: id.into(),
        tenant: tenant.into(),
        to: "+31612345678".into(),
        from: "ACME".into(),
        text: "hello".into(),
        encoding: TextEncoding::Gsm7,
        parts: 1,
        category: Category::Transactional,
        client_ref: Some("ref-1".into()),
        callback_url: Some(url.into()),
        created_at: at,
        updated_at: at,
        expires_at: at + 3_600_000,
        send_at: None,
        status: Status::Accepted,
        route: vec![].into(),
        channel: None,
        part_states: vec![PartState {
            smsc_message_id: None,
            status: PartStatus::Pending,
            error: None,
        }],
        events: vec![Event {
            status: Status::Accepted,
            at,
            channel: None,
            smsc_message_ids: vec![],
            note: None,
        }],
        error: None,
        attempts: 0,
        concat_ref: 1,
        idempotency_key: None,
        body_hash: None,
        route_id: None,
        ab_variant: None,
        avoid: Vec::new(),
        operator: None,
        compliance: None,
        layout: Default::default(),
    }
}

/// Writes a tenant and a message; returns the webhook job's event id.
async fn seed(n: &Node, id: &str, url: &str, at: i64) -> String {
    n.consensus
        .propose(Op::PutTenant(Box::new(tenant("acme"))))
        .await
        .expect("tenant");
    n.consensus
        .propose(Op::Accept(Box::new(message(id, "acme", url, at))))
        .await
        .expect("accept");
    // The accept committed. Its job is not asserted to be in the outbox: the dispatcher
    // already runs and may have delivered and removed it by now (the full suite met it).
    assert!(
        n.consensus.store().get_message(id).expect("read").is_some(),
        "message accepted"
    );
    format!("{id}-0")
}

async fn dispatcher(n: &mut Node, timeout: Duration, max_age: Duration) -> ActorRef<WebhookMsg> {
    let notices = n.webhooks.take().unwrap_or_else(|| unbounded_channel().1);
    let args = WebhookArgs {
        consensus: n.consensus.clone(),
        notices,
        concurrency: 4,
        tenant_concurrency: 4,
        allow_private: true,
        timeout,
        max_age,
    };
    let (actor, _) = Actor::spawn(None, WebhookDispatcher, args)
        .await
        .expect("spawn");
    actor
}

async fn next(rx: &mut UnboundedReceiver<Seen>, within: Duration) -> Seen {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a request in time")
        .expect("receiver alive")
}

async fn wait_removed(n: &Node, event_id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while n
        .consensus
        .store()
        .webhook_job(event_id)
        .expect("read")
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "job {event_id} still in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop(n: Node, actor: ActorRef<WebhookMsg>) {
    actor.stop(None);
    n.consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_signed_body_and_removes_the_job() {
    let (addr, mut seen) = receiver(vec![]).await;
    let mut n = node(true).await;
    let actor = dispatcher(&mut n, Duration::from_secs(5), Duration::from_secs(3600)).await;
    let event_id = seed(
        &n,
        "m1",
        &format!("http://{addr}/hook"),
        crate::clock::now_ms(),
    )
    .await;

    let req = next(&mut seen, Duration::from_secs(5)).await;
    assert_eq!(
        req.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let sig = req
        .headers
        .get("smsgw-signature")
        .and_then(|v| v.to_str().ok())
        .expect("signature header");
    let now_s = crate::clock::now_ms() / 1000;
    assert!(
        verify(SECRET.as_bytes(), sig, &req.body, now_s, 60),
        "signature {sig} verifies"
    );
    assert!(!verify(b"wrong", sig, &req.body, now_s, 60));
    let body: serde_json::Value = serde_json::from_slice(&req.body).expect("json body");
    assert_eq!(body["event_id"], event_id.as_str());
    assert_eq!(body["id"], "m1");
    assert_eq!(body["status"], "accepted");

    wait_removed(&n, &event_id, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen.try_recv().is_err(), "delivered once");
    stop(n, actor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_an_error_answer_with_backoff() {
    let (addr, mut seen) = receiver(vec![(500, Duration::ZERO)]).await;
    let mut n = node(true).await;
    let actor = dispatcher(&mut n, Duration::from_secs(5), Duration::from_secs(3600)).await;
    let event_id = seed(
        &n,
        "m2",
        &format!("http://{addr}/hook"),
        crate::clock::now_ms(),
    )
    .await;

    let first = next(&mut seen, Duration::from_secs(5)).await;
    let second = next(&mut seen, Duration::from_secs(5)).await;
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(850),
        "first retry after about 1 s, was {gap:?}"
    );
    assert!(
        gap <= Duration::from_millis(1600),
        "first retry after about 1 s, was {gap:?}"
    );
    assert_eq!(first.body, second.body, "same body, same event id");
    wait_removed(&n, &event_id, Duration::from_secs(5)).await;
    stop(n, actor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_a_timeout() {
    let (addr, mut seen) = receiver(vec![(200, Duration::from_secs(3))]).await;
    let mut n = node(true).await;
    let actor = dispatcher(
        &mut n,
        Duration::from_millis(300),
        Duration::from_secs(3600),
    )
    .await;
    let event_id = seed(
        &n,
        "m3",
        &format!("http://{addr}/hook"),
        crate::clock::now_ms(),
    )
    .await;

    let first = next(&mut seen, Duration::from_secs(5)).await;
    let second = next(&mut seen, Duration::from_secs(5)).await;
    assert!(
        second.at - first.at < Duration::from_secs(3),
        "retried before the slow answer came"
    );
    wait_removed(&n, &event_id, Duration::from_secs(5)).await;
    stop(n, actor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_the_outbox_at_start() {
    let (addr, mut seen) = receiver(vec![]).await;
    // No notifier: the job is only in the outbox, as after a restart.
    let mut n = node(false).await;
    let event_id = seed(
        &n,
        "m4",
        &format!("http://{addr}/hook"),
        crate::clock::now_ms(),
    )
    .await;
    let actor = dispatcher(&mut n, Duration::from_secs(5), Duration::from_secs(3600)).await;

    let req = next(&mut seen, Duration::from_secs(5)).await;
    let body: serde_json::Value = serde_json::from_slice(&req.body).expect("json body");
    assert_eq!(body["event_id"], event_id.as_str());
    wait_removed(&n, &event_id, Duration::from_secs(5)).await;
    stop(n, actor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_when_the_tenant_is_gone() {
    let (addr, mut seen) = receiver(vec![]).await;
    let mut n = node(false).await;
    let event_id = seed(
        &n,
        "m5",
        &format!("http://{addr}/hook"),
        crate::clock::now_ms(),
    )
    .await;
    n.consensus
        .propose(Op::DeleteTenant { id: "acme".into() })
        .await
        .expect("delete");
    let actor = dispatcher(&mut n, Duration::from_secs(5), Duration::from_secs(3600)).await;

    wait_removed(&n, &event_id, Duration::from_secs(5)).await;
    assert!(seen.try_recv().is_err(), "nothing sent");
    stop(n, actor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_age() {
    let always_500 = vec![(500, Duration::ZERO); 10];
    let (addr, mut seen) = receiver(always_500).await;
    let mut n = node(true).await;
    let actor = dispatcher(&mut n, Duration::from_secs(5), Duration::from_millis(1500)).await;
    let event_id = seed(
        &n,
        "m6",
        &format!("http://{addr}/hook"),
        crate::clock::now_ms(),
    )
    .await;

    // Tries at ~0 s and ~1 s; the next one (2 s later) is past 1.5 s: dropped instead.
    wait_removed(&n, &event_id, Duration::from_secs(5)).await;
    let mut tries = 0;
    while seen.try_recv().is_ok() {
        tries += 1;
    }
    assert_eq!(tries, 2);
    stop(n, actor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_a_job_older_than_max_age_without_sending() {
    let (addr, mut seen) = receiver(vec![]).await;
    let mut n = node(false).await;
    let old = crate::clock::now_ms() - 25 * 3_600_000;
    let event_id = seed(&n, "m7", &format!("http://{addr}/hook"), old).await;
    let actor = dispatcher(
        &mut n,
        Duration::from_secs(5),
        Duration::from_secs(24 * 3600),
    )
    .await;

    wait_removed(&n, &event_id, Duration::from_secs(5)).await;
    assert!(seen.try_recv().is_err(), "nothing sent");
    stop(n, actor).await;
}
