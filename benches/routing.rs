//! Routing decision cost with 10,000 routes and 100,000 prefixes.
//!
//! `cargo bench --bench routing` runs criterion (median per decision) and first prints
//! a p50/p99/max of single decisions timed one by one over 200,000 random numbers.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use smsgw::routing::{MatchInput, RouteIndex};
use smsgw::state::{Category, Route, RouteChannel};

const ROUTES: usize = 10_000;
const PREFIXES_PER_ROUTE: usize = 10;

/// 10,000 routes × 10 distinct prefixes (100,000), some with tenant / category /
/// country / operator conditions, plus a default route.
fn routes(rng: &mut StdRng) -> Vec<Route> {
    let ccs = ["1", "33", "34", "39", "44", "49", "7", "81", "86", "91"];
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(ROUTES + 1);
    for i in 0..ROUTES {
        let mut prefixes = Vec::new();
        while prefixes.len() < PREFIXES_PER_ROUTE {
            let cc = ccs[rng.random_range(0..ccs.len())];
            let extra: String = (0..rng.random_range(2..6))
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect();
            let p = format!("+{cc}{extra}");
            if seen.insert(p.clone()) {
                prefixes.push(p);
            }
        }
        out.push(Route {
            id: format!("r{i:05}"),
            prefixes,
            country: None,
            tenant: (i % 7 == 0).then(|| format!("t{}", i % 50)),
            category: (i % 11 == 0).then_some(Category::Otp),
            strategy: "priority".into(),
            channels: vec![RouteChannel {
                id: format!("c{}", i % 40),
                weight: 1,
                priority: 0,
            }],
            created_at: 0,
            operator: (i % 13 == 0).then(|| "26201".to_string()),
            sender_type: None,
            min_success_rate: None,
            ab: None,
        });
    }
    out.push(Route {
        id: "default".into(),
        prefixes: vec![],
        country: None,
        tenant: None,
        category: None,
        strategy: "priority".into(),
        channels: vec![RouteChannel {
            id: "c0".into(),
            weight: 1,
            priority: 0,
        }],
        created_at: 0,
        operator: None,
        sender_type: None,
        min_success_rate: None,
        ab: None,
    });
    out
}

fn numbers(rng: &mut StdRng, n: usize) -> Vec<String> {
    let ccs = ["1", "33", "34", "39", "44", "49", "7", "81", "86", "91"];
    (0..n)
        .map(|_| {
            let cc = ccs[rng.random_range(0..ccs.len())];
            let rest: String = (0..10)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect();
            format!("+{cc}{rest}")
        })
        .collect()
}

fn input(to: &str) -> MatchInput<'_> {
    MatchInput {
        to,
        country: Some("DE"),
        operator: Some("26201"),
        tenant: "t7",
        category: Category::Otp,
        sender_type: "alphanumeric",
    }
}

fn percentiles(ix: &RouteIndex, nums: &[String]) {
    let mut ns: Vec<u64> = Vec::with_capacity(nums.len());
    for n in nums {
        let t = Instant::now();
        black_box(ix.choose(&input(black_box(n))));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    // On a shared host a few decisions include the thread being descheduled (tens of
    // µs to hundreds of ms each); they decide the mean (and criterion's figure, which is
    // a mean) but not the percentiles.
    let stalls: Vec<u64> = ns.iter().copied().filter(|&n| n > 100_000).collect();
    println!(
        "{} of {} decisions took over 100 µs (descheduled), adding {:.0} ns to the mean",
        stalls.len(),
        ns.len(),
        stalls.iter().sum::<u64>() as f64 / ns.len() as f64
    );
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize];
    println!(
        "routing decision, 10k routes / 100k prefixes, {} numbers: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns, mean {:.0} ns (timer overhead included)",
        ns.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        ns[ns.len() - 1],
        mean
    );
    // The same decisions back to back, one clock read per pass: the mean without the
    // timer, comparable with criterion's figure.
    let t = Instant::now();
    for n in nums {
        black_box(ix.choose(&input(black_box(n))));
    }
    println!(
        "back to back over the same numbers: mean {:.0} ns per decision",
        t.elapsed().as_nanos() as f64 / nums.len() as f64
    );
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(42);
    let rs = routes(&mut rng);
    let t = Instant::now();
    let ix = RouteIndex::build(&rs);
    let (r, p) = ix.size();
    println!(
        "index of {r} routes / {p} prefixes built in {:?}",
        t.elapsed()
    );
    let nums = numbers(&mut rng, 200_000);
    percentiles(&ix, &nums);
    let mut i = 0usize;
    c.bench_function("route_decision_10k_routes_100k_prefixes", |b| {
        b.iter(|| {
            i = (i + 1) % nums.len();
            black_box(ix.choose(&input(&nums[i])))
        })
    });
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
