//! Reads this node's own Prometheus text (`PrometheusHandle::render`) back into numbers,
//! so the dashboard's history shows exactly what `/metrics` (and so Grafana) shows.
//! Pure: text in, sums out.

use std::collections::BTreeMap;

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Line<'_> {
    /// The value of label `k`, if the line has it.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the sample lines of the text format (comments and malformed lines are skipped).
pub fn parse(text: &str) -> Vec<Line<'_>> {
    text.lines().filter_map(parse_line).collect()
}

/// Parses one sample line (None for comments, blank and malformed lines).
pub fn parse_line(line: &str) -> Option<Line<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => (&line[..i], &line[i..]),
        None => return None,
    };
    let (labels, rest) = if let Some(body) = rest.strip_prefix('{') {
        let (labels, used) = parse_labels(body)?;
        (labels, &body[used..])
    } else {
        (Vec::new(), rest)
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Line {
        name,
        labels,
        value,
    })
}

/// `k="v",k2="v2"}` → labels and the bytes consumed (including the closing brace).
fn parse_labels(body: &str) -> Option<(Vec<(&str, String)>, usize)> {
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'}' {
            return Some((out, i + 1));
        }
        let eq = i + body[i..].find('=')?;
        let key = body[i..eq].trim();
        if bytes.get(eq + 1) != Some(&b'"') {
            return None;
        }
        let mut j = eq + 2;
        let mut val = String::new();
        while j < bytes.len() && bytes[j] != b'"' {
            if bytes[j] == b'\\' && j + 1 < bytes.len() {
                j += 1;
                val.push(match bytes[j] {
                    b'n' => '\n',
                    c => c as char,
                });
            } else {
                // Multi-byte UTF-8 sequences are copied whole.
                let ch = body[j..].chars().next()?;
                val.push(ch);
                j += ch.len_utf8() - 1;
            }
            j += 1;
        }
        if j >= bytes.len() {
            return None;
        }
        out.push((key, val));
        i = j + 1;
    }
}

/// Sum of `name` over the lines whose labels include every `(k, v)` of `want`.
pub fn sum(lines: &[Line<'_>], name: &str, want: &[(&str, &str)]) -> f64 {
    lines
        .iter()
        .filter(|l| l.name == name && want.iter().all(|(k, v)| l.label(k) == Some(v)))
        .map(|l| l.value)
        .sum()
}

/// Cumulative histogram buckets (`<name>_bucket`, upper bound → count) summed over the
/// lines whose labels include `want` (every channel when `want` is empty).
pub fn buckets(lines: &[Line<'_>], name: &str, want: &[(&str, &str)]) -> BTreeMap<Bound, f64> {
    let bucket = format!("{name}_bucket");
    let mut out = BTreeMap::new();
    for l in lines
        .iter()
        .filter(|l| l.name == bucket && want.iter().all(|(k, v)| l.label(k) == Some(v)))
    {
        let Some(le) = l.label("le").and_then(|v| match v {
            "+Inf" => Some(f64::INFINITY),
            v => v.parse::<f64>().ok(),
        }) else {
            continue;
        };
        *out.entry(Bound(le)).or_insert(0.0) += l.value;
    }
    out
}

/// A bucket's upper bound, ordered (bounds are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound(pub f64);
impl Eq for Bound {}
impl PartialOrd for Bound {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bound {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// The `q` quantile of the observations between two cumulative snapshots of the same
/// histogram, interpolated linearly inside the bucket as Prometheus' `histogram_quantile`
/// does. `None` when nothing was observed in between.
pub fn quantile(q: f64, now: &BTreeMap<Bound, f64>, before: &BTreeMap<Bound, f64>) -> Option<f64> {
    let delta: Vec<(f64, f64)> = now
        .iter()
        .map(|(b, c)| (b.0, (c - before.get(b).copied().unwrap_or(0.0)).max(0.0)))
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for (bound, count) in &delta {
        if *count >= rank {
            if bound.is_infinite() {
                return Some(prev_bound);
            }
            let in_bucket = count - prev_count;
            let frac = if in_bucket > 0.0 {
                (rank - prev_count) / in_bucket
            } else {
                1.0
            };
            return Some(prev_bound + (bound - prev_bound) * frac);
        }
        prev_bound = *bound;
        prev_count = *count;
    }
    Some(prev_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE smsgw_messages_total counter
smsgw_messages_total{status="accepted"} 10
smsgw_messages_total{status="delivered"} 7
smsgw_http_requests_total{route="/v1/messages",code="429"} 3
smsgw_http_requests_total{route="/v1/messages/batch",code="429"} 2
smsgw_http_requests_total{route="/v1/messages",code="202"} 10
smsgw_raft_leader 1
weird{a="x\"y,}z"} 4
broken{a="x" 5
smsgw_receipt_latency_seconds_bucket{channel="a",le="0.1"} 2
smsgw_receipt_latency_seconds_bucket{channel="a",le="1"} 8
smsgw_receipt_latency_seconds_bucket{channel="a",le="+Inf"} 10
smsgw_receipt_latency_seconds_bucket{channel="b",le="0.1"} 0
smsgw_receipt_latency_seconds_bucket{channel="b",le="1"} 0
smsgw_receipt_latency_seconds_bucket{channel="b",le="+Inf"} 10
"#;

    #[test]
    fn sums_by_label() {
        let l = parse(TEXT);
        assert_eq!(
            sum(&l, "smsgw_messages_total", &[("status", "accepted")]),
            10.0
        );
        assert_eq!(
            sum(&l, "smsgw_http_requests_total", &[("code", "429")]),
            5.0
        );
        assert_eq!(sum(&l, "smsgw_raft_leader", &[]), 1.0);
        assert_eq!(sum(&l, "missing", &[]), 0.0);
        let w = l.iter().find(|x| x.name == "weird").map(|x| x.label("a"));
        assert_eq!(w, Some(Some("x\"y,}z")));
        assert!(l.iter().all(|x| x.name != "broken"));
    }

    #[test]
    fn quantiles_between_snapshots() {
        let l = parse(TEXT);
        let a = buckets(&l, "smsgw_receipt_latency_seconds", &[("channel", "a")]);
        let empty = BTreeMap::new();
        // 2 of 10 ≤ 0.1, 8 ≤ 1: the median is inside (0.1, 1].
        let p50 = quantile(0.5, &a, &empty).unwrap_or(f64::NAN);
        assert!((p50 - (0.1 + 0.9 * 0.5)).abs() < 1e-9, "{p50}");
        // p99 falls in +Inf: the highest finite bound.
        assert_eq!(quantile(0.99, &a, &empty), Some(1.0));
        assert_eq!(
            quantile(0.5, &a, &a),
            None,
            "nothing new between equal snapshots"
        );
        let all = buckets(&l, "smsgw_receipt_latency_seconds", &[]);
        assert_eq!(all.get(&Bound(f64::INFINITY)), Some(&20.0));
    }
}
