//! The recipient check every send makes (`intake::parse_recipient`: clean, parse with
//! libphonenumber, validity, country), against the library's own parse + `is_valid`, on
//! numbers of twelve countries including shared country codes (+1, +44, +7), from one
//! thread and from two at once (the node's HTTP workers share the library's locked
//! pattern cache).
//!
//! `cargo bench --bench recipient` prints the median per call of each path (and of the
//! library's parse alone, which `parse_recipient` still calls), then
//! criterion's estimates. Under `cargo test` (no `--bench` argument) it checks that both
//! paths agree on every number, as a check that the path works.

use std::time::{Duration, Instant};

use criterion::Criterion;
use smsgw::messages::intake;
use std::hint::black_box;

const NUMBERS: [&str; 14] = [
    "+4915112345678",
    "+4930123456",
    "+12015550123",
    "+14165550199",
    "+447911123456",
    "+441534123456",
    "+919876543210",
    "+33612345678",
    "+5511987654321",
    "+8613812345678",
    "+2348031234567",
    "+79123456789",
    "+77012345678",
    "+61412345678",
];

fn library(raw: &str) -> bool {
    phonenumber::parse(None, raw).is_ok_and(|n| phonenumber::is_valid(&n))
}

/// The parse alone: what is left of the library's cost in `parse_recipient`.
fn parse_only(raw: &str) -> bool {
    phonenumber::parse(None, raw).is_ok()
}

fn ours(raw: &str) -> bool {
    intake::parse_recipient(raw).is_ok()
}

/// Median ns per call of `f` over `calls` calls on `threads` threads at once.
fn median_ns(f: fn(&str) -> bool, calls: usize, threads: usize) -> u128 {
    let per_thread: Vec<Vec<u128>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut samples = Vec::with_capacity(calls / 64 + 1);
                    for round in 0..calls / 64 {
                        let t0 = Instant::now();
                        for i in 0..64 {
                            black_box(f(NUMBERS[(round * 64 + i + t) % NUMBERS.len()]));
                        }
                        samples.push(t0.elapsed().as_nanos() / 64);
                    }
                    samples
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all: Vec<u128> = per_thread.into_iter().flatten().collect();
    all.sort_unstable();
    all.get(all.len() / 2).copied().unwrap_or(0)
}

fn main() {
    for n in NUMBERS {
        assert_eq!(ours(n), library(n), "{n}: the two paths disagree");
    }
    // `cargo bench` passes `--bench`; `cargo test` runs the check above only.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let valid = NUMBERS.iter().filter(|n| ours(n)).count();
    println!("{} numbers, {valid} valid", NUMBERS.len());
    for threads in [1, 2] {
        let lib = median_ns(library, 200_000, threads);
        let own = median_ns(ours, 200_000, threads);
        let parse = median_ns(parse_only, 200_000, threads);
        println!(
            "{threads} thread(s): library parse + is_valid p50 {lib} ns, parse_recipient p50 {own} ns ({:.2}x), of which the library's parse p50 {parse} ns",
            lib as f64 / own.max(1) as f64
        );
    }

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut i = 0usize;
    c.bench_function("parse_recipient", |b| {
        b.iter(|| {
            i += 1;
            black_box(ours(NUMBERS[i % NUMBERS.len()]))
        })
    });
    c.bench_function("library_parse_is_valid", |b| {
        b.iter(|| {
            i += 1;
            black_box(library(NUMBERS[i % NUMBERS.len()]))
        })
    });
    c.final_summary();
}
