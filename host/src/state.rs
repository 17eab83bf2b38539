//! The per-store host state: one per probe run, holding each import's context, built
//! from the run's [`RunInputs`] ([`HostState::new`]), and the one place that wires the
//! imports to it ([`add_to_linker`]).

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_tls::{WasiTlsCtxView, WasiTlsView};

use crate::activity::Activity;
use crate::imports;
use crate::imports::RunInputs;
use crate::imports::http::HttpCtx;
use crate::imports::sockets::{SocketCap, SocketsView};
use crate::imports::tls::TlsCtx;
use crate::imports::wasi::CappedRandom;
use crate::imports::wasi_http::{WasiHttp, WasiHttpParts};
use crate::limits::{self, Limiter};
use crate::report::Failure;
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
    pub tls: TlsCtx,
}

impl HostState {
    /// Each import's context for one run, built from `run`.
    pub fn new(run: &RunInputs) -> Result<Self, Failure> {
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits::max_handles(run.limits.max_sockets));
        let mut sockets = SocketCap::new(run);
        // wasi:http's connections count against the same cap as the WASI sockets.
        let wasi_http = WasiHttp::new(run, sockets.conn_cap(&table));
        Ok(Self {
            wasi: imports::wasi::ctx(run)?,
            table,
            limiter: Limiter::new(run.limits.max_memory, run.exceeded.clone()),
            sockets,
            sandbox: run.sandbox.clone(),
            activity: run.activity.clone(),
            http: HttpCtx::new(run),
            wasi_http,
            tls: imports::tls::ctx(run),
        })
    }
}

/// Registers every import with `linker`, each reaching its own context in the
/// `HostState`; `wasi:http` only if `wasi_http` (see
/// [`imports::wasi_http::imported_by`]).
pub fn add_to_linker(linker: &mut Linker<HostState>, wasi_http: bool) -> wasmtime::Result<()> {
    imports::wasi::add_to_linker(linker, |s| CappedRandom {
        ctx: s.wasi.random(),
        limiter: &s.limiter,
    })?;
    imports::http::add_to_linker(linker, |s| &mut s.http)?;
    imports::tls::add_to_linker(linker, |s| &mut s.tls)?;
    if wasi_http {
        imports::wasi_http::add_to_linker(linker, |s| WasiHttpParts {
            state: &mut s.wasi_http,
            table: &mut s.table,
        })?;
    }
    // After WASI: they replace some of WASI's functions.
    imports::lookup::add_to_linker(linker, HostState::sockets_view)?;
    imports::sockets::add_to_linker(linker, HostState::sockets_view)
}

impl HostState {
    /// What the shadowed socket functions (name lookup, socket creation, connect) work
    /// through.
    fn sockets_view(&mut self) -> SocketsView<'_> {
        SocketsView {
            sockets: WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            sandbox: &self.sandbox,
            cap: &mut self.sockets,
        }
    }
}

impl WasiTlsView for HostState {
    fn tls(&mut self) -> WasiTlsCtxView<'_> {
        self.tls.view(&mut self.table)
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
