//! The routing engine of one node: the compiled route index and operator table (cached
//! per configuration generation), the HLR hook, and the live feedback (success window,
//! A/B book). Decisions are made in two steps, each recorded in Raft, never recomputed
//! during apply:
//!
//! - **accept time** (any node, in the send handler): which route, which A/B variant
//!   (a hash of the message id, so the split is exact and reproducible) and so which
//!   candidate channels; written into the `Accept` op (`route_id`, `ab_variant`,
//!   `route`, `operator`).
//! - **ordering** (also at accept time, `api::messages::rank_candidates`): the order in
//!   which the candidates are tried, by the route's strategy over live health and
//!   receipt feedback, stored as the row's `route` so every node agrees on the channel
//!   a message waits on. The channel actually used is recorded by `PartSubmitted`, a
//!   move away by `Failover`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::feedback::{AbBook, SuccessWindow};
use super::hlr::Hlr;
use super::matcher::{MatchInput, RouteIndex};
use super::operators::OperatorTable;
use super::strategy::{self, Candidate, Strategy};
use super::trie::DigitTrie;
use crate::state::{ConfigView, Feedback, FeedbackKind, Route, RouteChannel, RoutingSettings};

/// Default sliding window of the success feedback.
pub const DEFAULT_WINDOW_SECONDS: u64 = 900;
/// Default HLR timeout and cache lifetime.
pub const DEFAULT_HLR_TIMEOUT_MS: u64 = 300;
pub const DEFAULT_HLR_CACHE_SECONDS: u64 = 3600;

/// The chosen route and its channels in failover order.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteChoice {
    pub route_id: String,
    pub strategy: String,
    pub channels: Vec<String>,
    /// A/B variant (0 = A, 1 = B) when the route runs a test.
    pub variant: Option<u8>,
}

/// How [`RoutingEngine::order`] draws the random parts of a strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// One random draw per message: what a send uses.
    Sampled,
    /// The expected winner of each draw: what a preview reports.
    MostLikely,
}

/// Per-channel prices per destination prefix from the price-list CSV.
#[derive(Default)]
pub struct PriceList {
    by_channel: std::collections::HashMap<String, DigitTrie<f64>>,
}

/// A price-list line that is not `channel,prefix,price`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("price-list CSV line {line}: {reason}")]
pub struct PriceCsvError {
    pub line: usize,
    pub reason: String,
}

impl PriceList {
    /// Parses `channel,prefix,price` lines (`#` comments and a header allowed).
    pub fn parse(csv: &str) -> Result<PriceList, PriceCsvError> {
        let mut p = PriceList::default();
        for (n, raw) in csv.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("channel,") {
                continue;
            }
            let bad = |r: &str| PriceCsvError {
                line: n + 1,
                reason: r.into(),
            };
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() != 3 || f[0].is_empty() {
                return Err(bad("expected channel,prefix,price"));
            }
            let prefix = f[1].strip_prefix('+').unwrap_or(f[1]);
            if !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 15 {
                return Err(bad("prefix must be digits like +49 (empty = any)"));
            }
            let price: f64 = f[2]
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad("price must be a number ≥ 0"))?;
            *p.by_channel
                .entry(f[0].to_string())
                .or_default()
                .entry(prefix, || 0.0) = price;
        }
        Ok(p)
    }

    fn price(&self, channel: &str, to: &str) -> Option<f64> {
        self.by_channel.get(channel)?.longest(to).map(|(_, v)| *v)
    }
}

/// Derived from one configuration generation.
struct Compiled {
    generation: u64,
    index: Arc<RouteIndex>,
    operators: Arc<OperatorTable>,
    prices: Arc<PriceList>,
    window_ms: i64,
}

/// One node's routing engine.
pub struct RoutingEngine {
    compiled: RwLock<Option<Arc<Compiled>>>,
    /// Receipt outcomes per destination × channel over the sliding window.
    window: RwLock<Arc<SuccessWindow>>,
    pub ab: AbBook,
    hlr: Hlr,
}

impl Default for RoutingEngine {
    fn default() -> Self {
        RoutingEngine {
            compiled: RwLock::new(None),
            window: RwLock::new(Arc::new(SuccessWindow::new(
                DEFAULT_WINDOW_SECONDS as i64 * 1000,
            ))),
            ab: AbBook::default(),
            hlr: Hlr::default(),
        }
    }
}

/// The key the success feedback is kept under: operator, else country, else the
/// number's first three digits.
pub fn destination(to: &str, operator: Option<&str>) -> String {
    if let Some(op) = operator {
        return op.to_string();
    }
    crate::messages::intake::country_of(to).unwrap_or_else(|| to.chars().take(4).collect())
}

/// Deterministic A/B draw: 0..100 from the message id.
pub fn ab_bucket(id: &str) -> u32 {
    // FNV-1a, then a splitmix64 finaliser so every bit of the id reaches the low bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % 100) as u32
}

fn ordered(channels: &[RouteChannel]) -> Vec<String> {
    let mut c = channels.to_vec();
    c.sort_by_key(|c| c.priority);
    c.into_iter().map(|c| c.id).collect()
}

/// The (strategy, channels, min success) of a route's variant.
fn variant_of(r: &Route, variant: Option<u8>) -> (&str, &[RouteChannel], Option<f64>) {
    match (&r.ab, variant) {
        (Some(ab), Some(1)) => (&ab.strategy, &ab.channels, ab.min_success_rate),
        _ => (&r.strategy, &r.channels, r.min_success_rate),
    }
}

/// True when the route's (variant's) strategy draws at random per message (`weighted`,
/// `success_rate`, `least_cost` with `min_success_rate`): a preview then reports the
/// most likely order.
pub fn draws_per_message(cfg: &ConfigView, route_id: &str, variant: Option<u8>) -> bool {
    cfg.routes.get(route_id).is_some_and(|r| {
        let (s, _, min) = variant_of(r, variant);
        match Strategy::parse(s) {
            Some(Strategy::Weighted | Strategy::SuccessRate) => true,
            Some(Strategy::LeastCost) => min.is_some(),
            Some(Strategy::Priority) | None => false,
        }
    })
}

impl RoutingEngine {
    fn compiled(&self, cfg: &ConfigView) -> Arc<Compiled> {
        if let Some(c) = self
            .compiled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && c.generation == cfg.generation
        {
            return c.clone();
        }
        let mut w = self.compiled.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = w.as_ref()
            && c.generation == cfg.generation
        {
            return c.clone();
        }
        let old = w.clone();
        let operators = match (&cfg.routing.number_ranges_csv, &old) {
            (None, _) => Arc::new(OperatorTable::builtin()),
            (Some(csv), _) => Arc::new(OperatorTable::parse(csv).unwrap_or_default()),
        };
        let prices = Arc::new(
            cfg.routing
                .price_list_csv
                .as_deref()
                .map(|c| PriceList::parse(c).unwrap_or_default())
                .unwrap_or_default(),
        );
        let secs = match cfg.routing.success_window_seconds {
            0 => DEFAULT_WINDOW_SECONDS,
            s => s,
        };
        let window_ms = secs as i64 * 1000;
        if old.as_ref().is_none_or(|o| o.window_ms != window_ms) {
            *self.window.write().unwrap_or_else(|e| e.into_inner()) =
                Arc::new(SuccessWindow::new(window_ms));
        }
        let c = Arc::new(Compiled {
            generation: cfg.generation,
            index: Arc::new(RouteIndex::build(cfg.routes.values())),
            operators,
            prices,
            window_ms,
        });
        *w = Some(c.clone());
        c
    }

    fn window(&self) -> Arc<SuccessWindow> {
        self.window
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// MCC+MNC of `to` from the number-range table.
    pub fn operator_of(&self, cfg: &ConfigView, to: &str) -> Option<String> {
        self.compiled(cfg).operators.lookup(to).map(|o| o.mccmnc())
    }

    /// The operator of `to` per the HLR hook, when configured and answering in time
    /// (the caller falls back to the number-range table).
    pub async fn hlr_operator(&self, settings: &RoutingSettings, to: &str) -> Option<String> {
        let url = settings.hlr_url.as_deref()?;
        let timeout = match settings.hlr_timeout_ms {
            0 => DEFAULT_HLR_TIMEOUT_MS,
            t => t,
        };
        let ttl = match settings.hlr_cache_seconds {
            0 => DEFAULT_HLR_CACHE_SECONDS,
            t => t,
        };
        self.hlr
            .lookup(
                url,
                to,
                Duration::from_millis(timeout),
                Duration::from_secs(ttl),
            )
            .await
    }

    /// Accept-time decision: the route, the A/B variant and the candidate channels.
    pub fn route(
        &self,
        cfg: &ConfigView,
        m: &MatchInput<'_>,
        message_id: &str,
    ) -> Option<RouteChoice> {
        let c = self.compiled(cfg);
        let r = c.index.choose(m)?;
        let variant =
            r.ab.as_ref()
                .map(|ab| u8::from(ab_bucket(message_id) < ab.split_percent));
        let (strategy, channels, _) = variant_of(r, variant);
        Some(RouteChoice {
            route_id: r.id.clone(),
            strategy: strategy.to_string(),
            channels: ordered(channels),
            variant,
        })
    }

    /// Price per part of `to` on `channel`: the price list, else the channel's cost map.
    pub fn price(&self, cfg: &ConfigView, channel: &str, to: &str) -> Option<f64> {
        let c = self.compiled(cfg);
        if let Some(p) = c.prices.price(channel, to) {
            return Some(p);
        }
        cost_map_price(cfg, channel, to)
    }

    /// The candidates of a message in the order to try them (decided once, at accept).
    /// `health(channel)` gives (health score 0..1, breaker lets traffic through).
    /// Channels in `avoid` go after the others (unless all are avoided). `ranking` says
    /// whether random strategies draw (a send) or report their most likely order (a
    /// preview): one ranking for both, so a preview names what a send would do.
    #[allow(clippy::too_many_arguments)]
    pub fn order(
        &self,
        cfg: &ConfigView,
        route_id: Option<&str>,
        variant: Option<u8>,
        candidates: &[String],
        to: &str,
        operator: Option<&str>,
        avoid: &[String],
        ranking: Ranking,
        health: impl Fn(&str) -> (f64, bool),
    ) -> Vec<String> {
        let route = route_id.and_then(|id| cfg.routes.get(id));
        let (strategy, rcs, min) = match route {
            Some(r) => {
                let (s, c, m) = variant_of(r, variant);
                (Strategy::parse(s).unwrap_or(Strategy::Priority), Some(c), m)
            }
            None => (Strategy::Priority, None, None),
        };
        // Only the feedback-driven strategies look at the destination (a number parse).
        let feedback = matches!(strategy, Strategy::SuccessRate | Strategy::LeastCost);
        let dest = if feedback {
            destination(to, operator)
        } else {
            String::new()
        };
        let now = crate::clock::now_ms();
        let window = self.window();
        let facts: Vec<Candidate> = candidates
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                let rc = rcs.and_then(|c| c.iter().find(|c| &c.id == ch));
                let (score, allowed) = health(ch);
                let (d, u) = if feedback {
                    window.counts(&dest, ch, now)
                } else {
                    (0, 0)
                };
                Candidate {
                    id: ch.clone(),
                    priority: rc.map(|r| r.priority).unwrap_or(i as u32),
                    weight: rc.map(|r| r.weight).unwrap_or(1),
                    cost: if strategy == Strategy::LeastCost {
                        self.price(cfg, ch, to)
                    } else {
                        None
                    },
                    health: score,
                    allowed,
                    delivered: d as f64,
                    undelivered: u as f64,
                }
            })
            .collect();
        let mut out = match ranking {
            Ranking::Sampled => {
                let mut rng = SmallRng::from_rng(&mut rand::rng());
                strategy::order(strategy, &facts, min, &mut rng)
            }
            Ranking::MostLikely => strategy::rank(strategy, &facts, min, &mut strategy::MostLikely),
        };
        if !avoid.is_empty() && out.iter().any(|c| !avoid.contains(c)) {
            let (fresh, left): (Vec<String>, Vec<String>) =
                out.into_iter().partition(|c| !avoid.contains(c));
            out = fresh.into_iter().chain(left).collect();
        }
        out
    }

    /// Learns from an applied outcome (every node applies every receipt).
    pub fn learn(&self, cfg: &ConfigView, fb: &Feedback) {
        let _ = self.compiled(cfg);
        let now = crate::clock::now_ms();
        match fb.kind {
            FeedbackKind::Accepted => {
                if let (Some(r), Some(v)) = (&fb.route_id, fb.ab_variant) {
                    self.ab.accepted(r, v);
                }
            }
            FeedbackKind::PartFinal { delivered, .. } => {
                if let Some(ch) = &fb.channel {
                    let dest = destination(&fb.to, fb.operator.as_deref());
                    self.window().record(&dest, ch, delivered, now);
                }
            }
            FeedbackKind::MessageFinal {
                delivered,
                latency_ms,
            } => {
                if let (Some(r), Some(v)) = (&fb.route_id, fb.ab_variant) {
                    let cost = fb
                        .channel
                        .as_deref()
                        .and_then(|ch| self.price(cfg, ch, &fb.to))
                        .map(|p| p * f64::from(fb.parts))
                        .unwrap_or(0.0);
                    let latency = if delivered {
                        latency_ms.map(|l| l.max(0) as u64)
                    } else {
                        None
                    };
                    self.ab.finished(r, v, delivered, latency, cost);
                }
            }
        }
    }

    /// Counts over the window for one destination × channel (for the admin view).
    pub fn success_counts(&self, destination: &str, channel: &str) -> (u64, u64) {
        self.window()
            .counts(destination, channel, crate::clock::now_ms())
    }
}

/// Price per part from the channel's own `cost` map: the longest matching E.164 prefix,
/// else its "default".
fn cost_map_price(cfg: &ConfigView, channel: &str, to: &str) -> Option<f64> {
    let c = cfg.channels.get(channel)?;
    c.cost
        .iter()
        .filter(|(k, _)| k.starts_with('+') && to.starts_with(k.as_str()))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, v)| *v)
        .or_else(|| c.cost.get("default").copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AbSplit, Category};

    fn cfg_with(routes: Vec<Route>) -> ConfigView {
        let mut cfg = ConfigView::default();
        for r in routes {
            cfg.routes.insert(r.id.clone(), r);
        }
        cfg.generation = 1;
        cfg
    }

    fn input(to: &str) -> MatchInput<'_> {
        MatchInput {
            to,
            country: Some("DE"),
            operator: None,
            tenant: "t",
            category: Category::Otp,
            sender_type: "alphanumeric",
        }
    }

    #[test]
    fn ab_split_is_exact_enough_and_deterministic() {
        let mut r = crate::routing::matcher::tests_support::route("r", &[]);
        r.ab = Some(AbSplit {
            split_percent: 30,
            strategy: "priority".into(),
            channels: vec![RouteChannel {
                id: "b".into(),
                weight: 1,
                priority: 0,
            }],
            min_success_rate: None,
        });
        let cfg = cfg_with(vec![r]);
        let e = RoutingEngine::default();
        let n = 20_000;
        let b = (0..n)
            .filter(|_| {
                let id = ulid::Ulid::new().to_string();
                let c = e.route(&cfg, &input("+4915112345678"), &id);
                c.as_ref().and_then(|c| c.variant) == Some(1)
            })
            .count();
        let share = b as f64 / n as f64;
        assert!((share - 0.30).abs() < 0.015, "{share}");
        assert_eq!(ab_bucket("01JD0000"), ab_bucket("01JD0000"));
    }

    #[test]
    fn price_list_beats_cost_map() {
        let p = PriceList::parse("channel,prefix,price\na,+49,0.01\na,+4915,0.02\nb,,0.5")
            .expect("parse");
        assert_eq!(p.price("a", "+4915112345678"), Some(0.02));
        assert_eq!(p.price("a", "+4930"), Some(0.01));
        assert_eq!(p.price("b", "+33"), Some(0.5));
        assert_eq!(p.price("c", "+33"), None);
        assert_eq!(PriceList::parse("a,+49,x").err().map(|e| e.line), Some(1));
    }

    #[test]
    fn avoided_channels_go_last() {
        let mut r = crate::routing::matcher::tests_support::route("r", &[]);
        r.channels.push(RouteChannel {
            id: "r-b".into(),
            weight: 1,
            priority: 2,
        });
        let cfg = cfg_with(vec![r]);
        let e = RoutingEngine::default();
        let cands = vec!["r-a".to_string(), "r-b".to_string()];
        let o = e.order(
            &cfg,
            Some("r"),
            None,
            &cands,
            "+49151",
            None,
            &["r-a".into()],
            Ranking::Sampled,
            |_| (1.0, true),
        );
        assert_eq!(o, ["r-b", "r-a"]);
        let o = e.order(
            &cfg,
            Some("r"),
            None,
            &cands,
            "+49151",
            None,
            &[],
            Ranking::Sampled,
            |c| (1.0, c != "r-a"),
        );
        assert_eq!(o, ["r-b", "r-a"]);
        let o = e.order(
            &cfg,
            Some("r"),
            None,
            &cands,
            "+49151",
            None,
            &[],
            Ranking::Sampled,
            |_| (1.0, true),
        );
        assert_eq!(o, ["r-a", "r-b"]);
    }
}
