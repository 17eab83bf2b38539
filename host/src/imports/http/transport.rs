//! The `http` import's connections, made by hand from ureq's parts so that the host sees
//! what blackbox_exporter reports of a request: the time of each phase (resolve, connect,
//! TLS, processing, transfer), the address family, the TLS version and the server's
//! certificates. TLS uses the run's rustls configuration (the operator's trust), the one
//! `wasi:tls` and `wasi:http` use too.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};

use crate::activity::{Exchange, TlsFacts};
use crate::sandbox::trust;

/// What one request is measured into, shared by the resolver, the connectors and the
/// request itself (ureq's parts run on the request's blocking thread).
#[derive(Debug, Clone, Default)]
pub(super) struct Measure(Arc<Mutex<Exchange>>);

impl Measure {
    pub fn with<R>(&self, f: impl FnOnce(&mut Exchange) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn take(&self) -> Exchange {
        self.with(std::mem::take)
    }
}

/// ureq's TCP connector, timed, noting the family of the address it connects to first.
#[derive(Debug)]
pub(super) struct TimedTcp {
    pub tcp: TcpConnector,
    pub measure: Measure,
}

impl<In: Transport> Connector<In> for TimedTcp {
    type Out = <TcpConnector as Connector<In>>::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let start = Instant::now();
        let out = self.tcp.connect(details, chained);
        self.measure.with(|m| {
            m.connect += start.elapsed();
            if let Some(first) = details.addrs.first() {
                m.address = Some(first.ip());
            }
        });
        out
    }
}

/// TLS with the run's rustls configuration, timed, keeping the version and the
/// certificates' expiry.
pub(super) struct ObservedTls {
    pub config: Arc<ClientConfig>,
    pub measure: Measure,
}

impl std::fmt::Debug for ObservedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedTls").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for ObservedTls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        // The last connection made decides: a redirect from https to http ends without.
        self.measure.with(|m| m.ssl = details.needs_tls());
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let start = Instant::now();
        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ureq::Error::Tls("not a name or address a certificate can be for"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        let handshake = conn.complete_io(&mut sock);
        self.measure.with(|m| {
            m.tls_time += start.elapsed();
            m.tls = facts(&conn);
        });
        handshake?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// The TLS facts of a finished handshake, or `None` before one.
fn facts(conn: &ClientConnection) -> Option<TlsFacts> {
    let version = conn.protocol_version()?;
    let certs = conn.peer_certificates().unwrap_or_default();
    let expiries: Vec<u64> = certs.iter().filter_map(trust::not_after).collect();
    Some(TlsFacts {
        // As `wasi:tls`'s handshakes name it (imports/tls.rs): `TLSv1.3`.
        version: version.as_str().unwrap_or("TLS").replace('_', "."),
        earliest_expiry: expiries.iter().copied().min(),
        leaf: certs.first().map(|c| trust::describe_cert(c)),
    })
}

/// A TLS connection as ureq reads and writes it.
pub(super) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// How long `phase` of a request took, as blackbox_exporter's
/// `probe_http_duration_seconds{phase}`: processing is what is left of the time to the
/// response's head once resolving, connecting and TLS are taken out.
pub(super) fn processing(head: Duration, exchange: &Exchange) -> Duration {
    head.saturating_sub(exchange.resolve + exchange.connect + exchange.tls_time)
}
