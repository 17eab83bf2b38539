//! `wasi:tls/types` (wasmtime-wasi-tls): a probe upgrades one of its own TCP connections to
//! TLS by handing the connection's streams and a server name to the host.
//!
//! The rules are the run's: the TCP connection underneath was checked against the network
//! policy when it was made and counts against `--max-sockets`; every wait on the handshake
//! and on the TLS streams is a `wasi:io` poll, bounded by the run's deadline like any other;
//! the trust is the operator's ([`crate::tls::Trust`]), so the probe asks for TLS to a name
//! and never sees a CA file or a private key. The interface cannot ask to skip verification:
//! only `--allow-insecure-tls` turns it off, for every `wasi:tls` connection of the run.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime::component::Linker;
use wasmtime_wasi_tls::{
    TlsProvider, TlsStream, TlsTransport, WasiTlsCtx, WasiTlsCtxBuilder, WasiTlsCtxView,
    WasiTlsView,
};

use crate::imports::Capability;
use crate::sandbox::Sandbox;
use crate::state::HostState;
use crate::tls;

/// What `inspect` says the import asks for.
pub const CAPABILITY: Capability = Capability {
    key: "tls",
    description: "TLS over the probe's own TCP connections (wasi:tls)",
    interfaces: &["wasi:tls/types"],
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

/// The per-run context: the sandbox's trust, verifying unless insecure TLS is granted.
pub fn ctx(sandbox: &Sandbox) -> WasiTlsCtx {
    WasiTlsCtxBuilder::new()
        .provider(Box::new(Provider {
            config: sandbox.tls.config(!sandbox.insecure_tls),
        }))
        .build()
}

/// Registers `wasi:tls/types`, served from [`HostState::tls`].
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut opts = wasmtime_wasi_tls::p2::LinkOptions::default();
    opts.tls(true);
    wasmtime_wasi_tls::p2::add_to_linker(linker, &opts)
}

impl WasiTlsView for HostState {
    fn tls(&mut self) -> WasiTlsCtxView<'_> {
        WasiTlsCtxView {
            ctx: &mut self.tls,
            table: &mut self.table,
        }
    }
}

/// Handshakes with rustls and the operator's trust; failures in words.
struct Provider {
    config: Arc<ClientConfig>,
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<Box<dyn TlsStream>, wasmtime_wasi_tls::Error>> + Send>>;

impl TlsProvider for Provider {
    fn connect(&self, server_name: String, transport: Box<dyn TlsTransport>) -> Handshake {
        let config = self.config.clone();
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
                .map_err(|e| wasmtime_wasi_tls::Error::msg(tls::io_words(&e)))?;
            Ok(Box::new(Worded(stream)) as Box<dyn TlsStream>)
        })
    }
}

/// A TLS stream whose errors read as [`tls::words`]: in TLS 1.3 a server refuses a client
/// certificate after the handshake, so the refusal arrives on the first read.
struct Worded(tokio_rustls::client::TlsStream<Box<dyn TlsTransport>>);

impl TlsStream for Worded {}

fn worded<T>(r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    r.map_err(|e| {
        if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
            io::Error::new(e.kind(), tls::io_words(&e))
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
