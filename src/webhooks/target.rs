//! Where a webhook may go (SSRF guard) and how its URL may be shown.
//!
//! A callback URL is the tenant's input, and the node POSTs to it from inside the
//! operator's network. Unless `webhook_allow_private` is on, a URL whose host is a
//! literal internal address (loopback, private, link-local such as the cloud metadata
//! service 169.254.169.254, shared, unspecified, multicast, broadcast; `localhost`) is
//! refused when it is set, and at delivery a host name is resolved and refused when any
//! of its addresses is internal, so a DNS name pointing inside is caught too.
//! Pure functions plus [`PublicOnly`], the resolver the webhook client uses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is an address a webhook must not reach unless `webhook_allow_private`
/// is on: anything but a globally routed unicast address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        // 0.0.0.0/8 ("this network"), 100.64.0.0/10 (shared, carrier NAT), 240/4 (reserved)
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || a >= 240
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // IPv4-compatible ::a.b.c.d (deprecated) reaches the IPv4 address
        || ip.to_ipv4().is_some_and(|v4| ip.segments()[..6] == [0; 6] && internal_v4(v4))
}

/// Why `url` names an internal host literally (an internal IP in any notation the URL
/// parser accepts, e.g. `http://2130706433/`, or `localhost`), or None.
pub fn literal_problem(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    // The parser writes every IPv4 notation (decimal, hex, short) as a.b.c.d and IPv6 in
    // brackets, so the host text is either an IP literal or a name.
    let host = parsed.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_internal(ip).then(|| {
            format!(
                "its host {host} is an internal address (loopback, private, link-local or reserved)"
            )
        });
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    (name == "localhost" || name.ends_with(".localhost"))
        .then(|| format!("its host {name} is this machine"))
}

/// `url` with any `user:password@` replaced by `***@`, for logs (receivers may use Basic
/// auth in the URL; the credentials are never logged). Text that does not parse is
/// shown up to its first `@` cut away.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.username().is_empty() && u.password().is_none() {
                return u.to_string();
            }
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}"),
                None => url.to_string(),
            },
            None => "<unparsable URL>".into(),
        },
    }
}

/// Why a resolved webhook host is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The name resolves to an internal address.
    #[error(
        "{host} resolves to the internal address {ip}; not connecting (webhook_allow_private is off)"
    )]
    Internal {
        /// The host name as in the URL.
        host: String,
        /// The first internal address found.
        ip: IpAddr,
    },
    /// The name does not resolve.
    #[error("cannot resolve {host}: {error}")]
    Resolve {
        /// The host name as in the URL.
        host: String,
        /// The resolver's error.
        error: std::io::Error,
    },
}

/// Resolves `host` and returns its addresses, refusing it when any of them is internal
/// (a name with one public and one internal address is refused: the connector may take
/// either).
pub async fn resolve_public(host: &str) -> Result<Vec<SocketAddr>, Refused> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|error| Refused::Resolve {
            host: host.to_string(),
            error,
        })?
        .collect();
    if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
        return Err(Refused::Internal {
            host: host.to_string(),
            ip: bad.ip(),
        });
    }
    Ok(addrs)
}

/// The webhook client's resolver when `webhook_allow_private` is off: resolves with the
/// system resolver, then refuses internal addresses ([`resolve_public`]). reqwest calls it
/// for every host name it connects to, so the address checked is the address used.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_public(&host).await?;
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_literals_are_refused_in_every_notation() {
        for url in [
            "http://127.0.0.1/x",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0.0.0.0:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://a.localhost/",
            "https://u:p@127.0.0.1/",
        ] {
            assert!(literal_problem(url).is_some(), "{url} passed");
        }
        for url in [
            "https://hooks.example.com/x",
            "http://8.8.8.8/",
            "http://[2001:4860::8888]/",
            "http://localhost.example.com/",
        ] {
            assert_eq!(literal_problem(url), None, "{url}");
        }
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("http://u2:pw2secret@hooks.example.com/cb"),
            "http://***@hooks.example.com/cb"
        );
        assert_eq!(redact("http://user@h/"), "http://***@h/");
        assert_eq!(redact("https://h.example/x?y=1"), "https://h.example/x?y=1");
        assert!(!redact("ht tp://u:secret@h").contains("secret"));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        let e = resolve_public("localhost").await.expect_err("loopback");
        assert!(e.to_string().contains("internal address"), "{e}");
    }
}
