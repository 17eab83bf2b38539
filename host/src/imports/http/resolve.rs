//! The `http` import's name resolution: only granted names are looked up, only granted
//! addresses are kept, and the time it takes is measured.

use std::net::SocketAddr;
use std::time::Instant;

use ureq::config::Config;
use ureq::http;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use super::transport::Measure;
use crate::sandbox::network::NetPolicy;

/// Resolves with the system resolver, then keeps only the addresses the policy allows, so
/// the connection (and every redirect hop, which resolves again) can only go where the
/// operator granted.
#[derive(Debug)]
pub(super) struct PolicyResolver {
    pub policy: NetPolicy,
    pub measure: Measure,
}

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let start = Instant::now();
        let resolved = self.granted(uri, config, timeout);
        self.measure.with(|m| m.resolve += start.elapsed());
        resolved
    }
}

impl PolicyResolver {
    fn granted(
        &self,
        uri: &http::Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host();
        // Resolving is traffic too (a DNS query can carry data out): only granted names.
        if let Some(name) = host
            && !self
                .policy
                .check_lookup(name.trim_start_matches('[').trim_end_matches(']'))
        {
            return Err(ureq::Error::ConnectionFailed);
        }
        let all = match literal(uri) {
            // ureq's resolver spawns a thread for every lookup with a timeout, even for an
            // address that needs no lookup: a measurable share of a whole health check.
            Some(addr) => {
                let mut one = self.empty();
                one.push(addr);
                one
            }
            None => {
                let respelled = for_resolver(uri);
                DefaultResolver::default().resolve(
                    respelled.as_ref().unwrap_or(uri),
                    config,
                    timeout,
                )?
            }
        };
        let mut allowed = self.empty();
        for addr in all
            .iter()
            .copied()
            .filter(|a: &SocketAddr| self.policy.allows(*a))
        {
            allowed.push(addr);
        }
        if allowed.is_empty() {
            // Record the refusal only when nothing is left to try, so a name with one
            // granted and one non-granted address is not reported as denied.
            if let Some(first) = all.first() {
                self.policy.check(*first, host);
            }
            return Err(ureq::Error::ConnectionFailed);
        }
        Ok(allowed)
    }
}

/// The address of a URL whose host is an IP literal (also with a trailing dot, which the
/// policy treats as the literal: it must never reach the system resolver), with the port
/// it names or its scheme's default.
fn literal(uri: &http::Uri) -> Option<SocketAddr> {
    let ip = crate::sandbox::network::ip_literal(uri.host()?)?;
    let port = uri.port_u16().or(match uri.scheme_str()? {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some(SocketAddr::new(ip, port))
}

/// `uri` with its host respelled for the system resolver ([`crate::sandbox::network::resolver_name`]:
/// lower case, and `localhost.` answered from /etc/hosts, not sent to DNS), or `None` when
/// the host needs no respelling.
fn for_resolver(uri: &http::Uri) -> Option<http::Uri> {
    let host = uri.host()?;
    let name = crate::sandbox::network::resolver_name(host);
    if name == host {
        return None;
    }
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{name}{port}/", uri.scheme_str()?)
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_need_no_lookup() {
        let cases = [
            ("http://127.0.0.1:8080/health", Some("127.0.0.1:8080")),
            ("http://10.0.0.1/", Some("10.0.0.1:80")),
            ("https://[::1]/x", Some("[::1]:443")),
            ("http://[fe80::1]:9/", Some("[fe80::1]:9")),
            // The policy takes these as the literal: a resolver must never see them.
            ("http://127.0.0.1.:8080/", Some("127.0.0.1:8080")),
            ("http://10.0.0.1../", Some("10.0.0.1:80")),
            ("http://localhost:8080/", None),
            ("http://localhost.:8080/", None),
            ("http://example.com/", None),
        ];
        for (url, expected) in cases {
            let expected = expected.map(|a| a.parse::<SocketAddr>().unwrap());
            assert_eq!(literal(&url.parse().unwrap()), expected, "{url}");
        }
    }

    #[test]
    fn localhost_is_resolved_in_the_spelling_hosts_files_know() {
        let cases = [
            (
                "http://localhost.:8080/health",
                Some("http://localhost:8080/"),
            ),
            ("https://LOCALHOST../x", Some("https://localhost/")),
            ("http://localhost:8080/", None),
            ("http://db.internal.:8080/", None),
            (
                "http://DB.internal:8080/x",
                Some("http://db.internal:8080/"),
            ),
        ];
        for (url, expected) in cases {
            let expected = expected.map(|u| u.parse::<http::Uri>().unwrap());
            assert_eq!(for_resolver(&url.parse().unwrap()), expected, "{url}");
        }
    }
}
