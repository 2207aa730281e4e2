//! Route selection (pure): the most specific matching route wins; a route with an
//! empty match is the default. Specificity: tenant, then category, then the longest
//! prefix, then country. The full routing engine (strategies, health) builds on this.

use crate::state::{Category, Route};

/// The chosen route and its channels in failover order.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteChoice {
    pub route_id: String,
    pub strategy: String,
    pub channels: Vec<String>,
}

/// Specificity score of `r` for this message, or None if it does not match.
/// (tenant, category, prefix length, country): compared lexicographically.
type Score = (u8, u8, usize, u8);

fn score(
    r: &Route,
    to: &str,
    country: Option<&str>,
    tenant: &str,
    category: Category,
) -> Option<Score> {
    if let Some(t) = &r.tenant
        && t != tenant
    {
        return None;
    }
    if let Some(c) = r.category
        && c != category
    {
        return None;
    }
    let prefix_len = if r.prefixes.is_empty() {
        0
    } else {
        r.prefixes
            .iter()
            .filter(|p| to.starts_with(p.as_str()))
            .map(|p| p.len())
            .max()?
    };
    if let Some(cc) = &r.country
        && Some(cc.as_str()) != country
    {
        return None;
    }
    Some((
        r.tenant.is_some() as u8,
        r.category.is_some() as u8,
        prefix_len,
        r.country.is_some() as u8,
    ))
}

/// Picks the route for a message; ties go to the lexicographically smaller route id.
pub fn choose<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    to: &str,
    country: Option<&str>,
    tenant: &str,
    category: Category,
) -> Option<RouteChoice> {
    let mut best: Option<(&Route, Score)> = None;
    for r in routes {
        if let Some(s) = score(r, to, country, tenant, category)
            && best
                .as_ref()
                .map(|(b, bs)| s > *bs || (s == *bs && r.id < b.id))
                .unwrap_or(true)
        {
            best = Some((r, s));
        }
    }
    best.map(|(r, _)| {
        let mut chans = r.channels.clone();
        chans.sort_by_key(|c| c.priority);
        RouteChoice {
            route_id: r.id.clone(),
            strategy: r.strategy.clone(),
            channels: chans.into_iter().map(|c| c.id).collect(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RouteChannel;

    fn route(
        id: &str,
        prefixes: &[&str],
        tenant: Option<&str>,
        category: Option<Category>,
    ) -> Route {
        Route {
            id: id.into(),
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            country: None,
            tenant: tenant.map(String::from),
            category,
            strategy: "priority".into(),
            channels: vec![
                RouteChannel {
                    id: format!("{id}-b"),
                    weight: 1,
                    priority: 2,
                },
                RouteChannel {
                    id: format!("{id}-a"),
                    weight: 1,
                    priority: 1,
                },
            ],
            created_at: 0,
        }
    }

    #[test]
    fn precedence() {
        let routes = vec![
            route("default", &[], None, None),
            route("de", &["+49"], None, None),
            route("de-mobile", &["+4915"], None, None),
            route("acme", &[], Some("acme"), None),
            route("otp", &["+49"], None, Some(Category::Otp)),
        ];
        let pick = |to, t, c| choose(&routes, to, None, t, c).map(|r| r.route_id);
        assert_eq!(
            pick("+33612345678", "x", Category::Transactional).as_deref(),
            Some("default")
        );
        assert_eq!(
            pick("+4930123456", "x", Category::Transactional).as_deref(),
            Some("de")
        );
        assert_eq!(
            pick("+4915112345678", "x", Category::Transactional).as_deref(),
            Some("de-mobile")
        );
        assert_eq!(
            pick("+4915112345678", "x", Category::Otp).as_deref(),
            Some("otp")
        );
        assert_eq!(
            pick("+4915112345678", "acme", Category::Otp).as_deref(),
            Some("acme")
        );
    }

    #[test]
    fn channels_in_priority_order_and_none_without_routes() {
        let routes = vec![route("d", &[], None, None)];
        assert_eq!(
            choose(&routes, "+1", None, "t", Category::Otp).map(|r| r.channels),
            Some(vec!["d-a".to_string(), "d-b".to_string()])
        );
        assert!(choose(&Vec::<Route>::new(), "+1", None, "t", Category::Otp).is_none());
    }
}
