//! `smsgw compliance ...`: content rules, country rules, sender ids, DLT templates, 10DLC
//! campaigns and opt-outs from the shell. Each command becomes one admin API call
//! (`admin::ApiCall`), planned without I/O.

use reqwest::Method;
use serde_json::{Value, json};

use super::AdminConn;
use super::admin::ApiCall;
use super::tables::Table;

/// `smsgw compliance ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ComplianceArgs {
    /// Node to talk to.
    #[command(flatten)]
    pub conn: AdminConn,
    /// What to manage.
    #[command(subcommand)]
    pub command: ComplianceCommand,
}

/// The compliance registries.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ComplianceCommand {
    /// Content rules (keywords, regular expressions, URL domains, link shorteners).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Country rules (sender ids, DLT, 10DLC, quiet hours).
    #[command(subcommand)]
    Country(CountryCommand),
    /// A tenant's registered sender ids.
    #[command(subcommand)]
    Sender(SenderCommand),
    /// A tenant's India DLT templates.
    #[command(subcommand)]
    Dlt(DltCommand),
    /// A tenant's US 10DLC campaigns.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// A tenant's opt-out list.
    #[command(subcommand, name = "opt-out")]
    OptOut(OptOutCommand),
}

/// Content rule actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum RuleCommand {
    /// Create or replace a rule.
    Put {
        id: String,
        /// keyword, regex, url_domain, url_allow or link_shortener.
        #[arg(long)]
        kind: String,
        /// The word, expression or domain (`*` for the built-in shortener list).
        #[arg(long)]
        pattern: String,
        /// reject or flag.
        #[arg(long, default_value = "reject")]
        action: String,
        /// global or tenant:<id>.
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// List every rule.
    List,
    /// Show one rule.
    Show { id: String },
    /// Delete a rule.
    Remove { id: String },
}

/// Country rule actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum CountryCommand {
    /// Change a country's rules: only the flags given change, the others keep the rules
    /// in force (configured, else built in); the CLI reads them first, merges, and
    /// writes the whole rule. Prints the resulting rules.
    Set {
        /// ISO 3166 alpha-2, e.g. IN.
        country: String,
        /// Whether alphanumeric sender ids may be used (true/false).
        #[arg(long)]
        alphanumeric_allowed: Option<bool>,
        /// Whether senders must be registered for the country (true/false).
        #[arg(long)]
        sender_registration_required: Option<bool>,
        /// Whether India DLT entity and template ids are required (true/false).
        #[arg(long)]
        dlt_required: Option<bool>,
        /// Whether US 10DLC campaign registration is required (true/false).
        #[arg(long)]
        ten_dlc_required: Option<bool>,
        /// Quiet hours start (HH:MM, local), with --quiet-end and --timezone.
        #[arg(long, requires_all = ["quiet_end", "timezone"])]
        quiet_start: Option<String>,
        /// Quiet hours end (HH:MM, local; before the start means the next day), with
        /// --quiet-start and --timezone.
        #[arg(long, requires = "quiet_start")]
        quiet_end: Option<String>,
        /// IANA time zone of the quiet hours, e.g. Asia/Kolkata.
        #[arg(long, requires = "quiet_start")]
        timezone: Option<String>,
        /// Remove the country's quiet hours.
        #[arg(long, conflicts_with = "quiet_start")]
        no_quiet_hours: bool,
    },
    /// List the countries with rules in force: configured ones and the built-in rules
    /// (IN, US) not replaced.
    List,
    /// The rules in force for a country.
    Show { country: String },
    /// Back to the built-in rules.
    Reset { country: String },
}

/// Sender id actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum SenderCommand {
    /// Register a sender id.
    Add {
        tenant: String,
        #[arg(long)]
        sender: String,
        /// alphanumeric, short_code, long_code or toll_free.
        #[arg(long = "type")]
        kind: String,
        /// Countries (ISO alpha-2); none: every country.
        #[arg(long, value_delimiter = ',')]
        countries: Vec<String>,
    },
    /// List a tenant's sender ids.
    List { tenant: String },
    /// Remove a sender id.
    Remove { tenant: String, sender: String },
}

/// DLT template actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum DltCommand {
    /// Register a template (`{#var#}` placeholders).
    Add {
        tenant: String,
        #[arg(long)]
        template_id: String,
        #[arg(long)]
        entity_id: String,
        #[arg(long)]
        text: String,
    },
    /// List a tenant's templates.
    List { tenant: String },
    /// Remove a template.
    Remove { tenant: String, template_id: String },
}

/// 10DLC campaign actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum CampaignCommand {
    /// Register a campaign with its long codes.
    Add {
        tenant: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        use_case: String,
        #[arg(long, value_delimiter = ',', required = true)]
        numbers: Vec<String>,
        /// Messages per second (0: no cap).
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        tps: u32,
    },
    /// List a tenant's campaigns.
    List { tenant: String },
    /// Remove a campaign.
    Remove { tenant: String, id: String },
}

/// Opt-out actions.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum OptOutCommand {
    /// Add numbers.
    Add {
        tenant: String,
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Count and list.
    List { tenant: String },
    /// Remove one number.
    Remove { tenant: String, number: String },
}

fn call(method: Method, base: &str, path: &[&str], token: &str, body: Option<Value>) -> ApiCall {
    let call = ApiCall::new(method, base, path, token);
    match body {
        Some(body) => call.with_body(body),
        None => call,
    }
}

/// How a compliance command's answer is shown without `--json` (`None`: as JSON).
pub fn table(cmd: &ComplianceCommand) -> Option<Table> {
    match cmd {
        ComplianceCommand::Rule(RuleCommand::Remove { .. })
        | ComplianceCommand::Country(CountryCommand::Reset { .. })
        | ComplianceCommand::Sender(SenderCommand::Remove { .. })
        | ComplianceCommand::Dlt(DltCommand::Remove { .. })
        | ComplianceCommand::Campaign(CampaignCommand::Remove { .. })
        | ComplianceCommand::OptOut(OptOutCommand::Remove { .. }) => None,
        ComplianceCommand::OptOut(OptOutCommand::Add { .. }) => Some(Table::OptOutsAdded),
        ComplianceCommand::Rule(_) => Some(Table::Rules),
        ComplianceCommand::Country(_) => Some(Table::Countries),
        ComplianceCommand::Sender(_) => Some(Table::Senders),
        ComplianceCommand::Dlt(_) => Some(Table::DltTemplates),
        ComplianceCommand::Campaign(_) => Some(Table::Campaigns),
        ComplianceCommand::OptOut(OptOutCommand::List { .. }) => Some(Table::OptOuts),
    }
}

/// The fields of `PUT .../countries/{cc}`, kept from the rules in force by `country set`.
const COUNTRY_KEYS: &[&str] = &[
    "alphanumeric_allowed",
    "sender_registration_required",
    "dlt_required",
    "ten_dlc_required",
    "quiet_hours",
];

/// The API call of a compliance command.
pub fn plan(cmd: &ComplianceCommand, base: &str, token: &str) -> ApiCall {
    const RULES: [&str; 4] = ["admin", "v1", "compliance", "rules"];
    const COUNTRIES: [&str; 4] = ["admin", "v1", "compliance", "countries"];
    let t = |tenant: &str, what: &'static str| -> Vec<String> {
        vec![
            "admin".into(),
            "v1".into(),
            "tenants".into(),
            tenant.into(),
            what.into(),
        ]
    };
    let tc = |method: Method, path: Vec<String>, body: Option<Value>| {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        call(method, base, &p, token, body)
    };
    let with = |mut v: Vec<String>, last: &str| {
        v.push(last.to_string());
        v
    };
    match cmd {
        ComplianceCommand::Rule(r) => match r {
            RuleCommand::Put {
                id,
                kind,
                pattern,
                action,
                scope,
            } => call(
                Method::PUT,
                base,
                &[RULES[0], RULES[1], RULES[2], RULES[3], id],
                token,
                Some(json!({"scope": scope, "kind": kind, "pattern": pattern, "action": action})),
            ),
            RuleCommand::List => call(Method::GET, base, &RULES, token, None),
            RuleCommand::Show { id } => call(
                Method::GET,
                base,
                &[RULES[0], RULES[1], RULES[2], RULES[3], id],
                token,
                None,
            ),
            RuleCommand::Remove { id } => call(
                Method::DELETE,
                base,
                &[RULES[0], RULES[1], RULES[2], RULES[3], id],
                token,
                None,
            ),
        },
        ComplianceCommand::Country(c) => match c {
            CountryCommand::Set {
                country,
                alphanumeric_allowed,
                sender_registration_required,
                dlt_required,
                ten_dlc_required,
                quiet_start,
                quiet_end,
                timezone,
                no_quiet_hours,
            } => {
                let mut body = serde_json::Map::new();
                let mut put = |k: &str, v: Option<bool>| {
                    if let Some(v) = v {
                        body.insert(k.into(), json!(v));
                    }
                };
                put("alphanumeric_allowed", *alphanumeric_allowed);
                put(
                    "sender_registration_required",
                    *sender_registration_required,
                );
                put("dlt_required", *dlt_required);
                put("ten_dlc_required", *ten_dlc_required);
                if let (Some(s), Some(e), Some(z)) = (quiet_start, quiet_end, timezone) {
                    body.insert(
                        "quiet_hours".into(),
                        json!({"start": s, "end": e, "timezone": z}),
                    );
                }
                if *no_quiet_hours {
                    body.insert("quiet_hours".into(), Value::Null);
                }
                let path = [
                    COUNTRIES[0],
                    COUNTRIES[1],
                    COUNTRIES[2],
                    COUNTRIES[3],
                    country,
                ];
                call(Method::PUT, base, &path, token, Some(Value::Object(body)))
                    .reading_first(&path, COUNTRY_KEYS)
            }
            CountryCommand::List => call(Method::GET, base, &COUNTRIES, token, None),
            CountryCommand::Show { country } => call(
                Method::GET,
                base,
                &[
                    COUNTRIES[0],
                    COUNTRIES[1],
                    COUNTRIES[2],
                    COUNTRIES[3],
                    country,
                ],
                token,
                None,
            ),
            CountryCommand::Reset { country } => call(
                Method::DELETE,
                base,
                &[
                    COUNTRIES[0],
                    COUNTRIES[1],
                    COUNTRIES[2],
                    COUNTRIES[3],
                    country,
                ],
                token,
                None,
            ),
        },
        ComplianceCommand::Sender(s) => match s {
            SenderCommand::Add {
                tenant,
                sender,
                kind,
                countries,
            } => tc(
                Method::POST,
                t(tenant, "senders"),
                Some(json!({"sender": sender, "type": kind, "countries": countries})),
            ),
            SenderCommand::List { tenant } => tc(Method::GET, t(tenant, "senders"), None),
            SenderCommand::Remove { tenant, sender } => {
                tc(Method::DELETE, with(t(tenant, "senders"), sender), None)
            }
        },
        ComplianceCommand::Dlt(d) => match d {
            DltCommand::Add {
                tenant,
                template_id,
                entity_id,
                text,
            } => tc(
                Method::POST,
                t(tenant, "dlt_templates"),
                Some(json!({"template_id": template_id, "entity_id": entity_id, "text": text})),
            ),
            DltCommand::List { tenant } => tc(Method::GET, t(tenant, "dlt_templates"), None),
            DltCommand::Remove {
                tenant,
                template_id,
            } => tc(
                Method::DELETE,
                with(t(tenant, "dlt_templates"), template_id),
                None,
            ),
        },
        ComplianceCommand::Campaign(c) => match c {
            CampaignCommand::Add {
                tenant,
                id,
                use_case,
                numbers,
                tps,
            } => tc(
                Method::POST,
                t(tenant, "campaigns"),
                Some(json!({"id": id, "use_case": use_case, "numbers": numbers, "tps": tps})),
            ),
            CampaignCommand::List { tenant } => tc(Method::GET, t(tenant, "campaigns"), None),
            CampaignCommand::Remove { tenant, id } => {
                tc(Method::DELETE, with(t(tenant, "campaigns"), id), None)
            }
        },
        ComplianceCommand::OptOut(o) => match o {
            OptOutCommand::Add { tenant, numbers } => tc(
                Method::POST,
                t(tenant, "opt_outs"),
                Some(json!({"numbers": numbers})),
            ),
            OptOutCommand::List { tenant } => tc(Method::GET, t(tenant, "opt_outs"), None),
            OptOutCommand::Remove { tenant, number } => {
                // Normalised as the node does, so the confirmation names the stored number;
                // one the node would refuse is sent as typed (its answer says why).
                let number = crate::messages::intake::normalize_lost_plus(number)
                    .unwrap_or_else(|_| number.clone());
                tc(Method::DELETE, with(t(tenant, "opt_outs"), &number), None)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn planned(args: &[&str]) -> ApiCall {
        let mut v = vec!["smsgw", "compliance"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--url", "http://n:8080", "--token", "tok"]);
        let cli = Cli::try_parse_from(v).expect("parse");
        let Command::Compliance(a) = cli.command else {
            panic!("not compliance");
        };
        plan(&a.command, &a.conn.url, "tok")
    }

    #[test]
    fn commands_become_calls() {
        let c = planned(&[
            "rule",
            "put",
            "r1",
            "--kind",
            "keyword",
            "--pattern",
            "loan",
        ]);
        assert_eq!(c.method, Method::PUT);
        assert_eq!(c.path, ["admin", "v1", "compliance", "rules", "r1"]);
        assert_eq!(
            c.body,
            Some(
                json!({"scope": "global", "kind": "keyword", "pattern": "loan", "action": "reject"})
            )
        );
        let c = planned(&[
            "country",
            "set",
            "IN",
            "--quiet-start",
            "21:00",
            "--quiet-end",
            "08:00",
            "--timezone",
            "Asia/Kolkata",
        ]);
        assert_eq!(
            c.body,
            Some(
                json!({"quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "Asia/Kolkata"}})
            )
        );
        // Read, merge, write: the rules in force are read first and kept.
        let read = c.read_first.as_ref().expect("country set reads first");
        assert_eq!(read.path, ["admin", "v1", "compliance", "countries", "IN"]);
        assert!(read.keys.contains(&"sender_registration_required"));
        let mut merged = json!({"alphanumeric_allowed": true, "sender_registration_required": true,
            "dlt_required": true, "ten_dlc_required": false, "quiet_hours": null});
        if let Some(b) = &c.body {
            crate::cli::admin::merge_json(&mut merged, b);
        }
        assert_eq!(merged["sender_registration_required"], true);
        assert_eq!(merged["quiet_hours"]["start"], "21:00");
        let c = planned(&["country", "set", "DE", "--no-quiet-hours"]);
        assert_eq!(c.body, Some(json!({"quiet_hours": null})));
        let c = planned(&["opt-out", "remove", "acme", "+49 151 1234-5678"]);
        assert_eq!(
            c.path,
            [
                "admin",
                "v1",
                "tenants",
                "acme",
                "opt_outs",
                "+4915112345678"
            ]
        );
        let c = planned(&["opt-out", "add", "acme", "+4915112345678", "+4915112345679"]);
        assert_eq!(c.path, ["admin", "v1", "tenants", "acme", "opt_outs"]);
        let c = planned(&[
            "campaign",
            "add",
            "acme",
            "--id",
            "C1",
            "--use-case",
            "2fa",
            "--numbers",
            "+12025550100,+12025550101",
        ]);
        assert_eq!(
            c.body.as_ref().map(|b| b["numbers"].clone()),
            Some(json!(["+12025550100", "+12025550101"]))
        );
        let c = planned(&["sender", "remove", "acme", "ACME"]);
        assert_eq!((c.method, c.path.len()), (Method::DELETE, 6));
    }
}
