//! `wasi:tls/types` (wasmtime-wasi-tls): a probe upgrades one of its own TCP connections to
//! TLS by handing the connection's streams and a server name to the host.
//!
//! The rules are the run's: the TCP connection underneath was checked against the network
//! policy when it was made and counts against `--max-sockets`; every wait on the handshake
//! and on the TLS streams is a `wasi:io` poll, bounded by the run's deadline like any other;
//! the trust is the operator's ([`crate::sandbox::trust::Trust`]), so the probe asks for TLS to a name
//! and never sees a CA file or a private key. The interface cannot ask to skip verification:
//! only `--allow-insecure-tls` turns it off, for every `wasi:tls` connection of the run.
//!
//! `healthprobe:tls/handshakes` adds what `wasi:tls` cannot carry: the ALPN protocols of the
//! next handshake (gRPC needs `h2`) and the peer of the last one (the certificate's expiry,
//! the protocol chosen). Both go through state the store shares with the provider: the
//! provider's `connect` is called from within the guest's `finish` call, so "the next
//! handshake" is well defined.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi_tls::{
    TlsProvider, TlsStream, TlsTransport, WasiTlsCtx, WasiTlsCtxBuilder, WasiTlsCtxView,
    WasiTlsView,
};

use crate::bindings::tls::healthprobe::tls::handshakes::{self, Peer};
use crate::imports::{Capability, RunInputs};
use crate::sandbox::Sandbox;
use crate::sandbox::trust;

/// What `inspect` says the import asks for.
pub const CAPABILITY: Capability = Capability {
    key: "tls",
    description: "TLS over the probe's own TCP connections (wasi:tls)",
    interfaces: &["wasi:tls/types", "healthprobe:tls/handshakes"],
    grant,
};

/// TLS itself needs no grant (the connection underneath does); what the operator sets is
/// the trust.
fn grant(sandbox: &Sandbox) -> (bool, String) {
    let unverified = if sandbox.insecure_tls {
        "; certificates NOT verified (--allow-insecure-tls)"
    } else {
        ""
    };
    (
        true,
        format!("trusting {}{unverified}", sandbox.tls.describe()),
    )
}

/// The per-run state of both TLS interfaces.
pub struct TlsCtx {
    wasi: WasiTlsCtx,
    shared: Arc<Mutex<Shared>>,
}

/// What the store and the provider share.
#[derive(Default)]
struct Shared {
    /// ALPN protocols for the next handshake.
    next_alpn: Vec<Vec<u8>>,
    /// The peer of the last handshake that completed.
    last_peer: Option<Peer>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The per-run context: the sandbox's trust, verifying unless insecure TLS is granted.
pub fn ctx(run: &RunInputs) -> TlsCtx {
    let sandbox = run.sandbox;
    let shared = Arc::new(Mutex::new(Shared::default()));
    TlsCtx {
        wasi: WasiTlsCtxBuilder::new()
            .provider(Box::new(Provider {
                config: sandbox.tls.config(!sandbox.insecure_tls),
                shared: shared.clone(),
            }))
            .build(),
        shared,
    }
}

/// Registers `wasi:tls/types` (through `T`'s [`WasiTlsView`]) and
/// `healthprobe:tls/handshakes`, served from the context `get` returns.
pub fn add_to_linker<T: WasiTlsView + Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut TlsCtx,
) -> wasmtime::Result<()> {
    let mut opts = wasmtime_wasi_tls::p2::LinkOptions::default();
    opts.tls(true);
    wasmtime_wasi_tls::p2::add_to_linker(linker, &opts)?;
    handshakes::add_to_linker::<T, HasSelf<TlsCtx>>(linker, get)
}

impl TlsCtx {
    /// The view `wasi:tls` works through, over the store's resource `table`.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiTlsCtxView<'a> {
        WasiTlsCtxView {
            ctx: &mut self.wasi,
            table,
        }
    }
}

/// Protocol names longer than this are not ALPN (RFC 7301 allows 255 bytes; nothing
/// registered comes near 64).
const MAX_ALPN_NAME: usize = 255;
/// More protocols than this in one offer is not a real client's.
const MAX_ALPN_NAMES: usize = 16;

impl handshakes::Host for TlsCtx {
    fn set_next_alpn(&mut self, protocols: Vec<String>) {
        // Names that cannot go on the wire are left out rather than failing the probe:
        // the server then simply does not see them.
        lock(&self.shared).next_alpn = protocols
            .into_iter()
            .filter(|p| !p.is_empty() && p.len() <= MAX_ALPN_NAME)
            .take(MAX_ALPN_NAMES)
            .map(String::into_bytes)
            .collect();
    }

    fn last_peer(&mut self) -> Option<Peer> {
        lock(&self.shared).last_peer.clone()
    }
}

/// Handshakes with rustls and the operator's trust; failures in words.
struct Provider {
    config: Arc<ClientConfig>,
    shared: Arc<Mutex<Shared>>,
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<Box<dyn TlsStream>, wasmtime_wasi_tls::Error>> + Send>>;

impl TlsProvider for Provider {
    fn connect(&self, server_name: String, transport: Box<dyn TlsTransport>) -> Handshake {
        let alpn = std::mem::take(&mut lock(&self.shared).next_alpn);
        let config = if alpn.is_empty() {
            self.config.clone()
        } else {
            let mut config = (*self.config).clone();
            config.alpn_protocols = alpn;
            Arc::new(config)
        };
        let shared = self.shared.clone();
        Box::pin(async move {
            let name = ServerName::try_from(server_name.trim_end_matches('.').to_owned()).map_err(
                |_| {
                    wasmtime_wasi_tls::Error::msg(format!(
                        "'{server_name}' is not a server name TLS can verify; give a host \
                         name or an IP address"
                    ))
                },
            )?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, transport)
                .await
                .map_err(|e| wasmtime_wasi_tls::Error::msg(trust::io_words(&e)))?;
            lock(&shared).last_peer = Some(peer(stream.get_ref().1));
            Ok(Box::new(Worded(stream)) as Box<dyn TlsStream>)
        })
    }
}

/// What a completed handshake tells about the server.
fn peer(session: &rustls::ClientConnection) -> Peer {
    Peer {
        protocol: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        not_after: session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| trust::not_after(cert)),
        version: session
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("TLS")
            .replace('_', "."),
    }
}

/// A TLS stream whose errors read as [`trust::words`]: in TLS 1.3 a server refuses a client
/// certificate after the handshake, so the refusal arrives on the first read.
struct Worded(tokio_rustls::client::TlsStream<Box<dyn TlsTransport>>);

impl TlsStream for Worded {}

fn worded<T>(r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    r.map_err(|e| {
        if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
            io::Error::new(e.kind(), trust::io_words(&e))
        } else {
            e
        }
    })
}

impl AsyncRead for Worded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        worded(Pin::new(&mut self.0).poll_read(cx, buf))
    }
}

impl AsyncWrite for Worded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        worded(Pin::new(&mut self.0).poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        worded(Pin::new(&mut self.0).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        worded(Pin::new(&mut self.0).poll_shutdown(cx))
    }
}
