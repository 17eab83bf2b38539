//! The network policy: which addresses a probe may connect to.
//!
//! Decisions are always made on a resolved socket address, never on a name, so a granted
//! name cannot be used to reach an address the operator did not grant. Every denial is
//! recorded so the host can name it in the result even when the guest only saw
//! "access denied".

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

/// One `--allow-net` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `*`: every address.
    Any,
    /// `*:PORT`: every address, one port.
    AnyHostPort(u16),
    /// An IP or CIDR block, optionally limited to one port.
    Net(IpNet, Option<u16>),
    /// A host name, resolved once when the run starts, optionally limited to one port.
    Host(String, Option<u16>),
}

/// Why a grant pattern (`--allow-net`, `--allow-udp`, or their policy-file keys) was
/// refused; the caller names where the pattern came from.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid pattern '{pattern}': {reason}; expected HOST, HOST:PORT, IP, IP:PORT, CIDR, *:PORT or *"
)]
pub struct GrantParseError {
    pattern: String,
    reason: &'static str,
}

impl FromStr for Grant {
    type Err = GrantParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| GrantParseError {
            pattern: s.to_string(),
            reason,
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(err("empty pattern"));
        }
        if s == "*" {
            return Ok(Grant::Any);
        }
        if let Some(port) = s.strip_prefix("*:") {
            return port
                .parse()
                .map(Grant::AnyHostPort)
                .map_err(|_| err("bad port"));
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Grant::Net(net, None));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Grant::Net(IpNet::from(ip), None));
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Grant::Net(IpNet::from(sa.ip()), Some(sa.port())));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| err("bad port"))?)),
            None => (s, None),
        };
        // `10.0.0.0/8:5432` and `[fd00::/8]:5432`: a block limited to one port.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(net) = bare.parse::<IpNet>() {
            return Ok(Grant::Net(net, port));
        }
        let valid_name = !host.is_empty()
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !valid_name {
            return Err(err("not an IP address, CIDR block or host name"));
        }
        Ok(Grant::Host(host.to_ascii_lowercase(), port))
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: &Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
        match self {
            Grant::Any => f.write_str("*"),
            Grant::AnyHostPort(p) => write!(f, "*:{p}"),
            Grant::Net(net, p) if net.prefix_len() == net.max_prefix_len() => match (net.addr(), p)
            {
                (IpAddr::V6(ip), Some(p)) => write!(f, "[{ip}]:{p}"),
                (ip, p) => write!(f, "{ip}{}", port(p)),
            },
            Grant::Net(net @ IpNet::V6(_), Some(p)) => write!(f, "[{net}]:{p}"),
            Grant::Net(net, p) => write!(f, "{net}{}", port(p)),
            Grant::Host(h, p) => write!(f, "{h}{}", port(p)),
        }
    }
}

/// The loopback grants that apply when no `--allow-net` is given.
pub fn default_grants() -> Vec<Grant> {
    vec![
        Grant::Net(
            IpNet::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).expect("valid"),
            None,
        ),
        Grant::Net(IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)), None),
        Grant::Host("localhost".into(), None),
    ]
}

/// Which kind of traffic a policy governs; names the flag that grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP connections, name lookups and the `http` import: `--allow-net`.
    Tcp,
    /// UDP datagrams: `--allow-udp`.
    Udp,
}

impl Proto {
    /// The command-line flag that grants this kind of traffic.
    pub fn flag(self) -> &'static str {
        match self {
            Proto::Tcp => "--allow-net",
            Proto::Udp => "--allow-udp",
        }
    }
}

/// Something the policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A connection (or a datagram) to an address.
    Connect {
        /// TCP or UDP.
        proto: Proto,
        /// What the probe tried to reach.
        addr: SocketAddr,
        /// The name it used, when it went through the HTTP import with a host name.
        host: Option<String>,
    },
    /// A name lookup.
    Lookup {
        /// The name the probe tried to resolve.
        name: String,
    },
    /// A TCP connection to an address no grant can make a destination (WASI refuses it
    /// before any policy is asked).
    Destination {
        /// What the probe tried to reach.
        addr: SocketAddr,
    },
}

impl Denial {
    /// The resource refused, as the operator would write it.
    pub fn resource(&self) -> String {
        match self {
            Denial::Connect { addr, .. } | Denial::Destination { addr } => addr.to_string(),
            Denial::Lookup { name } => name.clone(),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::Connect { proto, addr, host } => {
                let via = match host {
                    Some(h) if h.parse::<IpAddr>().is_err() => format!(" ({h})"),
                    _ => String::new(),
                };
                let what = match proto {
                    Proto::Tcp => "connection",
                    Proto::Udp => "UDP traffic",
                };
                write!(
                    f,
                    "{what} to {addr}{via} denied by network policy; grant it with {} {}",
                    proto.flag(),
                    Grant::Net(IpNet::from(addr.ip()), Some(addr.port()))
                )
            }
            Denial::Lookup { name } => write!(
                f,
                "name lookup of {name} denied by network policy; grant it with --allow-net {name}"
            ),
            Denial::Destination { addr } => {
                let ip = addr.ip();
                let why = if ip.to_canonical().is_unspecified() {
                    "the unspecified address is not a destination; connect to loopback, or to \
                     an address granted with --allow-net"
                        .to_string()
                } else if addr.port() == 0 {
                    "port 0 is not a destination".to_string()
                } else if let IpAddr::V6(v6) = ip
                    && let Some(v4) = v6.to_ipv4_mapped()
                {
                    let plain = SocketAddr::new(v4.into(), addr.port());
                    format!(
                        "IPv4-mapped IPv6 addresses are refused; connect to {plain} instead, \
                         which --allow-net {plain} grants"
                    )
                } else {
                    "a multicast, broadcast or IPv4-compatible address is not a TCP destination"
                        .to_string()
                };
                write!(f, "connection to {addr} denied: {why}")
            }
        }
    }
}

/// The policy of one run for one protocol: grants with host names resolved, plus the
/// denials seen so far.
#[derive(Debug, Clone)]
pub struct NetPolicy {
    proto: Proto,
    grants: Arc<Vec<Grant>>,
    rules: Arc<Vec<Rule>>,
    denials: Arc<Mutex<Vec<Denial>>>,
}

#[derive(Debug)]
enum Rule {
    Any(Option<u16>),
    Net(IpNet, Option<u16>),
    /// A granted host name: it may be looked up (its addresses are in `Net` rules).
    Name(String),
}

impl NetPolicy {
    /// The same grants with a log of denials of its own, for one run: clones share theirs
    /// (the run's store and its report read one log), runs must not.
    pub fn for_run(&self) -> Self {
        Self {
            denials: Arc::default(),
            ..self.clone()
        }
    }

    /// Builds the policy, resolving host-name grants with `resolve` (`localhost` is always
    /// loopback and never looked up, so the default policy needs no DNS). Addresses are
    /// fixed here, once: a name that later resolves elsewhere (DNS rebinding) does not
    /// carry its grant to the new address.
    pub fn new(
        proto: Proto,
        grants: &[Grant],
        mut resolve: impl FnMut(&str) -> std::io::Result<Vec<IpAddr>>,
    ) -> Result<Self, HostGrantError> {
        let mut rules = Vec::new();
        for grant in grants {
            match grant {
                Grant::Any => rules.push(Rule::Any(None)),
                Grant::AnyHostPort(p) => rules.push(Rule::Any(Some(*p))),
                Grant::Net(net, p) => rules.push(Rule::Net(*net, *p)),
                Grant::Host(h, p) if h == "localhost" => {
                    rules.push(Rule::Name(h.clone()));
                    rules.push(Rule::Net(IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)), *p));
                    rules.push(Rule::Net(IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)), *p));
                }
                Grant::Host(h, p) => {
                    let ips = resolve(h).map_err(|source| HostGrantError {
                        flag: proto.flag(),
                        host: h.clone(),
                        source,
                    })?;
                    rules.push(Rule::Name(h.clone()));
                    rules.extend(ips.into_iter().map(|ip| Rule::Net(IpNet::from(ip), *p)));
                }
            }
        }
        Ok(Self {
            proto,
            grants: Arc::new(grants.to_vec()),
            rules: Arc::new(rules),
            denials: Arc::default(),
        })
    }

    /// A policy that grants nothing.
    pub fn deny_all(proto: Proto) -> Self {
        Self::new(proto, &[], |_| Ok(Vec::new())).expect("no host grants to resolve")
    }

    /// Resolves a host name with the system resolver.
    pub fn system_resolve(host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok((host, 0).to_socket_addrs()?.map(|a| a.ip()).collect())
    }

    /// The grants this policy was built from, as given.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Whether anything at all is granted.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `addr` may be connected to.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        self.rules.iter().any(|rule| match rule {
            Rule::Any(port) => port.is_none_or(|p| p == addr.port()),
            Rule::Net(net, port) => net.contains(&ip) && port.is_none_or(|p| p == addr.port()),
            Rule::Name(_) => false,
        })
    }

    /// Whether `name` may be looked up: it is granted by name, or everything is granted.
    /// An IP literal ([`ip_literal`]) needs no lookup and is always allowed (its connect is
    /// checked); callers must then use the address, never hand the name to a resolver.
    pub fn allows_lookup(&self, name: &str) -> bool {
        if ip_literal(name).is_some() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.rules.iter().any(|rule| match rule {
            Rule::Any(_) => true,
            Rule::Name(n) => *n == name,
            Rule::Net(..) => false,
        })
    }

    /// Checks `addr` and records a denial if it is refused.
    pub fn check(&self, addr: SocketAddr, host: Option<&str>) -> bool {
        let ok = self.allows(addr);
        if !ok {
            self.record(Denial::Connect {
                proto: self.proto,
                addr,
                host: host.map(str::to_string),
            });
        }
        ok
    }

    /// Records a connection WASI refused for its destination alone.
    pub fn refuse_destination(&self, addr: SocketAddr) {
        self.record(Denial::Destination { addr });
    }

    /// Checks a name lookup and records a denial if it is refused.
    pub fn check_lookup(&self, name: &str) -> bool {
        let ok = self.allows_lookup(name);
        if !ok {
            self.record(Denial::Lookup {
                name: name.to_string(),
            });
        }
        ok
    }

    fn record(&self, denial: Denial) {
        let mut denials = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        // A probe that retries in a loop must not grow host memory without bound.
        if denials.len() < 16 && !denials.contains(&denial) {
            denials.push(denial);
        }
    }

    /// The denials recorded so far, oldest first.
    pub fn denials(&self) -> Vec<Denial> {
        self.denials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The address a host name stands for without any lookup: an IP literal, also in
/// brackets or with trailing dots (`127.0.0.1.`, `[::1]`). Whoever checks a name with the
/// policy as a literal must connect to this address and never hand the name itself to a
/// resolver: a system resolver would send a DNS query for `127.0.0.1.`, which the policy
/// never granted, and a query can carry data out.
pub fn ip_literal(name: &str) -> Option<IpAddr> {
    name.trim_start_matches('[')
        .trim_end_matches('.')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The spelling of `name`, which the policy allowed, to hand a system resolver: lower
/// case, so a probe cannot carry data out in the letter case of a granted name (DNS
/// servers see names as the client spells them), and `localhost` in every spelling the
/// policy accepts (trailing dots) as `localhost`: glibc answers only the exact name from
/// /etc/hosts and sends `localhost.` to DNS, a query the default policy (which needs no
/// DNS) never meant to send.
pub fn resolver_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.trim_end_matches('.') == "localhost" {
        "localhost".into()
    } else {
        lower
    }
}

/// A host name in `--allow-net` that could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {flag} host '{host}': {source}; grant an IP address or fix the name")]
pub struct HostGrantError {
    flag: &'static str,
    host: String,
    source: std::io::Error,
}

/// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry, so
/// `::ffff:10.0.0.1` cannot slip past a grant list that only names IPv4 ranges.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> NetPolicy {
        let grants: Vec<Grant> = patterns.iter().map(|p| p.parse().unwrap()).collect();
        NetPolicy::new(Proto::Tcp, &grants, |h| match h {
            "db.internal" => Ok(vec!["10.1.2.3".parse().unwrap()]),
            _ => Err(std::io::Error::other("no such host")),
        })
        .unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_policy_is_loopback_only() {
        let p = NetPolicy::new(Proto::Tcp, &default_grants(), |_| unreachable!("no DNS")).unwrap();
        assert!(p.allows(sa("127.0.0.1:80")));
        assert!(p.allows(sa("127.9.9.9:1")));
        assert!(p.allows(sa("[::1]:443")));
        assert!(p.allows(sa("[::ffff:127.0.0.1]:80")));
        assert!(!p.allows(sa("10.0.0.1:80")));
        assert!(!p.allows(sa("[::ffff:10.0.0.1]:80")));
        assert!(!p.allows(sa("0.0.0.0:80")));
    }

    #[test]
    fn patterns_match_what_they_say() {
        let p = policy(&["127.0.0.2", "10.0.0.0/8:5432", "*:6379", "db.internal:3306"]);
        assert!(p.allows(sa("127.0.0.2:1")));
        assert!(!p.allows(sa("127.0.0.1:1")));
        assert!(p.allows(sa("10.9.9.9:5432")));
        assert!(!p.allows(sa("10.9.9.9:5433")));
        assert!(p.allows(sa("192.0.2.1:6379")));
        assert!(p.allows(sa("10.1.2.3:3306")));
        assert!(!p.allows(sa("10.1.2.4:3306")));
        assert!(policy(&["*"]).allows(sa("192.0.2.1:1")));
    }

    #[test]
    fn lookups_need_a_name_grant() {
        let p = policy(&["127.0.0.1", "db.internal"]);
        assert!(!p.check_lookup("localhost"));
        assert!(p.allows_lookup("DB.internal."));
        assert!(p.allows_lookup("10.0.0.1"));
        assert!(policy(&["*"]).allows_lookup("anything.example"));
        assert_eq!(
            p.denials()[0].to_string(),
            "name lookup of localhost denied by network policy; grant it with --allow-net localhost"
        );
    }

    #[test]
    fn literals_with_trailing_dots_or_brackets_are_literals() {
        for (name, ip) in [
            ("127.0.0.1", Some("127.0.0.1")),
            ("127.0.0.1.", Some("127.0.0.1")),
            ("[::1]", Some("::1")),
            ("::ffff:127.0.0.1", Some("::ffff:127.0.0.1")),
            ("localhost.", None),
            ("2130706433", None),
            ("0x7f.0.0.1", None),
            ("127.1", None),
        ] {
            assert_eq!(
                ip_literal(name),
                ip.map(|i| i.parse::<IpAddr>().unwrap()),
                "{name}"
            );
        }
        // Not literals, so they need a name grant like any name.
        let p = policy(&["127.0.0.1"]);
        assert!(p.allows_lookup("127.0.0.1."));
        assert!(!p.allows_lookup("2130706433"));
        assert!(!p.allows_lookup("127.1"));
    }

    #[test]
    fn localhost_reaches_the_resolver_in_the_spelling_hosts_files_know() {
        for name in ["localhost", "localhost.", "LocalHost..", "LOCALHOST"] {
            assert_eq!(resolver_name(name), "localhost", "{name}");
        }
        for (name, expected) in [
            ("db.internal.", "db.internal."),
            ("DB.Internal", "db.internal"),
            ("localhost.example", "localhost.example"),
            ("127.0.0.1.", "127.0.0.1."),
        ] {
            assert_eq!(resolver_name(name), expected);
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for bad in ["", "host:notaport", "a..b", "*:x", "ho st"] {
            let e = bad.parse::<Grant>().unwrap_err().to_string();
            // The pattern may come from --allow-udp or a policy file: the caller names that.
            assert!(
                e.starts_with("invalid pattern") && e.contains("expected HOST"),
                "{e}"
            );
        }
    }

    #[test]
    fn denials_are_recorded_with_a_grant_hint() {
        let p = policy(&["127.0.0.2"]);
        assert!(!p.check(sa("127.0.0.1:8080"), None));
        let d = p.denials();
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].to_string(),
            "connection to 127.0.0.1:8080 denied by network policy; grant it with --allow-net 127.0.0.1:8080"
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "*",
            "*:80",
            "127.0.0.1",
            "127.0.0.1:80",
            "10.0.0.0/8",
            "10.0.0.0/8:5432",
            "[fd00::/8]:5432",
            "[::1]:80",
            "example.com:443",
        ] {
            assert_eq!(s.parse::<Grant>().unwrap().to_string(), s);
        }
    }
}
