//! Compiling a component (with Winch, through the compile cache) or loading precompiled
//! code (`.cwasm`), with the checks that come first: the header, the size of the code, and
//! the component model's async ABI, which is refused with a way out.

use std::borrow::Cow;

use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

#[cfg(feature = "compiler")]
use crate::cache;
use crate::limits::CodeLimits;
use crate::report::Failure;
use crate::text;

use super::Runner;
#[cfg(feature = "compiler")]
use super::source::Digests;
use super::source::{Code, FileCode};

/// Why a runtime-only build refuses a `.wasm`.
#[cfg(not(feature = "compiler"))]
const NO_COMPILER: &str = "this healthprobe is runtime-only (built without the compiler): it runs bundled probes and .cwasm files; precompile the component with `healthprobe compile` from a full build";

/// Refuses a component with a function body larger than `limits.max_function_size`, or
/// more code than `limits.max_code_size` in all, before the compiler sees it. Anything the
/// parser cannot read is left to the compiler, whose validation reports it.
#[cfg(feature = "compiler")]
fn check_code(bytes: &[u8], limits: &CodeLimits) -> Result<(), Failure> {
    let over = |what: &str, size: u64, limit: u64, flag: &str| {
        Failure::BadInput(format!(
            "{what} {} is over the limit of {} (compiling it could take more memory than the \
             host should spend); raise {flag} if you trust the component",
            text::size(size),
            text::size(limit)
        ))
    };
    let mut total: u64 = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload else {
            if payload.is_err() {
                return Ok(());
            }
            continue;
        };
        let size = body.range().len() as u64;
        if size > limits.max_function_size {
            return Err(over(
                "a function of",
                size,
                limits.max_function_size,
                "--max-function-size",
            ));
        }
        total += size;
        if total > limits.max_code_size {
            return Err(over(
                "the code of the component, more than",
                total,
                limits.max_code_size,
                "--max-code-size",
            ));
        }
    }
    Ok(())
}

/// The compile cache's key for a component: the hex BLAKE3 of its bytes.
#[cfg(feature = "compiler")]
pub fn cache_key(bytes: &[u8]) -> String {
    Digests::of(bytes, false, true).key.unwrap_or_default()
}

fn core_module() -> Failure {
    Failure::BadInput(
        "a precompiled core module, not a component; precompile the component with `healthprobe compile`".into(),
    )
}

/// Recognises the most common wrong inputs by their header before handing them to the
/// compiler, whose messages for them are obscure.
fn check_header(bytes: &[u8]) -> Result<(), Failure> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.starts_with(b"\x7fELF") {
        return Err(Failure::BadInput(
            "a native (ELF) file that is not a usable precompiled component: truncated, corrupt, or not made by `healthprobe compile`; recompile the .wasm".into(),
        ));
    }
    const CORE_VERSION: &[u8] = &[1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(Failure::BadInput(
            "not a WebAssembly file (it does not start with the \\0asm header); give a component built for wasm32-wasip2".into(),
        ));
    }
    if &bytes[4..8] == CORE_VERSION {
        return Err(Failure::BadInput(
            "a core WebAssembly module, not a component; build it with `cargo build --target wasm32-wasip2` or wrap it with `wasm-tools component new`".into(),
        ));
    }
    Ok(())
}

/// What a timeout while compiling says. A compiler cannot be paused and resumed, so a run
/// whose timeout is shorter than the compile never gets further than the last one.
pub(super) const COMPILING: &str = "while compiling the probe (nothing is kept of a compile cut short: \
    compile it once, ahead of time, with `healthprobe compile` when building the image, or \
    give the first run a longer --timeout; later runs load it from the compile cache)";

/// Why a component did not compile, for the operator. One that uses the component model's
/// async ABI is valid WebAssembly, only not accepted here, and its toolchain can usually
/// leave it out, so the message says how.
#[cfg(feature = "compiler")]
fn not_compiled(bytes: &[u8], e: &wasmtime::Error) -> Failure {
    if needs_async(bytes) {
        return Failure::BadInput(ASYNC_REFUSED.into());
    }
    Failure::BadInput(format!(
        "not a valid WebAssembly component: {}",
        text::chain(e)
    ))
}

/// The engine leaves the component model's async ABI off: wasmtime 48 calls its support
/// very incomplete, and its tasks, streams and cancellation would be new ground for the
/// deadline, fuel and memory bounds every run relies on.
#[cfg(feature = "compiler")]
const ASYNC_REFUSED: &str = "the component uses the component model's async ABI (async \
    exports, tasks, streams or futures), which healthprobe does not run; build it without: \
    componentize-qjs --sync (jco componentize --backend quickjs --backend-qjs-disable-async); \
    componentize-js, componentize-py and wit-bindgen's synchronous bindings need no flag";

/// Whether `bytes` is a component that validates with every WebAssembly feature but not
/// without the component model's async ones.
#[cfg(feature = "compiler")]
fn needs_async(bytes: &[u8]) -> bool {
    use wasmparser::{Validator, WasmFeatures};
    let asynchronous = WasmFeatures::CM_ASYNC
        | WasmFeatures::CM_ASYNC_STACKFUL
        | WasmFeatures::CM_MORE_ASYNC_BUILTINS
        | WasmFeatures::CM_THREADING
        | WasmFeatures::CM_ERROR_CONTEXT;
    let valid = |features| {
        Validator::new_with_features(features)
            .validate_all(bytes)
            .is_ok()
    };
    valid(WasmFeatures::all()) && !valid(WasmFeatures::all() - asynchronous)
}

impl Runner {
    /// Compiles a component through the compile cache, if there is one.
    #[cfg(feature = "compiler")]
    pub(super) async fn compile_cached(
        &self,
        file: &FileCode,
        limits: &CodeLimits,
    ) -> Result<(Component, String), Failure> {
        let Some(cache) = &self.cache else {
            let component = self.compile(file.read()?, limits).await?;
            return Ok((
                component,
                cache::Outcome::Unavailable("disabled".into()).to_string(),
            ));
        };
        let engine = &self.jit()?.engine;
        let key = file.key.as_deref().expect("a component is always hashed");
        let entry = cache.entry(key, engine);
        let mut replaced = false;
        match cache.verify(&entry) {
            Ok(true) => {
                // SAFETY: the entry is intact (its checksum matches, now or when this very
                // file, unchanged since, was checked before) and was written by
                // `store` below from this engine's compiler; wasmtime still checks its
                // header, version and settings. Entries are replaced by renaming, never
                // written in place, so the mapped file does not change under the code.
                // Mapped, neither the code nor the memory images are copied; read into
                // memory (and checked again), it also loads from a `noexec` mount.
                #[allow(unsafe_code)]
                let loaded = unsafe {
                    Component::deserialize_file(engine, &entry).or_else(
                        |e| match cache::Cache::load(&entry) {
                            Ok(Some(bytes)) => Component::deserialize(engine, &bytes),
                            _ => Err(e),
                        },
                    )
                };
                match loaded {
                    Ok(c) => return Ok((c, cache::Outcome::Hit(entry).to_string())),
                    Err(_) => replaced = true,
                }
            }
            Ok(false) => {}
            Err(cache::Corrupt) => replaced = true,
        }
        let component = self.compile(file.read()?, limits).await?;
        let outcome = match component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|code| cache.store(&entry, &code).map_err(|e| text::io_error(&e)))
        {
            Ok(()) if replaced => cache::Outcome::Replaced(entry),
            Ok(()) => cache::Outcome::Stored(entry),
            Err(why) => cache::Outcome::Unavailable(format!(
                "cannot write to {}: {why}",
                cache.dir().display()
            )),
        };
        Ok((component, outcome.to_string()))
    }

    /// Without a compiler, a component must come precompiled.
    #[cfg(not(feature = "compiler"))]
    pub(super) async fn compile_cached(
        &self,
        _file: &FileCode,
        _limits: &CodeLimits,
    ) -> Result<(Component, String), Failure> {
        Err(Failure::BadInput(NO_COMPILER.into()))
    }

    /// Compiles a component with the run-time engine's compiler (Winch).
    #[cfg(feature = "compiler")]
    async fn compile(&self, bytes: Vec<u8>, limits: &CodeLimits) -> Result<Component, Failure> {
        check_header(&bytes)?;
        check_code(&bytes, limits)?;
        // A compiler cannot be interrupted; it runs on the blocking pool so that the caller's
        // deadline still ends the run (the thread finishes in the background, or the
        // process exits).
        let engine = self.jit()?.engine.clone();
        tokio::task::spawn_blocking(move || {
            Component::new(&engine, &bytes).map_err(|e| not_compiled(&bytes, &e))
        })
        .await
        .map_err(|e| Failure::Setup(format!("compiler thread failed: {e}")))?
    }

    /// Loads a `.cwasm` made by `healthprobe compile`.
    pub(super) fn deserialize(
        &self,
        kind: Precompiled,
        bytes: &[u8],
    ) -> Result<Component, Failure> {
        if kind != Precompiled::Component {
            return Err(core_module());
        }
        // SAFETY: wasmtime requires the bytes to come from `precompile_component` of a
        // compatible engine; it checks the header, the wasmtime version and the engine
        // settings (fuel, epochs, features) and refuses a mismatch with an error. Only
        // crafted native code could get past those checks, which is why the README says to
        // run only .cwasm files you compiled (and to pin them with --sha256).
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.aot()?.engine, bytes) };
        component.map_err(|e| {
            Failure::BadInput(format!(
                "cannot load the precompiled component: {}; recompile the .wasm with `healthprobe compile` from this healthprobe",
                text::chain(&e)
            ))
        })
    }

    /// Maps a `.cwasm` made by `healthprobe compile` instead of reading it: the code and
    /// the memory images are not copied (35 MB for the Python example). Where the file
    /// cannot be mapped executable (a `noexec` mount), it is read.
    pub(super) fn deserialize_file(
        &self,
        kind: Precompiled,
        file: &FileCode,
    ) -> Result<Component, Failure> {
        if kind != Precompiled::Component {
            return Err(core_module());
        }
        // SAFETY: as for `deserialize`; and the file must not change while it is mapped,
        // which `healthprobe compile` never does (it writes a new file and renames it) and
        // the README asks of anyone replacing one.
        #[allow(unsafe_code)]
        let mapped = unsafe { Component::deserialize_file(&self.aot()?.engine, &file.path) };
        match mapped {
            Ok(component) => Ok(component),
            Err(_) => self.deserialize(kind, &file.read()?),
        }
    }

    /// Compiles a component ahead of time for this engine (`healthprobe compile`); a
    /// bundled probe is already compiled.
    pub fn precompile(
        &self,
        code: &Code,
        limits: &CodeLimits,
    ) -> Result<Cow<'static, [u8]>, Failure> {
        let bytes = match code {
            Code::Bundled(b) => {
                return b.precompiled().map_err(|why| {
                    Failure::BadInput(format!("the bundled probe {} is corrupt: {why}", b.name))
                });
            }
            Code::File(file) => &file.read()?,
        };
        if Engine::detect_precompiled(bytes).is_some() {
            return Err(Failure::BadInput(
                "already precompiled; give the .wasm component".into(),
            ));
        }
        check_header(bytes)?;
        #[cfg(feature = "compiler")]
        check_code(bytes, limits)?;
        #[cfg(not(feature = "compiler"))]
        let _ = limits;
        #[cfg(feature = "compiler")]
        return super::engine_config::config(None)
            .and_then(|c| Engine::new(&c))
            .map_err(|e| Failure::Setup(format!("cannot start the compiler: {e}")))?
            .precompile_component(bytes)
            .map(Cow::Owned)
            .map_err(|e| not_compiled(bytes, &e));
        #[cfg(not(feature = "compiler"))]
        Err(Failure::BadInput(NO_COMPILER.into()))
    }
}
