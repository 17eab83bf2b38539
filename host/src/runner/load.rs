//! Loading a probe: finding it, reading and verifying it, compiling it (through the compile
//! cache) or loading precompiled code, and linking it against the host's imports.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

use crate::bindings::ProbePre;
use crate::bundled;
#[cfg(feature = "compiler")]
use crate::cache;
use crate::limits::CodeLimits;
use crate::report::Failure;
use crate::state::{Activity, HostState};
use crate::text;

use super::{Runner, Shared};

/// Why a runtime-only build refuses a `.wasm`.
#[cfg(not(feature = "compiler"))]
const NO_COMPILER: &str = "this healthprobe is runtime-only (built without the compiler): it runs bundled probes and .cwasm files; precompile the component with `healthprobe compile` from a full build";

/// Where a probe comes from.
#[derive(Debug, Clone)]
pub enum ProbeSource {
    /// A probe compiled into this binary.
    Bundled(&'static bundled::Bundled),
    /// A component file given by path.
    File(PathBuf),
}

impl ProbeSource {
    /// Resolves the PROBE argument: a bundled name first, else a path.
    pub fn resolve(arg: &str) -> Result<Self, Failure> {
        if let Some(b) = bundled::find(arg) {
            return Ok(Self::Bundled(b));
        }
        let path = Path::new(arg);
        let looks_like_path = arg.contains(std::path::MAIN_SEPARATOR)
            || arg.contains('/')
            || path.extension().is_some();
        if !looks_like_path && !path.exists() {
            return Err(Failure::BadInput(format!(
                "unknown probe '{arg}': not a bundled probe ({}) and no such file; run `healthprobe list` or give a path to a .wasm component",
                bundled::names().join(", ")
            )));
        }
        Ok(Self::File(path.to_path_buf()))
    }

    /// The name used in messages until the probe has described itself.
    pub fn label(&self) -> String {
        match self {
            Self::Bundled(b) => b.name.to_string(),
            Self::File(p) => p.display().to_string(),
        }
    }
}

/// A probe's code: precompiled in the binary, or a file (a component or a `.cwasm`).
#[derive(Debug)]
pub enum Code {
    /// A bundled probe.
    Bundled(&'static bundled::Bundled),
    /// A file, hashed but not kept: a cached or precompiled run never needs its bytes.
    File(FileCode),
}

impl Code {
    /// The size of the component as given (for a bundled probe, before precompiling).
    pub fn size(&self) -> u64 {
        match self {
            Code::Bundled(b) => b.wasm_size as u64,
            Code::File(f) => f.size,
        }
    }

    /// Its SHA-256 (for a bundled probe, of the component as built), if it was computed:
    /// see [`identify`].
    pub fn digest(&self) -> Option<&str> {
        match self {
            Code::Bundled(b) => Some(b.sha256),
            Code::File(f) => f.sha256.as_deref(),
        }
    }

    /// What identifies the code within one process (a digest of its content), if any.
    fn key(&self) -> Option<&str> {
        match self {
            Code::Bundled(b) => Some(b.sha256),
            Code::File(f) => f.key.as_deref().or(f.sha256.as_deref()),
        }
    }
}

/// A probe file. Reading an 18 MB component and a 48 MB cache entry into memory to run
/// it cost more than everything else a cached run of it does, so a component is hashed
/// in a stream (not read at all once the compile cache knows the file), and read whole
/// only to be compiled.
#[derive(Debug)]
pub struct FileCode {
    path: PathBuf,
    size: u64,
    max_size: u64,
    /// The SHA-256, when asked for.
    sha256: Option<String>,
    /// A component's BLAKE3, the compile cache's key: half the time SHA-256 takes here,
    /// which a cached run of a big component spends on every check.
    key: Option<String>,
    /// What a `.cwasm` holds; `None` for anything else.
    precompiled: Option<Precompiled>,
}

impl FileCode {
    /// The file's bytes, read again; refused if they are not the ones hashed.
    fn read(&self) -> Result<Vec<u8>, Failure> {
        let bytes = read_capped(&self.path, self.max_size).map_err(cannot_read)??;
        let again = Digests::of(&bytes, self.sha256.is_some(), self.key.is_some());
        if again.sha256 != self.sha256 || again.key != self.key {
            return Err(Failure::BadInput(
                "the probe file changed while healthprobe read it; run the check again once it is written (replace probe files by renaming, not in place)".into(),
            ));
        }
        Ok(bytes)
    }
}

fn cannot_read(e: std::io::Error) -> Failure {
    Failure::BadInput(format!(
        "cannot read the probe file: {}; check the path",
        text::io_error(&e)
    ))
}

/// Where a component's compile-cache key may be known without reading the component: the
/// compile cache's index of files it has hashed before.
pub(crate) trait KnownKeys {
    /// The key of the file described by `file`, if it was hashed before and has not
    /// changed since.
    fn known(&self, file: &std::fs::Metadata) -> Option<String>;
    /// Remembers `key` for the file that was `before` when hashing began and `after` when
    /// it ended (nothing is remembered if the two differ).
    fn remember(&self, before: &std::fs::Metadata, after: &std::fs::Metadata, key: &str);
}

/// Finds the probe's code, hashed as far as needed: a component's compile-cache key
/// (BLAKE3, or from `known` if it has the file and no SHA-256 is asked), and the SHA-256
/// of any file if `sha256` (pinned, `--verbose`, `inspect`). A `.cwasm` hashed for
/// neither is mapped, never read. A file larger than `limits.max_size` is refused before
/// it is read.
pub(crate) fn identify(
    source: &ProbeSource,
    limits: &CodeLimits,
    sha256: bool,
    known: Option<&dyn KnownKeys>,
) -> Result<Code, Failure> {
    let path = match source {
        ProbeSource::Bundled(b) => return Ok(Code::Bundled(b)),
        ProbeSource::File(path) => path,
    };
    // Reads the ELF header and section table only; a damaged `.cwasm` is not detected and
    // is refused by its header once read, as any other file that is not a component.
    let precompiled = Engine::detect_precompiled_file(path).ok().flatten();
    let key = cfg!(feature = "compiler") && precompiled.is_none();
    let (size, digests) = if sha256 || key {
        hash_capped(path, limits.max_size, sha256, key, known).map_err(cannot_read)??
    } else {
        let size = std::fs::metadata(path).map_err(cannot_read)?.len();
        if size > limits.max_size {
            return Err(too_big(size, limits.max_size));
        }
        (size, Digests::default())
    };
    Ok(Code::File(FileCode {
        path: path.clone(),
        size,
        max_size: limits.max_size,
        sha256: digests.sha256,
        key: digests.key,
        precompiled,
    }))
}

/// The hex digests of a file's content that were asked for.
#[derive(Default)]
struct Digests {
    sha256: Option<String>,
    key: Option<String>,
}

impl Digests {
    fn of(bytes: &[u8], sha256: bool, key: bool) -> Self {
        let mut hashers = Hashers::new(sha256, key);
        hashers.update(bytes);
        hashers.finish()
    }
}

struct Hashers {
    sha256: Option<sha2::Sha256>,
    #[cfg(feature = "compiler")]
    key: Option<blake3::Hasher>,
}

impl Hashers {
    fn new(sha256: bool, key: bool) -> Self {
        use sha2::Digest;
        #[cfg(not(feature = "compiler"))]
        let _ = key;
        Hashers {
            sha256: sha256.then(sha2::Sha256::new),
            #[cfg(feature = "compiler")]
            key: key.then(blake3::Hasher::new),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        #[cfg(feature = "compiler")]
        if let Some(h) = &mut self.key {
            h.update(bytes);
        }
    }

    fn finish(self) -> Digests {
        use sha2::Digest;
        Digests {
            sha256: self.sha256.map(|h| format!("{:x}", h.finalize())),
            #[cfg(feature = "compiler")]
            key: self.key.map(|h| h.finalize().to_hex().to_string()),
            #[cfg(not(feature = "compiler"))]
            key: None,
        }
    }
}

fn too_big(size: u64, max: u64) -> Failure {
    Failure::BadInput(format!(
        "the probe file is {}, over the size limit of {}; raise --max-size if you trust it",
        text::size(size),
        text::size(max)
    ))
}

/// The file's size and digests, read in a stream through a bound, or the refusal if it is
/// larger than `max` (a file that grows after its size was checked is refused too). A key
/// that `known` has is not computed, and the file is not read if nothing else is asked.
fn hash_capped(
    path: &Path,
    max: u64,
    sha256: bool,
    key: bool,
    known: Option<&dyn KnownKeys>,
) -> std::io::Result<Result<(u64, Digests), Failure>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let before = file.metadata()?;
    let size = before.len();
    if size > max {
        return Ok(Err(too_big(size, max)));
    }
    // A pinned or reported SHA-256 is of what runs: the key is then computed alongside it.
    if key
        && !sha256
        && let Some(k) = known.and_then(|k| k.known(&before))
    {
        let digests = Digests {
            sha256: None,
            key: Some(k),
        };
        return Ok(Ok((size, digests)));
    }
    let mut hasher = Hashers::new(sha256, key);
    let total = crate::fsio::stream((&mut file).take(max.saturating_add(1)), |piece| {
        hasher.update(piece)
    })?;
    if total > max {
        return Ok(Err(too_big(total, max)));
    }
    let digests = hasher.finish();
    if let (Some(k), Some(index)) = (&digests.key, known) {
        index.remember(&before, &file.metadata()?, k);
    }
    Ok(Ok((total, digests)))
}

/// The file's bytes, or the refusal if it is larger than `max`; read through a bound, so a
/// file that grows after its size was checked is refused too.
fn read_capped(path: &Path, max: u64) -> std::io::Result<Result<Vec<u8>, Failure>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > max {
        return Ok(Err(too_big(size, max)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Err(too_big(bytes.len() as u64, max)));
    }
    Ok(Ok(bytes))
}

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

/// Loads a bundled probe's code where it lies, once per process. wasmtime registers the
/// address range of every loaded image in a process-wide table and aborts on a second
/// image at the same addresses; so concurrent first runs of one bundled probe (`serve`,
/// `run --config`), a runner's cache evicting it while a run still holds it, or a second
/// runner, must all get the one component loaded in place: the first load keeps it for
/// the process (its memory stays anyway). Another engine's runner gets a copy instead.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn in_place(
    b: &'static bundled::Bundled,
    engine: &Engine,
    broken: &dyn Fn(String) -> Failure,
) -> Result<Component, Failure> {
    static LOADED: std::sync::Mutex<Vec<(&'static str, Component)>> =
        std::sync::Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = loaded.iter().find(|(name, _)| *name == b.name) {
        if Engine::same(c.engine(), engine) {
            return Ok(c.clone());
        }
        // SAFETY: as for the bytes in place; copied, they belong to wasmtime alone.
        #[allow(unsafe_code)]
        let copy = unsafe { Component::deserialize(engine, b.precompiled().map_err(broken)?) };
        return copy.map_err(|e| broken(text::chain(&e)));
    }
    // SAFETY: the bytes were made by `build.rs` with this binary's engine settings
    // (src/engine.rs); wasmtime still checks them. In place, they live for the process and
    // nothing writes to them (`Bundled::in_place`); the lock above makes this the only
    // image ever loaded from them.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize_raw(engine, b.in_place().map_err(broken)?) }
        .map_err(|e| broken(text::chain(&e)))?;
    loaded.push((b.name, component.clone()));
    Ok(component)
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
const COMPILING: &str = "while compiling the probe (nothing is kept of a compile cut short: \
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

/// Linked probes a runner keeps: more distinct probes than a checks file holds in practice.
const MAX_LINKED: usize = 256;

impl Runner {
    /// Reads, verifies, compiles (or loads precompiled) and links the component; `shared`
    /// receives its sha256 and how its code was obtained.
    pub(super) async fn load(
        &self,
        source: &ProbeSource,
        limits: &CodeLimits,
        shared: Option<&Shared>,
    ) -> Result<ProbePre<HostState>, Failure> {
        let pinned = shared.and_then(|s| s.sha256.as_deref());
        let code = identify(
            source,
            limits,
            pinned.is_some() || shared.is_some_and(|s| s.report_sha256),
            self.known_keys(),
        )?;
        if let Some(shared) = shared {
            let digest = code.digest();
            if let (Some(expected), Some(digest)) = (pinned, digest)
                && !expected.eq_ignore_ascii_case(digest)
            {
                return Err(Failure::BadInput(format!(
                    "sha256 mismatch: the probe is {digest}, --sha256 pins {expected}; refusing to run it"
                )));
            }
            *shared.sha256_seen.lock().unwrap_or_else(|e| e.into_inner()) =
                digest.map(str::to_owned);
        }
        let key = code.key().map(str::to_owned);
        if let Some(pre) = key.as_deref().and_then(|k| self.cached(k)) {
            return Ok(pre);
        }
        // One compile at a time, and none twice: a server loading ten thousand checks of
        // three probes starts them all at once, and every first run but three finds the
        // code linked here when its turn comes.
        let _compiling = self.compiling.lock().await;
        if let Some(pre) = key.as_deref().and_then(|k| self.cached(k)) {
            return Ok(pre);
        }
        let activity = shared.map(|s| s.activity.clone()).unwrap_or_default();
        let (component, how) = self.component(code, limits, &activity).await?;
        if let Some(shared) = shared {
            *shared.code_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
        }
        let pre = self.link(&component)?;
        if let Some(key) = key {
            let mut linked = self.linked.lock().unwrap_or_else(|e| e.into_inner());
            // A bound, so a runner fed ever-changing files cannot grow without limit.
            if linked.len() >= MAX_LINKED {
                linked.clear();
            }
            linked.insert(key, pre.clone());
        }
        Ok(pre)
    }

    /// The compile cache's index of component files, if there is a cache.
    fn known_keys(&self) -> Option<&dyn KnownKeys> {
        #[cfg(feature = "compiler")]
        return self.cache.as_ref().map(|c| c as &dyn KnownKeys);
        #[cfg(not(feature = "compiler"))]
        None
    }

    fn cached(&self, digest: &str) -> Option<ProbePre<HostState>> {
        let linked = self.linked.lock().unwrap_or_else(|e| e.into_inner());
        linked.get(digest).cloned()
    }

    /// The compiled component for `code`, and how it was obtained, for `--verbose`.
    pub(crate) async fn component(
        &self,
        code: Code,
        limits: &CodeLimits,
        activity: &Activity,
    ) -> Result<(Component, String), Failure> {
        match code {
            Code::Bundled(b) => {
                let broken = |why: String| {
                    Failure::BadInput(format!(
                        "the bundled probe {} does not load into this engine: {why}; this healthprobe was built wrongly, rebuild it",
                        b.name
                    ))
                };
                let engine = &self.aot()?.engine;
                #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
                let component = in_place(b, engine, &broken)?;
                // SAFETY: the bytes were made by `build.rs` with this binary's engine
                // settings (src/engine.rs); wasmtime still checks them.
                #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
                #[allow(unsafe_code)]
                let component =
                    unsafe { Component::deserialize(engine, b.precompiled().map_err(broken)?) }
                        .map_err(|e| broken(text::chain(&e)))?;
                Ok((component, "precompiled when healthprobe was built".into()))
            }
            Code::File(file) => {
                if let Some(kind) = file.precompiled {
                    let component = match file.sha256 {
                        // Hashed (pinned, or for --verbose): what runs is what was hashed.
                        Some(_) => self.deserialize(kind, &file.read()?)?,
                        None => self.deserialize_file(kind, &file)?,
                    };
                    return Ok((component, "precompiled file (healthprobe compile)".into()));
                }
                // Named by the timeout if the deadline hits the compile.
                activity.set(Some(COMPILING.into()));
                let compiled = self.compile_cached(&file, limits).await;
                activity.set(None);
                compiled
            }
        }
    }

    /// Compiles a component through the compile cache, if there is one.
    #[cfg(feature = "compiler")]
    async fn compile_cached(
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
    async fn compile_cached(
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
    fn deserialize(&self, kind: Precompiled, bytes: &[u8]) -> Result<Component, Failure> {
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
    fn deserialize_file(&self, kind: Precompiled, file: &FileCode) -> Result<Component, Failure> {
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
        return crate::engine::config(None)
            .and_then(|c| Engine::new(&c))
            .map_err(|e| Failure::Setup(format!("cannot start the compiler: {e}")))?
            .precompile_component(bytes)
            .map(Cow::Owned)
            .map_err(|e| not_compiled(bytes, &e));
        #[cfg(not(feature = "compiler"))]
        Err(Failure::BadInput(NO_COMPILER.into()))
    }

    /// Loads code made by [`Runner::precompile`] the way `run` loads a `.cwasm`, and links
    /// it: `compile` refuses, with `run`'s message, a component that `run` could not run.
    pub fn check_precompiled(&self, compiled: &[u8]) -> Result<(), Failure> {
        let component = self.deserialize(Precompiled::Component, compiled)?;
        self.link(&component).map(drop)
    }

    /// Links a component against the host's imports and checks its exports.
    pub(crate) fn link(&self, component: &Component) -> Result<ProbePre<HostState>, Failure> {
        let backend = [self.aot.get(), self.jit_if_made()]
            .into_iter()
            .flatten()
            .find(|b| Engine::same(&b.engine, component.engine()))
            .ok_or_else(|| {
                Failure::Setup("the component is from another runner's engine".into())
            })?;
        let pre = backend.linker_for(component)?.instantiate_pre(component).map_err(|e| {
            Failure::BadInput(format!(
                "cannot be linked: {}; healthprobe provides healthprobe:probe/http@0.1.0 and WASI 0.2 (wasi:http and wasi:tls included); see `healthprobe inspect` for what the probe imports",
                text::chain(&e)
            ))
        })?;
        ProbePre::new(pre).map_err(|e| {
            Failure::BadInput(format!(
                "not a healthprobe probe: {}; it must export `describe` and `check` of the world healthprobe:probe/probe@0.1.0",
                text::chain(&e)
            ))
        })
    }
}
