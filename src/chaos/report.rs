//! The run's report: `report.md` with the invariants' verdicts and the figures, and three
//! SVG charts per run (throughput, accept latency p99, errors — per second, with the
//! faults marked), drawn with plotters' SVG backend.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::load::{Request, is_accepted, is_available};
use super::oracle::{FaultEvent, Figures, LedgerEntry, Verdict, percentile};

/// Per-second series over the run.
pub struct Series {
    /// Accepted requests per second (by start time).
    pub accepted: Vec<f64>,
    /// Copies arriving at the SMSCs per second.
    pub at_smsc: Vec<f64>,
    /// p99 accept latency per second, ms.
    pub p99_ms: Vec<f64>,
    /// First attempts not answered 2xx/429 per second.
    pub first_errors: Vec<f64>,
    /// Requests still failed after the retry per second.
    pub final_errors: Vec<f64>,
}

/// Buckets the client records and ledger into seconds.
pub fn series(requests: &[Request], ledger: &[LedgerEntry], seconds: usize) -> Series {
    let n = seconds.max(1);
    let mut s = Series {
        accepted: vec![0.0; n],
        at_smsc: vec![0.0; n],
        p99_ms: vec![0.0; n],
        first_errors: vec![0.0; n],
        final_errors: vec![0.0; n],
    };
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n];
    for r in requests {
        let i = ((r.t_ms / 1000) as usize).min(n - 1);
        if is_accepted(r.final_code()) {
            s.accepted[i] += 1.0;
            lat[i].push(r.final_ms);
        }
        if !is_available(r.first) {
            s.first_errors[i] += 1.0;
        }
        if !is_available(r.final_code()) {
            s.final_errors[i] += 1.0;
        }
    }
    for l in ledger {
        if l.t_ms >= 0 {
            let i = ((l.t_ms / 1000) as usize).min(n - 1);
            s.at_smsc[i] += 1.0;
        }
    }
    for (i, v) in lat.iter().enumerate() {
        s.p99_ms[i] = percentile(v, 99.0);
    }
    s
}

fn chart(
    path: &Path,
    title: &str,
    y_label: &str,
    lines: &[(&str, &[f64], RGBColor)],
    faults: &[FaultEvent],
) -> Result<(), String> {
    let n = lines.iter().map(|l| l.1.len()).max().unwrap_or(1).max(2);
    let ymax = lines
        .iter()
        .flat_map(|l| l.1.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 320)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("seconds since load start")
        .y_desc(y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| e.to_string())?;
    for f in faults {
        let x0 = f.t_ms as f64 / 1000.0;
        let x1 = f.end_ms.map(|e| e as f64 / 1000.0).unwrap_or(x0).max(x0);
        if x1 > x0 {
            c.draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x1, ymax)],
                RGBColor(255, 200, 200).mix(0.35).filled(),
            )))
            .map_err(|e| e.to_string())?;
        }
        c.draw_series(std::iter::once(PathElement::new(
            vec![(x0, 0.0), (x0, ymax)],
            RGBColor(200, 0, 0).stroke_width(2),
        )))
        .map_err(|e| e.to_string())?;
        c.draw_series(std::iter::once(Text::new(
            f.label.clone(),
            (x0, ymax * 0.97),
            ("sans-serif", 12).into_font().color(&RGBColor(160, 0, 0)),
        )))
        .map_err(|e| e.to_string())?;
    }
    for (name, data, color) in lines {
        let color = *color;
        c.draw_series(LineSeries::new(
            data.iter().enumerate().map(|(i, v)| (i as f64 + 0.5, *v)),
            color.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label(*name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Draws the three charts into `dir`.
pub fn charts(dir: &Path, s: &Series, faults: &[FaultEvent]) -> Result<(), String> {
    chart(
        &dir.join("throughput.svg"),
        "Throughput",
        "messages / s",
        &[
            ("accepted (202)", &s.accepted, RGBColor(30, 100, 200)),
            ("at the SMSC", &s.at_smsc, RGBColor(20, 150, 60)),
        ],
        faults,
    )?;
    chart(
        &dir.join("latency.svg"),
        "Accept latency p99 (client, retry included)",
        "ms",
        &[("p99", &s.p99_ms, RGBColor(120, 60, 170))],
        faults,
    )?;
    chart(
        &dir.join("errors.svg"),
        "Errors (not 2xx/429)",
        "requests / s",
        &[
            ("first attempt", &s.first_errors, RGBColor(230, 120, 0)),
            ("after retry", &s.final_errors, RGBColor(200, 0, 0)),
        ],
        faults,
    )
}

/// Header facts of a run.
pub struct RunInfo<'a> {
    /// Scenario name.
    pub name: &'a str,
    /// Its description.
    pub description: &'a str,
    /// Scenario file.
    pub file: &'a str,
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// Offered rate.
    pub rate: u32,
    /// Load seconds.
    pub duration_s: f64,
    /// UTC start.
    pub started_utc: String,
    /// `targets.*` keys the scenario did not set (not checked), named in the report.
    pub targets_unset: Vec<&'static str>,
}

/// Writes `report.md`.
pub fn markdown(
    dir: &Path,
    info: &RunInfo<'_>,
    figures: &Figures,
    verdicts: &[Verdict],
    faults: &[FaultEvent],
    notes: &[String],
) -> std::io::Result<()> {
    let mut md = String::new();
    let pass = verdicts.iter().all(|v| v.pass);
    let _ = writeln!(
        md,
        "# Chaos run: {} — {}\n",
        info.name,
        if pass { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(md, "{}\n", info.description);
    let _ = writeln!(
        md,
        "Started {} UTC · seed {} · {} nodes · {} req/s offered for {} s · reproduce: `smsgw sim run {} --seed {}`\n",
        info.started_utc, info.seed, info.nodes, info.rate, info.duration_s, info.file, info.seed
    );
    if !info.targets_unset.is_empty() {
        let keys: Vec<String> = info
            .targets_unset
            .iter()
            .map(|k| format!("`targets.{k}`"))
            .collect();
        let _ = writeln!(
            md,
            "Targets not set, so not checked: {} (see simulations/README.md, \"Scenario file\").\n",
            keys.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "## Invariants\n\n| id | invariant | result | detail |\n| --- | --- | --- | --- |"
    );
    for v in verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            v.id,
            v.name,
            if v.pass { "pass" } else { "**FAIL**" },
            v.detail.replace('|', "/")
        );
    }
    let _ = writeln!(md, "\n## Figures\n\n| figure | value |\n| --- | --- |");
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(figures) {
        for (k, v) in m {
            let v = match v.as_f64() {
                Some(x) if x.fract() != 0.0 => format!("{x:.4}"),
                _ => v.to_string(),
            };
            let _ = writeln!(md, "| {k} | {v} |");
        }
    }
    let _ = writeln!(
        md,
        "\n## Faults\n\n| at (s) | until (s) | fault | leader failover (ms) | bind failover (ms) | first 202 after (ms) |\n| --- | --- | --- | --- | --- | --- |"
    );
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into());
    for f in faults {
        let label = match &f.not_injected {
            Some(why) => format!("{} — **not injected**: {why}", f.label),
            None => f.label.clone(),
        };
        let _ = writeln!(
            md,
            "| {:.1} | {} | {} | {} | {} | {} |",
            f.t_ms as f64 / 1000.0,
            f.end_ms
                .map(|e| format!("{:.1}", e as f64 / 1000.0))
                .unwrap_or_else(|| "–".into()),
            label.replace('|', "/"),
            opt(f.leader_failover_ms),
            opt(f.bind_failover_ms),
            opt(f.first_accept_ms)
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let _ = writeln!(
        md,
        "\n## Charts\n\n![throughput](throughput.svg)\n\n![latency](latency.svg)\n\n![errors](errors.svg)"
    );
    std::fs::write(dir.join("report.md"), md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_to_svg() {
        let dir = tempfile::tempdir().unwrap();
        let reqs: Vec<Request> = (0..50)
            .map(|i| Request {
                client_ref: format!("r{i}"),
                t_ms: i * 100,
                first: if i % 7 == 0 { 0 } else { 202 },
                first_ms: 3.0,
                retry: (i % 7 == 0).then_some(202),
                final_ms: 5.0 + i as f64,
                id: Some(format!("m{i}")),
                retry_after: false,
            })
            .collect();
        let s = series(&reqs, &[], 5);
        assert_eq!(s.accepted.iter().sum::<f64>(), 50.0);
        assert_eq!(s.first_errors.iter().sum::<f64>(), 8.0);
        let faults = [FaultEvent {
            t_ms: 1500,
            end_ms: Some(2500),
            label: "kill -9 leader".into(),
            abrupt: true,
            leader_failover_ms: Some(900.0),
            bind_failover_ms: None,
            first_accept_ms: None,
            not_injected: None,
        }];
        charts(dir.path(), &s, &faults).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("throughput.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("kill -9 leader"));
    }
}
