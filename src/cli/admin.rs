//! Running the admin commands and `send`: each command becomes one [`ApiCall`] ([`plan`],
//! pure), which [`execute`] sends; [`run_admin`] prints the outcome and returns the exit code.
//!
//! Exit codes: 0 success (the answer pretty-printed on stdout), 1 the node answered with an
//! error (`error: <status> <code>: <message>` on stderr) or could not be reached (one line
//! naming the URL), 2 a local usage problem (no token or API key, malformed `--url`).

use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::tables::Table;
use super::{
    AbArgs, ChannelAddArgs, ChannelCommand, ChannelUpdateArgs, ClusterCommand, Command, CostArg,
    RouteAddArgs, RouteChannelArg, RouteCommand, RouteUpdateArgs, SendArgs, TenantAddArgs,
    TenantCommand, TenantUpdateArgs,
};

/// Exit code: the request succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code: the node answered with an error, or could not be reached.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the command line cannot be used (missing credentials, bad URL).
pub const EXIT_USAGE: i32 = 2;
/// [`run_admin`]'s answer for commands it does not run (`start`, `demo`, `sim`).
pub const NOT_ADMIN: i32 = -1;

/// How long to wait for a TCP connection to the node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest non-JSON error body quoted back to the user.
const MAX_QUOTED_BODY: usize = 200;

/// One HTTP request a command makes, built without I/O. `Debug` hides the credential.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// HTTP method.
    pub method: Method,
    /// Base URL as given (`--url` / `SMSGW_URL`).
    pub base: String,
    /// Path segments after the base, unescaped (`["admin", "v1", "channels", id]`).
    pub path: Vec<String>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Bearer credential (admin token or tenant API key).
    pub bearer: String,
    /// Print only this key of the answer (e.g. `nodes` of the cluster status).
    pub pick: Option<&'static str>,
    /// Show the answer as this table (absent with `--json`).
    pub table: Option<Table>,
    /// How long to wait for the whole answer (`--timeout`).
    pub timeout: Duration,
    /// Printed when the answer is empty (a removal's 204), unless `--json`.
    pub confirm: Option<String>,
    /// Read, merge, write: GET this first and send its answer with `body` merged over it.
    pub read_first: Option<ReadFirst>,
}

/// The read of a read-merge-write call: the object at `path` (GET), of which only `keys`
/// are kept before the call's body is merged over it (objects key by key, anything else
/// replaced). So a command that sets one field keeps the others as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFirst {
    /// Path segments of the GET, like [`ApiCall::path`].
    pub path: Vec<String>,
    /// The answer's keys the write accepts (the rest, like ids and timestamps, dropped).
    pub keys: &'static [&'static str],
}

/// `over` merged into `base`: objects key by key (recursively), other values replaced.
pub fn merge_json(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge_json(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

impl std::fmt::Debug for ApiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCall")
            .field("method", &self.method)
            .field("base", &self.base)
            .field("path", &self.path)
            .field("body", &self.body)
            .field("bearer", &"<redacted>")
            .field("pick", &self.pick)
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .field("confirm", &self.confirm)
            .field("read_first", &self.read_first)
            .finish()
    }
}

impl ApiCall {
    /// A call with no body, shown as JSON, with the default timeout.
    pub(super) fn new(method: Method, base: &str, path: &[&str], bearer: &str) -> Self {
        ApiCall {
            method,
            base: base.to_string(),
            path: path.iter().map(|s| (*s).to_string()).collect(),
            body: None,
            bearer: bearer.to_string(),
            pick: None,
            table: None,
            timeout: Duration::from_secs(super::DEFAULT_TIMEOUT_SECONDS),
            confirm: None,
            read_first: None,
        }
    }

    /// The same call as a read-merge-write (see [`ReadFirst`]).
    pub(super) fn reading_first(mut self, path: &[&str], keys: &'static [&'static str]) -> Self {
        self.read_first = Some(ReadFirst {
            path: path.iter().map(|s| (*s).to_string()).collect(),
            keys,
        });
        self
    }

    /// The same call with a JSON body.
    pub(super) fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The full URL: the base (empty: [`DEFAULT_URL`](super::DEFAULT_URL)) with the path
    /// segments appended, each percent-encoded.
    pub fn url(&self) -> Result<Url, String> {
        let bad = |why: &str| format!("--url {:?} {why}", self.base);
        // An empty value (e.g. `SMSGW_URL=`) means "not set", as for the node's env config.
        let base = match self.base.trim() {
            "" => super::DEFAULT_URL,
            b => b,
        };
        let mut url = Url::parse(base).map_err(|e| bad(&format!("is not a URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(bad("must start with http:// or https://"));
        }
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| bad("cannot take a path"))?
            .pop_if_empty()
            .extend(&self.path);
        Ok(url)
    }
}

/// What a call came to, as the text to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the answer, pretty-printed (empty for an empty body). Goes to stdout; exit 0.
    Success(String),
    /// Error answer or no answer: one line. Goes to stderr; exit 1.
    Failure(String),
}

/// The request an admin command makes: `None` for `start`/`demo`/`sim`, `Some(Err(line))`
/// when it cannot be made (missing token or API key).
pub fn plan(cmd: &Command) -> Option<Result<ApiCall, String>> {
    let planned = match cmd {
        Command::Start(_) | Command::Demo(_) | Command::Sim(_) => return None,
        Command::Cluster(a) => {
            admin_token(&a.conn.token).map(|t| (cluster(&a.command, &a.conn.url, t), &a.conn))
        }
        Command::Channel(a) => {
            admin_token(&a.conn.token).map(|t| (channel(&a.command, &a.conn.url, t), &a.conn))
        }
        Command::Route(a) => {
            admin_token(&a.conn.token).map(|t| (route(&a.command, &a.conn.url, t), &a.conn))
        }
        Command::Tenant(a) => {
            admin_token(&a.conn.token).map(|t| (tenant(&a.command, &a.conn.url, t), &a.conn))
        }
        Command::Send(a) => return Some(send(a)),
        Command::Compliance(a) => admin_token(&a.conn.token)
            .map(|t| (super::compliance::plan(&a.command, &a.conn.url, t), &a.conn)),
    };
    Some(planned.map(|(mut call, conn)| {
        if !conn.json {
            call.table = table_of(cmd);
            call.confirm = confirmation(&call);
        }
        call.timeout = Duration::from_secs(conn.wait.timeout);
        call
    }))
}

/// What an empty success answer (204) of a DELETE means, from the call's path
/// (`.../channels/smsc-a` → `removed channel smsc-a`).
fn confirmation(call: &ApiCall) -> Option<String> {
    if call.method != Method::DELETE {
        return None;
    }
    let n = call.path.len();
    let (what, id) = (call.path.get(n.checked_sub(2)?)?, call.path.get(n - 1)?);
    if what == "countries" {
        return Some(format!("country {id}: back to the built-in rules"));
    }
    let one = what.strip_suffix('s').unwrap_or(what).replace('_', " ");
    Some(format!("removed {one} {id}"))
}

/// How a command's answer is shown when `--json` is not given (`None`: as JSON).
fn table_of(cmd: &Command) -> Option<Table> {
    match cmd {
        Command::Cluster(a) => match a.command {
            ClusterCommand::Status => Some(Table::Cluster),
            ClusterCommand::Nodes => Some(Table::Nodes),
            ClusterCommand::AddNode { .. } => Some(Table::Joined),
            ClusterCommand::TransferLeader { .. } => Some(Table::Leader),
            ClusterCommand::RemoveNode { .. } => None,
        },
        Command::Channel(a) => match a.command {
            ChannelCommand::Remove { .. } => None,
            _ => Some(Table::Channels),
        },
        Command::Route(a) => match a.command {
            RouteCommand::Remove { .. } => None,
            _ => Some(Table::Routes),
        },
        Command::Tenant(a) => match a.command {
            TenantCommand::List => Some(Table::Tenants),
            TenantCommand::Add(_)
            | TenantCommand::RotateKey { .. }
            | TenantCommand::RotateWebhookSecret { .. } => Some(Table::Secrets),
            TenantCommand::Update(_) => Some(Table::Tenants),
            TenantCommand::Show { .. } => Some(Table::Tenant),
            TenantCommand::Remove { .. } => None,
        },
        Command::Compliance(a) => super::compliance::table(&a.command),
        Command::Start(_) | Command::Demo(_) | Command::Sim(_) | Command::Send(_) => None,
    }
}

/// Runs an admin command (or `send`) against a node: prints the answer, returns the exit code
/// (0, 1, or 2 for a local usage problem). Returns `Ok(-1)` for `start`, `demo` and `sim`,
/// which are not admin commands.
pub async fn run_admin(cmd: &Command) -> anyhow::Result<i32> {
    let call = match plan(cmd) {
        None => return Ok(NOT_ADMIN),
        Some(Err(line)) => {
            eprintln!("{line}");
            return Ok(EXIT_USAGE);
        }
        Some(Ok(call)) => call,
    };
    let url = match call.url() {
        Ok(url) => url,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let client = http_client()?;
    Ok(match execute(&client, &call, url).await {
        Outcome::Success(text) => {
            if !text.is_empty() {
                print_answer(&text);
            } else if let Some(line) = &call.confirm {
                print_answer(line);
            }
            EXIT_OK
        }
        Outcome::Failure(line) => {
            eprintln!("{line}");
            EXIT_FAILED
        }
    })
}

/// Writes the answer to stdout. A reader that stopped early (`| head -1`, `| true`) is not
/// an error: the command did its work, so the rest is dropped quietly (`println!` panics).
fn print_answer(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// The HTTP client for the CLI (TLS through rustls with the ring provider).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let client = crate::http_client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("smsgw-cli/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(client)
}

/// One request with the call's token and timeout: the answer's status and body, or the
/// line naming what failed on the way.
async fn request(
    client: &reqwest::Client,
    call: &ApiCall,
    method: Method,
    url: &Url,
    body: Option<&Value>,
) -> Result<(reqwest::StatusCode, String), String> {
    let mut req = client
        .request(method, url.clone())
        .bearer_auth(&call.bearer)
        .timeout(call.timeout)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.map_err(|e| transport_error(url, &e))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| transport_error(url, &e))?;
    Ok((status, text))
}

/// The body of a read-merge-write: the kept keys of the GET's answer with the call's body
/// merged over them. `Err` is the line to print when the read fails.
async fn merged_body(
    client: &reqwest::Client,
    call: &ApiCall,
    read: &ReadFirst,
) -> Result<Value, String> {
    let get = ApiCall {
        method: Method::GET,
        path: read.path.clone(),
        body: None,
        read_first: None,
        ..call.clone()
    };
    let url = get.url().map_err(|e| format!("error: {e}"))?;
    let (status, text) = request(client, call, Method::GET, &url, None).await?;
    if !status.is_success() {
        return Err(http_error_line(status, &text));
    }
    let current: Value = serde_json::from_str(&text)
        .map_err(|e| format!("error: reading {url} before the change: not JSON: {e}"))?;
    let mut body = Value::Object(
        read.keys
            .iter()
            .filter_map(|k| current.get(*k).map(|v| ((*k).to_string(), v.clone())))
            .collect(),
    );
    if let Some(over) = &call.body {
        merge_json(&mut body, over);
    }
    Ok(body)
}

/// Sends one call to `url` and turns whatever happens into an [`Outcome`]. A
/// read-merge-write call reads first (`ApiCall::read_first`).
pub async fn execute(client: &reqwest::Client, call: &ApiCall, url: Url) -> Outcome {
    let body = match &call.read_first {
        Some(read) => match merged_body(client, call, read).await {
            Ok(body) => Some(body),
            Err(line) => return Outcome::Failure(line),
        },
        None => call.body.clone(),
    };
    let (status, body) = match request(client, call, call.method.clone(), &url, body.as_ref()).await
    {
        Ok(answer) => answer,
        Err(line) => return Outcome::Failure(line),
    };
    if status.is_success() {
        if let Some(table) = call.table
            && let Ok(v) = serde_json::from_str::<Value>(&body)
            && let Some(text) = super::tables::render(table, &v)
        {
            return Outcome::Success(text);
        }
        Outcome::Success(success_text(&body, call.pick))
    } else {
        Outcome::Failure(http_error_line(status, &body))
    }
}

/// A 2xx body for the terminal: JSON pretty-printed (only `pick` of it when present), other
/// text as is, nothing for an empty body.
pub fn success_text(body: &str, pick: Option<&str>) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(mut value) => {
            if let Some(key) = pick
                && let Some(inner) = value.get_mut(key)
            {
                value = inner.take();
            }
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| trimmed.to_string())
        }
        Err(_) => trimmed.to_string(),
    }
}

/// `error: <status> <code>: <message>` from the contract's error body
/// `{"error": {"code", "message", "field"}}`; other bodies are quoted, shortened, on one line.
pub fn http_error_line(status: reqwest::StatusCode, body: &str) -> String {
    let code = status.as_u16();
    if let Ok(v) = serde_json::from_str::<Value>(body)
        && let Some(err) = v.get("error")
        && let Some(err_code) = err.get("code").and_then(Value::as_str)
    {
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        let mut line = format!("error: {code} {err_code}: {}", single_line(message));
        if let Some(field) = err.get("field").and_then(Value::as_str)
            && !field.is_empty()
        {
            line.push_str(&format!(" (field '{field}')"));
        }
        return line;
    }
    let reason = status.canonical_reason().unwrap_or("HTTP error");
    let text = single_line(body.trim());
    if text.is_empty() {
        format!("error: {code} {reason}")
    } else {
        let mut quoted: String = text.chars().take(MAX_QUOTED_BODY).collect();
        if quoted.len() < text.len() {
            quoted.push('…');
        }
        format!("error: {code} {reason}: {quoted}")
    }
}

/// One line naming the URL (without any password in it) and the innermost cause.
fn transport_error(url: &Url, e: &reqwest::Error) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let what = if e.is_timeout() {
        "no answer in time from"
    } else if e.is_connect() {
        "cannot connect to"
    } else {
        "request failed to"
    };
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let mut cause = cause.to_string();
    if let Some(i) = cause.find(" (os error ") {
        cause.truncate(i);
    }
    format!("error: {what} {shown}: {}", single_line(&cause))
}

fn single_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn admin_token(token: &Option<String>) -> Result<&str, String> {
    match token.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(
            "error: no admin token: pass --token or set SMSGW_ADMIN_TOKEN (the node prints \
                  it at first start and keeps it in <data-dir>/admin.token)"
                .to_string(),
        ),
    }
}

fn cluster(cmd: &ClusterCommand, base: &str, token: &str) -> ApiCall {
    const CLUSTER: [&str; 3] = ["admin", "v1", "cluster"];
    match cmd {
        ClusterCommand::Status => ApiCall::new(Method::GET, base, &CLUSTER, token),
        ClusterCommand::Nodes => ApiCall {
            pick: Some("nodes"),
            ..ApiCall::new(Method::GET, base, &CLUSTER, token)
        },
        ClusterCommand::AddNode { id, addr, http } => {
            let mut body = json!({"id": id, "addr": addr});
            if let Some(http) = http {
                body["http"] = json!(http);
            }
            ApiCall::new(
                Method::POST,
                base,
                &["admin", "v1", "cluster", "nodes"],
                token,
            )
            .with_body(body)
        }
        ClusterCommand::RemoveNode { id } => ApiCall::new(
            Method::DELETE,
            base,
            &["admin", "v1", "cluster", "nodes", &id.to_string()],
            token,
        ),
        ClusterCommand::TransferLeader { id } => ApiCall::new(
            Method::POST,
            base,
            &["admin", "v1", "cluster", "transfer-leader"],
            token,
        )
        .with_body(json!({"to": id})),
    }
}

fn channel(cmd: &ChannelCommand, base: &str, token: &str) -> ApiCall {
    let one = |method: Method, id: &str, action: Option<&str>| {
        let mut path = vec!["admin", "v1", "channels", id];
        path.extend(action);
        ApiCall::new(method, base, &path, token)
    };
    match cmd {
        ChannelCommand::List => {
            ApiCall::new(Method::GET, base, &["admin", "v1", "channels"], token)
        }
        ChannelCommand::Add(a) => {
            ApiCall::new(Method::POST, base, &["admin", "v1", "channels"], token)
                .with_body(channel_body(a))
        }
        ChannelCommand::Update(a) => {
            one(Method::PATCH, &a.id, None).with_body(channel_patch_body(a))
        }
        ChannelCommand::Remove { id } => one(Method::DELETE, id, None),
        ChannelCommand::Drain { id } => one(Method::POST, id, Some("drain")),
        ChannelCommand::Undrain { id } => one(Method::POST, id, Some("undrain")),
    }
}

/// `{"default": 0.004, "+49": 0.006}` of `--cost`, or None when not given.
fn cost_body(cost: &[CostArg]) -> Option<Value> {
    (!cost.is_empty()).then(|| {
        let map: serde_json::Map<String, Value> = cost
            .iter()
            .map(|c| (c.key.clone(), json!(c.price.0)))
            .collect();
        Value::Object(map)
    })
}

/// The `PATCH /admin/v1/channels/{id}` body: only the fields given.
fn channel_patch_body(a: &ChannelUpdateArgs) -> Value {
    let fields = [
        ("host", a.host.as_ref().map(|v| json!(v))),
        ("port", a.port.map(|v| json!(v))),
        ("system_id", a.system_id.as_ref().map(|v| json!(v))),
        ("password", a.password.as_ref().map(|v| json!(v))),
        ("system_type", a.system_type.as_ref().map(|v| json!(v))),
        ("tps", a.tps.map(|v| json!(v))),
        ("window", a.window.map(|v| json!(v))),
        ("binds", a.binds.map(|v| json!(v))),
        ("bind", a.bind.map(|v| json!(v))),
        (
            "enquire_link_seconds",
            a.enquire_link_seconds.map(|v| json!(v)),
        ),
        ("cost", cost_body(&a.cost)),
        ("options", a.options.clone()),
    ];
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    )
}

/// The `POST /admin/v1/channels` body; optional fields only when given.
fn channel_body(a: &ChannelAddArgs) -> Value {
    let mut body = json!({
        "id": a.id,
        "protocol": a.protocol,
        "host": a.host,
        "port": a.port,
        "system_id": a.system_id,
        "password": a.password,
    });
    let optional = [
        ("system_type", a.system_type.as_ref().map(|v| json!(v))),
        ("tps", a.tps.map(|v| json!(v))),
        ("window", a.window.map(|v| json!(v))),
        ("binds", a.binds.map(|v| json!(v))),
        ("bind", a.bind.map(|v| json!(v))),
        (
            "enquire_link_seconds",
            a.enquire_link_seconds.map(|v| json!(v)),
        ),
        ("options", a.options.clone()),
        ("cost", cost_body(&a.cost)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    body
}

fn route(cmd: &RouteCommand, base: &str, token: &str) -> ApiCall {
    match cmd {
        RouteCommand::List => ApiCall::new(Method::GET, base, &["admin", "v1", "routes"], token),
        RouteCommand::Add(a) => ApiCall::new(Method::POST, base, &["admin", "v1", "routes"], token)
            .with_body(route_body(a)),
        RouteCommand::Update(a) => ApiCall::new(
            Method::PATCH,
            base,
            &["admin", "v1", "routes", &a.id],
            token,
        )
        .with_body(route_patch_body(a)),
        RouteCommand::Remove { id } => {
            ApiCall::new(Method::DELETE, base, &["admin", "v1", "routes", id], token)
        }
    }
}

/// `[{"id", "weight"?}]` of `--channels`.
fn route_channels_body(c: &[RouteChannelArg]) -> Value {
    c.iter()
        .map(|c| match c.weight {
            Some(w) => json!({"id": c.id, "weight": w}),
            None => json!({"id": c.id}),
        })
        .collect()
}

/// The route's `ab` from the A/B flags, when `--ab-split` is given.
fn ab_body(a: &AbArgs) -> Option<Value> {
    let split = a.ab_split?;
    let mut variant = json!({
        "channels": route_channels_body(a.ab_channels.as_deref().unwrap_or_default()),
    });
    if let Some(s) = a.ab_strategy {
        variant["strategy"] = json!(s);
    }
    Some(json!({"split_percent": split, "variant_b": variant}))
}

/// The `PATCH /admin/v1/routes/{id}` body: only the fields given.
fn route_patch_body(a: &RouteUpdateArgs) -> Value {
    let mut body = json!({});
    if let Some(c) = &a.channels {
        body["channels"] = route_channels_body(c);
    }
    if let Some(s) = a.strategy {
        body["strategy"] = json!(s);
    }
    if let Some(m) = a.min_success_rate {
        body["min_success_rate"] = json!(m.0);
    } else if a.no_min_success_rate {
        body["min_success_rate"] = Value::Null;
    }
    if let Some(ab) = ab_body(&a.ab) {
        body["ab"] = ab;
    } else if a.no_ab {
        body["ab"] = Value::Null;
    }
    body
}

/// The `POST /admin/v1/routes` body: an empty `match` when no criterion is given (default route).
fn route_body(a: &RouteAddArgs) -> Value {
    let mut matcher = serde_json::Map::new();
    if !a.prefix.is_empty() {
        matcher.insert("prefix".into(), json!(a.prefix));
    }
    if let Some(country) = &a.country {
        matcher.insert("country".into(), json!(country));
    }
    if let Some(tenant) = &a.tenant {
        matcher.insert("tenant".into(), json!(tenant));
    }
    if let Some(category) = a.category {
        matcher.insert("category".into(), json!(category));
    }
    let mut body = json!({
        "id": a.id,
        "match": matcher,
        "strategy": a.strategy,
        "channels": route_channels_body(&a.channels),
    });
    if let Some(m) = a.min_success_rate {
        body["min_success_rate"] = json!(m.0);
    }
    if let Some(ab) = ab_body(&a.ab) {
        body["ab"] = ab;
    }
    body
}

fn tenant(cmd: &TenantCommand, base: &str, token: &str) -> ApiCall {
    let one = |method: Method, id: &str| {
        ApiCall::new(method, base, &["admin", "v1", "tenants", id], token)
    };
    match cmd {
        TenantCommand::List => ApiCall::new(Method::GET, base, &["admin", "v1", "tenants"], token),
        TenantCommand::Add(a) => {
            ApiCall::new(Method::POST, base, &["admin", "v1", "tenants"], token)
                .with_body(tenant_body(a))
        }
        TenantCommand::Show { id } => one(Method::GET, id),
        TenantCommand::Update(u) => {
            let call = ApiCall::new(
                Method::PATCH,
                base,
                &["admin", "v1", "tenants", &u.id],
                token,
            )
            .with_body(tenant_patch(u));
            // The API takes the rate limit whole: one half given, the other is read.
            if u.per_second.is_some() != u.burst.is_some() {
                call.reading_first(&["admin", "v1", "tenants", &u.id], &["rate_limit"])
            } else {
                call
            }
        }
        TenantCommand::Remove { id } => one(Method::DELETE, id),
        TenantCommand::RotateKey { id } => ApiCall::new(
            Method::POST,
            base,
            &["admin", "v1", "tenants", id, "keys"],
            token,
        ),
        TenantCommand::RotateWebhookSecret {
            id,
            overlap_seconds,
        } => {
            let call = ApiCall::new(
                Method::POST,
                base,
                &["admin", "v1", "tenants", id, "webhook_secret"],
                token,
            );
            match overlap_seconds {
                Some(s) => call.with_body(json!({"overlap_seconds": s})),
                None => call,
            }
        }
    }
}

/// The `POST /admin/v1/tenants` body; burst defaults to the per-second rate.
fn tenant_body(a: &TenantAddArgs) -> Value {
    let mut body = json!({
        "id": a.id,
        "name": a.name,
        "rate_limit": {"per_second": a.per_second, "burst": a.burst.unwrap_or(a.per_second)},
    });
    if let Some(url) = &a.callback_url {
        body["callback_url"] = json!(url);
    }
    body
}

/// The `PATCH /admin/v1/tenants/{id}` body: only the fields given. A frequency cap that
/// is not CATEGORY:MAX/SECONDS is sent as is, so the node names the bad field.
fn tenant_patch(u: &TenantUpdateArgs) -> Value {
    let list = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut body = serde_json::Map::new();
    if let Some(n) = &u.name {
        body.insert("name".into(), json!(n));
    }
    let mut rate = serde_json::Map::new();
    if let Some(p) = u.per_second {
        rate.insert("per_second".into(), json!(p));
    }
    if let Some(b) = u.burst {
        rate.insert("burst".into(), json!(b));
    }
    if !rate.is_empty() {
        body.insert("rate_limit".into(), Value::Object(rate));
    }
    if let Some(url) = &u.callback_url {
        body.insert("callback_url".into(), json!(url));
    }
    if u.no_callback_url {
        body.insert("callback_url".into(), Value::Null);
    }
    if let Some(v) = &u.senders {
        body.insert("senders".into(), json!(list(v)));
    }
    if let Some(v) = u.max_parts {
        body.insert("max_parts".into(), json!(v));
    }
    if let Some(v) = u.queue_limit {
        body.insert("queue_limit".into(), json!(v));
    }
    if let Some(v) = u.smart_encoding {
        body.insert("smart_encoding".into(), json!(v));
    }
    if let Some(v) = &u.frequency_caps {
        let caps: Vec<Value> = list(v).iter().map(|c| frequency_cap(c)).collect();
        body.insert("frequency_caps".into(), json!(caps));
    }
    if let Some(v) = &u.sender_pool {
        body.insert("sender_pool".into(), json!(list(v)));
    }
    if let Some(v) = &u.opt_out_categories {
        body.insert("opt_out_categories".into(), json!(list(v)));
    }
    Value::Object(body)
}

/// `otp:5/600` → `{"category": "otp", "max": 5, "per_seconds": 600}`; anything else is
/// passed as the string it is (the node answers 422 naming `frequency_caps[i]`).
fn frequency_cap(s: &str) -> Value {
    let parsed = s.split_once(':').and_then(|(category, rest)| {
        let (max, per) = rest.split_once('/')?;
        let max: u64 = max.trim().parse().ok()?;
        let per: u64 = per.trim().trim_end_matches('s').parse().ok()?;
        Some(json!({"category": category.trim(), "max": max, "per_seconds": per}))
    });
    parsed.unwrap_or_else(|| json!(s))
}

fn send(a: &SendArgs) -> Result<ApiCall, String> {
    let key = match a.api_key.as_deref().map(str::trim) {
        Some(k) if !k.is_empty() => k,
        _ => {
            return Err(
                "error: no API key: pass --api-key or set SMSGW_API_KEY (shown once by \
                 `smsgw tenant add`)"
                    .to_string(),
            );
        }
    };
    let mut body = json!({"to": a.to, "text": a.text});
    if let Some(from) = &a.from {
        body["from"] = json!(from);
    }
    if let Some(r) = &a.client_ref {
        body["client_ref"] = json!(r);
    }
    let mut call = ApiCall::new(Method::POST, &a.url, &["v1", "messages"], key).with_body(body);
    call.timeout = Duration::from_secs(a.wait.timeout);
    Ok(call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use reqwest::StatusCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn cli(line: &[&str]) -> Command {
        let mut argv = vec!["smsgw"];
        argv.extend_from_slice(line);
        Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .command
    }

    fn planned(line: &[&str]) -> ApiCall {
        match plan(&cli(line)) {
            Some(Ok(call)) => call,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    const U: &str = "--url=http://n:8080";
    const T: &str = "--token=tok";

    #[test]
    fn tenant_update_patches_only_the_flags_given() {
        let c = planned(&[
            "tenant",
            "update",
            "acme",
            "--max-parts",
            "4",
            "--frequency-caps",
            "otp:5/600,marketing:1/86400",
            "--sender-pool",
            "+12025550100",
            "--opt-out-categories",
            "marketing,transactional",
            "--smart-encoding",
            "true",
            "--no-callback-url",
            U,
            T,
        ]);
        assert_eq!(c.method, Method::PATCH);
        assert_eq!(c.path, ["admin", "v1", "tenants", "acme"]);
        assert_eq!(
            c.body,
            Some(json!({"max_parts": 4,
                "frequency_caps": [{"category": "otp", "max": 5, "per_seconds": 600},
                                   {"category": "marketing", "max": 1, "per_seconds": 86400}],
                "sender_pool": ["+12025550100"],
                "opt_out_categories": ["marketing", "transactional"],
                "smart_encoding": true, "callback_url": null}))
        );
        assert_eq!(c.table, Some(Table::Tenants), "one row, like tenant add");
        assert!(c.read_first.is_none());
        // Half a rate limit: the other half is read first and kept.
        let c = planned(&["tenant", "update", "acme", "--per-second", "5", U, T]);
        assert_eq!(c.body, Some(json!({"rate_limit": {"per_second": 5}})));
        assert_eq!(
            c.read_first.as_ref().map(|r| r.keys),
            Some(&["rate_limit"][..])
        );
        let c = planned(&["tenant", "update", "acme", "--sender-pool", "", U, T]);
        assert_eq!(c.body, Some(json!({"sender_pool": []})));
        assert!(
            Cli::try_parse_from(["smsgw", "tenant", "update", "acme", U, T]).is_err(),
            "nothing to change"
        );
        assert_eq!(
            planned(&["tenant", "show", "acme", U, T]).table,
            Some(Table::Tenant)
        );
    }

    #[test]
    fn channel_update_patches_only_the_flags_given() {
        let c = planned(&[
            "channel",
            "update",
            "smsc-a",
            "--tps",
            "250",
            "--password",
            "s3cret",
            "--cost",
            "+49=0.006",
            "--options",
            r#"{"udh": null}"#,
            U,
            T,
        ]);
        assert_eq!(c.method, Method::PATCH);
        assert_eq!(c.path, ["admin", "v1", "channels", "smsc-a"]);
        assert_eq!(
            c.body,
            Some(
                json!({"tps": 250, "password": "s3cret", "cost": {"+49": 0.006},
                        "options": {"udh": null}})
            )
        );
        assert_eq!(c.table, Some(Table::Channels));
        assert!(
            Cli::try_parse_from(["smsgw", "channel", "update", "smsc-a", U, T]).is_err(),
            "nothing to change"
        );
    }

    #[test]
    fn paths_and_methods() {
        let cases: &[(&[&str], Method, &str)] = &[
            (
                &["cluster", "status", U, T],
                Method::GET,
                "http://n:8080/admin/v1/cluster",
            ),
            (
                &["cluster", "nodes", U, T],
                Method::GET,
                "http://n:8080/admin/v1/cluster",
            ),
            (
                &["cluster", "add-node", "--id", "2", "--addr", "h:9080", U, T],
                Method::POST,
                "http://n:8080/admin/v1/cluster/nodes",
            ),
            (
                &["cluster", "remove-node", "2", U, T],
                Method::DELETE,
                "http://n:8080/admin/v1/cluster/nodes/2",
            ),
            (
                &["cluster", "transfer-leader", "3", U, T],
                Method::POST,
                "http://n:8080/admin/v1/cluster/transfer-leader",
            ),
            (
                &["channel", "list", U, T],
                Method::GET,
                "http://n:8080/admin/v1/channels",
            ),
            (
                &["channel", "remove", "smsc-a", U, T],
                Method::DELETE,
                "http://n:8080/admin/v1/channels/smsc-a",
            ),
            (
                &["channel", "drain", "smsc-a", U, T],
                Method::POST,
                "http://n:8080/admin/v1/channels/smsc-a/drain",
            ),
            (
                &["channel", "undrain", "smsc-a", U, T],
                Method::POST,
                "http://n:8080/admin/v1/channels/smsc-a/undrain",
            ),
            (
                &["route", "list", U, T],
                Method::GET,
                "http://n:8080/admin/v1/routes",
            ),
            (
                &["route", "remove", "de", U, T],
                Method::DELETE,
                "http://n:8080/admin/v1/routes/de",
            ),
            (
                &["tenant", "list", U, T],
                Method::GET,
                "http://n:8080/admin/v1/tenants",
            ),
            (
                &["tenant", "show", "acme", U, T],
                Method::GET,
                "http://n:8080/admin/v1/tenants/acme",
            ),
            (
                &["tenant", "remove", "acme", U, T],
                Method::DELETE,
                "http://n:8080/admin/v1/tenants/acme",
            ),
            (
                &["tenant", "rotate-key", "acme", U, T],
                Method::POST,
                "http://n:8080/admin/v1/tenants/acme/keys",
            ),
        ];
        for (line, method, url) in cases {
            let call = planned(line);
            assert_eq!(&call.method, method, "{line:?}");
            assert_eq!(
                call.url().map(String::from).as_deref(),
                Ok(*url),
                "{line:?}"
            );
            assert_eq!(call.bearer, "tok", "{line:?}");
        }
    }

    #[test]
    fn ids_are_escaped_and_base_paths_kept() {
        let call = planned(&[
            "channel",
            "drain",
            "a/b c#1",
            "--url",
            "http://n:8080/gw/",
            T,
        ]);
        assert_eq!(
            call.url().map(String::from).as_deref(),
            Ok("http://n:8080/gw/admin/v1/channels/a%2Fb%20c%231/drain")
        );
    }

    #[test]
    fn bad_url_is_a_usage_error() {
        let call = planned(&["cluster", "status", "--url", "", T]);
        assert_eq!(
            call.url().map(String::from).as_deref(),
            Ok("http://127.0.0.1:8080/admin/v1/cluster")
        );
        for base in ["n:8080", "ftp://n", "not a url"] {
            let call = planned(&["cluster", "status", "--url", base, T]);
            let err = call.url().expect_err(base);
            assert!(err.starts_with("--url "), "{err}");
        }
    }

    #[test]
    fn bodies() {
        let call = planned(&["cluster", "add-node", "--id", "2", "--addr", "h:9080", U, T]);
        assert_eq!(call.body, Some(json!({"id": 2, "addr": "h:9080"})));
        let call = planned(&["cluster", "transfer-leader", "3", U, T]);
        assert_eq!(call.body, Some(json!({"to": 3})));
        let call = planned(&["cluster", "nodes", U, T]);
        assert_eq!(call.pick, Some("nodes"));

        let call = planned(&[
            "channel",
            "add",
            "--id",
            "smsc-a",
            "--host",
            "127.0.0.1",
            "--port",
            "2775",
            "--system-id",
            "sys",
            "--password",
            "pw",
            "--tps",
            "50",
            "--bind",
            "transceiver",
            U,
            T,
        ]);
        assert_eq!(
            call.body,
            Some(
                json!({"id": "smsc-a", "protocol": "smpp", "host": "127.0.0.1", "port": 2775,
                "system_id": "sys", "password": "pw", "tps": 50, "bind": "transceiver"})
            )
        );

        let call = planned(&[
            "route",
            "add",
            "--id",
            "de",
            "--prefix",
            "+49",
            "--channels",
            "a,b",
            "--strategy",
            "success_rate",
            U,
            T,
        ]);
        assert_eq!(
            call.body,
            Some(
                json!({"id": "de", "match": {"prefix": ["+49"]}, "strategy": "success_rate",
                "channels": [{"id": "a"}, {"id": "b"}]})
            )
        );
        let call = planned(&[
            "channel",
            "add",
            "--id",
            "c",
            "--host",
            "h",
            "--port",
            "2775",
            "--system-id",
            "s",
            "--password",
            "p",
            "--options",
            r#"{"udh": "sar"}"#,
            U,
            T,
        ]);
        assert_eq!(
            call.body.map(|b| b["options"].clone()),
            Some(json!({"udh": "sar"}))
        );
        // Audit s18 defect 6: weights, min success rate, A/B and costs from the shell.
        let call = planned(&[
            "route",
            "add",
            "--id",
            "w",
            "--channels",
            "ch-a:3,ch-b:1,ch-c",
            "--strategy",
            "least_cost",
            "--min-success-rate",
            "0.9",
            "--ab-split",
            "30",
            "--ab-channels",
            "ch-c:2",
            "--ab-strategy",
            "weighted",
            U,
            T,
        ]);
        assert_eq!(
            call.body,
            Some(json!({"id": "w", "match": {}, "strategy": "least_cost",
                "channels": [{"id": "ch-a", "weight": 3}, {"id": "ch-b", "weight": 1}, {"id": "ch-c"}],
                "min_success_rate": 0.9,
                "ab": {"split_percent": 30, "variant_b": {"strategy": "weighted", "channels": [{"id": "ch-c", "weight": 2}]}}}))
        );
        for bad in [
            &["route", "add", "--id", "w", "--channels", "a:x", U, T][..],
            &["route", "add", "--id", "w", "--channels", "a:-1", U, T][..],
            &["route", "add", "--id", "w", "--channels", ":3", U, T][..],
            &[
                "route",
                "add",
                "--id",
                "w",
                "--channels",
                "a",
                "--min-success-rate",
                "1.5",
                U,
                T,
            ][..],
            &[
                "route",
                "add",
                "--id",
                "w",
                "--channels",
                "a",
                "--ab-split",
                "30",
                U,
                T,
            ][..],
            &[
                "channel",
                "add",
                "--id",
                "c",
                "--host",
                "h",
                "--port",
                "1",
                "--system-id",
                "s",
                "--password",
                "p",
                "--cost",
                "default",
                U,
                T,
            ][..],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("smsgw").chain(bad.iter().copied())).is_err(),
                "{bad:?}"
            );
        }
        let call = planned(&[
            "route",
            "update",
            "w",
            "--channels",
            "a:1,b:0",
            "--no-ab",
            U,
            T,
        ]);
        assert_eq!(call.method, Method::PATCH);
        assert_eq!(
            call.url().map(String::from).as_deref(),
            Ok("http://n:8080/admin/v1/routes/w")
        );
        assert_eq!(
            call.body,
            Some(
                json!({"channels": [{"id": "a", "weight": 1}, {"id": "b", "weight": 0}], "ab": null})
            )
        );
        let call = planned(&[
            "channel",
            "add",
            "--id",
            "c",
            "--host",
            "h",
            "--port",
            "2775",
            "--system-id",
            "s",
            "--password",
            "p",
            "--cost",
            "default=0.004,+49=0.006",
            U,
            T,
        ]);
        assert_eq!(
            call.body.map(|b| b["cost"].clone()),
            Some(json!({"default": 0.004, "+49": 0.006}))
        );
        let call = planned(&["route", "add", "--id", "default", "--channels", "a", U, T]);
        assert_eq!(
            call.body,
            Some(json!({"id": "default", "match": {}, "strategy": "priority",
                "channels": [{"id": "a"}]}))
        );

        let call = planned(&[
            "tenant",
            "add",
            "--id",
            "acme",
            "--name",
            "ACME",
            "--per-second",
            "5",
            "--callback-url",
            "https://acme.example/cb",
            U,
            T,
        ]);
        assert_eq!(
            call.body,
            Some(
                json!({"id": "acme", "name": "ACME", "rate_limit": {"per_second": 5, "burst": 5},
                "callback_url": "https://acme.example/cb"})
            )
        );

        let call = planned(&[
            "send",
            "--to",
            "+4915112345678",
            "--text",
            "hi",
            "--from",
            "ACME",
            "--api-key",
            "key1",
            U,
        ]);
        assert_eq!(call.method, Method::POST);
        assert_eq!(
            call.url().map(String::from).as_deref(),
            Ok("http://n:8080/v1/messages")
        );
        assert_eq!(call.bearer, "key1");
        assert_eq!(
            call.body,
            Some(json!({"to": "+4915112345678", "text": "hi", "from": "ACME"}))
        );
    }

    #[test]
    fn missing_credentials_are_refused_before_any_request() {
        // Only meaningful when the test process does not carry the env fallbacks.
        if std::env::var_os("SMSGW_ADMIN_TOKEN").is_none() {
            let planned = plan(&cli(&["cluster", "status"]));
            assert!(
                matches!(planned, Some(Err(ref e)) if e.contains("--token")),
                "{planned:?}"
            );
        }
        let planned = plan(&cli(&["cluster", "status", "--token", " "]));
        assert!(matches!(planned, Some(Err(_))), "{planned:?}");
        let planned = plan(&cli(&[
            "send",
            "--to",
            "+1",
            "--text",
            "x",
            "--api-key",
            "",
        ]));
        assert!(
            matches!(planned, Some(Err(ref e)) if e.contains("--api-key")),
            "{planned:?}"
        );
    }

    #[test]
    fn non_admin_commands_are_left_alone() {
        assert!(plan(&cli(&["start"])).is_none());
        assert!(plan(&cli(&["demo"])).is_none());
        assert!(plan(&cli(&["sim", "smsc"])).is_none());
    }

    #[tokio::test]
    async fn run_admin_returns_minus_one_for_non_admin() {
        assert_eq!(run_admin(&cli(&["demo"])).await.ok(), Some(NOT_ADMIN));
        assert_eq!(
            run_admin(&cli(&["cluster", "status", "--token", ""]))
                .await
                .ok(),
            Some(EXIT_USAGE)
        );
    }

    #[test]
    fn error_lines() {
        let body = r#"{"error":{"code":"not_found","message":"no channel 'x'"}}"#;
        assert_eq!(
            http_error_line(StatusCode::NOT_FOUND, body),
            "error: 404 not_found: no channel 'x'"
        );
        let body = r#"{"error":{"code":"invalid_field","message":"bad port","field":"port"}}"#;
        assert_eq!(
            http_error_line(StatusCode::UNPROCESSABLE_ENTITY, body),
            "error: 422 invalid_field: bad port (field 'port')"
        );
        assert_eq!(
            http_error_line(StatusCode::BAD_GATEWAY, "<html>\nbad\n</html>"),
            "error: 502 Bad Gateway: <html> bad </html>"
        );
        assert_eq!(
            http_error_line(StatusCode::SERVICE_UNAVAILABLE, ""),
            "error: 503 Service Unavailable"
        );
        let long = "x".repeat(1000);
        assert!(
            http_error_line(StatusCode::BAD_GATEWAY, &long)
                .chars()
                .count()
                < 260
        );
    }

    #[test]
    fn success_texts() {
        assert_eq!(success_text("", None), "");
        assert_eq!(success_text("{\"a\":1}", None), "{\n  \"a\": 1\n}");
        assert_eq!(
            success_text("{\"leader\":1,\"nodes\":[{\"id\":1}]}", Some("nodes")),
            "[\n  {\n    \"id\": 1\n  }\n]"
        );
        assert_eq!(success_text("ok\n", None), "ok");
    }

    /// Serves one canned HTTP answer; yields the raw request it received.
    async fn one_shot_server(
        status: &'static str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return String::new();
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = sock.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        (format!("http://{addr}"), handle)
    }

    #[tokio::test]
    async fn success_is_pretty_printed_and_auth_sent() {
        let (base, server) = one_shot_server("200 OK", r#"{"leader":1,"term":4,"nodes":[]}"#).await;
        let call = planned(&[
            "cluster", "status", "--json", "--url", &base, "--token", "tok-123",
        ]);
        let client = http_client().expect("client");
        let url = call.url().expect("url");
        let outcome = execute(&client, &call, url).await;
        assert_eq!(
            outcome,
            // serde_json (without preserve_order) prints keys sorted.
            Outcome::Success("{\n  \"leader\": 1,\n  \"nodes\": [],\n  \"term\": 4\n}".into())
        );
        let request = server.await.expect("server");
        assert!(
            request.starts_with("GET /admin/v1/cluster HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: bearer tok-123"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn http_error_body_is_shown_on_one_line() {
        let (base, server) = one_shot_server(
            "409 Conflict",
            r#"{"error":{"code":"conflict","message":"channel 'a' exists","field":"id"}}"#,
        )
        .await;
        let call = planned(&[
            "channel",
            "add",
            "--id",
            "a",
            "--host",
            "h",
            "--port",
            "1",
            "--system-id",
            "s",
            "--password",
            "p",
            "--url",
            &base,
            "--token",
            "t",
        ]);
        let client = http_client().expect("client");
        let outcome = execute(&client, &call, call.url().expect("url")).await;
        assert_eq!(
            outcome,
            Outcome::Failure("error: 409 conflict: channel 'a' exists (field 'id')".into())
        );
        let request = server.await.expect("server");
        assert!(request.contains("\"system_id\":\"s\""), "{request}");
    }

    #[tokio::test]
    async fn connection_refused_names_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let base = format!("http://{addr}");
        let call = planned(&["tenant", "list", "--url", &base, "--token", "t"]);
        let client = http_client().expect("client");
        let outcome = execute(&client, &call, call.url().expect("url")).await;
        let Outcome::Failure(line) = outcome else {
            panic!("expected failure, got {outcome:?}");
        };
        assert!(
            line.starts_with(&format!("error: cannot connect to {base}/admin/v1/tenants")),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            run_admin(&cli(&["tenant", "list", "--url", &base, "--token", "t"]))
                .await
                .ok(),
            Some(EXIT_FAILED)
        );
    }
}
