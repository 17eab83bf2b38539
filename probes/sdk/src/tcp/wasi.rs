//! The WASI 0.2 backend of [`super`]: `wasi:sockets` for name lookup and TCP,
//! `wasi:io` streams for the bytes, and every wait a `wasi:io/poll` on the
//! operation's pollable together with a `wasi:clocks/monotonic-clock` timer
//! for the time left in the budget.
//!
//! Using these interfaces directly, rather than `std::net` (which goes through
//! wasi-libc's socket layer), keeps the UDP interfaces out of the probe's imports.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::io::{self, ErrorKind, Read, Write};

use wasi::clocks::monotonic_clock;
use wasi::io::poll::{self, Pollable};
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::{instance_network, ip_name_lookup, tcp_create_socket};

use crate::Budget;

/// Bindings for `wasi:tls/types`, on the `wasi` crate's stream and pollable types.
#[allow(unsafe_code, clippy::all)]
mod tls {
    wit_bindgen::generate!({
        path: "wit-tls",
        world: "imports",
        features: ["tls"],
        with: {
            "wasi:io/error@0.2.4": ::wasi::io::error,
            "wasi:io/poll@0.2.4": ::wasi::io::poll,
            "wasi:io/streams@0.2.4": ::wasi::io::streams,
        },
    });
}

use tls::wasi::tls::types::{ClientConnection, ClientHandshake};

/// Bindings for `healthprobe:tls/handshakes`: ALPN and the peer of a handshake.
#[allow(unsafe_code, clippy::all)]
mod options {
    wit_bindgen::generate!({
        path: "wit/deps/tls",
        world: "imports",
    });
}

use options::healthprobe::tls::handshakes;

/// Why an operation failed, before the address is attached.
pub(super) enum Fail {
    /// The budget ran out (or the network reported a timeout).
    Timeout,
    /// Name lookup failed, with an explanation.
    Resolve(String),
    /// Any other failure.
    Io(io::Error),
    /// The TLS handshake or the TLS stream failed, in the host's words.
    Tls(String),
}

impl Fail {
    /// A socket error code: its kind where `std::io` has one, its WASI name as the message.
    fn code(code: ErrorCode) -> Self {
        let kind = match code {
            ErrorCode::Timeout => return Fail::Timeout,
            ErrorCode::ConnectionRefused => ErrorKind::ConnectionRefused,
            ErrorCode::RemoteUnreachable => ErrorKind::HostUnreachable,
            ErrorCode::AccessDenied => ErrorKind::PermissionDenied,
            ErrorCode::ConnectionReset => ErrorKind::ConnectionReset,
            ErrorCode::ConnectionAborted => ErrorKind::ConnectionAborted,
            ErrorCode::NotSupported => ErrorKind::Unsupported,
            ErrorCode::InvalidArgument => ErrorKind::InvalidInput,
            ErrorCode::OutOfMemory => ErrorKind::OutOfMemory,
            ErrorCode::AddressInUse => ErrorKind::AddrInUse,
            ErrorCode::AddressNotBindable => ErrorKind::AddrNotAvailable,
            // Everything else, `would-block` included (it must not read as a timeout).
            _ => ErrorKind::Other,
        };
        Fail::Io(io::Error::new(kind, code.name()))
    }

    /// A name-lookup error code.
    fn lookup(code: ErrorCode) -> Self {
        let reason = match code {
            ErrorCode::Timeout => return Fail::Timeout,
            ErrorCode::NameUnresolvable => "no such host, or it has no addresses",
            ErrorCode::TemporaryResolverFailure => "temporary failure in name resolution",
            ErrorCode::PermanentResolverFailure => "name resolution failed",
            ErrorCode::InvalidArgument => "not a valid host name",
            // A policy refusal, not a resolver failure: it becomes `TcpError::Denied`.
            ErrorCode::AccessDenied => {
                return Fail::Io(io::Error::new(ErrorKind::PermissionDenied, code.name()));
            }
            other => other.name(),
        };
        Fail::Resolve(reason.to_string())
    }

    /// A failed stream operation.
    fn stream(e: StreamError) -> Self {
        Fail::Io(match e {
            StreamError::Closed => {
                io::Error::new(ErrorKind::BrokenPipe, "connection closed by the peer")
            }
            StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
        })
    }
}

/// Wait until `ready` is, or, given a budget, until the budget runs out.
fn wait(ready: &Pollable, budget: Option<&Budget>) -> Result<(), Fail> {
    let Some(budget) = budget else {
        ready.block();
        return Ok(());
    };
    let left = budget.remaining();
    if left.is_zero() {
        return Err(Fail::Timeout);
    }
    let nanos = u64::try_from(left.as_nanos()).unwrap_or(u64::MAX);
    let timer = monotonic_clock::subscribe_duration(nanos);
    if poll::poll(&[ready, &timer]).contains(&0) {
        Ok(())
    } else {
        Err(Fail::Timeout)
    }
}

/// Look up `host` (not an IP address), within the budget if one is given.
pub(super) fn resolve(
    host: &str,
    port: u16,
    budget: Option<&Budget>,
) -> Result<Vec<SocketAddr>, Fail> {
    let network = instance_network::instance_network();
    let lookup = ip_name_lookup::resolve_addresses(&network, host).map_err(Fail::lookup)?;
    let ready = lookup.subscribe();
    let mut addrs = Vec::new();
    loop {
        match lookup.resolve_next_address() {
            Ok(Some(ip)) => addrs.push(SocketAddr::new(from_wasi(ip), port)),
            Ok(None) => return Ok(addrs),
            Err(ErrorCode::WouldBlock) => wait(&ready, budget)?,
            Err(code) => return Err(Fail::lookup(code)),
        }
    }
}

/// Connect to `addr` within the budget.
pub(super) fn connect(addr: SocketAddr, budget: &Budget) -> Result<Stream, Fail> {
    let network = instance_network::instance_network();
    let (family, remote) = to_wasi(addr);
    let socket = tcp_create_socket::create_tcp_socket(family).map_err(Fail::code)?;
    socket.start_connect(&network, remote).map_err(Fail::code)?;
    let (input, output) = {
        // The pollable is a child of the socket: drop it first.
        let ready = socket.subscribe();
        loop {
            match socket.finish_connect() {
                Ok(streams) => break streams,
                Err(ErrorCode::WouldBlock) => wait(&ready, Some(budget))?,
                Err(code) => return Err(Fail::code(code)),
            }
        }
    };
    Ok(Stream {
        input,
        output,
        tls: None,
        _socket: socket,
    })
}

/// An open connection. The streams are children of the TLS connection if there is one,
/// which is a child of the socket: fields drop in order, children first.
pub(super) struct Stream {
    input: InputStream,
    output: OutputStream,
    tls: Option<ClientConnection>,
    _socket: TcpSocket,
}

impl Stream {
    /// The same connection with TLS to `server_name` on top, the handshake waiting
    /// within the budget. The host holds the trust (CA, client certificate): this only
    /// names the server.
    pub(super) fn into_tls(
        self,
        server_name: &str,
        alpn: &[&str],
        budget: &Budget,
    ) -> Result<(Stream, super::TlsPeer), Fail> {
        let Stream {
            input,
            output,
            tls: _,
            _socket,
        } = self;
        if !alpn.is_empty() {
            let protocols: Vec<String> = alpn.iter().map(|p| p.to_string()).collect();
            handshakes::set_next_alpn(&protocols);
        }
        let pending = ClientHandshake::finish(ClientHandshake::new(server_name, input, output));
        let (tls, input, output) = {
            // The pollable is a child of the pending handshake: drop it first.
            let ready = pending.subscribe();
            loop {
                match pending.get() {
                    None => wait(&ready, Some(budget))?,
                    Some(Ok(Ok(streams))) => break streams,
                    Some(Ok(Err(e))) => return Err(Fail::Tls(e.to_debug_string())),
                    Some(Err(())) => {
                        return Err(Fail::Tls("the handshake's result was taken".into()));
                    }
                }
            }
        };
        let peer = handshakes::last_peer().map_or_else(
            || super::TlsPeer {
                protocol: None,
                not_after: None,
                version: "TLS".into(),
            },
            |p| super::TlsPeer {
                protocol: p.protocol,
                not_after: p.not_after,
                version: p.version,
            },
        );
        let stream = Stream {
            input,
            output,
            tls: Some(tls),
            _socket,
        };
        Ok((stream, peer))
    }

    /// A stream error; on a TLS connection, a failed operation is TLS's (a refused
    /// client certificate arrives as the first read's error).
    fn fail(&self, e: StreamError) -> Fail {
        match e {
            StreamError::LastOperationFailed(e) if self.tls.is_some() => {
                Fail::Tls(e.to_debug_string())
            }
            e => Fail::stream(e),
        }
    }

    /// Write all of `data` and flush, waiting within the budget.
    pub(super) fn write_all(&mut self, mut data: &[u8], budget: &Budget) -> Result<(), Fail> {
        let ready = self.output.subscribe();
        while !data.is_empty() {
            let permit = self.output.check_write().map_err(|e| self.fail(e))?;
            if permit == 0 {
                wait(&ready, Some(budget))?;
                continue;
            }
            let n = usize::try_from(permit).map_or(data.len(), |p| p.min(data.len()));
            self.output.write(&data[..n]).map_err(|e| self.fail(e))?;
            data = &data[n..];
        }
        // The stream accepts no writes until the flush is done.
        self.output.flush().map_err(|e| self.fail(e))?;
        while self.output.check_write().map_err(|e| self.fail(e))? == 0 {
            wait(&ready, Some(budget))?;
        }
        Ok(())
    }

    /// Read at most `max` bytes, waiting within the budget for at least one.
    /// Empty at end of stream.
    pub(super) fn read_some(&mut self, max: usize, budget: &Budget) -> Result<Vec<u8>, Fail> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let len = u64::try_from(max).unwrap_or(u64::MAX);
        let ready = self.input.subscribe();
        loop {
            match self.input.read(len) {
                Ok(data) if !data.is_empty() => return Ok(data),
                Ok(_) => wait(&ready, Some(budget))?,
                Err(StreamError::Closed) => return Ok(Vec::new()),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The `wasi` crate's blocking implementation (end of stream reads as 0).
        Read::read(&mut self.input, buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(&mut self.output, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Write::flush(&mut self.output)
    }
}

fn to_wasi(addr: SocketAddr) -> (IpAddressFamily, IpSocketAddress) {
    match addr {
        SocketAddr::V4(a) => {
            let [b0, b1, b2, b3] = a.ip().octets();
            (
                IpAddressFamily::Ipv4,
                IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port: a.port(),
                    address: (b0, b1, b2, b3),
                }),
            )
        }
        SocketAddr::V6(a) => {
            let [s0, s1, s2, s3, s4, s5, s6, s7] = a.ip().segments();
            (
                IpAddressFamily::Ipv6,
                IpSocketAddress::Ipv6(Ipv6SocketAddress {
                    port: a.port(),
                    flow_info: a.flowinfo(),
                    address: (s0, s1, s2, s3, s4, s5, s6, s7),
                    scope_id: a.scope_id(),
                }),
            )
        }
    }
}

fn from_wasi(ip: IpAddress) -> IpAddr {
    match ip {
        IpAddress::Ipv4((a, b, c, d)) => Ipv4Addr::new(a, b, c, d).into(),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => Ipv6Addr::new(a, b, c, d, e, f, g, h).into(),
    }
}
