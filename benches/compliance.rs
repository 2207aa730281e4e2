//! All compliance checks of one message (`compliance::screen`: opt-out, sender id, 10DLC,
//! DLT, content rules, quiet hours, frequency-cap pre-check against the real fjall store)
//! with 10,000 content rules and 1,000,000 opt-outs in the replicated state.
//!
//! `cargo bench --bench compliance` prints p50/p99/max over 200,000 timed calls, then
//! criterion's estimate. The message clone per call is included in the figures. Under
//! `cargo test` (no `--bench` argument) it makes 2,000 calls, as a check that the path works.

use std::time::{Duration, Instant};

use criterion::Criterion;
use smsgw::compliance;
use smsgw::messages::intake::{self, DltIds, SendRequest};
use smsgw::state::compliance::{
    Campaign, ComplianceOp, ContentRule, CountryRules, DltTemplate, FrequencyCap, QuietHours,
    RuleAction, RuleKind,
};
use smsgw::state::{Category, ConfigView, Op, Proposal, RateLimit, StateStore, Tenant};
use std::hint::black_box;

const RULES: usize = 10_000;
const OPT_OUTS: usize = 1_000_000;

fn tenant() -> Tenant {
    Tenant {
        id: "acme".into(),
        name: "acme".into(),
        api_key_hash: String::new(),
        webhook_secret: String::new(),
        rate_limit: RateLimit {
            per_second: 1000,
            burst: 1000,
        },
        callback_url: None,
        max_parts: 10,
        queue_limit: 1_000_000,
        smart_encoding: false,
        senders: vec!["ACME".into()],
        created_at: 0,
        frequency_caps: vec![
            FrequencyCap {
                category: Category::Otp,
                max: 5,
                per_seconds: 600,
            },
            FrequencyCap {
                category: Category::Marketing,
                max: 1,
                per_seconds: 86_400,
            },
        ],
        sender_pool: vec!["+12025550100".into()],
        opt_out_categories: vec![Category::Marketing],
    }
}

fn apply(store: &StateStore, ops: Vec<Op>) {
    let p = Proposal { ops: ops.into() };
    store.apply(&[&p], &[]).expect("apply");
}

/// A store with the tenant, 10,000 rules (8,500 keywords, 1,000 URL domains, 400 regular
/// expressions, 100 link shorteners; a tenth of them tenant-scoped, a fifth `flag`),
/// 1,000,000 opt-outs, a DLT template, a 10DLC campaign and quiet hours for IN.
fn populated(dir: &std::path::Path) -> StateStore {
    let db = fjall::Database::builder(dir.join("store"))
        .open()
        .expect("db");
    let store = StateStore::open(&db).expect("store");
    apply(&store, vec![Op::PutTenant(Box::new(tenant()))]);
    let mut ops = Vec::new();
    for i in 0..RULES {
        let (kind, pattern) = match i {
            i if i < 8_500 => (RuleKind::Keyword, format!("spamword{i}")),
            i if i < 9_500 => (RuleKind::UrlDomain, format!("bad{i}.example")),
            i if i < 9_900 => (
                RuleKind::Regex,
                format!(r"(?i)\bpromo{i}\s+code\s+\d{{4,}}"),
            ),
            i => (RuleKind::LinkShortener, format!("sh{i}.ly")),
        };
        ops.push(Op::Compliance(Box::new(ComplianceOp::PutRule(
            ContentRule {
                id: format!("r{i}"),
                scope: (i % 10 == 0).then(|| "acme".to_string()),
                kind,
                pattern,
                action: if i % 5 == 0 {
                    RuleAction::Flag
                } else {
                    RuleAction::Reject
                },
                created_at: 0,
            },
        ))));
    }
    apply(&store, ops);
    for chunk in 0..(OPT_OUTS / 10_000) {
        let numbers = (0..10_000)
            .map(|j| format!("+4915112{:06}", chunk * 10_000 + j))
            .collect();
        apply(
            &store,
            vec![Op::Compliance(Box::new(ComplianceOp::AddOptOuts {
                tenant: "acme".into(),
                numbers,
            }))],
        );
    }
    apply(
        &store,
        vec![
            Op::Compliance(Box::new(ComplianceOp::PutTemplate(DltTemplate {
                tenant: "acme".into(),
                template_id: "1107000000000000001".into(),
                entity_id: "1101234567890123456".into(),
                text: "Dear {#var#}, your OTP is {#var#}. Valid for {#var#} minutes.".into(),
                created_at: 0,
            }))),
            Op::Compliance(Box::new(ComplianceOp::PutCampaign(Campaign {
                tenant: "acme".into(),
                id: "C1".into(),
                use_case: "2fa".into(),
                numbers: (0..50).map(|i| format!("+120255501{i:02}")).collect(),
                tps: 100,
                created_at: 0,
            }))),
            Op::Compliance(Box::new(ComplianceOp::PutCountry(CountryRules {
                quiet_hours: Some(QuietHours {
                    start_min: 21 * 60,
                    end_min: 8 * 60,
                    timezone: "Asia/Kolkata".into(),
                }),
                ..CountryRules::builtin("IN")
            }))),
        ],
    );
    store
}

fn requests() -> Vec<SendRequest> {
    let base = |to: &str, text: &str, cat: Category| SendRequest {
        to: to.into(),
        text: text.into(),
        from: None,
        encoding: None,
        category: Some(cat),
        smart_encoding: None,
        callback_url: None,
        client_ref: None,
        validity_seconds: None,
        send_at: None,
        dlt: None,
        campaign_id: None,
        udh: None,
    };
    let mut v = vec![
        base("+4917012345678", "Your verification code is 482913. It expires in 10 minutes.", Category::Otp),
        base("+4917012345679", "Big winter sale: 30% off everything this weekend only, see https://shop.acme.com/sale?utm=sms and reply STOP to opt out.", Category::Marketing),
        base("+447911123456", &"Your order 18273 has shipped and will arrive on Tuesday between 9 and 12. Track it at www.acme.com/track/18273. ".repeat(3), Category::Transactional),
        base("+4915112001234", "Member offer just for you", Category::Transactional),
    ];
    let mut india = base(
        "+919876543210",
        "Dear Asha, your OTP is 4821. Valid for 10 minutes.",
        Category::Otp,
    );
    india.dlt = Some(DltIds {
        entity_id: "1101234567890123456".into(),
        template_id: "1107000000000000001".into(),
    });
    v.push(india);
    let mut us = base("+12025550199", "Your Acme code: 771234", Category::Otp);
    us.from = Some("+12025550107".into());
    v.push(us);
    v
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let store = populated(dir.path());
    eprintln!("populated in {:?}", started.elapsed());
    let tenant = tenant();
    let cfg = ConfigView::default();
    let now = smsgw::clock::now_ms();
    let refs = smsgw::encoding::ConcatRefs::default();
    let prepared: Vec<(SendRequest, intake::Intake)> = requests()
        .into_iter()
        .filter_map(
            |r| match intake::build(&r, &tenant, &cfg, "01BENCH".into(), now, &refs) {
                Ok(i) => Some((r, i)),
                Err(e) => {
                    eprintln!("skipped request to {}: {}", r.to, e.message);
                    None
                }
            },
        )
        .collect();
    eprintln!("{} request kinds", prepared.len());
    // Compile the rules once (what the first send after a rule change pays).
    let t = Instant::now();
    let _ = compliance::content::compiled(&store);
    eprintln!("compiled {RULES} rules in {:?}", t.elapsed());

    // `cargo bench` passes `--bench`; `cargo test` runs this once as a check, not a measurement.
    let calls = if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        2_000
    };
    let mut samples = Vec::with_capacity(calls);
    let mut outcomes = std::collections::BTreeMap::new();
    for n in 0..calls {
        let (req, base) = &prepared[n % prepared.len()];
        let mut intake = base.clone();
        let t = Instant::now();
        let r = compliance::screen(&store, req, &tenant, &mut intake, false);
        samples.push(t.elapsed());
        *outcomes
            .entry(
                r.map(|c| format!("ok, {} caps", c.len()))
                    .unwrap_or_else(|e| e.code.to_string()),
            )
            .or_insert(0) += 1;
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "compliance::screen, {RULES} rules, {OPT_OUTS} opt-outs: p50 {:?} p90 {:?} p99 {:?} p99.9 {:?} max {:?} ({} calls; outcomes {outcomes:?})",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        samples[samples.len() - 1],
        samples.len()
    );

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut n = 0usize;
    c.bench_function("compliance_screen_10k_rules_1m_optouts", |b| {
        b.iter(|| {
            let (req, base) = &prepared[n % prepared.len()];
            n += 1;
            let mut intake = base.clone();
            black_box(compliance::screen(&store, req, &tenant, &mut intake, false).is_ok())
        })
    });
    c.final_summary();
}
