//! The per-store host state.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::Limiter;
use crate::policy::NetPolicy;

/// Everything the host keeps for one probe run: one instance, one store, one of these.
pub struct HostState {
    /// The guest's WASI context: clocks, random, policy-checked sockets, captured stdio.
    pub wasi: WasiCtx,
    /// WASI resources (streams, sockets, pollables).
    pub table: ResourceTable,
    /// Memory and table caps.
    pub limiter: Limiter,
    /// Where the probe may connect; shared with the WASI socket check and the HTTP resolver.
    pub policy: NetPolicy,
    /// When the run must be over; every host call derives its timeout from it.
    pub deadline: Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
