//! The per-store host state: one per probe run, holding each import's context.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::imports::http::HttpCtx;
use crate::imports::sockets::SocketCap;
use crate::imports::wasi_http::WasiHttp;
use crate::limits::Limiter;
use crate::sandbox::Sandbox;

/// Everything the host keeps for one probe run: one instance, one store, one of these.
pub struct HostState {
    /// The guest's WASI context: clocks, random, policy-checked sockets, captured stdio.
    pub wasi: WasiCtx,
    /// WASI resources (streams, sockets, pollables).
    pub table: ResourceTable,
    /// Memory and table caps.
    pub limiter: Limiter,
    /// The socket cap.
    pub sockets: SocketCap,
    /// What the probe is granted; its network policies are shared with the WASI socket
    /// check, the name lookup and the HTTP resolver.
    pub sandbox: Sandbox,
    /// The host call in flight, shared by the imports that record it: named in the
    /// timeout message if the deadline hits it.
    pub activity: Activity,
    /// The `http` import's context, with the run's deadline.
    pub http: HttpCtx,
    /// `wasi:http`'s context and the hooks that send its requests.
    pub wasi_http: WasiHttp,
    /// `wasi:tls`'s and `healthprobe:tls`'s context: the operator's trust, ALPN and the
    /// last peer.
    pub tls: crate::imports::tls::TlsCtx,
}

/// The host call a probe is blocked in, shared with the runner: when the deadline drops
/// the store, this is what is left to say what the probe was waiting for.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Mutex<Option<String>>>);

impl Activity {
    /// Records what the probe now waits for, or `None` once the call returned. Not a drop
    /// guard on purpose: when the deadline cancels the call, the record must survive the
    /// dropped future so the runner can name it.
    pub fn set(&self, what: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }

    /// Clears the record if it still says `what`: a request that ends in the background
    /// must not erase what another one recorded since.
    pub fn clear_if(&self, what: &str) {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_deref() == Some(what) {
            *current = None;
        }
    }

    /// What the probe is waiting for, if it is in a host call that records it.
    pub fn current(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        // Requests leave the store, so each call hands the hooks the cap as it stands.
        self.wasi_http.hooks.cap = self.sockets.conn_cap(&self.table);
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.wasi_http.ctx,
            table: &mut self.table,
            hooks: &mut self.wasi_http.hooks,
        }
    }
}
