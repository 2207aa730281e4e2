//! Turning a send request into a message row (pure): number and sender checks, the
//! encoding plan, the part limit, validity and scheduling, and the route. Everything
//! here runs before the Raft write, so a refused request costs nothing durable.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::error::ApiError;
use crate::encoding::{
    self, Carrier, ConcatRefs, EncodingChoice, EncodingError, Layout, Options, Plan, Replacement,
};
use crate::routing::{self, RouteChoice};
use crate::state::{Category, ConfigView, Message, PartState, PartStatus, Status, Tenant};

/// Validity bounds (seconds) from the contract.
pub const VALIDITY_MIN: i64 = 60;
pub const VALIDITY_MAX: i64 = 604_800;
pub const VALIDITY_DEFAULT: i64 = 86_400;
/// No part carries more characters of `text` than this (140 octets of binary, written
/// as 280 hex digits; GSM-7 holds 160, UCS-2 70), so a longer text than
/// `MAX_PARTS` times it needs more parts than any tenant allows.
const MAX_CHARS_PER_PART: usize = 280;
/// `send_at` may be at most this far ahead.
pub const SCHEDULE_MAX_MS: i64 = 30 * 24 * 3600 * 1000;

/// DLT registration ids (India), carried for the compliance issue.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DltIds {
    pub entity_id: String,
    pub template_id: String,
}

/// The body of `POST /v1/messages` (and each batch item, and preview). Serialize is
/// for [`request_hash`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub to: String,
    pub text: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub encoding: Option<EncodingChoice>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub smart_encoding: Option<bool>,
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default)]
    pub client_ref: Option<String>,
    #[serde(default)]
    pub validity_seconds: Option<i64>,
    #[serde(default)]
    pub send_at: Option<String>,
    #[serde(default)]
    pub dlt: Option<DltIds>,
    #[serde(default)]
    pub campaign_id: Option<String>,
    /// Binary only (`encoding: "binary"`): the caller's UDH information
    /// elements as hex, without the UDHL octet; sent in every part.
    #[serde(default)]
    pub udh: Option<String>,
}

/// A checked request: the row to propose plus what the answer shows.
#[derive(Debug, Clone)]
pub struct Intake {
    pub message: Message,
    pub plan: Plan,
    pub route: Option<RouteChoice>,
    /// Look-alike characters smart encoding replaced (the stored text has the replacements).
    pub replacements: Vec<Replacement>,
    /// ISO country of `message.to`, found while checking the number (parsing it again
    /// for each later check cost more than the rest of the intake).
    pub country: Option<String>,
}

/// Strips the separators the contract allows and checks E.164 with libphonenumber data.
pub fn normalize_number(raw: &str) -> Result<String, ApiError> {
    parse_recipient(raw).map(|(number, _)| number)
}

/// A number as written without the separators the contract strips (spaces, dashes and
/// parentheses); anything else is left for the caller to refuse.
fn without_separators(raw: &str) -> String {
    raw.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect()
}

/// `normalize_number` plus the number's ISO country, from one libphonenumber parse.
pub fn parse_recipient(raw: &str) -> Result<(String, Option<String>), ApiError> {
    let cleaned = without_separators(raw);
    let bad = || invalid_number(raw);
    let digits = cleaned.strip_prefix('+').ok_or_else(bad)?;
    if digits.is_empty()
        || digits.len() > 15
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(bad());
    }
    let parsed = phonenumber::parse(None, &cleaned).map_err(|_| bad())?;
    let (valid, country) = super::phone_patterns::validity_and_country(&parsed);
    if !valid {
        return Err(bad());
    }
    Ok((format!("+{digits}"), country.map(iso_id)))
}

/// Like [`normalize_number`] for a number from a query string, a path or an admin list,
/// where a leading `+` is often lost (an unencoded `+` in a query decodes as a space): the
/// `+` is put back for the check, but a refusal echoes the caller's input as it came.
pub fn normalize_lost_plus(raw: &str) -> Result<String, ApiError> {
    let t = raw.trim();
    let with_plus = if t.starts_with('+') {
        std::borrow::Cow::Borrowed(t)
    } else {
        std::borrow::Cow::Owned(format!("+{t}"))
    };
    normalize_number(&with_plus).map_err(|_| invalid_number(raw))
}

/// The refusal of a number, naming the caller's input (field `to`; callers rename it).
fn invalid_number(raw: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_phone_number",
        format!("{raw:?} is not a valid E.164 number"),
    )
    .field("to")
}

/// ISO country of a normalised number, for routing.
pub fn country_of(number: &str) -> Option<String> {
    phonenumber::parse(None, number)
        .ok()
        .and_then(|n| country_id(&n))
}

fn country_id(n: &phonenumber::PhoneNumber) -> Option<String> {
    super::phone_patterns::country(n).map(iso_id)
}

/// A region's ISO code as routes and country rules name it ("DE").
fn iso_id(id: phonenumber::country::Id) -> String {
    format!("{id:?}")
}

/// True when `cc` is a region libphonenumber knows (its CLDR region ids: the ISO 3166-1
/// alpha-2 codes that have phone numbers, plus AC, TA and XK). Countries in routes and
/// compliance rules are compared with the country `parse_recipient` finds for a number,
/// so a code outside this list (`XX`, or an ISO code without numbers such as `AQ`)
/// could never match anything: it is refused instead of silently doing nothing.
pub fn is_known_country(cc: &str) -> bool {
    cc.len() == 2
        && cc.bytes().all(|b| b.is_ascii_uppercase())
        && cc.parse::<phonenumber::country::Id>().is_ok()
}

/// True when numbers starting with the digits `prefix` (without `+`) can belong to the
/// country `cc`: the prefix and the country's calling code agree on their common
/// length ("+4" and "+4930" fit DE, "+49" does not fit FR). Unknown country: false.
pub fn prefix_fits_country(prefix: &str, cc: &str) -> bool {
    let Some(code) = phonenumber::metadata::DATABASE
        .by_id(cc)
        .map(|m| m.country_code().to_string())
    else {
        return false;
    };
    prefix.starts_with(&code) || code.starts_with(prefix)
}

/// Checks a sender id: alphanumeric (≤ 11), short code (3–8 digits), or E.164.
pub fn check_sender(from: &str) -> Result<String, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_sender",
            format!("{from:?}: {why}"),
        )
        .field("from")
    };
    let f = from.trim();
    if f.is_empty() {
        return Err(bad("empty"));
    }
    // A long code may be written as a phone number is ("+49 151 9999-9999").
    let number = without_separators(f);
    if let Some(d) = number.strip_prefix('+') {
        if d.len() < 4 || d.len() > 15 || !d.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not an E.164 number"));
        }
        return Ok(number);
    }
    if f.bytes().all(|b| b.is_ascii_digit()) {
        if f.len() < 3 || f.len() > 15 {
            return Err(bad("a numeric sender has 3 to 15 digits"));
        }
        return Ok(f.to_string());
    }
    if f.chars().count() > 11 {
        return Err(bad("alphanumeric senders have at most 11 characters"));
    }
    if !f
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '.' || c == '_')
    {
        return Err(bad(
            "alphanumeric senders use A-Z, a-z, 0-9, space, '-', '.', '_'",
        ));
    }
    Ok(f.to_string())
}

/// Refuses (422 naming `field`) a webhook URL the dispatcher could never call: it must
/// parse as an absolute http(s) URL with a host, no whitespace, at most 2048 characters.
/// A prefix check let `http://` and `http://exa mple.com/x` through, and every webhook of
/// such a message or tenant was then dropped ("empty host") with no error to the client.
pub fn check_url(field: &str, url: &str) -> Result<(), ApiError> {
    match url_problem(url) {
        None => Ok(()),
        Some(why) => {
            // The caller's input is echoed, but not a whole oversized one.
            let shown: String = url.chars().take(200).collect();
            let more = if shown.len() < url.len() { "…" } else { "" };
            Err(ApiError::invalid(
                field,
                format!("{shown:?}{more} is not a usable http(s) URL: {why}"),
            ))
        }
    }
}

/// Why `url` cannot be a webhook target, or None when it can.
fn url_problem(url: &str) -> Option<&'static str> {
    if url.len() > 2048 {
        return Some("at most 2048 characters");
    }
    if url.contains(char::is_whitespace) {
        return Some("it contains a space (percent-encode it as %20)");
    }
    // The URL parser reads `http:///x` as host `x`: the host must follow `://` itself.
    let authority = url.split_once("://").map(|(_, rest)| rest);
    if authority.is_none_or(|a| a.is_empty() || a.starts_with(['/', '?', '#'])) {
        return Some("it has no host");
    }
    match reqwest::Url::parse(url) {
        Err(_) => Some("it does not parse as a URL"),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some("it must start with http:// or https://")
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("it has no host"),
        Ok(_) => None,
    }
}

/// Hash of the raw request body: how idempotency records were compared before
/// [`request_hash`]. Records younger than 24 h may still hold it, so a replay of the same
/// bytes is recognised by it too (see [`same_request`]).
pub fn body_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hash of a parsed request for idempotency comparison: the same fields in another key
/// order, other whitespace, or a `to` / `from` written another way that normalises to the
/// same value are the same request. Fields are hashed in the struct's order.
pub fn request_hash(req: &SendRequest) -> String {
    let mut canonical = req.clone();
    if let Ok(to) = normalize_number(&req.to) {
        canonical.to = to;
    }
    if let Some(Ok(from)) = req.from.as_deref().map(check_sender) {
        canonical.from = Some(from);
    }
    // Serialising plain strings, numbers and enums cannot fail; were it to, the Debug
    // form still tells requests apart.
    let bytes =
        serde_json::to_vec(&canonical).unwrap_or_else(|_| format!("{canonical:?}").into_bytes());
    hex::encode(Sha256::digest(bytes))
}

/// Whether an idempotency record's stored hash is this request: by [`request_hash`], or
/// by [`body_hash`] of the same bytes for records written before it.
pub fn same_request(stored: &str, request_hash: &str, body: &[u8]) -> bool {
    stored == request_hash || stored == body_hash(body)
}

/// Validates a request for `tenant` and builds the row to accept (not yet stored),
/// routing with a fresh engine (no HLR answer). See [`build_routed`].
pub fn build(
    req: &SendRequest,
    tenant: &Tenant,
    cfg: &ConfigView,
    id: String,
    now: i64,
    refs: &ConcatRefs,
) -> Result<Intake, ApiError> {
    let engine = routing::RoutingEngine::default();
    build_routed(req, tenant, cfg, id, now, refs, &engine, None)
}

/// Validates a request and builds the row to accept: the accept-time routing decision
/// (route, A/B variant, candidate channels, operator) is made here and stored in the
/// row, so applying the `Accept` op never recomputes it. `operator` is the HLR answer,
/// if any; otherwise the number-range table decides.
#[allow(clippy::too_many_arguments)]
pub fn build_routed(
    req: &SendRequest,
    tenant: &Tenant,
    cfg: &ConfigView,
    id: String,
    now: i64,
    refs: &ConcatRefs,
    engine: &routing::RoutingEngine,
    operator: Option<String>,
) -> Result<Intake, ApiError> {
    let (to, country) = parse_recipient(&req.to)?;
    let from = match &req.from {
        Some(f) if is_extended_src_id(f) => f.trim().to_string(),
        Some(f) => check_sender(f)?,
        None => tenant
            .senders
            .first()
            .cloned()
            .unwrap_or_else(|| "SMSGW".to_string()),
    };
    if req.text.is_empty() {
        return Err(ApiError::invalid("text", "text is empty"));
    }
    // A cheap bound before planning (which tries every national table): a text this long
    // needs more parts than any tenant may allow, whatever the encoding.
    let max_parts = tenant.max_parts.clamp(1, encoding::MAX_PARTS as u32) as usize;
    if req.text.chars().count() > encoding::MAX_PARTS * MAX_CHARS_PER_PART {
        return Err(too_long(
            format!("more than {}", encoding::MAX_PARTS),
            max_parts,
        ));
    }
    let category = req.category.unwrap_or_default();
    // The route is decided before the text is planned: the first channel's encoding
    // options shape the parts, so they must be those of the route the message will take
    // (operator- and sender-specific routes included).
    let operator = operator.or_else(|| engine.operator_of(cfg, &to));
    let mut route = engine.route(
        cfg,
        &routing::MatchInput {
            to: &to,
            country: country.as_deref(),
            operator: operator.as_deref(),
            tenant: &tenant.id,
            category,
            sender_type: routing::matcher::sender_type(&from),
        },
        &id,
    );
    // A route saved while a channel of it existed may name it after its deletion (the
    // admin API refuses that now; older routes can have it): only existing channels are
    // candidates, and a route with none left fails the message with `no_route`.
    if let Some(r) = route.as_mut() {
        r.channels.retain(|c| cfg.channels.contains_key(c));
    }
    let channel = route
        .as_ref()
        .and_then(|r| r.channels.first())
        .and_then(|id| cfg.channels.get(id));
    // An SP access number with an extension (16-21 digits) fits only the Chinese
    // protocols' 21-octet source fields: every channel of the route must speak one.
    if is_extended_src_id(&from) {
        let all_cn = route.as_ref().is_some_and(|r| {
            !r.channels.is_empty()
                && r.channels.iter().all(|id| {
                    cfg.channels
                        .get(id)
                        .is_some_and(|c| crate::protocols::cn::is_cn_protocol(&c.protocol))
                })
        });
        if !all_cn {
            return Err(check_sender(&from).err().unwrap_or_else(|| {
                ApiError::invalid("from", "a numeric sender has 3 to 15 digits")
            }));
        }
    }
    // CMPP, SMGP and SGIP carry GSM text only as ASCII (Msg_Fmt 0): when any channel
    // the message may take speaks one of them, GSM-7 text with other characters is
    // planned as UCS-2, so that every candidate can send the parts as planned.
    let ascii_only = route.as_ref().and_then(|r| {
        r.channels
            .iter()
            .filter_map(|id| cfg.channels.get(id))
            .find(|c| crate::protocols::cn::is_cn_protocol(&c.protocol))
    });
    let prepared = plan_text(req, tenant, channel, ascii_only)?;
    let (text, plan, replacements, layout) = prepared;
    if plan.parts > max_parts {
        return Err(too_long(plan.parts.to_string(), max_parts));
    }
    let validity = req.validity_seconds.unwrap_or(VALIDITY_DEFAULT);
    if !(VALIDITY_MIN..=VALIDITY_MAX).contains(&validity) {
        return Err(ApiError::invalid(
            "validity_seconds",
            format!("must be {VALIDITY_MIN}..{VALIDITY_MAX}"),
        ));
    }
    let send_at = match &req.send_at {
        None => None,
        Some(s) => {
            let t = crate::clock::parse_rfc3339(s)
                .ok_or_else(|| ApiError::invalid("send_at", "not an RFC 3339 time"))?;
            if t > now + SCHEDULE_MAX_MS {
                return Err(ApiError::invalid("send_at", "at most 30 days ahead"));
            }
            (t > now).then_some(t)
        }
    };
    if let Some(r) = &req.client_ref
        && r.chars().count() > 64
    {
        return Err(ApiError::invalid("client_ref", "at most 64 characters"));
    }
    if let Some(u) = &req.callback_url {
        check_url("callback_url", u)?;
    }
    // Registration ids are short (10DLC campaign ids are 7 characters, DLT ids 19 digits);
    // a megabyte of one would otherwise be stored with the message.
    if req
        .campaign_id
        .as_ref()
        .is_some_and(|c| c.chars().count() > 64)
    {
        return Err(ApiError::invalid("campaign_id", "at most 64 characters"));
    }
    if let Some(d) = &req.dlt {
        for (field, v) in [
            ("dlt.entity_id", &d.entity_id),
            ("dlt.template_id", &d.template_id),
        ] {
            if v.chars().count() > 64 {
                return Err(ApiError::invalid(field, "at most 64 characters"));
            }
        }
    }
    let status = if send_at.is_some() {
        Status::Scheduled
    } else {
        Status::Accepted
    };
    let expires_at = send_at.unwrap_or(now) + validity * 1000;
    // Only long messages take a reference, from this destination's counter.
    let concat_ref = if plan.parts > 1 { refs.next(&to) } else { 0 };
    let message = Message {
        id,
        tenant: tenant.id.as_str().into(),
        to: to.into(),
        from: from.into(),
        text: text.into(),
        encoding: plan.encoding,
        parts: plan.parts as u32,
        category,
        client_ref: req.client_ref.as_deref().map(Into::into),
        // Only the message's own URL: the tenant's is looked up at each event, so that a
        // tenant's changed URL applies to messages already accepted.
        callback_url: req.callback_url.as_deref().map(Into::into),
        created_at: now,
        updated_at: now,
        expires_at,
        send_at,
        status,
        route: route
            .as_ref()
            .map(|r| r.channels.clone())
            .unwrap_or_default()
            .into(),
        channel: None,
        part_states: (0..plan.submits)
            .map(|_| PartState {
                smsc_message_id: None,
                status: PartStatus::Pending,
                error: None,
            })
            .collect(),
        events: vec![crate::state::transitions::event(status, now)],
        error: None,
        attempts: 0,
        concat_ref,
        idempotency_key: None,
        body_hash: None,
        route_id: route.as_ref().map(|r| r.route_id.clone()),
        ab_variant: route.as_ref().and_then(|r| r.variant),
        avoid: Vec::new(),
        operator,
        compliance: None,
        layout,
    };
    Ok(Intake {
        message,
        plan,
        route,
        replacements,
        country,
    })
}

/// The contract's refusal of a text with more parts than the tenant's `max_parts`.
fn too_long(needed: String, max_parts: usize) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "too_long",
        format!("the text needs {needed} parts; this tenant allows {max_parts}"),
    )
    .field("text")
}

fn mismatch(message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "encoding_mismatch",
        message,
    )
    .field("encoding")
}

/// Chooses the encoding for the request on its first channel: the request's
/// `encoding` and `smart_encoding` (default the tenant's), the channel's
/// carrier, national tables, packing and preferred one-octet coding. Returns
/// the text to store (after smart replacement), the plan, the replacements
/// and the wire layout.
/// A numeric sender of 16 to 21 digits: a CMPP/SMGP/SGIP SP access number with an
/// extension (Src_Id is 21 octets); on other routes numeric senders have 3 to 15 digits.
fn is_extended_src_id(from: &str) -> bool {
    let f = from.trim();
    (16..=21).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit())
}

/// Plans the text for `channel` (the route's first). `ascii_only` is a channel of the
/// route that carries GSM-7 text only as ASCII (CMPP/SMGP/SGIP): GSM-7 text with other
/// characters is then planned as UCS-2 (`auto`) or refused (`gsm7`), never accepted in
/// a form that channel cannot send.
pub fn plan_text(
    req: &SendRequest,
    tenant: &Tenant,
    channel: Option<&crate::state::Channel>,
    ascii_only: Option<&crate::state::Channel>,
) -> Result<(String, Plan, Vec<Replacement>, Layout), ApiError> {
    let carrier = channel.map_or(Carrier::Udh8, |c| c.udh.carrier());
    let text_opts = channel.map(|c| c.text.clone()).unwrap_or_default();
    let mut choice = req.encoding.unwrap_or_default();
    let user_udh = match (&req.udh, choice) {
        (None, _) => Vec::new(),
        (Some(h), EncodingChoice::Binary) => {
            let v = hex::decode(h)
                .map_err(|_| ApiError::invalid("udh", "hex octets of UDH information elements"))?;
            if v.len() > 100 {
                return Err(ApiError::invalid("udh", "at most 100 octets"));
            }
            v
        }
        (Some(_), _) => {
            return Err(ApiError::invalid("udh", "only with encoding \"binary\""));
        }
    };
    let smart = req.smart_encoding.unwrap_or(tenant.smart_encoding);
    let mut options = Options {
        choice,
        carrier,
        national: &text_opts.national_tables,
        smart,
        user_udh_octets: user_udh.len(),
    };
    // A channel that wants Latin-1 / IA5 gets it when the text fits, else UCS-2.
    let preferred = match text_opts.coding {
        crate::state::TextCoding::Gsm7 => None,
        crate::state::TextCoding::Latin1 => Some(EncodingChoice::Latin1),
        crate::state::TextCoding::Ia5 => Some(EncodingChoice::Ia5),
    };
    if let (Some(pref), EncodingChoice::Auto) = (preferred, choice) {
        let fits = encoding::prepare(
            &req.text,
            &Options {
                choice: pref,
                ..options
            },
        )
        .is_ok();
        choice = if fits { pref } else { EncodingChoice::Ucs2 };
        options.choice = choice;
    }
    let mut planned = encoding::prepare(&req.text, &options);
    if let (Some(cn), Ok(p)) = (ascii_only, &planned)
        && p.plan.encoding == encoding::TextEncoding::Gsm7
        && let Some((position, character)) = p.text.chars().enumerate().find(|(_, c)| !c.is_ascii())
    {
        if choice != EncodingChoice::Auto {
            return Err(mismatch(format!(
                "character {character:?} at position {position} cannot be sent as GSM-7 on channel {} ({}), which carries GSM text only as ASCII; use encoding auto or ucs2",
                cn.id, cn.protocol
            )));
        }
        options.choice = EncodingChoice::Ucs2;
        planned = encoding::prepare(&req.text, &options);
    }
    let prepared = match planned {
        Ok(p) => p,
        Err(EncodingError::NotGsm7 {
            character,
            position,
        }) => {
            return Err(mismatch(format!(
                "character {character:?} at position {position} is not in GSM 03.38; use encoding auto or ucs2"
            )));
        }
        Err(e @ EncodingError::NotRepresentable { .. }) => {
            return Err(mismatch(format!("{e}; use encoding auto or ucs2")));
        }
        Err(EncodingError::Binary(why)) => return Err(ApiError::invalid("text", why)),
        Err(EncodingError::Empty) => return Err(ApiError::invalid("text", "text is empty")),
    };
    let layout = Layout {
        carrier,
        packed: text_opts.packed,
        shift: prepared.plan.shift,
        user_udh,
    };
    Ok((
        prepared.text.into_owned(),
        prepared.plan,
        prepared.replacements,
        layout,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_need_a_scheme_a_host_and_no_space() {
        for (url, ok) in [
            ("http://example.com/x", true),
            ("https://example.com", true),
            ("http://127.0.0.1:9/h?x=1", true),
            ("http://[::1]:8080/h", true),
            ("HTTP://EXAMPLE.COM/", true),
            ("http://", false),
            ("https://", false),
            ("http:///path", false),
            ("http://exa mple.com/x", false),
            ("http://example.com/a b", false),
            ("ftp://x", false),
            ("not a url", false),
            ("http://:80/", false),
        ] {
            assert_eq!(url_problem(url).is_none(), ok, "{url}");
        }
        assert!(url_problem(&format!("http://e.com/{}", "a".repeat(2048))).is_some());
    }

    #[test]
    fn prefixes_fit_the_countries_whose_calling_code_they_share() {
        for (prefix, cc, fits) in [
            ("49", "DE", true),
            ("4930", "DE", true),
            ("4", "DE", true),
            ("49", "FR", false),
            ("43", "DE", false),
            ("1212", "US", true),
            ("1", "CA", true),
            ("7", "KZ", true),
            ("49", "XX", false),
        ] {
            assert_eq!(prefix_fits_country(prefix, cc), fits, "{prefix} {cc}");
        }
    }

    #[test]
    fn known_countries_are_the_regions_numbers_resolve_to() {
        for (cc, known) in [
            ("DE", true),
            ("IN", true),
            ("US", true),
            ("GB", true),
            ("XK", true),
            ("XX", false),
            ("ZZ", false),
            ("UK", false),
            ("de", false),
            ("DEU", false),
            ("D", false),
            ("", false),
            ("001", false),
        ] {
            assert_eq!(is_known_country(cc), known, "{cc}");
        }
        // Every country a valid number resolves to is known (a route on it can match).
        for to in [
            "+4915112345678",
            "+919876543210",
            "+12025550100",
            "+33612345678",
        ] {
            let (_, cc) = parse_recipient(to).expect("valid number");
            let cc = cc.expect("a region");
            assert!(is_known_country(&cc), "{to} -> {cc}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(
            normalize_number("+49 (151) 123-45678").ok(),
            Some("+4915112345678".to_string())
        );
        for bad in [
            "4915112345678",
            "+49abc",
            "+",
            "",
            "+0049151",
            "+4915112345678901234",
            "+999123",
        ] {
            assert!(normalize_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idempotency_compares_the_parsed_request() {
        let parse = |b: &str| -> SendRequest { serde_json::from_str(b).expect("request") };
        let first = r#"{"to":"+4915112345678","text":"pay","client_ref":"p-1","from":"ACME"}"#;
        let hash = request_hash(&parse(first));
        for same in [
            r#"{"client_ref":"p-1","text":"pay","to":"+4915112345678","from":"ACME"}"#,
            r#"{ "to": "+49 151 12345678", "text": "pay", "client_ref": "p-1", "from": " ACME" }"#,
            r#"{"to":"+49 (151) 123-45678","text":"pay","client_ref":"p-1","from":"ACME"}"#,
        ] {
            assert_eq!(request_hash(&parse(same)), hash, "{same}");
        }
        for other in [
            r#"{"to":"+4915112345678","text":"pay!","client_ref":"p-1","from":"ACME"}"#,
            r#"{"to":"+4915112345679","text":"pay","client_ref":"p-1","from":"ACME"}"#,
            r#"{"to":"+4915112345678","text":"pay","from":"ACME"}"#,
            r#"{"to":"+4915112345678","text":"pay","client_ref":"p-1"}"#,
            r#"{"to":"+4915112345678","text":"pay","client_ref":"p-1","from":"ACME","category":"otp"}"#,
        ] {
            assert_ne!(request_hash(&parse(other)), hash, "{other}");
        }
        // A record written before request_hash holds the raw body's hash: the same bytes
        // replay, other bytes conflict.
        let legacy = body_hash(first.as_bytes());
        assert!(same_request(&legacy, &hash, first.as_bytes()));
        assert!(same_request(&hash, &hash, b"{}"));
        let reordered = r#"{"client_ref":"p-1","text":"pay","to":"+4915112345678","from":"ACME"}"#;
        assert!(!same_request(&legacy, "new", reordered.as_bytes()));
    }

    #[test]
    fn senders() {
        for ok in ["ACME", "My Shop", "12345", "+4915112345678"] {
            assert!(check_sender(ok).is_ok(), "{ok}");
        }
        for written in [
            "+49 151 9999-9999",
            "+49 (151) 99999999",
            "(+49) 15199999999",
        ] {
            let n = check_sender(written).map_err(|e| e.message);
            assert!(
                n.as_deref().is_ok_and(|n| n.starts_with("+49151")),
                "{written}: {n:?}"
            );
        }
        assert!(check_sender("+49 151 abc").is_err());
        for bad in ["", "TwelveCharss", "+12", "ACME!", "12"] {
            assert!(check_sender(bad).is_err(), "{bad}");
        }
    }
}
