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
//! Read and write timeouts are set from the budget where the platform supports
//! them; where it does not, the host still ends the probe at its deadline.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Budget;

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
        /// What was going on: `connecting`, `reading` or `writing`.
        action: &'static str,
    },
    /// Any other I/O failure.
    Io {
        /// The address as given.
        address: String,
        /// The underlying error.
        source: io::Error,
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
            _ => TcpError::Io { address, source: e },
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
            | TcpError::Io { address, .. } => address,
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
            TcpError::Io { address, source } => write!(f, "I/O error with {address}: {source}"),
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
pub fn resolve(address: &str) -> Result<Vec<SocketAddr>, TcpError> {
    parse_address(address).map_err(|reason| TcpError::InvalidAddress {
        address: address.to_string(),
        reason,
    })?;
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| TcpError::Resolve {
            address: address.to_string(),
            reason: e.to_string(),
        })?
        .collect();
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
/// Fails with [`TcpError::Timeout`] if the budget is already spent. The
/// connection's reads and writes are then bounded by the same budget.
pub fn connect(address: &str, budget: &Budget) -> Result<TcpConn, TcpError> {
    let timeout = |action| TcpError::Timeout {
        address: address.to_string(),
        action,
    };
    if budget.is_exhausted() {
        return Err(timeout("connecting"));
    }
    let mut last = None;
    for addr in resolve(address)? {
        if budget.is_exhausted() {
            return Err(timeout("connecting"));
        }
        // Plain `connect`: on wasm32-wasip2, `connect_timeout` reports success for
        // a refused port, whereas `connect` reports the refusal.
        match TcpStream::connect(addr) {
            Ok(stream) => {
                return Ok(TcpConn {
                    stream,
                    address: address.to_string(),
                    peer: addr,
                    budget: *budget,
                });
            }
            Err(e) => last = Some(TcpError::from_io(address, "connecting", e)),
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

    /// The underlying stream, for protocols the helpers do not cover.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Take the underlying stream.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Time left, or a timeout error for `action` if none is.
    fn remaining(&self, action: &'static str) -> Result<Duration, TcpError> {
        let left = self.budget.remaining();
        if left.is_zero() {
            Err(TcpError::Timeout {
                address: self.address.clone(),
                action,
            })
        } else {
            Ok(left)
        }
    }

    fn io_err(&self, action: &'static str, e: io::Error) -> TcpError {
        TcpError::from_io(&self.address, action, e)
    }

    /// Set the socket timeout for the next operation; platforms without
    /// socket timeouts are tolerated.
    fn set_timeout(
        &self,
        action: &'static str,
        set: impl FnOnce(&TcpStream, Option<Duration>) -> io::Result<()>,
    ) -> Result<(), TcpError> {
        let left = self.remaining(action)?;
        match set(&self.stream, Some(left)) {
            Err(e) if e.kind() != ErrorKind::Unsupported => Err(self.io_err(action, e)),
            _ => Ok(()),
        }
    }

    /// Write all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), TcpError> {
        self.set_timeout("writing", TcpStream::set_write_timeout)?;
        self.stream
            .write_all(data)
            .and_then(|()| self.stream.flush())
            .map_err(|e| self.io_err("writing", e))
    }

    /// Read what is available, at most `max` bytes, waiting for at least one.
    ///
    /// An empty result means the peer closed the connection.
    pub fn read_some(&mut self, max: usize) -> Result<Vec<u8>, TcpError> {
        self.set_timeout("reading", TcpStream::set_read_timeout)?;
        let mut buf = vec![0; max];
        loop {
            match self.stream.read(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err("reading", e)),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn messages() {
        let refused = TcpError::from_io(
            "127.0.0.1:6379",
            "connecting",
            ErrorKind::ConnectionRefused.into(),
        );
        assert_eq!(refused.to_string(), "connection to 127.0.0.1:6379 refused");
        let timeout = TcpError::from_io("h:1", "reading", ErrorKind::TimedOut.into());
        assert_eq!(timeout.to_string(), "timeout reading h:1");
        assert!(matches!(
            resolve("nope"),
            Err(TcpError::InvalidAddress { .. })
        ));
    }

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
}
