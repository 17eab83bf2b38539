//! The runner's engines, each made on first use with the linker of the host's imports:
//! one for precompiled code (bundled probes, `.cwasm` files) and, with the compiler, one
//! that compiles `.wasm` files at run time.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
use std::sync::Arc;
use std::sync::OnceLock;

use wasmtime::Engine;
use wasmtime::component::Linker;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
use crate::bundled;
use crate::limits;
use crate::report::Failure;
use crate::state::HostState;

use super::Runner;
use super::clock::Clock;

/// An engine and the linkers of the host's imports for it.
pub(super) struct Backend {
    pub(super) engine: Engine,
    /// Every import but `wasi:http`.
    linker: Linker<HostState>,
    /// Every import, `wasi:http` included, made only for a component that imports it:
    /// registering its fifty-odd functions would cost every other check start-up time.
    with_wasi_http: OnceLock<Linker<HostState>>,
}

impl Backend {
    /// Builds the engine and a linker with every import the host provides, and has the
    /// clock advance the engine's epoch.
    pub(super) fn new(
        config: wasmtime::Result<wasmtime::Config>,
        clock: &Clock,
        pool: Option<&wasmtime::PoolingAllocationConfig>,
    ) -> Result<Self, Failure> {
        let engine = config
            .and_then(|mut c| {
                if let Some(pool) = pool {
                    c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
                        pool.clone(),
                    ));
                }
                Engine::new(&c)
            })
            .map_err(|e| Failure::Setup(format!("cannot start the WebAssembly engine: {e}")))?;
        let linker = Self::linker(&engine, false)?;
        clock.tick(engine.clone());
        Ok(Self {
            engine,
            linker,
            with_wasi_http: OnceLock::new(),
        })
    }

    fn linker(engine: &Engine, wasi_http: bool) -> Result<Linker<HostState>, Failure> {
        let mut linker = Linker::new(engine);
        crate::state::add_to_linker(&mut linker, wasi_http)
            .map_err(|e| Failure::Setup(format!("cannot set up the host functions: {e}")))?;
        Ok(linker)
    }

    /// The linker for `component`: with `wasi:http` only if it imports it.
    pub(super) fn linker_for(
        &self,
        component: &wasmtime::component::Component,
    ) -> Result<&Linker<HostState>, Failure> {
        if !crate::imports::wasi_http::imported_by(component) {
            return Ok(&self.linker);
        }
        if let Some(l) = self.with_wasi_http.get() {
            return Ok(l);
        }
        let made = Self::linker(&self.engine, true)?;
        Ok(self.with_wasi_http.get_or_init(|| made))
    }
}

/// The most runs at once a pooled runner may be sized for (see [`pool`]).
pub const POOL_SLOTS: u32 = 1000;

/// Core instances, memories and tables a run is given room for in the pools, on average.
const PARTS_PER_RUN: u32 = 4;

/// The pooling allocator's settings for a long-lived runner that runs at most `slots` probes
/// at once (at most [`POOL_SLOTS`]).
///
/// Sized so that any component the on-demand allocator would run also fits (the store's
/// own caps, in `limits.rs`, stay the ones that refuse): a component that does not is
/// refused when it is loaded, with wasmtime's reason. Address space, not memory, is what
/// the pools take up front: about 4 GiB of it per memory slot, as for every memory; and a
/// mapping or two per slot, so the slots follow the runs that may be in flight, never the
/// number of checks.
pub(super) fn pool(slots: u32) -> wasmtime::PoolingAllocationConfig {
    // A run's store may outlive its turn for a while (a run ended by its caller's clock
    // is dropped at its task's next turn, a store holding sockets by a background thread),
    // so runs get twice their number of slots; and a component is several core instances,
    // each with its memories and tables (one to three of each for a probe built the usual
    // way, more for an interpreter).
    let runs = slots.clamp(1, POOL_SLOTS / 2) * 2;
    let parts = (runs * PARTS_PER_RUN).min(POOL_SLOTS * PARTS_PER_RUN / 2);
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(runs)
        .total_stacks(runs)
        .total_core_instances(parts)
        .total_memories(parts)
        .total_tables(parts)
        .max_memories_per_module(limits::MAX_MEMORIES)
        .max_tables_per_module(limits::MAX_TABLES)
        .table_elements(limits::MAX_TABLE_ELEMENTS)
        // Only bounds on what an instance's bookkeeping may take (it is allocated apart):
        // generous, so that an interpreter's thousands of functions fit.
        .max_core_instance_size(64 << 20)
        .max_component_instance_size(256 << 20)
        // A freed memory is handed back to the kernel in batches: one madvise per slot
        // and run had the kernel flushing every core's TLB hundreds of times a second
        // (/probe's CPU per probe fell by a fifth). What a batch holds back is a few
        // dozen small memories.
        .decommit_batch_size(32);
    pool
}

/// The backend in `cell`, made by `make` on first use. Two threads racing here both make
/// one; the loser's is dropped (its engine only keeps being ticked).
pub(super) fn backend(
    cell: &OnceLock<Backend>,
    make: impl FnOnce() -> Result<Backend, Failure>,
) -> Result<&Backend, Failure> {
    if let Some(b) = cell.get() {
        return Ok(b);
    }
    let made = make()?;
    Ok(cell.get_or_init(|| made))
}

impl Runner {
    /// The engine for precompiled code.
    pub(super) fn aot(&self) -> Result<&Backend, Failure> {
        backend(&self.aot, || {
            // Without in-place code (not x86_64) and without a compiler, there is nothing
            // to change.
            #[cfg_attr(
                not(any(feature = "compiler", all(target_os = "linux", target_arch = "x86_64"))),
                allow(
                    unused_mut,
                    clippy::map_identity,
                    reason = "nothing to set on this build"
                )
            )]
            let config = super::engine_config::config(None).map(|mut c| {
                #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
                c.with_custom_code_memory(Some(Arc::new(bundled::InPlace)));
                // It only loads code: setting up Cranelift would cost every run time and
                // memory for nothing (`precompile` makes its own compiling engine).
                #[cfg(feature = "compiler")]
                c.enable_compiler(false);
                c
            });
            Backend::new(config, &self.clock, self.pool.as_ref())
        })
    }

    /// The engine that compiles `.wasm` files at run time.
    #[cfg(feature = "compiler")]
    pub(super) fn jit(&self) -> Result<&Backend, Failure> {
        backend(&self.jit, || {
            let config =
                super::engine_config::config(Some(env!("HEALTHPROBE_TARGET"))).map(|mut c| {
                    c.strategy(wasmtime::Strategy::Winch);
                    // Winch leaves the trampolines between the host and the guest's functions
                    // to Cranelift, one for every function a table or an export reaches: a
                    // third of a first run of a big component. They are a few instructions
                    // each; optimising them bought nothing, and compiling them takes less time
                    // unoptimised, with the single-pass register allocator.
                    c.cranelift_opt_level(wasmtime::OptLevel::None);
                    c.cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
                    c
                });
            Backend::new(config, &self.clock, self.pool.as_ref())
        })
    }

    /// The engine that compiles `.wasm` files at run time; its settings key the compile
    /// cache.
    #[cfg(feature = "compiler")]
    pub fn wasm_engine(&self) -> Result<&Engine, Failure> {
        Ok(&self.jit()?.engine)
    }

    /// The `.wasm` engine, if it was made.
    pub(super) fn jit_if_made(&self) -> Option<&Backend> {
        #[cfg(feature = "compiler")]
        return self.jit.get();
        #[cfg(not(feature = "compiler"))]
        None
    }
}
