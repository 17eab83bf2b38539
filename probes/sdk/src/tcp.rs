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
use std::io::{self, Read, Write};
// `core::net`, not `std::net`: the address types only, no sockets.
use core::net::SocketAddr;

use crate::Budget;

// The WASI backend on wasm32-wasip2, `std::net` elsewhere (for native tests).
#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
#[path = "tcp/native.rs"]
mod sys;
#[cfg(all(target_os = "wasi", target_env = "p2"))]
#[path = "tcp/wasi.rs"]
mod sys;

mod address;
mod error;
mod framed;
mod tls;

use address::lookup;
pub use address::{parse_address, resolve, resolve_host};
pub use error::TcpError;
pub use framed::{DEFAULT_MAX_FRAME, FrameError, Framed, Prefix, varint};
pub use tls::{Tls, TlsPeer, connect_with};
pub(crate) use tls::{take_earliest_expiry, take_tls_version};

/// Connect to `address` (`host:port`), trying each resolved address in turn.
///
/// Fails with [`TcpError::Timeout`] if the budget is spent before a connection
/// is accepted. The connection's reads and writes are then bounded by the same
/// budget.
pub fn connect(address: &str, budget: &Budget) -> Result<TcpConn, TcpError> {
    let timeout = |action| TcpError::timeout(address, action, Some(budget));
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
            Err(e) => last = Some(TcpError::from_sys(address, "connecting", e, Some(budget))),
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

    /// A timeout error for `action` if the budget is spent.
    fn check_budget(&self, action: &'static str) -> Result<(), TcpError> {
        if self.budget.is_exhausted() {
            Err(TcpError::timeout(&self.address, action, Some(&self.budget)))
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
            .map_err(|e| TcpError::from_sys(&self.address, "writing", e, Some(&self.budget)))
    }

    /// Read what is available, at most `max` bytes, waiting for at least one.
    ///
    /// An empty result means the peer closed the connection.
    pub fn read_some(&mut self, max: usize) -> Result<Vec<u8>, TcpError> {
        self.check_budget("reading")?;
        self.stream
            .inner
            .read_some(max, &self.budget)
            .map_err(|e| TcpError::from_sys(&self.address, "reading", e, Some(&self.budget)))
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
mod tests;
