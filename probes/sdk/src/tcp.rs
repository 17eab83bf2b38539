//! Plain TCP connections over WASI sockets, bounded by the check's [`Budget`].
//!
//! ```no_run
//! use healthprobe_sdk::{Budget, tcp};
//!
//! let budget = Budget::new(5_000);
//! let mut conn = tcp::connect("127.0.0.1:6379", &budget)?;
//! conn.write_all(b"PING\r\n")?;
//! let reply = conn.read_until(b"\r\n", 512)?;
//! assert_eq!(reply, b"+PONG\r\n");
//! # Ok::<(), tcp::TcpError>(())
//! ```
//!
//! On `wasm32-wasip2` the helpers use the WASI 0.2 socket interfaces directly
//! (`wasi:sockets/tcp`, `tcp-create-socket`, `ip-name-lookup`, `network` and
//! `instance-network`), not `std::net`: `std::net` would make every probe import
//! the UDP interfaces too, and so ask the host for a capability it never uses.
//! Name lookup, connecting, reading and writing each wait at most until the
//! budget runs out. Natively (for `cargo test`) the same API runs on `std::net`.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
// `core::net`, not `std::net`: the address types only, no sockets.
use core::net::{IpAddr, SocketAddr};

use crate::{Budget, CheckError, CheckResult};

// The WASI backend on wasm32-wasip2, `std::net` elsewhere (for native tests).
#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
#[path = "tcp/native.rs"]
mod sys;
#[cfg(all(target_os = "wasi", target_env = "p2"))]
#[path = "tcp/wasi.rs"]
mod sys;

/// Why a TCP operation failed. Every message names the address.
#[derive(Debug)]
pub enum TcpError {
    /// The address is not of the form `host:port`.
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host name could not be resolved.
    Resolve {
        /// The address as given.
        address: String,
        /// The resolver's explanation.
        reason: String,
    },
    /// The peer refused the connection (nothing listens on the port).
    Refused {
        /// The address as given.
        address: String,
    },
    /// The host or its network cannot be reached.
    Unreachable {
        /// The address as given.
        address: String,
    },
    /// The budget ran out (or the socket timed out) while `action` was going on.
    Timeout {
        /// The address as given.
        address: String,
        /// What was going on: `resolving`, `connecting`, `reading` or `writing`.
        action: &'static str,
    },
    /// The host's network policy refused the connection (the host names the grant).
    Denied {
        /// The address as given.
        address: String,
        /// What was refused: `resolving`, `connecting`, `reading` or `writing`.
        action: &'static str,
    },
    /// Any other I/O failure.
    Io {
        /// The address as given.
        address: String,
        /// The underlying error.
        source: io::Error,
    },
    /// TLS failed: the handshake (a refused certificate, a peer that does not speak
    /// TLS) or the TLS stream (a server that refused the client certificate).
    Tls {
        /// The address as given.
        address: String,
        /// The host's explanation, such as `unknown issuer` or `certificate expired on …`.
        reason: String,
    },
}

impl TcpError {
    fn from_io(address: &str, action: &'static str, e: io::Error) -> Self {
        let address = address.to_string();
        match e.kind() {
            ErrorKind::ConnectionRefused => TcpError::Refused { address },
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                TcpError::Unreachable { address }
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => TcpError::Timeout { address, action },
            ErrorKind::PermissionDenied => TcpError::Denied { address, action },
            _ => TcpError::Io { address, source: e },
        }
    }

    fn from_sys(address: &str, action: &'static str, e: sys::Fail) -> Self {
        match e {
            sys::Fail::Timeout => TcpError::Timeout {
                address: address.to_string(),
                action,
            },
            sys::Fail::Resolve(reason) => TcpError::Resolve {
                address: address.to_string(),
                reason,
            },
            sys::Fail::Io(e) => TcpError::from_io(address, action, e),
            sys::Fail::Tls(reason) => TcpError::Tls {
                address: address.to_string(),
                reason,
            },
        }
    }

    /// A short name for the kind of failure, for a check's `error` detail:
    /// `invalid-address`, `resolve`, `refused`, `unreachable`, `timeout`, `denied`, `io` or
    /// `tls`.
    pub fn kind(&self) -> &'static str {
        match self {
            TcpError::InvalidAddress { .. } => "invalid-address",
            TcpError::Resolve { .. } => "resolve",
            TcpError::Refused { .. } => "refused",
            TcpError::Unreachable { .. } => "unreachable",
            TcpError::Timeout { .. } => "timeout",
            TcpError::Denied { .. } => "denied",
            TcpError::Io { .. } => "io",
            TcpError::Tls { .. } => "tls",
        }
    }

    /// The verdict for a check that failed with this error: an invalid address is the
    /// operator's mistake in the `address` parameter; everything else means the
    /// service is unhealthy, with the error as the message and its [`kind`](Self::kind)
    /// as the `error` detail.
    pub fn into_verdict(self) -> Result<CheckResult, CheckError> {
        match self {
            TcpError::InvalidAddress { reason, .. } => {
                Err(CheckError::invalid_param("address", reason))
            }
            e => Ok(CheckResult::unhealthy(e.to_string()).detail("error", e.kind())),
        }
    }

    /// The address the error is about, as given.
    pub fn address(&self) -> &str {
        match self {
            TcpError::InvalidAddress { address, .. }
            | TcpError::Resolve { address, .. }
            | TcpError::Refused { address }
            | TcpError::Unreachable { address }
            | TcpError::Timeout { address, .. }
            | TcpError::Denied { address, .. }
            | TcpError::Io { address, .. }
            | TcpError::Tls { address, .. } => address,
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::InvalidAddress { address, reason } => {
                write!(f, "invalid address '{address}': {reason}")
            }
            TcpError::Resolve { address, reason } => {
                write!(f, "cannot resolve {address}: {reason}")
            }
            TcpError::Refused { address } => write!(f, "connection to {address} refused"),
            TcpError::Unreachable { address } => write!(f, "{address} is unreachable"),
            TcpError::Timeout { address, action } => {
                write!(f, "timeout {action} {address}")
            }
            TcpError::Denied { address, action } => {
                write!(f, "{action} {address} denied by the host")
            }
            TcpError::Io { address, source } => write!(f, "I/O error with {address}: {source}"),
            TcpError::Tls { address, reason } => write!(f, "TLS with {address} failed: {reason}"),
        }
    }
}

impl std::error::Error for TcpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TcpError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

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
/// as long as it takes; [`connect`] bounds it by the budget instead.
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
        return Err(TcpError::Timeout {
            address: host.to_string(),
            action: "resolving",
        });
    }
    let addrs = sys::resolve(host, 0, Some(budget))
        .map_err(|e| TcpError::from_sys(host, "resolving", e))?;
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
fn lookup(address: &str, budget: Option<&Budget>) -> Result<Vec<SocketAddr>, TcpError> {
    let (host, port) = parse_address(address).map_err(|reason| TcpError::InvalidAddress {
        address: address.to_string(),
        reason,
    })?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = sys::resolve(host, port, budget)
        .map_err(|e| TcpError::from_sys(address, "resolving", e))?;
    if addrs.is_empty() {
        return Err(TcpError::Resolve {
            address: address.to_string(),
            reason: "no addresses found".to_string(),
        });
    }
    Ok(addrs)
}

/// Connect to `address` (`host:port`), trying each resolved address in turn.
///
/// Fails with [`TcpError::Timeout`] if the budget is spent before a connection
/// is accepted. The connection's reads and writes are then bounded by the same
/// budget.
pub fn connect(address: &str, budget: &Budget) -> Result<TcpConn, TcpError> {
    let timeout = |action| TcpError::Timeout {
        address: address.to_string(),
        action,
    };
    if budget.is_exhausted() {
        return Err(timeout("connecting"));
    }
    let mut last = None;
    for addr in lookup(address, Some(budget))? {
        if budget.is_exhausted() {
            return Err(timeout("connecting"));
        }
        match sys::connect(addr, budget) {
            Ok(inner) => {
                return Ok(TcpConn {
                    stream: TcpStream { inner },
                    address: address.to_string(),
                    peer: addr,
                    budget: *budget,
                    tls: None,
                });
            }
            Err(sys::Fail::Timeout) => return Err(timeout("connecting")),
            Err(e) => last = Some(TcpError::from_sys(address, "connecting", e)),
        }
    }
    Err(last.unwrap_or_else(|| timeout("connecting")))
}

/// An open TCP connection whose reads and writes are bounded by the check's budget.
#[derive(Debug)]
pub struct TcpConn {
    stream: TcpStream,
    address: String,
    peer: SocketAddr,
    budget: Budget,
    /// What the TLS handshake told, once the connection is TLS.
    tls: Option<TlsPeer>,
}

/// What a TLS handshake told about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    /// The application protocol the server chose (ALPN), for example `h2`.
    pub protocol: Option<String>,
    /// When its certificate expires, in seconds since the Unix epoch.
    pub not_after: Option<u64>,
    /// The TLS version, for example `TLSv1.3`.
    pub version: String,
}

/// The earliest certificate expiry seen in this check's handshakes (0: none yet). A probe
/// runs one check per instance, single-threaded.
static EARLIEST_EXPIRY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn record_expiry(not_after: Option<u64>) {
    use core::sync::atomic::Ordering;
    if let Some(t) = not_after.filter(|t| *t > 0) {
        let _ = EARLIEST_EXPIRY.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
            Some(if e == 0 { t } else { e.min(t) })
        });
    }
}

/// The earliest expiry of the certificates this check's TLS handshakes saw, and forget it:
/// the SDK adds it to the result as the `ssl-earliest-cert-expiry` detail (seconds since
/// the epoch; the name and meaning of blackbox_exporter's metric).
pub(crate) fn take_earliest_expiry() -> Option<u64> {
    match EARLIEST_EXPIRY.swap(0, core::sync::atomic::Ordering::Relaxed) {
        0 => None,
        t => Some(t),
    }
}

impl TcpConn {
    /// The address as given to [`connect`].
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The resolved address actually connected to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// What the TLS handshake told about the server, once the connection is TLS.
    pub fn tls_peer(&self) -> Option<&TlsPeer> {
        self.tls.as_ref()
    }

    /// The underlying byte stream, for protocols the helpers do not cover.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Take the underlying byte stream.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// The same connection with TLS on top: the handshake with `server_name` (the name
    /// or IP address the server's certificate must be for), within the budget. Which CAs
    /// to trust and which client certificate to present are the operator's, set on the
    /// host (`--tls-ca`, `--tls-client-cert`); the probe never sees them.
    pub fn start_tls(self, server_name: &str) -> Result<TcpConn, TcpError> {
        self.start_tls_alpn(server_name, &[])
    }

    /// [`start_tls`](Self::start_tls), offering the application protocols `alpn` (most
    /// preferred first; `h2` for gRPC). Which one the server chose is in
    /// [`tls_peer`](Self::tls_peer).
    pub fn start_tls_alpn(self, server_name: &str, alpn: &[&str]) -> Result<TcpConn, TcpError> {
        self.check_budget("connecting")?;
        let TcpConn {
            stream,
            address,
            peer,
            budget,
            tls: _,
        } = self;
        match stream.inner.into_tls(server_name, alpn, &budget) {
            Ok((inner, tls)) => {
                record_expiry(tls.not_after);
                Ok(TcpConn {
                    stream: TcpStream { inner },
                    address,
                    peer,
                    budget,
                    tls: Some(tls),
                })
            }
            Err(sys::Fail::Timeout) => Err(TcpError::Timeout {
                address,
                action: "in the TLS handshake with",
            }),
            Err(e) => Err(TcpError::from_sys(&address, "connecting", e)),
        }
    }

    /// A timeout error for `action` if the budget is spent.
    fn check_budget(&self, action: &'static str) -> Result<(), TcpError> {
        if self.budget.is_exhausted() {
            Err(TcpError::Timeout {
                address: self.address.clone(),
                action,
            })
        } else {
            Ok(())
        }
    }

    /// Write all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), TcpError> {
        self.check_budget("writing")?;
        self.stream
            .inner
            .write_all(data, &self.budget)
            .map_err(|e| TcpError::from_sys(&self.address, "writing", e))
    }

    /// Read what is available, at most `max` bytes, waiting for at least one.
    ///
    /// An empty result means the peer closed the connection.
    pub fn read_some(&mut self, max: usize) -> Result<Vec<u8>, TcpError> {
        self.check_budget("reading")?;
        self.stream
            .inner
            .read_some(max, &self.budget)
            .map_err(|e| TcpError::from_sys(&self.address, "reading", e))
    }

    /// Read until the data contains `pattern`, `max` bytes have arrived, or the
    /// peer closes the connection; returns everything read (which may run past
    /// the pattern). An empty `pattern` reads until `max` bytes or EOF.
    pub fn read_until(&mut self, pattern: &[u8], max: usize) -> Result<Vec<u8>, TcpError> {
        let mut data = Vec::new();
        while data.len() < max {
            let chunk = self.read_some(max - data.len())?;
            if chunk.is_empty() {
                break;
            }
            // Only the new bytes (plus an overlap) can complete the pattern.
            let from = data.len().saturating_sub(pattern.len().saturating_sub(1));
            data.extend_from_slice(&chunk);
            if !pattern.is_empty() && data[from..].windows(pattern.len()).any(|w| w == pattern) {
                break;
            }
        }
        Ok(data)
    }
}

/// Whether and how a probe speaks TLS: its `tls` and `server-name` parameters, the same
/// in every bundled TCP probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP (`tls=false`, the default).
    Off,
    /// TLS if the server offers it, plain otherwise (`tls=prefer`; only for protocols
    /// that negotiate TLS, such as PostgreSQL's and MySQL's).
    Prefer(String),
    /// TLS or nothing (`tls=true` or `tls=require`), to this server name.
    Require(String),
}

impl Tls {
    /// The parameter specs: `tls` (with `prefer` if the protocol negotiates TLS) and
    /// `server-name`.
    pub fn params(negotiated: bool) -> [crate::ParamSpec; 2] {
        let tls = if negotiated {
            "Speak TLS: true (or require) refuses a server without it, prefer falls back to \
             plain TCP if the server does not offer it, false (or disable) never asks; for \
             example tls=require. The CA and client certificate are the operator's: \
             --tls-ca, --tls-client-cert."
        } else {
            "Speak TLS over the connection: true or false, for example tls=true. The CA and \
             client certificate are the operator's: --tls-ca, --tls-client-cert."
        };
        [
            crate::ParamSpec::optional("tls", tls).default("false"),
            crate::ParamSpec::optional(
                "server-name",
                "The name the server's certificate must be for, when it is not the host of \
                 the address, for example server-name=db.internal.",
            ),
        ]
    }

    /// Reads `tls` and `server-name`; the server name defaults to the host of `address`.
    pub fn from_params(
        params: &crate::Params,
        address: &str,
        negotiated: bool,
    ) -> Result<Tls, CheckError> {
        let name = || {
            params
                .str("server-name")
                .map(str::trim)
                .map(str::to_string)
                .or_else(|| parse_address(address).ok().map(|(h, _)| h.to_string()))
                .unwrap_or_default()
        };
        let tls = match params.str("tls").map(str::trim) {
            None | Some("false" | "disable") => Tls::Off,
            Some("true" | "require") => Tls::Require(name()),
            Some("prefer") if negotiated => Tls::Prefer(name()),
            Some(other) => {
                let expected = if negotiated {
                    "true, false, require, prefer or disable"
                } else {
                    "true or false"
                };
                return Err(CheckError::invalid_param(
                    "tls",
                    format!("expected {expected}, got '{other}'"),
                ));
            }
        };
        if tls == Tls::Off && params.contains("server-name") {
            return Err(CheckError::invalid_param(
                "server-name",
                "only used with TLS; give tls=true too",
            ));
        }
        Ok(tls)
    }

    /// The server name, unless TLS is off.
    pub fn server_name(&self) -> Option<&str> {
        match self {
            Tls::Off => None,
            Tls::Prefer(name) | Tls::Require(name) => Some(name),
        }
    }
}

/// [`connect`], then TLS at once if `tls` asks for it (for protocols that start with the
/// handshake: Redis, memcached, gRPC, plain TCP services).
pub fn connect_with(address: &str, tls: &Tls, budget: &Budget) -> Result<TcpConn, TcpError> {
    let conn = connect(address, budget)?;
    match tls.server_name() {
        Some(name) => conn.start_tls(name),
        None => Ok(conn),
    }
}

/// A byte link a protocol is spoken over: a [`TcpConn`] in a probe, a scripted peer in
/// a unit test of the protocol.
pub trait Link {
    /// Send all of `data`.
    fn send(&mut self, data: &[u8]) -> Result<(), TcpError>;
    /// Receive at most `max` bytes; empty when the peer closed the connection.
    fn recv(&mut self, max: usize) -> Result<Vec<u8>, TcpError>;
    /// The same link with TLS on top (see [`TcpConn::start_tls`]), for protocols that
    /// switch to TLS part-way; a link that cannot says so.
    fn start_tls(self, server_name: &str) -> Result<Self, TcpError>
    where
        Self: Sized,
    {
        Err(TcpError::Tls {
            address: server_name.to_string(),
            reason: "this link cannot speak TLS".into(),
        })
    }
}

impl Link for TcpConn {
    fn send(&mut self, data: &[u8]) -> Result<(), TcpError> {
        self.write_all(data)
    }

    fn recv(&mut self, max: usize) -> Result<Vec<u8>, TcpError> {
        self.read_some(max)
    }

    fn start_tls(self, server_name: &str) -> Result<Self, TcpError> {
        TcpConn::start_tls(self, server_name)
    }
}

/// The byte stream of a connection, for protocols the [`TcpConn`] helpers do
/// not cover.
///
/// Its [`Read`] and [`Write`] implementations wait without a deadline (the
/// host still stops the probe at its deadline); the [`TcpConn`] methods are
/// bounded by the budget and report a timeout instead.
pub struct TcpStream {
    inner: sys::Stream,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream").finish_non_exhaustive()
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters() {
        let parse = |pairs: &[(&str, &str)], negotiated| {
            Tls::from_params(
                &crate::Params::from_pairs(pairs.iter().copied()),
                "127.0.0.1:6380",
                negotiated,
            )
        };
        assert_eq!(parse(&[], false).unwrap(), Tls::Off);
        assert_eq!(parse(&[("tls", "false")], true).unwrap(), Tls::Off);
        assert_eq!(
            parse(&[("tls", "true")], false).unwrap(),
            Tls::Require("127.0.0.1".into())
        );
        assert_eq!(
            parse(&[("tls", "require"), ("server-name", "db.internal")], true).unwrap(),
            Tls::Require("db.internal".into())
        );
        assert_eq!(
            parse(&[("tls", "prefer")], true).unwrap(),
            Tls::Prefer("127.0.0.1".into())
        );
        // prefer only where the protocol negotiates TLS; server-name only with TLS.
        for (pairs, negotiated, name) in [
            (&[("tls", "prefer")][..], false, "tls"),
            (&[("tls", "yes please")][..], true, "tls"),
            (&[("server-name", "db.internal")][..], false, "server-name"),
        ] {
            match parse(pairs, negotiated) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("127.0.0.1:6379"), Ok(("127.0.0.1", 6379)));
        assert_eq!(parse_address("db.internal:5432"), Ok(("db.internal", 5432)));
        assert_eq!(parse_address("[::1]:80"), Ok(("::1", 80)));
        for bad in [
            "localhost",
            ":80",
            "host:",
            "host:0",
            "host:70000",
            "host:+80",
            "::1:80",
            "[::1]",
            "[::1]80",
            "a b:1",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
        assert!(parse_address("::1:80").unwrap_err().contains("brackets"));
    }

    #[test]
    fn ip_addresses_need_no_lookup() {
        assert_eq!(
            resolve("127.0.0.1:6379").unwrap(),
            vec![SocketAddr::from(([127, 0, 0, 1], 6379))]
        );
        assert_eq!(
            resolve("[::1]:80").unwrap(),
            vec![SocketAddr::from((core::net::Ipv6Addr::LOCALHOST, 80))]
        );
    }

    #[test]
    fn resolve_host_literals_and_bad_names() {
        let budget = Budget::new(5_000);
        assert_eq!(
            resolve_host("127.0.0.1", &budget).unwrap(),
            vec![IpAddr::from([127, 0, 0, 1])]
        );
        assert_eq!(
            resolve_host("[::1]", &budget).unwrap(),
            vec![IpAddr::from(core::net::Ipv6Addr::LOCALHOST)]
        );
        for bad in ["", "  ", "a b"] {
            assert!(
                matches!(
                    resolve_host(bad, &budget),
                    Err(TcpError::InvalidAddress { .. })
                ),
                "{bad:?}"
            );
        }
        let err = resolve_host("localhost", &Budget::new(0)).unwrap_err();
        assert_eq!(err.to_string(), "timeout resolving localhost");
    }

    #[cfg(not(target_os = "wasi"))]
    #[test]
    fn resolve_host_localhost_native() {
        let ips = resolve_host("localhost", &Budget::new(5_000)).unwrap();
        assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
        assert!(!ips.is_empty());
    }

    #[test]
    fn messages() {
        let refused = TcpError::from_io(
            "127.0.0.1:6379",
            "connecting",
            ErrorKind::ConnectionRefused.into(),
        );
        assert_eq!(refused.to_string(), "connection to 127.0.0.1:6379 refused");
        let timeout = TcpError::from_io("h:1", "reading", ErrorKind::TimedOut.into());
        assert_eq!(timeout.to_string(), "timeout reading h:1");
        let timeout = TcpError::from_sys("h:1", "resolving", sys::Fail::Timeout);
        assert_eq!(timeout.to_string(), "timeout resolving h:1");
        let denied = TcpError::from_io(
            "h:1",
            "connecting",
            io::Error::new(ErrorKind::PermissionDenied, "access-denied"),
        );
        assert_eq!(denied.to_string(), "connecting h:1 denied by the host");
        assert!(matches!(
            resolve("nope"),
            Err(TcpError::InvalidAddress { .. })
        ));
    }

    #[cfg(not(target_os = "wasi"))]
    #[test]
    fn loopback_native() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0; 6];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"+PONG\r\nextra").unwrap();
        });
        let budget = Budget::new(5_000);
        let mut conn = connect(&addr, &budget).unwrap();
        conn.write_all(b"PING\r\n").unwrap();
        let reply = conn.read_until(b"\r\n", 512).unwrap();
        assert!(reply.starts_with(b"+PONG\r\n"));
        server.join().unwrap();

        // The listener is gone: the port now refuses.
        let err = connect(&addr, &budget).unwrap_err();
        assert!(matches!(err, TcpError::Refused { .. }), "{err}");
    }

    #[cfg(not(target_os = "wasi"))]
    #[test]
    fn spent_budget_times_out_native() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let err = connect(&addr, &Budget::new(0)).unwrap_err();
        assert_eq!(err.to_string(), format!("timeout connecting {addr}"));

        // A silent peer: the read waits out the budget and says so.
        let mut conn = connect(&addr, &Budget::new(200)).unwrap();
        let err = conn.read_some(16).unwrap_err();
        assert_eq!(err.to_string(), format!("timeout reading {addr}"));
    }
}
