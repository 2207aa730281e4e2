//! Human tables for the admin commands whose answers people read most (cluster status,
//! members, channels); `--json` prints the API's JSON instead.

use serde_json::Value;

/// Which table an answer is shown as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `GET /admin/v1/cluster`: a header line and the members.
    Cluster,
    /// The members only.
    Nodes,
    /// `GET /admin/v1/channels`.
    Channels,
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(_) => v.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
fn grid(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn nodes_table(v: &Value) -> String {
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    let role = if n["leader"] == true {
                        "leader"
                    } else if n["voter"] == true {
                        "voter"
                    } else {
                        "learner"
                    };
                    vec![
                        cell(&n["id"]),
                        cell(&n["state"]),
                        role.to_string(),
                        cell(&n["addr"]),
                        cell(&n["http"]),
                        cell(&n["channels"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    grid(
        &["ID", "STATE", "ROLE", "CLUSTER ADDR", "HTTP", "BINDS"],
        rows,
    )
}

fn channels_table(v: &Value) -> String {
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let binds = c["binds"]
                        .as_array()
                        .map(|b| {
                            b.iter()
                                .map(|b| {
                                    format!(
                                        "{}@{}:{}",
                                        cell(&b["bind"]),
                                        cell(&b["node"]),
                                        cell(&b["state"])
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "-".into());
                    let s = &c["stats"];
                    vec![
                        cell(&c["id"]),
                        cell(&c["protocol"]),
                        cell(&c["state"]),
                        cell(&c["owner"]),
                        binds,
                        cell(&c["tps"]),
                        cell(&c["queue_depth"]),
                        cell(&s["sent"]),
                        cell(&s["delivered"]),
                        cell(&s["failed"]),
                        cell(&s["success_rate"]),
                        cell(&s["submit_latency_ms_p99"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    grid(
        &[
            "ID",
            "PROTO",
            "STATE",
            "OWNER",
            "BINDS",
            "TPS",
            "QUEUE",
            "SENT",
            "DELIVERED",
            "FAILED",
            "SUCCESS",
            "SUBMIT P99 MS",
        ],
        rows,
    )
}

/// The answer as a table; `None` when it does not have the expected shape (then the
/// JSON is printed).
pub fn render(table: Table, v: &Value) -> Option<String> {
    match table {
        Table::Cluster => {
            let mut head = format!(
                "leader: {}  term: {}  answered by node: {}",
                cell(&v["leader"]),
                cell(&v["term"]),
                cell(&v["node"])
            );
            if let Some(why) = v["not_serving"].as_str() {
                head.push_str(&format!("\nwarning: {why}; this view may be stale"));
            }
            v["nodes"]
                .is_array()
                .then(|| format!("{head}\n{}", nodes_table(&v["nodes"])))
        }
        Table::Nodes => {
            let nodes = if v.is_array() { v } else { &v["nodes"] };
            nodes.is_array().then(|| nodes_table(nodes))
        }
        Table::Channels => v.is_array().then(|| channels_table(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_table_shows_roles_states_and_binds() {
        let v = json!({"leader": 2, "term": 5, "node": 1, "nodes": [
            {"id": 1, "state": "up", "voter": true, "leader": false, "addr": "127.0.0.1:9081", "http": "127.0.0.1:8081", "channels": []},
            {"id": 2, "state": "up", "voter": true, "leader": true, "addr": "127.0.0.1:9082", "http": "127.0.0.1:8082", "channels": ["a#0", "a#1"]},
            {"id": 3, "state": "down", "voter": false, "leader": false, "addr": "127.0.0.1:9083", "http": "", "channels": []}
        ]});
        let t = render(Table::Cluster, &v).expect("table");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "leader: 2  term: 5  answered by node: 1");
        assert!(lines[1].starts_with("ID  STATE  ROLE"));
        assert!(
            lines[3].contains("leader") && lines[3].ends_with("a#0,a#1"),
            "{t}"
        );
        assert!(
            lines[4].contains("down") && lines[4].contains("learner"),
            "{t}"
        );
    }

    #[test]
    fn channel_table_has_a_row_per_channel_and_falls_back_on_other_shapes() {
        let v = json!([{"id": "a", "protocol": "smpp", "state": "bound", "owner": 2, "tps": 100, "queue_depth": 3,
            "binds": [{"bind": "a#0", "node": 2, "state": "bound"}],
            "stats": {"sent": 10, "delivered": 9, "failed": 1, "success_rate": 0.9, "submit_latency_ms_p99": 4.5}}]);
        let t = render(Table::Channels, &v).expect("table");
        assert!(
            t.lines()
                .nth(1)
                .is_some_and(|l| l.contains("a#0@2:bound") && l.contains("0.90")),
            "{t}"
        );
        assert!(render(Table::Channels, &json!({"error": 1})).is_none());
    }
}
