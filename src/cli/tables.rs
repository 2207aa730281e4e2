//! Human tables for the admin commands' answers: lists as columns, a created or changed
//! object as a one-row table of its kind, new secrets as labelled lines. `--json` prints the
//! API's JSON instead; an answer of another shape (an error, a newer API) falls back to JSON.

use serde_json::Value;

/// Which table an answer is shown as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `GET /admin/v1/cluster`: a header line and the members.
    Cluster,
    /// The members only.
    Nodes,
    /// Channels (the list, or the one just added, drained or undrained).
    Channels,
    /// Tenants.
    Tenants,
    /// A tenant's new API key (and webhook secret), shown once.
    Secrets,
    /// Routes.
    Routes,
    /// Content rules.
    Rules,
    /// Country rules.
    Countries,
    /// A tenant's sender ids.
    Senders,
    /// A tenant's DLT templates.
    DltTemplates,
    /// A tenant's 10DLC campaigns.
    Campaigns,
    /// A tenant's opt-out list (`{"total", "numbers"}`).
    OptOuts,
    /// Numbers just added to an opt-out list (`{"added", "already_listed", "numbers"}`).
    OptOutsAdded,
    /// One tenant, every field on its own labelled line.
    Tenant,
    /// A member just added (`{"id", "addr", "voter"}`).
    Joined,
    /// The leader after a transfer (`{"leader", "term"}`).
    Leader,
}

/// A column: its header and how a row's cell is made.
type Column = (&'static str, fn(&Value) -> String);

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        Value::Array(a) => joined(a.iter().map(cell).collect(), ","),
        Value::Object(o) => joined(
            o.iter()
                .filter_map(|(k, v)| {
                    let c = cell(v);
                    (c != "-").then(|| format!("{k}={c}"))
                })
                .collect(),
            " ",
        ),
    }
}

/// The items joined by `sep`, or `-` for none.
fn joined(items: Vec<String>, sep: &str) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(sep)
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

/// A list of objects (or one object, as one row) as columns; `None` for any other shape.
fn rows(v: &Value, columns: &[Column]) -> Option<String> {
    let items: Vec<&Value> = match v {
        Value::Array(a) if a.iter().all(Value::is_object) => a.iter().collect(),
        // A lone object is shown only if it has what the first column names (its id).
        Value::Object(_) if columns.first().is_some_and(|(_, f)| f(v) != "-") => vec![v],
        _ => return None,
    };
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let body = items
        .into_iter()
        .map(|item| columns.iter().map(|(_, f)| f(item)).collect())
        .collect();
    Some(grid(&header, body))
}

/// Where a member's state came from, when not from the replicated rows (no quorum):
/// shown after the state, e.g. `up (probe)`.
fn state_cell(n: &Value) -> String {
    let state = cell(&n["state"]);
    match n["state_from"].as_str() {
        Some("this_node") if n["replicated_state"].is_string() => format!("{state} (this node)"),
        Some("leader_ack") => format!("{state} (leader's acks)"),
        Some("leader_contact") => format!("{state} (leader contact)"),
        Some("probe") => format!("{state} (probe)"),
        _ => state,
    }
}

/// On the leader: how many entries a member is behind, and for how long its log has not
/// advanced when it matters (`-` elsewhere).
fn lag_cell(n: &Value) -> String {
    let r = &n["replication"];
    let Some(lag) = r["lag"].as_u64() else {
        return "-".into();
    };
    let stalled = r["stalled_ms"].as_u64().unwrap_or(0) / 1000;
    if lag > 0 && stalled > 0 {
        format!("{lag} (stalled {stalled}s)")
    } else {
        lag.to_string()
    }
}

const NODES: &[Column] = &[
    ("ID", |n| cell(&n["id"])),
    ("STATE", state_cell),
    ("ROLE", |n| {
        if n["leader"] == true {
            "leader"
        } else if n["voter"] == true {
            "voter"
        } else {
            "learner"
        }
        .into()
    }),
    ("LAG", lag_cell),
    ("CLUSTER ADDR", |n| cell(&n["addr"])),
    ("HTTP", |n| cell(&n["http"])),
    ("BINDS", |n| cell(&n["channels"])),
];

const CHANNELS: &[Column] = &[
    ("ID", |c| cell(&c["id"])),
    ("PROTO", |c| cell(&c["protocol"])),
    ("STATE", |c| cell(&c["state"])),
    // A bound line the router avoids shows it here (audit s18 defect 7).
    ("HEALTH", |c| cell(&c["health"]["score"])),
    ("BREAKER", |c| cell(&c["health"]["breaker"])),
    ("OWNER", |c| cell(&c["owner"])),
    ("BINDS", |c| {
        let binds: Vec<String> = c["binds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                let bind = format!(
                    "{}@{}:{}",
                    cell(&b["bind"]),
                    cell(&b["node"]),
                    cell(&b["state"])
                );
                // A transmitter bind's receiver: "+rx:bound" (receipts can arrive).
                match b["receiver"].as_str() {
                    Some(rx) => format!("{bind}+rx:{rx}"),
                    None => bind,
                }
            })
            .collect();
        joined(binds, " ")
    }),
    ("TPS", |c| cell(&c["tps"])),
    ("QUEUE", |c| cell(&c["queue_depth"])),
    ("SENT", |c| cell(&c["stats"]["sent"])),
    ("DELIVERED", |c| cell(&c["stats"]["delivered"])),
    ("FAILED", |c| cell(&c["stats"]["failed"])),
    ("SUCCESS", |c| cell(&c["stats"]["success_rate"])),
    ("SUBMIT P99 MS", |c| {
        cell(&c["stats"]["submit_latency_ms_p99"])
    }),
    ("LAST ERROR", |c| cell(&c["last_error"])),
];

const TENANTS: &[Column] = &[
    ("ID", |t| cell(&t["id"])),
    ("NAME", |t| cell(&t["name"])),
    ("RATE/S", |t| cell(&t["rate_limit"]["per_second"])),
    ("BURST", |t| cell(&t["rate_limit"]["burst"])),
    ("QUEUE LIMIT", |t| cell(&t["queue_limit"])),
    ("MAX PARTS", |t| cell(&t["max_parts"])),
    ("SENDERS", |t| cell(&t["senders"])),
    ("CALLBACK URL", |t| cell(&t["callback_url"])),
    ("FREQUENCY CAPS", |t| caps_cell(&t["frequency_caps"])),
    ("SENDER POOL", |t| cell(&t["sender_pool"])),
    ("OPT-OUT CATEGORIES", |t| cell(&t["opt_out_categories"])),
    ("SMART ENC", |t| cell(&t["smart_encoding"])),
];

/// A route's channels: in priority order, with weights when the strategy uses them.
fn route_channels(strategy: &Value, channels: &Value) -> String {
    let mut list: Vec<&Value> = channels.as_array().into_iter().flatten().collect();
    list.sort_by_key(|c| c["priority"].as_i64().unwrap_or(0));
    let weighted = strategy == "weighted";
    let shown: Vec<String> = list
        .into_iter()
        .map(|c| {
            if weighted {
                format!("{}(w={})", cell(&c["id"]), cell(&c["weight"]))
            } else {
                cell(&c["id"])
            }
        })
        .collect();
    joined(shown, ",")
}

const ROUTES: &[Column] = &[
    ("ID", |r| cell(&r["id"])),
    ("MATCH", |r| match cell(&r["match"]).as_str() {
        "-" => "(default)".into(),
        m => m.to_string(),
    }),
    ("STRATEGY", |r| match r["min_success_rate"].as_f64() {
        Some(min) => format!("{} (min {min})", cell(&r["strategy"])),
        None => cell(&r["strategy"]),
    }),
    ("CHANNELS", |r| {
        route_channels(&r["strategy"], &r["channels"])
    }),
    ("A/B", |r| {
        let ab = &r["ab"];
        if ab.is_null() {
            return "-".into();
        }
        let b = &ab["variant_b"];
        format!(
            "{}% to {} {}",
            cell(&ab["split_percent"]),
            cell(&b["strategy"]),
            route_channels(&b["strategy"], &b["channels"])
        )
    }),
];

const RULES: &[Column] = &[
    ("ID", |r| cell(&r["id"])),
    ("SCOPE", |r| cell(&r["scope"])),
    ("KIND", |r| cell(&r["kind"])),
    ("PATTERN", |r| cell(&r["pattern"])),
    ("ACTION", |r| cell(&r["action"])),
];

const COUNTRIES: &[Column] = &[
    ("COUNTRY", |c| cell(&c["country"])),
    ("SOURCE", |c| match &c["built_in"] {
        Value::Bool(true) => "built-in".into(),
        Value::Bool(false) => "configured".into(),
        _ => "-".into(),
    }),
    ("ALPHANUMERIC", |c| cell(&c["alphanumeric_allowed"])),
    ("SENDER REGISTRATION", |c| {
        cell(&c["sender_registration_required"])
    }),
    ("DLT", |c| cell(&c["dlt_required"])),
    ("10DLC", |c| cell(&c["ten_dlc_required"])),
    ("QUIET HOURS", |c| {
        let q = &c["quiet_hours"];
        if q.is_null() {
            "-".into()
        } else {
            format!(
                "{}-{} {}",
                cell(&q["start"]),
                cell(&q["end"]),
                cell(&q["timezone"])
            )
        }
    }),
];

const SENDERS: &[Column] = &[
    ("SENDER", |s| cell(&s["sender"])),
    ("TYPE", |s| cell(&s["type"])),
    ("COUNTRIES", |s| match cell(&s["countries"]).as_str() {
        "-" => "(all)".into(),
        c => c.to_string(),
    }),
    ("CREATED", |s| cell(&s["created_at"])),
];

const DLT_TEMPLATES: &[Column] = &[
    ("TEMPLATE", |d| cell(&d["template_id"])),
    ("ENTITY", |d| cell(&d["entity_id"])),
    ("VARIABLES", |d| cell(&d["variables"])),
    ("TEXT", |d| cell(&d["text"])),
];

const CAMPAIGNS: &[Column] = &[
    ("ID", |c| cell(&c["id"])),
    ("USE CASE", |c| cell(&c["use_case"])),
    ("TPS", |c| cell(&c["tps"])),
    ("NUMBERS", |c| cell(&c["numbers"])),
];

/// A new API key (and, for a new tenant, the webhook secret) as labelled lines.
fn secrets(v: &Value) -> Option<String> {
    let id = v["id"].as_str()?;
    let Some(key) = v["api_key"].as_str() else {
        // A rotated webhook secret.
        let secret = v["webhook_secret"].as_str()?;
        let old = match v["previous_secret_valid_until"].as_str() {
            Some(until) => format!("the old secret also signs webhooks until {until}"),
            None => "the old secret no longer signs webhooks".to_string(),
        };
        return Some(format!(
            "tenant {id}: new webhook secret ({old})\nwebhook secret:  {secret}\nshown only this once: store it now"
        ));
    };
    let mut out = match v["webhook_secret"].as_str() {
        Some(secret) => {
            format!("tenant {id} added\napi key:         {key}\nwebhook secret:  {secret}")
        }
        None => format!("tenant {id}: new api key (the old one no longer works)\napi key:  {key}"),
    };
    out.push_str("\nshown only this once: store it now");
    Some(out)
}

/// `{"added", "already_listed", "numbers"}`: one line with the normalised numbers.
fn opt_outs_added(v: &Value) -> Option<String> {
    let added = v["added"].as_u64()?;
    let already = v["already_listed"].as_u64().unwrap_or(0);
    let numbers: Vec<String> = v["numbers"].as_array()?.iter().map(cell).collect();
    Some(format!(
        "opted out: {} ({added} new, {already} already listed)",
        joined(numbers, ", ")
    ))
}

/// A frequency cap list as `otp:5/600s,marketing:1/86400s`.
fn caps_cell(v: &Value) -> String {
    let caps: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}:{}/{}s",
                cell(&c["category"]),
                cell(&c["max"]),
                cell(&c["per_seconds"])
            )
        })
        .collect();
    joined(caps, ",")
}

/// One tenant as labelled lines (`tenant show`).
fn tenant_lines(v: &Value) -> Option<String> {
    let id = v["id"].as_str()?;
    let mut lines = vec![
        ("id", id.to_string()),
        ("name", cell(&v["name"])),
        (
            "rate limit",
            format!(
                "{}/s, burst {}",
                cell(&v["rate_limit"]["per_second"]),
                cell(&v["rate_limit"]["burst"])
            ),
        ),
        ("callback url", cell(&v["callback_url"])),
        ("senders", cell(&v["senders"])),
        ("max parts", cell(&v["max_parts"])),
        ("queue limit", cell(&v["queue_limit"])),
        ("smart encoding", cell(&v["smart_encoding"])),
        ("frequency caps", caps_cell(&v["frequency_caps"])),
        ("sender pool", cell(&v["sender_pool"])),
        ("opt-out categories", cell(&v["opt_out_categories"])),
        ("created", cell(&v["created_at"])),
    ];
    if !v["waiting"].is_null() {
        lines.push(("waiting", cell(&v["waiting"])));
    }
    if !v["scheduled"].is_null() {
        lines.push(("of them scheduled", cell(&v["scheduled"])));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    Some(
        lines
            .into_iter()
            .map(|(k, val)| format!("{:<width$} {val}", format!("{k}:")))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// `{"total", "numbers"}`: the count, then one number a line.
fn opt_outs(v: &Value) -> Option<String> {
    let total = v["total"].as_u64()?;
    let numbers = v["numbers"].as_array()?;
    let mut out = format!("{total} number(s) opted out");
    if (numbers.len() as u64) < total {
        out.push_str(&format!(", first {} shown", numbers.len()));
    }
    for n in numbers {
        out.push('\n');
        out.push_str(&cell(n));
    }
    Some(out)
}

/// A warning when fewer than a majority of the voters are up (`state` "up" or
/// "draining"): the cluster then has no quorum, and the leader shown is only the last one
/// known. `None` when a quorum is up (or the answer has no node list).
fn quorum_warning(nodes: &Value) -> Option<String> {
    let voters: Vec<&Value> = nodes
        .as_array()?
        .iter()
        .filter(|n| n["voter"] == true)
        .collect();
    let up = voters
        .iter()
        .filter(|n| n["state"] == "up" || n["state"] == "draining")
        .count();
    (!voters.is_empty() && up * 2 <= voters.len()).then(|| {
        format!(
            "only {up} of {} voters are up: no quorum, writes fail until a majority is back \
             (the leader shown is the last one known)",
            voters.len()
        )
    })
}

/// A warning per member that sends heartbeats but does not replicate (`lagging`), and per
/// member the cluster has never seen, naming what to check.
fn member_warnings(nodes: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for n in nodes.as_array().into_iter().flatten() {
        let id = cell(&n["id"]);
        let addr = cell(&n["addr"]);
        if n["state"] == "lagging" {
            let r = &n["replication"];
            let mut line = format!(
                "node {id} sends heartbeats but is not replicating: its log matches the \
                 leader's up to {}, {} entries behind, not advancing for {} s",
                cell(&r["matched_index"]),
                cell(&r["lag"]),
                r["stalled_ms"].as_u64().unwrap_or(0) / 1000
            );
            if let Some(ms) = r["last_answer_ms"].as_u64() {
                line.push_str(&format!(
                    "; it last answered the leader {} s ago",
                    ms / 1000
                ));
            } else if r.is_object() {
                line.push_str("; it has not answered the leader since it took over");
            }
            match n["announced_addr"].as_str() {
                Some(announced) => line.push_str(&format!(
                    "; it announces cluster address {announced} but the membership (which \
                     the leader dials) has {addr}: restart it with --cluster-addr {addr}, or \
                     remove it and add it again at the new address"
                )),
                None => line.push_str(&format!(
                    "; check that it listens at {addr} (the address the leader dials), the \
                     link from the leader to it, and its log (a wiped data dir?)"
                )),
            }
            out.push(line);
        }
        if n["seen"] == false {
            out.push(format!(
                "node {id} has never been seen (no heartbeat of it ever committed): start it \
                 with --node-id {id} --cluster-addr {addr}, or remove it with `smsgw cluster \
                 remove-node {id}`{}",
                if n["voter"] == true {
                    "; as a voter it counts toward quorum"
                } else {
                    ""
                }
            ));
        }
    }
    out
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
            if let Some(warning) = quorum_warning(&v["nodes"]) {
                head.push_str(&format!("\nwarning: {warning}"));
            }
            for warning in member_warnings(&v["nodes"]) {
                head.push_str(&format!("\nwarning: {warning}"));
            }
            v["nodes"]
                .is_array()
                .then(|| rows(&v["nodes"], NODES))
                .flatten()
                .map(|nodes| format!("{head}\n{nodes}"))
        }
        Table::Nodes => {
            let nodes = if v.is_array() { v } else { &v["nodes"] };
            nodes.is_array().then(|| rows(nodes, NODES)).flatten()
        }
        Table::Channels => rows(v, CHANNELS),
        Table::Tenants => rows(v, TENANTS),
        Table::Secrets => secrets(v),
        Table::Routes => rows(v, ROUTES),
        Table::Rules => rows(v, RULES),
        Table::Countries => rows(v, COUNTRIES),
        Table::Senders => rows(v, SENDERS),
        Table::DltTemplates => rows(v, DLT_TEMPLATES),
        Table::Campaigns => rows(v, CAMPAIGNS),
        Table::OptOuts => opt_outs(v),
        Table::OptOutsAdded => opt_outs_added(v),
        Table::Tenant => tenant_lines(v),
        Table::Joined => Some(format!(
            "node {} ({}) is a member{}",
            v["id"].as_u64()?,
            cell(&v["addr"]),
            if v["voter"] == true {
                ", voting"
            } else {
                ", not voting yet"
            }
        )),
        Table::Leader => Some(format!(
            "leader: node {}  term: {}",
            v["leader"].as_u64()?,
            cell(&v["term"])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn opt_outs_added_tenant_lines_and_built_in_countries() {
        let t = render(
            Table::OptOutsAdded,
            &json!({"added": 1, "already_listed": 1, "numbers": ["+4915112340021", "+4915112340022"]}),
        )
        .expect("line");
        assert_eq!(
            t,
            "opted out: +4915112340021, +4915112340022 (1 new, 1 already listed)"
        );
        let tenant = json!({"id": "acme", "name": "ACME", "rate_limit": {"per_second": 5, "burst": 9},
            "callback_url": null, "senders": ["ACME"], "max_parts": 4, "queue_limit": 100,
            "smart_encoding": true, "frequency_caps": [{"category": "otp", "max": 5, "per_seconds": 600}],
            "sender_pool": [], "opt_out_categories": ["marketing"], "created_at": "2026-01-01T00:00:00Z"});
        let t = render(Table::Tenant, &tenant).expect("lines");
        assert!(t.starts_with("id:"), "{t}");
        assert!(
            t.contains("rate limit:") && t.contains("5/s, burst 9"),
            "{t}"
        );
        assert!(t.contains("otp:5/600s"), "{t}");
        let row = render(Table::Tenants, &tenant).expect("one row");
        assert!(
            row.contains("otp:5/600s") && row.lines().count() == 2,
            "{row}"
        );
        let c = render(
            Table::Countries,
            &json!([{"country": "IN", "built_in": true, "alphanumeric_allowed": true,
                "sender_registration_required": true, "dlt_required": true, "ten_dlc_required": false,
                "quiet_hours": null}]),
        )
        .expect("table");
        assert!(c.contains("built-in"), "{c}");
    }

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
    fn cluster_table_warns_when_no_quorum_of_voters_is_up() {
        let node = |id: u64, state: &str, voter: bool| {
            json!({"id": id, "state": state, "voter": voter, "leader": id == 1, "addr": "a",
                "http": "h", "channels": []})
        };
        let cases = [
            (vec![("up", true), ("up", true), ("down", true)], false),
            (vec![("down", true), ("down", true), ("down", true)], true),
            (vec![("up", true), ("down", true), ("down", true)], true),
            (
                vec![("up", true), ("draining", true), ("down", true)],
                false,
            ),
            (vec![("up", true), ("down", true)], true),
            (vec![("up", true), ("down", false), ("down", false)], false),
        ];
        for (states, warns) in cases {
            let nodes: Vec<Value> = states
                .iter()
                .enumerate()
                .map(|(i, (s, voter))| node(i as u64 + 1, s, *voter))
                .collect();
            let v = json!({"leader": 1, "term": 3, "node": 1, "nodes": nodes});
            let t = render(Table::Cluster, &v).expect("table");
            assert_eq!(t.contains("no quorum"), warns, "{states:?}: {t}");
        }
    }

    #[test]
    fn cluster_table_without_quorum_shows_the_survivor_up_and_where_states_come_from() {
        let v = json!({"leader": 1, "term": 3, "node": 3, "nodes": [
            {"id": 1, "state": "down", "state_from": "leader_contact", "replicated_state": "down",
             "voter": true, "leader": true, "addr": "a1", "http": "h1", "channels": [], "seen": true},
            {"id": 2, "state": "down", "state_from": "probe", "voter": true, "leader": false,
             "addr": "a2", "http": "h2", "channels": [], "seen": true},
            {"id": 3, "state": "up", "state_from": "this_node", "replicated_state": "down",
             "voter": true, "leader": false, "addr": "a3", "http": "h3", "channels": [], "seen": true}
        ]});
        let t = render(Table::Cluster, &v).expect("table");
        assert!(t.contains("warning: only 1 of 3 voters are up"), "{t}");
        assert!(
            t.contains("up (this node)") && t.contains("down (probe)"),
            "{t}"
        );
        assert!(t.contains("down (leader contact)"), "{t}");
    }

    #[test]
    fn cluster_table_names_a_lagging_member_and_one_never_seen() {
        let v = json!({"leader": 1, "term": 3, "node": 1, "nodes": [
            {"id": 1, "state": "up", "state_from": "this_node", "voter": true, "leader": true,
             "addr": "a1", "http": "h1", "channels": [], "seen": true},
            {"id": 2, "state": "lagging", "state_from": "replicated", "replicated_state": "up",
             "voter": true, "leader": false, "addr": "127.0.0.1:9082",
             "announced_addr": "127.0.0.1:9092", "http": "h2", "channels": [], "seen": true,
             "replication": {"matched_index": 100, "lag": 1520, "stalled_ms": 12400,
                             "state": "not_replicating", "last_answer_ms": 12500}},
            {"id": 3, "state": "down", "state_from": "replicated", "voter": true, "leader": false,
             "addr": "127.0.0.1:9083", "http": "", "channels": [], "seen": false,
             "replication": {"matched_index": null, "lag": 2000, "stalled_ms": 30000,
                             "state": "not_replicating", "last_answer_ms": null}}
        ]});
        let t = render(Table::Cluster, &v).expect("table");
        assert!(
            t.lines()
                .any(|l| l.starts_with("ID  STATE") && l.contains("LAG")),
            "{t}"
        );
        assert!(t.contains("1520 (stalled 12s)"), "{t}");
        assert!(
            t.contains("warning: node 2 sends heartbeats but is not replicating")
                && t.contains("announces cluster address 127.0.0.1:9092")
                && t.contains("--cluster-addr 127.0.0.1:9082"),
            "{t}"
        );
        assert!(t.contains("warning: node 3 has never been seen"), "{t}");
        // A lagging voter does not count toward quorum: 1 of 3.
        assert!(t.contains("only 1 of 3 voters are up"), "{t}");
    }

    #[test]
    fn channel_table_has_a_row_per_channel_and_falls_back_on_other_shapes() {
        let v = json!([{"id": "a", "protocol": "smpp", "state": "bound", "owner": 2, "tps": 100, "queue_depth": 3,
            "binds": [{"bind": "a#0", "node": 2, "state": "bound"}, {"bind": "a#1", "node": 2, "state": "bound", "receiver": "connecting"}],
            "stats": {"sent": 10, "delivered": 9, "failed": 1, "success_rate": 0.9, "submit_latency_ms_p99": 4.5},
            "health": {"score": 0.0, "breaker": "open", "send_rate": 1.0}}]);
        let t = render(Table::Channels, &v).expect("table");
        assert!(
            t.lines()
                .next()
                .is_some_and(|l| l.contains("HEALTH") && l.contains("BREAKER")),
            "{t}"
        );
        assert!(
            t.lines()
                .nth(1)
                .is_some_and(|l| l.contains("0.00") && l.contains("open")),
            "{t}"
        );
        assert!(
            t.lines().nth(1).is_some_and(
                |l| l.contains("a#0@2:bound a#1@2:bound+rx:connecting") && l.contains("0.90")
            ),
            "{t}"
        );
        assert!(render(Table::Channels, &json!({"error": 1})).is_none());
    }

    #[test]
    fn lists_and_single_objects_share_a_table() {
        let routes = json!([
            {"id": "de", "match": {"prefix": ["+49"], "country": null}, "strategy": "weighted",
             "channels": [{"id": "b", "weight": 3, "priority": 1}, {"id": "a", "weight": 1, "priority": 0}], "ab": null},
            {"id": "default", "match": {"prefix": [], "country": null}, "strategy": "priority",
             "channels": [{"id": "a", "weight": 1, "priority": 0}],
             "ab": {"split_percent": 20, "variant_b": {"strategy": "priority", "channels": [{"id": "c", "priority": 0}]}}}
        ]);
        let t = render(Table::Routes, &routes).expect("table");
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("ID") && lines[0].contains("A/B"),
            "{t}"
        );
        assert!(
            lines[1].contains("prefix=+49") && lines[1].contains("a(w=1),b(w=3)"),
            "{t}"
        );
        assert!(
            lines[2].contains("(default)") && lines[2].ends_with("20% to priority c"),
            "{t}"
        );
        // The route just added is one row of the same table.
        let one = render(Table::Routes, &routes[0]).expect("one row");
        assert_eq!(one.lines().count(), 2, "{one}");
        // An object without the row's id is not a row.
        assert!(render(Table::Tenants, &json!({"added": 2})).is_none());
    }

    #[test]
    fn secrets_opt_outs_and_cluster_answers() {
        let added = render(
            Table::Secrets,
            &json!({"id": "acme", "api_key": "sk_1", "webhook_secret": "whsec_2"}),
        )
        .expect("secrets");
        assert!(
            added.contains("tenant acme added")
                && added.contains("sk_1")
                && added.contains("whsec_2")
        );
        let rotated =
            render(Table::Secrets, &json!({"id": "acme", "api_key": "sk_3"})).expect("key");
        assert!(rotated.contains("sk_3") && !rotated.contains("webhook"));
        let hook = render(
            Table::Secrets,
            &json!({"id": "acme", "webhook_secret": "whsec_9",
                    "previous_secret_valid_until": "2026-01-02T00:00:00Z"}),
        )
        .expect("webhook secret");
        assert!(hook.contains("whsec_9") && hook.contains("2026-01-02T00:00:00Z"));
        let o = render(
            Table::OptOuts,
            &json!({"total": 3, "numbers": ["+491", "+492"]}),
        )
        .expect("opt-outs");
        assert_eq!(
            o.lines().collect::<Vec<_>>(),
            ["3 number(s) opted out, first 2 shown", "+491", "+492"]
        );
        assert_eq!(
            render(Table::Leader, &json!({"leader": 2, "term": 7})).as_deref(),
            Some("leader: node 2  term: 7")
        );
        assert!(
            render(
                Table::Joined,
                &json!({"id": 4, "addr": "h:9084", "voter": true})
            )
            .is_some_and(|l| l.contains("node 4 (h:9084)"))
        );
    }
}
