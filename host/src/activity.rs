//! What a probe's host calls are waiting for and what they did, recorded by the imports
//! and read by the runner: when the deadline drops a run, the call in flight is what the
//! timeout message names; the last HTTP exchange and TCP connection are what `serve`'s
//! `/probe` reports as blackbox_exporter does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the host saw of a probe's last request through the `http` import, in the terms
/// of blackbox_exporter's http prober.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    /// Looking the host up, summed over redirects.
    pub resolve: Duration,
    /// Connecting, summed over redirects.
    pub connect: Duration,
    /// TLS handshakes, summed over redirects.
    pub tls_time: Duration,
    /// From the request sent to the response's head.
    pub processing: Duration,
    /// Reading the body.
    pub transfer: Duration,
    /// Redirects followed.
    pub redirects: u32,
    /// Whether the last connection used TLS.
    pub ssl: bool,
    /// The response's HTTP version (1.1, 2), once there was a response.
    pub version: Option<f64>,
    /// The first address tried.
    pub address: Option<std::net::IpAddr>,
    /// The last TLS handshake.
    pub tls: Option<TlsFacts>,
}

/// A finished TLS handshake.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFacts {
    /// `TLSv1.2` or `TLSv1.3`, as rustls names them.
    pub version: String,
    /// The earliest expiry of the certificates the server sent, in seconds since the epoch.
    pub earliest_expiry: Option<u64>,
    /// The server's own certificate.
    pub leaf: Option<CertInfo>,
}

/// A certificate's identity, for `probe_ssl_last_chain_info`.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// SHA-256 of its DER, in hex.
    pub fingerprint_sha256: String,
    /// Its subject, as `CN=…,O=…`.
    pub subject: String,
    /// Its issuer, likewise.
    pub issuer: String,
    /// Its DNS names, comma-separated.
    pub subject_alternative: String,
}

/// The host call a probe is blocked in, shared with the runner: when the deadline drops
/// the store, this is what is left to say what the probe was waiting for. A call that
/// returns at once and is then waited on through `wasi:io/poll` (a TCP connect, a name
/// lookup) is kept as the probe's last host call instead.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Mutex<Record>>);

#[derive(Debug, Default)]
struct Record {
    current: Option<String>,
    last: Option<String>,
    exchange: Option<Exchange>,
    connected: Option<SocketAddr>,
}

impl Activity {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what the probe now waits for, or `None` once the call returned. Not a drop
    /// guard on purpose: when the deadline cancels the call, the record must survive the
    /// dropped future so the runner can name it.
    pub fn set(&self, what: Option<String>) {
        let mut record = self.record();
        if what.is_some() {
            record.last = None;
        }
        record.current = what;
    }

    /// Records the probe's last host call (`TCP connect to 127.0.0.1:6379`), named if the
    /// deadline comes while no other call is in flight.
    pub fn called(&self, what: String) {
        self.record().last = Some(what);
    }

    /// Records a TCP connection the probe starts through `wasi:sockets`, as its last host
    /// call and for the address family `/probe` reports.
    pub fn connecting(&self, addr: SocketAddr) {
        let mut record = self.record();
        record.last = Some(format!("TCP connect to {addr}"));
        record.connected = Some(addr);
    }

    /// The address of the probe's last TCP connection through `wasi:sockets`.
    pub fn connected(&self) -> Option<SocketAddr> {
        self.record().connected
    }

    /// Records what the host saw of the probe's last request through the `http` import.
    pub fn exchanged(&self, exchange: Exchange) {
        self.record().exchange = Some(exchange);
    }

    /// The probe's last request through the `http` import, if it made one.
    pub fn exchange(&self) -> Option<Exchange> {
        self.record().exchange.clone()
    }

    /// Clears the record if it still says `what`: a request that ends in the background
    /// must not erase what another one recorded since.
    pub fn clear_if(&self, what: &str) {
        let mut record = self.record();
        if record.current.as_deref() == Some(what) {
            record.current = None;
        }
    }

    /// What the probe is waiting for, if it is in a host call that records it, else the
    /// last host call it made that was recorded.
    pub fn current(&self) -> Option<String> {
        let record = self.record();
        record.current.clone().or_else(|| {
            (record.last.as_ref()).map(|last| format!("(the probe's last host call: {last})"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_in_flight_comes_before_the_last_call() {
        let a = Activity::default();
        assert_eq!(a.current(), None);
        a.called("TCP connect to 127.0.0.1:1".into());
        assert_eq!(
            a.current().as_deref(),
            Some("(the probe's last host call: TCP connect to 127.0.0.1:1)")
        );
        a.set(Some("waiting for the response of GET http://x/".into()));
        assert_eq!(
            a.current().as_deref(),
            Some("waiting for the response of GET http://x/")
        );
        a.set(None);
        assert_eq!(a.current(), None);
    }
}
