//! The native backend of [`super`], on `std::net`: it lets `cargo test` exercise
//! the SDK and the probes on the build machine. Probes run the WASI backend.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use crate::Budget;

/// Why an operation failed, before the address is attached.
pub(super) enum Fail {
    /// The budget ran out.
    Timeout,
    /// Name lookup failed, with the resolver's explanation.
    Resolve(String),
    /// Any other failure.
    Io(io::Error),
    /// The TLS handshake or the TLS stream failed, in the host's words.
    Tls(String),
}

/// The time left, or [`Fail::Timeout`].
fn remaining(budget: &Budget) -> Result<std::time::Duration, Fail> {
    let left = budget.remaining();
    if left.is_zero() {
        Err(Fail::Timeout)
    } else {
        Ok(left)
    }
}

/// Look up `host` (not an IP address). The system resolver has no deadline.
pub(super) fn resolve(
    host: &str,
    port: u16,
    _budget: Option<&Budget>,
) -> Result<Vec<SocketAddr>, Fail> {
    (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| Fail::Resolve(e.to_string()))
}

/// Connect to `addr` within the budget.
pub(super) fn connect(addr: SocketAddr, budget: &Budget) -> Result<Stream, Fail> {
    TcpStream::connect_timeout(&addr, remaining(budget)?)
        .map(Stream)
        .map_err(Fail::Io)
}

/// An open connection.
pub(super) struct Stream(TcpStream);

impl Stream {
    /// TLS is the host's (`wasi:tls`): natively there is none.
    pub(super) fn into_tls(
        self,
        _server_name: &str,
        _alpn: &[&str],
        _budget: &Budget,
    ) -> Result<(Stream, super::TlsPeer), Fail> {
        Err(Fail::Tls(
            "TLS is provided by the healthprobe host, not in native builds".into(),
        ))
    }

    /// Write all of `data` and flush, within the budget.
    pub(super) fn write_all(&mut self, data: &[u8], budget: &Budget) -> Result<(), Fail> {
        self.0
            .set_write_timeout(Some(remaining(budget)?))
            .map_err(Fail::Io)?;
        self.0
            .write_all(data)
            .and_then(|()| self.0.flush())
            .map_err(Fail::Io)
    }

    /// Read at most `max` bytes, waiting within the budget for at least one.
    pub(super) fn read_some(&mut self, max: usize, budget: &Budget) -> Result<Vec<u8>, Fail> {
        self.0
            .set_read_timeout(Some(remaining(budget)?))
            .map_err(Fail::Io)?;
        let mut buf = vec![0; max];
        loop {
            match self.0.read(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Fail::Io(e)),
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // No deadline for the raw stream.
        self.0.set_read_timeout(None)?;
        self.0.read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.set_write_timeout(None)?;
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
