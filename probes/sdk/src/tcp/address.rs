//! Addresses: `host:port` parsed, and names looked up within the budget.

// `core::net`, not `std::net`: the address types only, no sockets.
use core::net::{IpAddr, SocketAddr};

use super::{TcpError, sys};
use crate::Budget;

/// Split `host:port` (or `[ipv6]:port`) into host and port.
///
/// The error is a reason for the operator, for example
/// `expected host:port such as 127.0.0.1:6379, got 'localhost'`.
pub fn parse_address(address: &str) -> Result<(&str, u16), String> {
    let expected =
        || format!("expected host:port such as 127.0.0.1:6379 or [::1]:6379, got '{address}'");
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(expected)?;
        (host, after.strip_prefix(':').ok_or_else(expected)?)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or_else(expected)?;
        if host.contains(':') {
            return Err(format!(
                "an IPv6 address needs brackets, as in [::1]:6379, got '{address}'"
            ));
        }
        (host, port)
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(expected());
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok((host, p)),
        _ => Err(format!(
            "expected a port from 1 to 65535 after the colon, got '{address}'"
        )),
    }
}

/// Resolve `address` (`host:port`) with WASI name lookup.
///
/// An IP address is taken as it is, without a lookup. The lookup itself waits
/// as long as it takes; [`connect`](super::connect) bounds it by the budget instead.
pub fn resolve(address: &str) -> Result<Vec<SocketAddr>, TcpError> {
    lookup(address, None)
}

/// Look up the addresses of `host` (a name, or an IP address taken as it is),
/// waiting at most until `budget` runs out.
///
/// The host's network policy applies: by default only loopback names such as
/// `localhost` may be looked up, and a refused lookup is [`TcpError::Denied`]
/// (action `resolving`). Errors name `host` as their address. Addresses come in
/// the resolver's order, without duplicates.
pub fn resolve_host(host: &str, budget: &Budget) -> Result<Vec<IpAddr>, TcpError> {
    let host = host.trim();
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(TcpError::InvalidAddress {
            address: host.to_string(),
            reason: format!("expected a host name such as localhost, got '{host}'"),
        });
    }
    // `[::1]` as in an address, or a bare IP: no lookup needed.
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if budget.is_exhausted() {
        return Err(TcpError::timeout(host, "resolving", Some(budget)));
    }
    let addrs = sys::resolve(host, 0, Some(budget))
        .map_err(|e| TcpError::from_sys(host, "resolving", e, Some(budget)))?;
    let mut ips: Vec<IpAddr> = Vec::with_capacity(addrs.len());
    for ip in addrs.iter().map(SocketAddr::ip) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(TcpError::Resolve {
            address: host.to_string(),
            reason: "no addresses found".to_string(),
        });
    }
    Ok(ips)
}

/// [`resolve`], waiting at most until `budget` runs out if one is given.
pub(super) fn lookup(address: &str, budget: Option<&Budget>) -> Result<Vec<SocketAddr>, TcpError> {
    let (host, port) = parse_address(address).map_err(|reason| TcpError::InvalidAddress {
        address: address.to_string(),
        reason,
    })?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = sys::resolve(host, port, budget)
        .map_err(|e| TcpError::from_sys(address, "resolving", e, budget))?;
    if addrs.is_empty() {
        return Err(TcpError::Resolve {
            address: address.to_string(),
            reason: "no addresses found".to_string(),
        });
    }
    Ok(addrs)
}
