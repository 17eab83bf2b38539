//! The caps of a run ([`Limits`]) and the ones enforced inside the store: memory, tables,
//! instances ([`Limiter`]); the socket cap is enforced by `crate::imports::sockets`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Caps for one run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole run: loading, compiling, instantiating, `describe`, `check`, host calls.
    pub timeout: Duration,
    /// WebAssembly fuel (roughly one unit per instruction).
    pub fuel: u64,
    /// Largest size of each linear memory, in bytes.
    pub max_memory: u64,
    /// Sockets (TCP and UDP) the probe may hold at once.
    pub max_sockets: usize,
    /// Bytes of guest stdout and of guest stderr kept (each).
    pub capture_bytes: usize,
    /// Caps on the probe file and its code, checked before anything is compiled.
    pub code: CodeLimits,
}

/// Caps checked before a probe is compiled or loaded: compiling is not interruptible and
/// its memory is not a linear memory, so these are what keep a compile bomb (a huge file,
/// or a few enormous functions) from exhausting the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeLimits {
    /// Largest probe file (`.wasm` or `.cwasm`), in bytes.
    pub max_size: u64,
    /// Largest function body, in bytes of WebAssembly code: Cranelift (`healthprobe
    /// compile`) works on a function at a time and needs up to 1.4 KB of memory per byte of
    /// branchy code.
    pub max_function_size: u64,
    /// Largest sum of all function bodies: Winch (`run`) keeps what it compiled, about 26
    /// bytes of memory per byte of branchy code.
    pub max_code_size: u64,
}

impl Default for CodeLimits {
    fn default() -> Self {
        Self {
            // Python (componentize-py, 18 MB) and JavaScript (componentize-js, 12 MB)
            // probes and their 36-38 MB `.cwasm` files fit with room to spare.
            max_size: 64 << 20,
            // CPython's largest function is 417 KiB, SpiderMonkey's 168 KiB.
            max_function_size: 512 << 10,
            // CPython's code is 6.2 MiB, SpiderMonkey's 8.8 MiB.
            max_code_size: 16 << 20,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            fuel: DEFAULT_FUEL,
            max_memory: 64 * 1024 * 1024,
            max_sockets: DEFAULT_MAX_SOCKETS,
            capture_bytes: 16 * 1024,
            code: CodeLimits::default(),
        }
    }
}

/// Default fuel: far more than any honest check needs (the bundled probes use a few
/// million), and small enough that a runaway loop with a long `--timeout` still ends.
pub const DEFAULT_FUEL: u64 = 10_000_000_000;

/// Default socket cap: a check holds one or two connections; a probe that fans out to a
/// cluster's nodes still fits, while a socket flood ends long before the process's file
/// descriptor limit (often 1024) and the cost of closing its sockets stays negligible.
pub const DEFAULT_MAX_SOCKETS: usize = 100;

/// Host resources (handles: streams, sockets, pollables, `wasi:http` fields, requests and
/// bodies) a probe may hold at once, before its sockets: an honest probe holds a few dozen.
/// Each is host memory the guest's own memory cap does not see, so a flood of them ends
/// here, long before wasmtime's own cap of 100,000 component handles.
pub const BASE_HANDLES: usize = 1_000;

/// Handles each allowed socket may need besides itself: its input and output streams and a
/// pollable or two.
const HANDLES_PER_SOCKET: usize = 4;

/// The handle cap of a run allowed `max_sockets` sockets.
pub fn max_handles(max_sockets: usize) -> usize {
    BASE_HANDLES.saturating_add(max_sockets.saturating_mul(HANDLES_PER_SOCKET))
}

/// Largest number of table elements a probe may have in one table.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Core instances, memories and tables a probe component may create; a component made of
/// the usual adapter pieces needs a handful.
const MAX_INSTANCES: usize = 64;
pub(crate) const MAX_TABLES: u32 = 64;
pub(crate) const MAX_MEMORIES: u32 = 16;

/// A cap the probe tried to exceed; the limiter returns it as the trap's error so the host
/// can classify the failure by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// A linear memory would grow past `--max-memory`.
    #[error("memory limit ({})", crate::text::size(*.limit))]
    Memory {
        /// The cap in bytes.
        limit: u64,
    },
    /// A table would grow past [`MAX_TABLE_ELEMENTS`].
    #[error("table limit ({limit} elements)")]
    Table {
        /// The cap in elements.
        limit: usize,
    },
    /// The probe asked the host for more random bytes at once than `--max-memory`, which
    /// the host would have to allocate before the guest's memory could refuse them.
    #[error("random bytes: {} requested, limit {}", crate::text::size(*.requested), crate::text::size(*.limit))]
    RandomBytes {
        /// Bytes asked for.
        requested: u64,
        /// The cap in bytes.
        limit: u64,
    },
    /// One socket more than `--max-sockets` was asked for.
    #[error("socket limit ({limit} open at once)")]
    Sockets {
        /// The cap in sockets.
        limit: usize,
    },
    /// Host memory held for the guest (`wasi:http` header maps, request bodies and strings)
    /// would pass `--max-memory`.
    #[error("host memory limit ({})", crate::text::size(*.limit))]
    HostMemory {
        /// The cap in bytes.
        limit: u64,
    },
    /// One host resource more than [`max_handles`] allows was asked for.
    #[error("resource limit ({limit} host resources held at once)")]
    Handles {
        /// The cap in handles.
        limit: usize,
    },
}

impl LimitExceeded {
    /// The flag that raises this cap, if the operator can.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            LimitExceeded::Memory { .. }
            | LimitExceeded::RandomBytes { .. }
            | LimitExceeded::HostMemory { .. } => Some("--max-memory"),
            LimitExceeded::Sockets { .. } => Some("--max-sockets"),
            // An honest probe holds a few dozen; the cap grows with --max-sockets for the
            // streams of each socket, but raising it for a probe that hoards is no remedy.
            LimitExceeded::Table { .. } | LimitExceeded::Handles { .. } => None,
        }
    }
}

/// The first cap a run hit, shared between the store (which records it) and the runner
/// (which names it in the verdict even when the probe handled the refusal itself and the
/// store is gone).
#[derive(Debug, Clone, Default)]
pub struct Exceeded(Arc<Mutex<Option<LimitExceeded>>>);

impl Exceeded {
    /// Records `limit` unless an earlier cap was hit: the first is the cause.
    pub fn record(&self, limit: LimitExceeded) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(limit);
    }

    /// The first cap hit, if any.
    pub fn get(&self) -> Option<LimitExceeded> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The store's [`ResourceLimiter`]: refuses growth past the caps with a typed error, which
/// wasmtime turns into a trap. Refusing with `Ok(false)` instead would let a guest allocator
/// abort with an anonymous `unreachable`, hiding the cause.
#[derive(Debug)]
pub struct Limiter {
    max_memory: u64,
    exceeded: Exceeded,
}

impl Limiter {
    /// A limiter capping every linear memory at `max_memory` bytes; a refusal is recorded
    /// in `exceeded`.
    pub fn new(max_memory: u64, exceeded: Exceeded) -> Self {
        Self {
            max_memory,
            exceeded,
        }
    }

    /// The cap that was hit, if any.
    pub fn exceeded(&self) -> Option<LimitExceeded> {
        self.exceeded.get()
    }

    /// Records a cap the host found hit elsewhere, so the verdict names it.
    pub fn record(&self, limit: LimitExceeded) {
        self.exceeded.record(limit);
    }

    /// Checks a buffer of `len` bytes the host is asked to allocate on the guest's behalf
    /// against the memory cap, before it is allocated.
    pub fn host_buffer(&self, len: u64) -> wasmtime::Result<()> {
        if len <= self.max_memory {
            return Ok(());
        }
        let e = LimitExceeded::RandomBytes {
            requested: len,
            limit: self.max_memory,
        };
        self.exceeded.record(e);
        Err(e.into())
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            let e = LimitExceeded::Memory {
                limit: self.max_memory,
            };
            self.exceeded.record(e);
            return Err(e.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            let e = LimitExceeded::Table {
                limit: MAX_TABLE_ELEMENTS,
            };
            self.exceeded.record(e);
            return Err(e.into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_a_cap_is_a_typed_error_and_remembered() {
        let mut l = Limiter::new(1 << 20, Exceeded::default());
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        let e = l
            .memory_growing(1 << 20, (1 << 20) + 65536, None)
            .unwrap_err();
        assert_eq!(
            e.downcast_ref::<LimitExceeded>(),
            Some(&LimitExceeded::Memory { limit: 1 << 20 })
        );
        assert_eq!(e.to_string(), "memory limit (1 MiB)");

        let mut l = Limiter::new(1 << 20, Exceeded::default());
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS, None).unwrap());
        let e = l
            .table_growing(10, MAX_TABLE_ELEMENTS + 1, None)
            .unwrap_err();
        assert_eq!(e.to_string(), "table limit (100000 elements)");
        assert_eq!(
            l.exceeded(),
            Some(LimitExceeded::Table {
                limit: MAX_TABLE_ELEMENTS
            })
        );
    }
}
