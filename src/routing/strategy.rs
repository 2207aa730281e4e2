//! Route strategies (pure): put a route's candidate channels in the order they should
//! be tried, from per-channel facts gathered by the caller. Randomness comes from the
//! caller's RNG, so tests are reproducible with a seed.
//!
//! - `priority`: the configured order (ordered failover).
//! - `weighted`: a weighted random order (weights scaled by health score). A channel
//!   of weight 0 is never chosen first: it comes after every weighted channel (in
//!   priority order), a failover-only line.
//! - `least_cost`: cheapest first; with `min_success_rate` only channels whose sampled
//!   success rate reaches it come first ("cheapest with success ≥ X %").
//! - `success_rate`: Thompson sampling: each channel draws a success rate from
//!   Beta(delivered + 1, undelivered + 1) over the sliding window and the highest draw
//!   goes first. A channel with little recent data draws widely, so it keeps being
//!   tried now and then and a recovered channel is found again.
//!
//! Channels whose circuit breaker refuses traffic always go last (in strategy order),
//! so a message never waits on a broken line while another one is usable.
//!
//! The random keys come from a [`Draws`]: [`Sampled`] (a real send: one draw per
//! message) or [`MostLikely`] (the preview: each draw replaced by its expected winner,
//! the highest effective weight or the best mean success rate), so the preview ranks
//! with the very function a send uses.

use rand::Rng;

/// The strategies a route can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Priority,
    Weighted,
    LeastCost,
    SuccessRate,
}

impl Strategy {
    /// Parses the contract's spelling.
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "priority" => Strategy::Priority,
            "weighted" => Strategy::Weighted,
            "least_cost" => Strategy::LeastCost,
            "success_rate" => Strategy::SuccessRate,
            _ => return None,
        })
    }
}

/// What the strategy knows about one candidate channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub priority: u32,
    pub weight: u32,
    /// Price per part for this destination; None = unknown (sorted last by cost).
    pub cost: Option<f64>,
    /// 0..1 from the channel's health (1 = perfect).
    pub health: f64,
    /// The circuit breaker lets traffic through.
    pub allowed: bool,
    /// Final receipts in the sliding window for this destination.
    pub delivered: f64,
    pub undelivered: f64,
}

/// A draw from Gamma(shape, 1) (Marsaglia–Tsang; shape < 1 boosted).
fn gamma(rng: &mut impl Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        // Standard normal by Box–Muller.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let x = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Where the random parts of a ranking come from.
pub trait Draws {
    /// Sort key of a channel of effective weight `w` > 0 under `weighted` (larger first).
    fn weighted_key(&mut self, w: f64) -> f64;
    /// A success rate for a channel with these receipt counts (Thompson sampling).
    fn success_rate(&mut self, delivered: f64, undelivered: f64) -> f64;
}

/// Random draws from an RNG: what a send uses.
pub struct Sampled<'a, R>(pub &'a mut R);

impl<R: Rng> Draws for Sampled<'_, R> {
    fn weighted_key(&mut self, w: f64) -> f64 {
        // Efraimidis–Spirakis: key u^(1/w), larger first.
        let u: f64 = self.0.random::<f64>().max(f64::MIN_POSITIVE);
        u.powf(1.0 / w)
    }
    fn success_rate(&mut self, delivered: f64, undelivered: f64) -> f64 {
        beta(self.0, delivered + 1.0, undelivered + 1.0)
    }
}

/// The most likely outcome of each draw: the highest effective weight, the mean of
/// Beta(delivered + 1, undelivered + 1). What a preview reports.
pub struct MostLikely;

impl Draws for MostLikely {
    fn weighted_key(&mut self, w: f64) -> f64 {
        w
    }
    fn success_rate(&mut self, delivered: f64, undelivered: f64) -> f64 {
        (delivered + 1.0) / (delivered + undelivered + 2.0)
    }
}

/// A draw from Beta(a, b).
pub fn beta(rng: &mut impl Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a.max(1e-3));
    let y = gamma(rng, b.max(1e-3));
    if x + y <= 0.0 { 0.5 } else { x / (x + y) }
}

/// Orders the candidates for one message with random draws; returns channel ids, best
/// first.
pub fn order(
    strategy: Strategy,
    candidates: &[Candidate],
    min_success_rate: Option<f64>,
    rng: &mut impl Rng,
) -> Vec<String> {
    rank(strategy, candidates, min_success_rate, &mut Sampled(rng))
}

/// Orders the candidates with the draws of `draws`; returns channel ids, best first.
/// The one ranking function of both a send ([`Sampled`]) and a preview ([`MostLikely`]).
pub fn rank(
    strategy: Strategy,
    candidates: &[Candidate],
    min_success_rate: Option<f64>,
    draws: &mut impl Draws,
) -> Vec<String> {
    // (refused by breaker, key...) sorted ascending.
    let mut keyed: Vec<(bool, f64, f64, u32, &Candidate)> = candidates
        .iter()
        .map(|c| {
            let (k1, k2) = match strategy {
                Strategy::Priority => (0.0, 0.0),
                // Weight 0: failover only, after every weighted channel (keys ≤ 0).
                Strategy::Weighted if c.weight == 0 => (1.0, 0.0),
                Strategy::Weighted => {
                    let w = (f64::from(c.weight) * c.health.clamp(0.01, 1.0)).max(1e-6);
                    (-draws.weighted_key(w), 0.0)
                }
                Strategy::LeastCost => {
                    let cost = c.cost.unwrap_or(f64::INFINITY);
                    match min_success_rate {
                        Some(min) => {
                            let s = draws.success_rate(c.delivered, c.undelivered);
                            if s >= min { (0.0, cost) } else { (1.0, -s) }
                        }
                        None => (cost, 0.0),
                    }
                }
                Strategy::SuccessRate => (-draws.success_rate(c.delivered, c.undelivered), 0.0),
            };
            (!c.allowed, k1, k2, c.priority, c)
        })
        .collect();
    keyed.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
            .then(a.3.cmp(&b.3))
            .then(a.4.id.cmp(&b.4.id))
    });
    keyed.into_iter().map(|k| k.4.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn cand(id: &str, priority: u32, cost: f64, ok: f64, bad: f64) -> Candidate {
        Candidate {
            id: id.into(),
            priority,
            weight: 1,
            cost: Some(cost),
            health: 1.0,
            allowed: true,
            delivered: ok,
            undelivered: bad,
        }
    }

    #[test]
    fn priority_and_breaker() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = vec![cand("b", 2, 1.0, 0.0, 0.0), cand("a", 1, 2.0, 0.0, 0.0)];
        assert_eq!(order(Strategy::Priority, &c, None, &mut rng), ["a", "b"]);
        c[1].allowed = false;
        assert_eq!(order(Strategy::Priority, &c, None, &mut rng), ["b", "a"]);
    }

    #[test]
    fn least_cost_with_and_without_floor() {
        let mut rng = StdRng::seed_from_u64(2);
        let c = vec![
            cand("cheap-bad", 1, 0.001, 10.0, 90.0),
            cand("mid", 2, 0.004, 95.0, 5.0),
            cand("dear", 3, 0.009, 99.0, 1.0),
        ];
        assert_eq!(
            order(Strategy::LeastCost, &c, None, &mut rng)[0],
            "cheap-bad"
        );
        let mut firsts = std::collections::HashMap::new();
        for _ in 0..200 {
            *firsts
                .entry(order(Strategy::LeastCost, &c, Some(0.8), &mut rng)[0].clone())
                .or_insert(0) += 1;
        }
        assert!(firsts.get("mid").copied().unwrap_or(0) > 190, "{firsts:?}");
    }

    #[test]
    fn thompson_prefers_the_better_channel_but_explores() {
        let mut rng = StdRng::seed_from_u64(3);
        let c = vec![
            cand("good", 2, 1.0, 90.0, 10.0),
            cand("bad", 1, 1.0, 30.0, 70.0),
        ];
        let good = (0..1000)
            .filter(|_| order(Strategy::SuccessRate, &c, None, &mut rng)[0] == "good")
            .count();
        assert!(good > 990, "{good}");
        // With no data both are explored about equally.
        let c = vec![cand("x", 1, 1.0, 0.0, 0.0), cand("y", 2, 1.0, 0.0, 0.0)];
        let x = (0..1000)
            .filter(|_| order(Strategy::SuccessRate, &c, None, &mut rng)[0] == "x")
            .count();
        assert!((400..600).contains(&x), "{x}");
    }

    #[test]
    fn weighted_follows_weights() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut c = vec![cand("a", 1, 1.0, 0.0, 0.0), cand("b", 2, 1.0, 0.0, 0.0)];
        c[0].weight = 3;
        let a = (0..4000)
            .filter(|_| order(Strategy::Weighted, &c, None, &mut rng)[0] == "a")
            .count();
        assert!((2800..3200).contains(&a), "{a}");
    }

    #[test]
    fn weight_zero_is_never_first_only_failover() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut c = vec![
            cand("zero", 1, 1.0, 0.0, 0.0),
            cand("one", 2, 1.0, 0.0, 0.0),
            cand("zero2", 3, 1.0, 0.0, 0.0),
        ];
        c[0].weight = 0;
        c[2].weight = 0;
        for _ in 0..2000 {
            assert_eq!(
                order(Strategy::Weighted, &c, None, &mut rng),
                ["one", "zero", "zero2"]
            );
        }
        // A weight-0 channel still beats one whose breaker is open.
        c[1].allowed = false;
        assert_eq!(
            order(Strategy::Weighted, &c, None, &mut rng),
            ["zero", "zero2", "one"]
        );
    }

    #[test]
    fn most_likely_is_the_expected_winner_of_each_strategy() {
        let mut c = vec![
            cand("a", 1, 0.004, 20.0, 80.0),
            cand("b", 2, 0.006, 0.0, 0.0),
        ];
        c[0].weight = 1;
        c[1].weight = 9;
        let first = |s, c: &[Candidate], min| rank(s, c, min, &mut MostLikely)[0].clone();
        assert_eq!(first(Strategy::Weighted, &c, None), "b");
        assert_eq!(first(Strategy::Priority, &c, None), "a");
        assert_eq!(first(Strategy::LeastCost, &c, None), "a");
        // b has no receipts (mean 0.5), a delivers 20 %.
        assert_eq!(first(Strategy::SuccessRate, &c, None), "b");
        assert_eq!(first(Strategy::LeastCost, &c, Some(0.4)), "b");
        // Health scales the weights: a sick heavy line loses to a healthy light one.
        c[1].health = 0.05;
        assert_eq!(first(Strategy::Weighted, &c, None), "a");
        // An open breaker goes last whatever the strategy.
        c[0].allowed = false;
        assert_eq!(first(Strategy::Priority, &c, None), "b");
    }

    #[test]
    fn beta_mean() {
        let mut rng = StdRng::seed_from_u64(5);
        let n = 20_000;
        let mean = (0..n).map(|_| beta(&mut rng, 8.0, 2.0)).sum::<f64>() / n as f64;
        assert!((mean - 0.8).abs() < 0.01, "{mean}");
        let mean = (0..n).map(|_| beta(&mut rng, 0.5, 0.5)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
