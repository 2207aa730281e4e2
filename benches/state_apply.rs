//! The replicated state machine's share of one message: the four Raft operations every
//! SMS goes through after HTTP (accept, claim, submit response, final receipt), applied
//! by `StateStore::apply` to a real fjall store in batches of 100, as the batching
//! proposer packs them under load.
//!
//! In a loaded node this is the largest single part of the CPU (a third in batch mode)
//! and it runs on one task, so its cost per message bounds the node's rate. Unlike the
//! end-to-end load runs it is one thread with no network, so it is steady enough on a
//! shared host to compare builds by.
//!
//! `cargo bench --bench state_apply` prints the median and p90 of 3,000 timed batches
//! (the median is what to compare builds by: fjall's memtable flushes land in the tail),
//! then criterion's estimate per 100 messages. Under `cargo test` (no `--bench` argument)
//! it runs each step a few times only, as a check that the code path works.

use criterion::{Criterion, Throughput};
use smsgw::messages::intake::{self, SendRequest};
use smsgw::protocols::smpp::id_keys;
use smsgw::state::{
    BindKind, Category, Channel, ConfigView, Op, OpResult, Proposal, RateLimit, ReceiptOutcome,
    StateStore, Tenant, UdhMode,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The node's allocator: the figures are the node's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHANNEL: &str = "smsc-a";
const BATCH: usize = 100;

fn tenant() -> Tenant {
    Tenant {
        id: "acme".into(),
        name: "acme".into(),
        api_key_hash: "h".into(),
        webhook_secret: "s".into(),
        rate_limit: RateLimit {
            per_second: 100_000,
            burst: 100_000,
        },
        callback_url: None,
        max_parts: 10,
        queue_limit: 10_000_000,
        smart_encoding: false,
        senders: Vec::new(),
        created_at: 0,
        frequency_caps: Vec::new(),
        sender_pool: Vec::new(),
        opt_out_categories: Vec::new(),
    }
}

fn channel(id: &str) -> Channel {
    Channel {
        id: id.into(),
        protocol: "smpp".into(),
        host: "127.0.0.1".into(),
        port: 2775,
        system_id: "smsc".into(),
        password: "pw".into(),
        system_type: String::new(),
        bind: BindKind::Transceiver,
        binds: 1,
        tps: 100_000,
        window: 100,
        enquire_link_seconds: 30,
        cost: Default::default(),
        udh: UdhMode::Udh8,
        dlr_timeout_seconds: 3600,
        options_json: "{}".into(),
        drained: false,
        created_at: 0,
        sla: None,
        text: Default::default(),
    }
}

fn apply(store: &StateStore, ops: Vec<Op>) -> Vec<OpResult> {
    let p = Proposal { ops: ops.into() };
    store
        .apply(&[&p], &[])
        .expect("apply")
        .pop()
        .map(|o| o.results)
        .unwrap_or_default()
}

/// The store with a tenant and three channels, the first placed on node 1.
fn store(dir: &std::path::Path) -> StateStore {
    let db = fjall::Database::builder(dir.join("store"))
        .open()
        .expect("db");
    let store = StateStore::open(&db).expect("store");
    let mut ops = vec![Op::PutTenant(Box::new(tenant()))];
    for c in ["smsc-a", "smsc-b", "smsc-c"] {
        ops.push(Op::PutChannel(Box::new(channel(c))));
    }
    ops.push(Op::Place {
        channel: CHANNEL.into(),
        expected_epoch: 0,
        owner: Some(1),
        handoff_to: None,
    });
    apply(&store, ops);
    store
}

/// The four steps of one batch of 100 messages, each one proposal.
struct Steps {
    accepts: Vec<Op>,
    claim: Vec<Op>,
    submitted: Vec<Op>,
    receipts: Vec<Op>,
}

/// Builds the next batch's operations (not timed: the node gets them decoded from its log).
fn steps(template: &smsgw::state::Message, next: &AtomicU64) -> Steps {
    let first = next.fetch_add(BATCH as u64, Ordering::Relaxed);
    let ids: Vec<String> = (first..first + BATCH as u64)
        .map(|n| format!("01BENCH{n:019}"))
        .collect();
    let now = smsgw::clock::now_ms();
    let smsc_id = |id: &str| format!("{:x}", id[7..].parse::<u64>().unwrap_or(0));
    Steps {
        accepts: ids
            .iter()
            .map(|id| {
                let mut m = template.clone();
                m.id = id.clone();
                Op::Accept(Box::new(m))
            })
            .collect(),
        claim: vec![Op::Claim {
            channel: CHANNEL.into(),
            node: 1,
            epoch: 1,
            ids: ids.clone(),
            at: now,
        }],
        submitted: ids
            .iter()
            .map(|id| Op::PartSubmitted {
                id: id.clone(),
                part: 0,
                channel: CHANNEL.into(),
                smsc_message_id: smsc_id(id),
                keys: id_keys(&smsc_id(id)),
                at: now + 1,
            })
            .collect(),
        receipts: ids
            .iter()
            .map(|id| Op::Receipt {
                channel: CHANNEL.into(),
                smsc_message_id: smsc_id(id),
                keys: id_keys(&smsc_id(id)),
                outcome: ReceiptOutcome::Delivered,
                error: None,
                at: now + 2,
            })
            .collect(),
    }
}

/// Applies one batch from accept to delivered; the time of each step.
fn lifecycle(store: &StateStore, steps: Steps) -> [Duration; 4] {
    let timed = |ops: Vec<Op>| {
        let p = Proposal { ops: ops.into() };
        let t = Instant::now();
        let results = store
            .apply(&[&p], &[])
            .expect("apply")
            .pop()
            .map(|o| o.results)
            .unwrap_or_default();
        (t.elapsed(), results)
    };
    let (accept, _) = timed(steps.accepts);
    let (claim, claimed) = timed(steps.claim);
    // Checked every time: a bench that measured refused operations would mislead.
    assert!(matches!(&claimed[0], OpResult::Claimed { granted, .. } if granted.len() == BATCH));
    let (submitted, _) = timed(steps.submitted);
    let (receipt, results) = timed(steps.receipts);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, OpResult::ReceiptMatched { .. }))
    );
    [accept, claim, submitted, receipt]
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let req = SendRequest {
        to: "+4917012345678".into(),
        text: "Your verification code is 482913. It expires in 10 minutes.".into(),
        from: Some("ACME".into()),
        encoding: None,
        category: Some(Category::Otp),
        smart_encoding: None,
        callback_url: None,
        client_ref: Some("order-18273".into()),
        validity_seconds: None,
        send_at: None,
        dlt: None,
        campaign_id: None,
        udh: None,
    };
    let refs = smsgw::encoding::ConcatRefs::default();
    let mut message = intake::build(
        &req,
        &tenant(),
        &ConfigView::default(),
        "01BENCH".into(),
        smsgw::clock::now_ms(),
        &refs,
    )
    .expect("a valid request")
    .message;
    message.route = vec!["smsc-a".into(), "smsc-b".into(), "smsc-c".into()].into();
    message.route_id = Some("default".into());
    let next = AtomicU64::new(0);
    // `cargo bench` passes `--bench`; `cargo test` runs this once as a check, not a measurement.
    let (warm_up, timed) = if std::env::args().any(|a| a == "--bench") {
        (300, 3_000)
    } else {
        (3, 30)
    };
    for _ in 0..warm_up {
        lifecycle(&store, steps(&message, &next));
    }
    let mut times: Vec<[Duration; 4]> = (0..timed)
        .map(|_| lifecycle(&store, steps(&message, &next)))
        .collect();
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / BATCH as f64;
    let median = |times: &mut Vec<[Duration; 4]>, key: &dyn Fn(&[Duration; 4]) -> Duration| {
        times.sort_by_key(|t| key(t));
        (
            per_message(key(&times[times.len() / 2])),
            per_message(key(&times[times.len() * 9 / 10])),
        )
    };
    let (total, total_p90) = median(&mut times, &|t| t.iter().sum());
    let names = ["accept", "claim", "submit response", "receipt"];
    let steps_p50: Vec<String> = (0..4)
        .map(|i| format!("{} {:.1}", names[i], median(&mut times, &|t| t[i]).0))
        .collect();
    println!(
        "state_apply per message: p50 {total:.1} us, p90 {total_p90:.1} us (step p50s: {})",
        steps_p50.join(", ")
    );
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("state_apply");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("accept_claim_submitted_delivered_x100", |b| {
        b.iter_batched(
            || steps(&message, &next),
            |s| lifecycle(&store, s),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    c.final_summary();
}
