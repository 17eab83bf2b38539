//! Loading and running one probe under a deadline: the library API behind `run` and `list`.
//!
//! Three layers bound a run, because no single one covers everything:
//! 1. **Epoch interruption** (the clock thread bumps the engines' epochs every
//!    [`EPOCH_TICK`]): wasm that spins never reaches a host call, so only a check compiled
//!    into the wasm code itself can stop it. Each tick yields to the async executor, and
//!    past the deadline the tick traps with `Trap::Interrupt`.
//! 2. **Async calls under `tokio::time::timeout`**: epochs and fuel do not interrupt host
//!    calls (a WASI socket read, an HTTP request). Every export is called with `*_async` and
//!    the whole load-instantiate-describe-check sequence is one future that is dropped at
//!    the deadline, cancelling whatever host call it is parked in.
//! 3. **The watchdog** the CLI sets ([`Runner::watchdog`], [`crate::cmd::run`]), also run
//!    by the clock thread: for code that blocks a thread and ignores cancellation (a
//!    compiler working on a huge component, a resolver stuck in the C library), it prints
//!    the timeout and exits at the deadline plus a small margin.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Precompiled, Store, Trap, UpdateDeadline};

use crate::bindings::healthprobe::probe::types::{CheckError, ProbeInfo, Status};
use crate::bindings::{Probe, ProbePre};
use crate::bundled;
#[cfg(feature = "compiler")]
use crate::cache;
use crate::limits::{LimitExceeded, Limiter};
use crate::output;
use crate::params;
use crate::sandbox::Sandbox;
use crate::state::{Activity, HostState};
use crate::stdio::Capture;

/// Why a runtime-only build refuses a `.wasm`.
#[cfg(not(feature = "compiler"))]
const NO_COMPILER: &str = "this healthprobe is runtime-only (built without the compiler): it runs bundled probes and .cwasm files; precompile the component with `healthprobe compile` from a full build";

/// Time kept back from a probe's budget for it to report its own timeout (at most a
/// tenth of the time left).
const REPORT_MARGIN: Duration = Duration::from_millis(100);

/// How often the epoch advances; also how often spinning wasm yields to the executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Caps for one run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole run: loading, compiling, instantiating, `describe`, `check`, host calls.
    pub timeout: Duration,
    /// WebAssembly fuel (roughly one unit per instruction).
    pub fuel: u64,
    /// Largest size of each linear memory, in bytes.
    pub max_memory: u64,
    /// Bytes of guest stdout and of guest stderr kept (each).
    pub capture_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            fuel: DEFAULT_FUEL,
            max_memory: 64 * 1024 * 1024,
            capture_bytes: 16 * 1024,
        }
    }
}

/// Default fuel: far more than any honest check needs (the bundled probes use a few
/// million), and small enough that a runaway loop with a long `--timeout` still ends.
pub const DEFAULT_FUEL: u64 = 10_000_000_000;

/// Everything a run is given besides the probe and its parameters.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Time, fuel and memory caps.
    pub limits: Limits,
    /// What the probe is granted.
    pub sandbox: Sandbox,
    /// The probe's pinned SHA-256 (lower-case hex); a mismatch refuses the run before
    /// anything is compiled.
    pub sha256: Option<String>,
}

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

/// Why a run did not produce a verdict from the probe itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The probe could not be run at all (exit 3): bad arguments, unreadable or invalid
    /// component, wrong world, bad parameter.
    #[error("{0}")]
    BadInput(String),
    /// The deadline passed (exit 1).
    #[error("timeout after {}{}", output::duration(*.after), .during.as_ref().map(|d| format!(" {d}")).unwrap_or_default())]
    Timeout {
        /// The configured timeout.
        after: Duration,
        /// What was going on (`while compiling the probe`, `waiting for http://…`), when
        /// known.
        during: Option<String>,
    },
    /// The fuel ran out (exit 1).
    #[error("out of fuel ({} units); raise --fuel if the probe is honest", .0)]
    OutOfFuel(u64),
    /// A memory or table cap was hit (exit 1).
    #[error("{0}")]
    Limit(LimitExceeded),
    /// The guest trapped (exit 1): a panic, a stack overflow, a wasm bug.
    #[error("probe crashed: {0}")]
    Trap(String),
}

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Exit 0.
    Healthy,
    /// Exit 0, with a warning.
    Degraded,
    /// Exit 1.
    Unhealthy,
    /// Exit 3: the probe could not be run.
    Error,
}

impl Verdict {
    /// The process exit status for this verdict (PRODUCT.md; never 2).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy | Verdict::Degraded => 0,
            Verdict::Unhealthy => 1,
            Verdict::Error => crate::EXIT_ERROR,
        }
    }
}

/// Everything known about a finished run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// The probe's name (from `describe`, else the PROBE argument).
    pub probe: String,
    /// One line: the cause.
    pub message: String,
    /// Facts from the probe (and the host, for failures).
    pub details: Vec<(String, String)>,
    /// Wall time from the start of the run.
    pub elapsed: Duration,
    /// Captured guest stdout: kept bytes and count of discarded bytes.
    pub stdout: (Vec<u8>, u64),
    /// Captured guest stderr: kept bytes and count of discarded bytes.
    pub stderr: (Vec<u8>, u64),
    /// SHA-256 of the component that ran, once it was read.
    pub sha256: Option<String>,
    /// How its code was obtained: precompiled, from the compile cache, or compiled.
    pub code: Option<String>,
}

/// Loads and runs probes; reusable across runs.
pub struct Runner {
    /// Runs precompiled code: the bundled probes (compiled by `build.rs` with the settings
    /// of `src/engine.rs`) and `.cwasm` files (made by [`Runner::precompile`] with the
    /// same settings). Made on first use, like `jit`.
    aot: OnceLock<Backend>,
    /// Compiles and runs `.wasm` files at run time with Winch, wasmtime's baseline
    /// compiler: about four times faster to compile than Cranelift, and a probe spends
    /// its time in host calls, not in its own code. Winch code loads only into an engine
    /// that uses Winch, hence a second engine (and compile cache entries of its own).
    #[cfg(feature = "compiler")]
    jit: OnceLock<Backend>,
    clock: Clock,
    /// Linked probes by content hash: a long-lived runner (a library user, a future `serve`
    /// mode) compiles each probe once. Content-keyed, so a changed file is recompiled.
    linked: Mutex<HashMap<String, ProbePre<HostState>>>,
    /// Where compiled `.wasm` files are kept between runs.
    #[cfg(feature = "compiler")]
    cache: Option<cache::Cache>,
}

/// An engine and the linker of the host's imports for it.
struct Backend {
    engine: Engine,
    linker: Linker<HostState>,
}

impl Backend {
    /// Builds the engine and a linker with WASI 0.2 and the `http` import, and has the
    /// clock advance the engine's epoch.
    fn new(config: wasmtime::Result<wasmtime::Config>, clock: &Clock) -> Result<Self, Failure> {
        let engine = config
            .and_then(|c| Engine::new(&c))
            .map_err(|e| Failure::BadInput(format!("cannot start the WebAssembly engine: {e}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| Probe::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .and_then(|()| crate::lookup::add_to_linker(&mut linker))
            .map_err(|e| Failure::BadInput(format!("cannot set up the host functions: {e}")))?;
        clock.tick(engine.clone());
        Ok(Self { engine, linker })
    }
}

/// The runner's one background thread: it advances the epoch of every engine each
/// [`EPOCH_TICK`] and fires the watchdog. One thread for both, because a health check
/// is a whole process and each thread costs it a measurable share of its run time.
struct Clock(Arc<Mutex<ClockState>>);

/// What the clock thread serves.
#[derive(Default)]
struct ClockState {
    engines: Vec<Engine>,
    watchdog: Option<(Instant, Box<dyn FnOnce() + Send>)>,
}

impl Clock {
    /// Starts the thread; it holds only a weak reference, so it ends by itself once the
    /// runner is dropped.
    fn start() -> Result<Self, Failure> {
        let state = Arc::new(Mutex::new(ClockState::default()));
        let weak = Arc::downgrade(&state);
        std::thread::Builder::new()
            .name("clock".into())
            .spawn(move || {
                while let Some(state) = weak.upgrade() {
                    let fire = {
                        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                        for engine in &s.engines {
                            engine.increment_epoch();
                        }
                        match s.watchdog {
                            Some((at, _)) if Instant::now() >= at => s.watchdog.take(),
                            _ => None,
                        }
                    };
                    drop(state);
                    if let Some((_, bark)) = fire {
                        bark();
                    }
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| Failure::BadInput(format!("cannot start the clock thread: {e}")))?;
        Ok(Self(state))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tick(&self, engine: Engine) {
        self.state().engines.push(engine);
    }
}

/// The backend in `cell`, made by `make` on first use. Two threads racing here both make
/// one; the loser's is dropped (its engine only keeps being ticked).
fn backend(
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
    /// A runner with no engine yet (each is made on first use) and its clock thread
    /// started.
    pub fn new() -> Result<Self, Failure> {
        Ok(Self {
            aot: OnceLock::new(),
            #[cfg(feature = "compiler")]
            jit: OnceLock::new(),
            clock: Clock::start()?,
            linked: Mutex::default(),
            #[cfg(feature = "compiler")]
            cache: None,
        })
    }

    /// Calls `bark` (once, on the clock thread) if the runner is still around at `at`:
    /// the last line of defence for code that blocks a thread and ignores cancellation.
    pub fn watchdog(&self, at: Instant, bark: impl FnOnce() + Send + 'static) {
        self.clock.state().watchdog = Some((at, Box::new(bark)));
    }

    /// The engine for precompiled code.
    fn aot(&self) -> Result<&Backend, Failure> {
        backend(&self.aot, || {
            let config = crate::engine::config(None).map(|mut c| {
                #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
                c.with_custom_code_memory(Some(Arc::new(bundled::InPlace)));
                // It only loads code: setting up Cranelift would cost every run time and
                // memory for nothing (`precompile` makes its own compiling engine).
                #[cfg(feature = "compiler")]
                c.enable_compiler(false);
                c
            });
            Backend::new(config, &self.clock)
        })
    }

    /// The engine that compiles `.wasm` files at run time.
    #[cfg(feature = "compiler")]
    fn jit(&self) -> Result<&Backend, Failure> {
        backend(&self.jit, || {
            let config = crate::engine::config(Some(env!("HEALTHPROBE_TARGET"))).map(|mut c| {
                c.strategy(wasmtime::Strategy::Winch);
                c
            });
            Backend::new(config, &self.clock)
        })
    }

    /// The engine that compiles `.wasm` files at run time; its settings key the compile
    /// cache.
    #[cfg(feature = "compiler")]
    pub fn wasm_engine(&self) -> Result<&Engine, Failure> {
        Ok(&self.jit()?.engine)
    }

    /// Keeps compiled `.wasm` components in `cache` (none by default).
    #[cfg(feature = "compiler")]
    pub fn with_cache(mut self, cache: Option<cache::Cache>) -> Self {
        self.cache = cache;
        self
    }

    /// Loads, validates and runs the probe once, ending by `start + limits.timeout` (plus
    /// the cost of dropping the run); `start` lets a caller count its own set-up against
    /// the budget. Never panics on bad input.
    pub async fn run(
        &self,
        start: Instant,
        source: &ProbeSource,
        args: &[(String, String)],
        config: &RunConfig,
    ) -> Report {
        let limits = &config.limits;
        let shared = Shared {
            deadline: start + limits.timeout,
            sandbox: config.sandbox.clone(),
            sha256: config.sha256.clone(),
            sha256_seen: Mutex::default(),
            code_seen: Mutex::default(),
            stdout: Capture::new(limits.capture_bytes),
            stderr: Capture::new(limits.capture_bytes),
            activity: Activity::default(),
        };
        let mut name = source.label();
        let mut stage = Stage::Loading;
        let result = tokio::time::timeout_at(
            shared.deadline.into(),
            self.run_inner(source, args, limits, &shared, &mut name, &mut stage),
        )
        .await;
        let outcome = match result {
            Ok(r) => r,
            Err(_elapsed) => Err(Failure::Timeout {
                after: limits.timeout,
                during: stage.during(&shared.activity),
            }),
        };
        let mut report = Report {
            verdict: Verdict::Unhealthy,
            probe: name,
            message: String::new(),
            details: Vec::new(),
            elapsed: start.elapsed(),
            stdout: shared.stdout.contents(),
            stderr: shared.stderr.contents(),
            sha256: None,
            code: None,
        };
        match outcome {
            Ok(result) => {
                report.verdict = match result.status {
                    Status::Healthy => Verdict::Healthy,
                    Status::Degraded => Verdict::Degraded,
                    Status::Unhealthy => Verdict::Unhealthy,
                };
                report.message = result.message;
                report.details = result.details;
            }
            Err(failure) => {
                report.verdict = match failure {
                    Failure::BadInput(_) => Verdict::Error,
                    _ => Verdict::Unhealthy,
                };
                report.message = match &failure {
                    Failure::Trap(_) => with_panic_message(&failure.to_string(), &report.stderr.0),
                    f => f.to_string(),
                };
                report
                    .details
                    .push(("cause".into(), cause_name(&failure).into()));
            }
        }
        // A probe that was refused a connection usually reports a generic error; the host
        // knows the address and the flag that would grant it, so it says so.
        if report.verdict == Verdict::Unhealthy
            && let Some(denial) = shared.sandbox.denials().first()
        {
            // (Unless the message already carries the hint, as the `http` import's does.)
            if !report.message.contains("denied by network policy") {
                report.message = format!("{denial} ({})", report.message);
            }
            report.details.push(("denied".into(), denial.resource()));
        }
        report.sha256 = shared.sha256_seen.lock().ok().and_then(|s| s.clone());
        report.code = shared.code_seen.lock().ok().and_then(|s| s.clone());
        report
    }

    /// Loads the probe and calls `describe`, under the same deadline rules as [`Self::run`].
    pub async fn describe(
        &self,
        source: &ProbeSource,
        limits: &Limits,
    ) -> Result<ProbeInfo, Failure> {
        let deadline = Instant::now() + limits.timeout;
        let fut = async {
            let pre = self.load(source, None).await?;
            self.describe_linked(&pre, limits).await
        };
        tokio::time::timeout_at(deadline.into(), fut)
            .await
            .unwrap_or(Err(Failure::Timeout {
                after: limits.timeout,
                during: Some("while describing the probe".into()),
            }))
    }

    async fn run_inner(
        &self,
        source: &ProbeSource,
        args: &[(String, String)],
        limits: &Limits,
        shared: &Shared,
        name: &mut String,
        stage: &mut Stage,
    ) -> Result<crate::bindings::healthprobe::probe::types::CheckResult, Failure> {
        let pre = self.load(source, Some(shared)).await?;
        *stage = Stage::Instantiating;
        let mut store = Self::store(&pre, limits, shared)?;
        let probe = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(e, &store, limits))?;
        *stage = Stage::Describing;
        let info = probe
            .call_describe(&mut store)
            .await
            .map_err(|e| classify(e, &store, limits))?;
        *name = info.name.clone();
        params::validate(&info, args).map_err(Failure::BadInput)?;
        *stage = Stage::Checking;
        let left = shared.deadline.saturating_duration_since(Instant::now());
        // The probe gets a little less than what is left, so a probe that bounds its waits
        // by its budget reports its own, more precise timeout ("no reply to PING") before
        // the host's deadline cuts it off with a generic one.
        let budget = left.saturating_sub(REPORT_MARGIN.min(left / 10));
        let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        match probe.call_check(&mut store, args, budget_ms).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(CheckError::InvalidParam(p))) => Err(Failure::BadInput(format!(
                "invalid value for parameter '{}': {}",
                p.name, p.reason
            ))),
            Ok(Err(CheckError::InvalidConfig(msg))) => {
                Err(Failure::BadInput(format!("invalid parameters: {msg}")))
            }
            Err(e) => Err(classify(e, &store, limits)),
        }
    }

    /// Reads, verifies, compiles (or loads precompiled) and links the component; `shared`
    /// receives its sha256 and how its code was obtained.
    async fn load(
        &self,
        source: &ProbeSource,
        shared: Option<&Shared>,
    ) -> Result<ProbePre<HostState>, Failure> {
        let (code, digest) = identify(source)?;
        if let Some(shared) = shared {
            if let Some(expected) = &shared.sha256
                && !expected.eq_ignore_ascii_case(&digest)
            {
                return Err(Failure::BadInput(format!(
                    "sha256 mismatch: the probe is {digest}, --sha256 pins {expected}; refusing to run it"
                )));
            }
            *shared.sha256_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest.clone());
        }
        if let Some(pre) = self.cached(&digest) {
            return Ok(pre);
        }
        let (component, how) = self.component(code, &digest).await?;
        if let Some(shared) = shared {
            *shared.code_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
        }
        let pre = self.link(&component)?;
        let mut linked = self.linked.lock().unwrap_or_else(|e| e.into_inner());
        // A bound, so a runner fed ever-changing files cannot grow without limit.
        if linked.len() >= 64 {
            linked.clear();
        }
        linked.insert(digest, pre.clone());
        Ok(pre)
    }

    fn cached(&self, digest: &str) -> Option<ProbePre<HostState>> {
        let linked = self.linked.lock().unwrap_or_else(|e| e.into_inner());
        linked.get(digest).cloned()
    }

    /// The compiled component for `code` (whose SHA-256 is `digest`), and how it was
    /// obtained, for `--verbose`.
    pub(crate) async fn component(
        &self,
        code: Code,
        digest: &str,
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
                // SAFETY: the bytes were made by `build.rs` with this binary's engine
                // settings (src/engine.rs); wasmtime still checks them. In place, they
                // live for the process and nothing writes to them (`Bundled::in_place`).
                #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
                #[allow(unsafe_code)]
                let component =
                    unsafe { Component::deserialize_raw(engine, b.in_place().map_err(broken)?) };
                #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
                #[allow(unsafe_code)]
                let component =
                    unsafe { Component::deserialize(engine, b.precompiled().map_err(broken)?) };
                let component = component.map_err(|e| broken(output::chain(&e)))?;
                Ok((component, "precompiled when healthprobe was built".into()))
            }
            Code::File(bytes) => {
                if let Some(kind) = Engine::detect_precompiled(&bytes) {
                    let component = self.deserialize(kind, &bytes)?;
                    return Ok((component, "precompiled file (healthprobe compile)".into()));
                }
                check_header(&bytes)?;
                self.compile_cached(bytes, digest).await
            }
        }
    }

    /// Compiles a component through the compile cache, if there is one.
    #[cfg(feature = "compiler")]
    async fn compile_cached(
        &self,
        bytes: Cow<'static, [u8]>,
        digest: &str,
    ) -> Result<(Component, String), Failure> {
        let Some(cache) = &self.cache else {
            let component = self.compile(bytes).await?;
            return Ok((
                component,
                cache::Outcome::Unavailable("disabled".into()).to_string(),
            ));
        };
        let engine = &self.jit()?.engine;
        let entry = cache.entry(digest, engine);
        let mut replaced = false;
        match cache::Cache::load(&entry) {
            Ok(Some(precompiled)) => {
                // SAFETY: the entry is intact (its checksum matches) and was written by
                // `store` below from this engine's compiler; wasmtime still checks its
                // header, version and settings. Entries are replaced by renaming, never
                // written in place, so the mapped file does not change under the code.
                // Mapped, the code is not copied again (a third of a cached run's page
                // faults); from the bytes read, it also loads from a `noexec` mount.
                #[allow(unsafe_code)]
                let loaded = unsafe {
                    Component::deserialize_file(engine, &entry)
                        .or_else(|_| Component::deserialize(engine, &precompiled))
                };
                match loaded {
                    Ok(c) => return Ok((c, cache::Outcome::Hit(entry).to_string())),
                    Err(_) => replaced = true,
                }
            }
            Ok(None) => {}
            Err(cache::Corrupt) => replaced = true,
        }
        let component = self.compile(bytes).await?;
        let outcome = match component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|code| cache.store(&entry, &code).map_err(|e| output::io_error(&e)))
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
        _bytes: Cow<'static, [u8]>,
        _digest: &str,
    ) -> Result<(Component, String), Failure> {
        Err(Failure::BadInput(NO_COMPILER.into()))
    }

    /// Compiles a component with Cranelift.
    #[cfg(feature = "compiler")]
    async fn compile(&self, bytes: Cow<'static, [u8]>) -> Result<Component, Failure> {
        // Cranelift cannot be interrupted; it runs on the blocking pool so that the caller's
        // deadline still ends the run (the thread finishes in the background, or the
        // process exits).
        let engine = self.jit()?.engine.clone();
        tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| Failure::Trap(format!("compiler thread failed: {e}")))?
            .map_err(|e| {
                Failure::BadInput(format!(
                    "not a valid WebAssembly component: {}",
                    output::chain(&e)
                ))
            })
    }

    /// Loads a `.cwasm` made by `healthprobe compile`.
    fn deserialize(&self, kind: Precompiled, bytes: &[u8]) -> Result<Component, Failure> {
        if kind != Precompiled::Component {
            return Err(Failure::BadInput(
                "a precompiled core module, not a component; precompile the component with `healthprobe compile`".into(),
            ));
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
                output::chain(&e)
            ))
        })
    }

    /// Compiles a component ahead of time for this engine (`healthprobe compile`); a
    /// bundled probe is already compiled.
    pub fn precompile(&self, code: &Code) -> Result<Cow<'static, [u8]>, Failure> {
        let bytes = match code {
            Code::Bundled(b) => {
                return b.precompiled().map_err(|why| {
                    Failure::BadInput(format!("the bundled probe {} is corrupt: {why}", b.name))
                });
            }
            Code::File(bytes) => bytes,
        };
        if Engine::detect_precompiled(bytes).is_some() {
            return Err(Failure::BadInput(
                "already precompiled; give the .wasm component".into(),
            ));
        }
        check_header(bytes)?;
        #[cfg(feature = "compiler")]
        return crate::engine::config(None)
            .and_then(|c| Engine::new(&c))
            .map_err(|e| Failure::BadInput(format!("cannot start the compiler: {e}")))?
            .precompile_component(bytes)
            .map(Cow::Owned)
            .map_err(|e| {
                Failure::BadInput(format!(
                    "not a valid WebAssembly component: {}",
                    output::chain(&e)
                ))
            });
        #[cfg(not(feature = "compiler"))]
        Err(Failure::BadInput(NO_COMPILER.into()))
    }

    /// Links a component against the host's imports and checks its exports.
    pub(crate) fn link(&self, component: &Component) -> Result<ProbePre<HostState>, Failure> {
        let backend = [self.aot.get(), self.jit_if_made()]
            .into_iter()
            .flatten()
            .find(|b| Engine::same(&b.engine, component.engine()))
            .ok_or_else(|| Failure::Trap("the component is from another runner's engine".into()))?;
        let pre = backend.linker.instantiate_pre(component).map_err(|e| {
            Failure::BadInput(format!(
                "cannot be linked: {}; healthprobe provides healthprobe:probe/http@0.1.0 and WASI 0.2; see `healthprobe inspect`",
                output::chain(&e)
            ))
        })?;
        ProbePre::new(pre).map_err(|e| {
            Failure::BadInput(format!(
                "not a healthprobe probe: {}; it must export `describe` and `check` of the world healthprobe:probe/probe@0.1.0",
                output::chain(&e)
            ))
        })
    }

    /// The `.wasm` engine, if it was made.
    fn jit_if_made(&self) -> Option<&Backend> {
        #[cfg(feature = "compiler")]
        return self.jit.get();
        #[cfg(not(feature = "compiler"))]
        None
    }

    /// Instantiates a linked probe with no grants at all and calls `describe`.
    pub(crate) async fn describe_linked(
        &self,
        pre: &ProbePre<HostState>,
        limits: &Limits,
    ) -> Result<ProbeInfo, Failure> {
        let shared = Shared {
            deadline: Instant::now() + limits.timeout,
            sandbox: Sandbox::nothing(),
            sha256: None,
            sha256_seen: Mutex::default(),
            code_seen: Mutex::default(),
            stdout: Capture::new(0),
            stderr: Capture::new(0),
            activity: Activity::default(),
        };
        let mut store = Self::store(pre, limits, &shared)?;
        let probe = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(e, &store, limits))?;
        probe
            .call_describe(&mut store)
            .await
            .map_err(|e| classify(e, &store, limits))
    }

    fn store(
        pre: &ProbePre<HostState>,
        limits: &Limits,
        shared: &Shared,
    ) -> Result<Store<HostState>, Failure> {
        let wasi = shared.sandbox.wasi_ctx(&shared.stdout, &shared.stderr)?;
        let state = HostState {
            wasi,
            table: Default::default(),
            limiter: Limiter::new(limits.max_memory),
            sandbox: shared.sandbox.clone(),
            deadline: shared.deadline,
            run_timeout: limits.timeout,
            activity: shared.activity.clone(),
        };
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| Failure::Trap(format!("cannot set fuel: {e}")))?;
        store.set_epoch_deadline(1);
        let deadline = shared.deadline;
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        Ok(store)
    }
}

/// What the caller keeps of a run while the store lives inside the future that the
/// deadline may drop: the policy with its denials, the captured output, the host call in
/// flight.
struct Shared {
    deadline: Instant,
    sandbox: Sandbox,
    /// The pinned digest (`--sha256`), if any.
    sha256: Option<String>,
    /// The digest of what was loaded, once it was read.
    sha256_seen: Mutex<Option<String>>,
    /// How the code was obtained (precompiled, cached, compiled), once it was.
    code_seen: Mutex<Option<String>>,
    stdout: Capture,
    stderr: Capture,
    activity: Activity,
}

/// Where a run was when the deadline hit, for the timeout message.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Loading,
    Instantiating,
    Describing,
    Checking,
}

impl Stage {
    fn during(self, activity: &Activity) -> Option<String> {
        match self {
            Stage::Loading => Some("while loading and compiling the probe".into()),
            Stage::Instantiating => Some("while instantiating the probe".into()),
            Stage::Describing => Some("while describing the probe".into()),
            Stage::Checking => activity.current(),
        }
    }
}

/// A probe's code: precompiled in the binary, or the bytes of a file (a component or a
/// `.cwasm`).
#[derive(Debug)]
pub enum Code {
    /// A bundled probe.
    Bundled(&'static bundled::Bundled),
    /// The file's bytes.
    File(Cow<'static, [u8]>),
}

impl Code {
    /// The size of the component as given (for a bundled probe, before precompiling).
    pub fn size(&self) -> usize {
        match self {
            Code::Bundled(b) => b.wasm_size,
            Code::File(bytes) => bytes.len(),
        }
    }
}

/// The probe's code and its SHA-256 (for a bundled probe, of the component as built).
pub(crate) fn identify(source: &ProbeSource) -> Result<(Code, String), Failure> {
    Ok(match source {
        ProbeSource::Bundled(b) => (Code::Bundled(b), b.sha256.to_string()),
        ProbeSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure::BadInput(format!(
                    "cannot read the probe file: {}; check the path",
                    output::io_error(&e)
                ))
            })?;
            let digest = sha256_hex(&bytes);
            (Code::File(bytes.into()), digest)
        }
    })
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
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

/// Classifies an error from inside the guest by its type.
fn classify(err: wasmtime::Error, store: &Store<HostState>, limits: &Limits) -> Failure {
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return Failure::Limit(*limit);
    }
    if let Some(limit) = store.data().limiter.exceeded() {
        return Failure::Limit(limit);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel(limits.fuel),
        Some(Trap::Interrupt) => Failure::Timeout {
            after: limits.timeout,
            during: store.data().activity.current(),
        },
        Some(Trap::StackOverflow) => Failure::Trap("stack overflow".into()),
        Some(Trap::UnreachableCodeReached) => {
            Failure::Trap("wasm trap: unreachable (a panic or abort)".into())
        }
        Some(trap) => Failure::Trap(format!("wasm trap: {trap}")),
        None => Failure::Trap(output::chain(&err)),
    }
}

/// A Rust guest prints its panic message to stderr before trapping; naming it beats
/// "unreachable".
fn with_panic_message(message: &str, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let detail = lines.next().unwrap_or("").trim();
            let detail = if detail.is_empty() {
                line.trim()
            } else {
                detail
            };
            return format!("probe panicked: {detail}");
        }
    }
    message.to_string()
}

fn cause_name(f: &Failure) -> &'static str {
    match f {
        Failure::BadInput(_) => "bad-input",
        Failure::Timeout { .. } => "timeout",
        Failure::OutOfFuel(_) => "out-of-fuel",
        Failure::Limit(LimitExceeded::Memory { .. }) => "memory-limit",
        Failure::Limit(LimitExceeded::Table { .. }) => "table-limit",
        Failure::Trap(_) => "trap",
    }
}
