//! Loading and running one probe under a deadline: the library API behind every command.
//!
//! Three layers bound a run, because no single one covers everything:
//! 1. **Epoch interruption** (the [`clock`] thread bumps the engines' epochs every
//!    [`EPOCH_TICK`]): wasm that spins never reaches a host call, so only a check compiled
//!    into the wasm code itself can stop it. Each tick yields to the async executor, and
//!    past the deadline the tick traps with `Trap::Interrupt`.
//! 2. **Async calls under `tokio::time::timeout`**: epochs and fuel do not interrupt host
//!    calls (a WASI socket read, an HTTP request). Every export is called with `*_async` and
//!    the whole load-instantiate-describe-check sequence is one future that is dropped at
//!    the deadline, cancelling whatever host call it is parked in.
//! 3. **A watchdog**, the caller's policy: a timer on the runner's clock thread
//!    ([`Runner::at`]; `healthprobe run` sets one in `crate::cmd::run`) for code that blocks
//!    a thread and ignores cancellation (a compiler working on a huge component, a resolver
//!    stuck in the C library). The runner keeps no watchdog of its own, so one runner can
//!    run many probes at once.
//!
//! The modules: [`engines`] (the engines and their linkers), [`load`] (the loading steps:
//! [`source`], [`compile`], [`link`]), [`inspect`] (a probe read without running it),
//! [`classify`] (why a run failed), [`clock`] (the thread), and this one (the run itself:
//! store, instantiate, describe, check, report).

mod classify;
mod clock;
mod compile;
mod engine_config;
mod engines;
mod inspect;
mod link;
mod load;
mod source;
mod world;

use world::LinkedProbe;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use crate::activity::Activity;
use crate::bindings::healthprobe::probe::types::{
    CheckError, ProbeInfo, Report as ProbeReport, Status,
};
#[cfg(feature = "compiler")]
use crate::cache;
use crate::imports::RunInputs;
use crate::imports::sockets::Held;
use crate::limits::{Exceeded, Limits};
use crate::params;
use crate::report::{Detail, Failure, Report, SSL_EXPIRY_DETAIL, TLS_VERSION_DETAIL, Verdict};
use crate::sandbox::Sandbox;
use crate::state::HostState;
use crate::stdio::Capture;

pub use clock::{Deadline, EPOCH_TICK, Timer};
#[cfg(feature = "compiler")]
pub use compile::cache_key;
pub use engines::POOL_SLOTS;
pub use inspect::Inspection;
pub(crate) use source::identify;
pub use source::{Code, ProbeSource};

use classify::{classify, with_panic_message};
use clock::Clock;
use engines::Backend;

/// Time kept back from a probe's budget for it to report its own timeout (at most a
/// tenth of the time left).
const REPORT_MARGIN: Duration = Duration::from_millis(100);

/// What closing one loopback TCP connection costs the kernel at exit, with room to spare:
/// 10-13 µs measured on a 2-core machine.
const SOCKET_RELEASE: Duration = Duration::from_micros(25);

/// How often a run re-reads its cut-off ([`Shared::cutoff`]).
const CUTOFF_RECHECK: Duration = Duration::from_millis(20);

/// Sockets a finished run may still hold for its store to be dropped in line rather than
/// by the reaper thread: closing this many costs microseconds.
const SOCKETS_CLOSED_INLINE: usize = 8;

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
    /// Whether the report names the code's SHA-256 (for `--verbose`). Otherwise it is
    /// computed only to check a pin, and a `.cwasm` is mapped instead of read.
    pub report_sha256: bool,
    /// Values no output may show (secret parameters): the report is redacted of them,
    /// whatever the probe or a server put them in.
    pub secrets: Vec<String>,
}

/// Loads and runs probes; reusable across runs.
pub struct Runner {
    /// Runs precompiled code: the bundled probes (compiled by `build.rs` with the settings
    /// of `runner/engine_config.rs`) and `.cwasm` files (made by [`Runner::precompile`] with the
    /// same settings). Made on first use, like `jit`.
    aot: OnceLock<Backend>,
    /// Compiles and runs `.wasm` files at run time with Winch, wasmtime's baseline
    /// compiler: about four times faster to compile than Cranelift, and a probe spends
    /// its time in host calls, not in its own code. Winch code loads only into an engine
    /// that uses Winch, hence a second engine (and compile cache entries of its own).
    #[cfg(feature = "compiler")]
    jit: OnceLock<Backend>,
    clock: Clock,
    /// The pooling allocator's settings, if the engines use it ([`Runner::pooled`]).
    pool: Option<wasmtime::PoolingAllocationConfig>,
    /// Linked probes by content hash: a long-lived runner (a library user, `serve`)
    /// compiles each probe once. Content-keyed, so a changed file is recompiled.
    linked: Mutex<HashMap<String, LinkedProbe>>,
    /// Held while a probe is compiled and linked, so that first runs side by side compile
    /// it once.
    compiling: tokio::sync::Mutex<()>,
    /// Where compiled `.wasm` files are kept between runs.
    #[cfg(feature = "compiler")]
    cache: Option<cache::Cache>,
    /// The thread that drops stores holding many sockets ([`Runner::dispose`]), started on
    /// first use; `None` if it could not be started.
    reaper: OnceLock<Option<Mutex<std::sync::mpsc::Sender<Store<HostState>>>>>,
}

/// The compile cache a command opened (`flags::CacheArgs::open`), for
/// [`Runner::with_cache`]: the cache, if any, in a full build; nothing in a runtime-only
/// build, which never compiles. The same type in both, so callers need no `cfg`.
#[derive(Debug, Default)]
pub struct CacheHandle {
    #[cfg(feature = "compiler")]
    cache: Option<cache::Cache>,
}

impl CacheHandle {
    /// A handle on `cache`.
    #[cfg(feature = "compiler")]
    pub fn new(cache: Option<cache::Cache>) -> Self {
        CacheHandle { cache }
    }
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
            pool: None,
            linked: Mutex::default(),
            compiling: tokio::sync::Mutex::const_new(()),
            #[cfg(feature = "compiler")]
            cache: None,
            reaper: OnceLock::new(),
        })
    }

    /// Calls `fire` once, on the runner's clock thread, at `at`, unless the returned
    /// [`Timer`] is dropped first: the last line of defence a caller can set for code that
    /// blocks a thread and ignores cancellation. Each call sets its own timer.
    pub fn at(&self, at: Instant, fire: impl FnOnce() + Send + 'static) -> Timer {
        self.clock.at(at, fire)
    }

    /// Runs probes with wasmtime's pooling allocator, with room for `slots` runs at once:
    /// for a long-lived runner with many runs, whose memories and stacks are then reused
    /// instead of mapping and unmapping each (see [`engines::pool`] for its sizes).
    pub fn pooled(mut self, slots: u32) -> Self {
        self.pool = Some(engines::pool(slots));
        self
    }

    /// Keeps compiled `.wasm` components in the cache `handle` holds (none by default).
    pub fn with_cache(self, handle: CacheHandle) -> Self {
        #[cfg(feature = "compiler")]
        return Self {
            cache: handle.cache,
            ..self
        };
        #[cfg(not(feature = "compiler"))]
        {
            let CacheHandle {} = handle;
            self
        }
    }

    /// Loads, validates and runs the probe once, ending by `deadline` (plus the cost of
    /// dropping the run); a deadline that started before the call lets a caller count its
    /// own set-up against the budget. Never panics on bad input.
    pub async fn run(
        &self,
        deadline: Deadline,
        source: &ProbeSource,
        args: &[(String, String)],
        config: &RunConfig,
    ) -> Report {
        let limits = &config.limits;
        let shared = Shared {
            deadline: deadline.at(),
            sandbox: config.sandbox.for_run(),
            sha256: config.sha256.clone(),
            report_sha256: config.report_sha256,
            sha256_seen: Mutex::default(),
            code_seen: Mutex::default(),
            stdout: Capture::new(limits.capture_bytes),
            stderr: Capture::new(limits.capture_bytes),
            activity: Activity::default(),
            exceeded: Exceeded::default(),
            sockets: Held::default(),
        };
        // The store lives out here, not in the future the deadline drops: dropping it closes
        // everything the probe holds, which for thousands of sockets takes longer than the
        // margin the deadline leaves, so it is disposed of apart from the verdict.
        let mut progress = Progress {
            store: None,
            name: source.label(),
            stage: Stage::Loading,
        };
        let result = {
            let run = self.run_inner(source, args, limits, &shared, &mut progress);
            tokio::pin!(run);
            // The cut-off moves earlier as the probe opens sockets, so it is re-read often.
            loop {
                let cutoff = shared.cutoff();
                if Instant::now() >= cutoff {
                    break Err(());
                }
                let wake = cutoff.min(Instant::now() + CUTOFF_RECHECK);
                if let Ok(r) = tokio::time::timeout_at(wake.into(), &mut run).await {
                    break Ok(r);
                }
            }
        };
        let Progress { store, name, stage } = progress;
        if let Some(store) = store {
            self.dispose(store);
        }
        let outcome = match result {
            Ok(r) => r,
            Err(()) => Err(Failure::Timeout {
                after: deadline.timeout(),
                during: stage.during(&shared.activity),
            }),
        };
        let mut report = Report {
            stdout: shared.stdout.contents(),
            stderr: shared.stderr.contents(),
            ..Report::new(Verdict::Unhealthy, name, "", deadline.elapsed())
        };
        match outcome {
            Ok(result) => {
                report.verdict = match result.status {
                    Status::Healthy => Verdict::Healthy,
                    Status::Degraded => Verdict::Degraded,
                    Status::Unhealthy => Verdict::Unhealthy,
                };
                (report.message, report.details) =
                    crate::report::bounded(result.message, result.details);
            }
            Err(failure) => {
                report.verdict = failure.verdict();
                report.message = match &failure {
                    Failure::Trap(_) => with_panic_message(&failure.to_string(), &report.stderr.0),
                    f => f.to_string(),
                };
                report
                    .details
                    .push(("cause".into(), failure.cause().into()));
            }
        }
        // A probe refused a socket or memory by a cap usually reports a generic error
        // ("new-socket-limit", "allocation failed"); the host knows which cap and the flag
        // that raises it.
        if report.verdict == Verdict::Unhealthy
            && let Some(limit) = shared.exceeded.get()
            && !report.message.starts_with(&limit.to_string())
        {
            let raise = limit
                .flag()
                .map(|f| format!(", raise it with {f}"))
                .unwrap_or_default();
            report.message = format!("{limit} reached{raise} ({})", report.message);
            report
                .details
                .push(("limit".into(), limit.to_string().into()));
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
            report
                .details
                .push(("denied".into(), denial.resource().into()));
        }
        report.sha256 = shared.sha256_seen.lock().ok().and_then(|s| s.clone());
        report.code = shared.code_seen.lock().ok().and_then(|s| s.clone());
        report.redact(&config.secrets);
        report.http = shared.activity.exchange();
        report.connected = shared.activity.connected();
        // The http import's TLS facts, as the SDK reports them for wasi:tls.
        if let Some(tls) = report.http.as_ref().and_then(|h| h.tls.as_ref())
            && report.verdict != Verdict::Error
        {
            let expiry = tls.earliest_expiry.and_then(|e| i64::try_from(e).ok());
            for (name, value) in [
                (SSL_EXPIRY_DETAIL, expiry.map(Detail::Integer)),
                (TLS_VERSION_DETAIL, Some(Detail::Text(tls.version.clone()))),
            ] {
                if let Some(value) = value
                    && !report.details.iter().any(|(k, _)| k == name)
                {
                    report.details.push((name.into(), value));
                }
            }
        }
        report
    }

    /// Loads the probe and calls `describe`, under the same deadline rules as [`Self::run`].
    pub async fn describe(
        &self,
        source: &ProbeSource,
        limits: &Limits,
    ) -> Result<ProbeInfo, Failure> {
        let deadline = Deadline::from_now(limits.timeout);
        let fut = async {
            let pre = self.load(source, &limits.code, None).await?;
            self.describe_linked(&pre, limits).await
        };
        tokio::time::timeout_at(deadline.at().into(), fut)
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
        progress: &mut Progress,
    ) -> Result<ProbeReport, Failure> {
        let pre = self.load(source, &limits.code, Some(shared)).await?;
        progress.stage = Stage::Instantiating;
        let store = progress.store.insert(Self::store(&pre, limits, shared)?);
        let probe = pre
            .instantiate(&mut *store)
            .await
            .map_err(|e| classify(e, store, limits))?;
        progress.stage = Stage::Describing;
        let info = probe
            .describe(&mut *store)
            .await
            .map_err(|e| classify(e, store, limits))?;
        progress.name = info.name.clone();
        params::validate(&info, args).map_err(Failure::BadInput)?;
        progress.stage = Stage::Checking;
        let left = shared.deadline.saturating_duration_since(Instant::now());
        // The probe gets a little less than what is left, so a probe that bounds its waits
        // by its budget reports its own, more precise timeout ("no reply to PING") before
        // the host's deadline cuts it off with a generic one.
        let budget = left.saturating_sub(REPORT_MARGIN.min(left / 10));
        let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        match probe.check(&mut *store, args, &info, budget_ms).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(CheckError::InvalidParam(p))) => Err(Failure::BadInput(format!(
                "invalid value for parameter '{}': {}",
                p.name, p.reason
            ))),
            Ok(Err(CheckError::InvalidConfig(msg))) => {
                Err(Failure::BadInput(format!("invalid parameters: {msg}")))
            }
            Err(e) => Err(classify(e, store, limits)),
        }
    }

    /// Drops a finished run's store. One that still holds many sockets goes to a background
    /// thread, so the verdict does not wait while they close: ten thousand take a few
    /// hundred milliseconds, more than the deadline's margin.
    fn dispose(&self, mut store: Store<HostState>) {
        let state = store.data_mut();
        if state.sockets.live(&state.table) <= SOCKETS_CLOSED_INLINE {
            return;
        }
        let reaper = self.reaper.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Store<HostState>>();
            std::thread::Builder::new()
                .name("healthprobe-reaper".into())
                .spawn(move || rx.into_iter().for_each(drop))
                .ok()
                .map(|_| Mutex::new(tx))
        });
        // Without the thread, closing them here is slower but still correct.
        if let Some(tx) = reaper {
            let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(store);
        }
    }

    /// Instantiates a linked probe with no grants at all and calls `describe`.
    pub(crate) async fn describe_linked(
        &self,
        pre: &LinkedProbe,
        limits: &Limits,
    ) -> Result<ProbeInfo, Failure> {
        let shared = Shared {
            deadline: Deadline::from_now(limits.timeout).at(),
            sandbox: Sandbox::nothing(),
            sha256: None,
            report_sha256: false,
            sha256_seen: Mutex::default(),
            code_seen: Mutex::default(),
            stdout: Capture::new(0),
            stderr: Capture::new(0),
            activity: Activity::default(),
            exceeded: Exceeded::default(),
            sockets: Held::default(),
        };
        let mut store = Self::store(pre, limits, &shared)?;
        let probe = pre
            .instantiate(&mut store)
            .await
            .map_err(|e| classify(e, &store, limits))?;
        probe
            .describe(&mut store)
            .await
            .map_err(|e| classify(e, &store, limits))
    }

    fn store(
        pre: &LinkedProbe,
        limits: &Limits,
        shared: &Shared,
    ) -> Result<Store<HostState>, Failure> {
        let state = HostState::new(&RunInputs {
            sandbox: &shared.sandbox,
            limits,
            deadline: shared.deadline,
            activity: &shared.activity,
            exceeded: &shared.exceeded,
            held: &shared.sockets,
            stdout: &shared.stdout,
            stderr: &shared.stderr,
        })?;
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| Failure::Setup(format!("cannot set fuel: {e}")))?;
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
    /// See [`RunConfig::report_sha256`].
    report_sha256: bool,
    /// The digest of what was loaded, once it was read.
    sha256_seen: Mutex<Option<String>>,
    /// How the code was obtained (precompiled, cached, compiled), once it was.
    code_seen: Mutex<Option<String>>,
    stdout: Capture,
    stderr: Capture,
    activity: Activity,
    /// The first cap the run hit, if any.
    exceeded: Exceeded,
    /// The sockets the probe holds.
    sockets: Held,
}

impl Shared {
    /// When the run must be cut off: the deadline, less the time the kernel takes to
    /// close the sockets the probe holds once the process exits. The deadline bounds the
    /// whole process, and ten thousand loopback connections take over 0.1 s to close.
    fn cutoff(&self) -> Instant {
        let release = SOCKET_RELEASE * u32::try_from(self.sockets.get()).unwrap_or(u32::MAX);
        let now = Instant::now();
        self.deadline.checked_sub(release).unwrap_or(now).max(now)
    }
}

/// What a run leaves behind if the deadline drops it halfway: the store (to dispose of),
/// the probe's name, and where it was.
struct Progress {
    store: Option<Store<HostState>>,
    name: String,
    stage: Stage,
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
            Stage::Loading => activity
                .current()
                .or_else(|| Some("while loading the probe".into())),
            Stage::Instantiating => Some("while instantiating the probe".into()),
            Stage::Describing => Some("while describing the probe".into()),
            Stage::Checking => activity.current(),
        }
    }
}

/// A current-thread tokio runtime with I/O and timers (WASI sockets need both), for a
/// caller that runs probes on its own thread.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Failure::Setup(format!("cannot start the async runtime: {e}")))
}
