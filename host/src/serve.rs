//! `serve`: the checks of a checks file, each run on its own interval in the background,
//! and their latest results over HTTP: `/livez` and `/readyz` (kube-apiserver's
//! conventions), `/health` (`application/health+json`) and `/metrics` (Prometheus); and
//! `/probe`, blackbox_exporter's endpoint, which runs a module of the file on request.
//!
//! Each check is a task that keeps its schedule; its runs (one after another, never two of
//! one check at once) are tasks on the runtime that runs guests, at most
//! `--max-check-runs` at once, each bounded by its own timeout, kept by the clock of the
//! runtime that answers requests: a hung or hostile check delays only its own result. The
//! HTTP side only reads the latest results: answering never waits for a check.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::checks::{Check, Checks, Definition, Module};
use crate::report::{Report, Verdict};
use crate::runner::{ProbeSource, RunConfig, Runner};
use crate::text;

/// One check as `serve` runs it.
#[derive(Debug)]
pub struct Served {
    /// Its name in the checks file.
    pub name: String,
    /// Its groups (`liveness`, `readiness`, …).
    pub groups: Vec<String>,
    /// How often it runs (start to start).
    pub interval: Duration,
    /// Its table in the file, to tell an unchanged check on a reload.
    definition: Definition,
    source: ProbeSource,
    params: Vec<(String, String)>,
    config: RunConfig,
    state: Mutex<CheckState>,
}

/// What is known of one check's runs.
#[derive(Debug, Default)]
struct CheckState {
    last: Option<Outcome>,
    /// Runs by verdict: healthy, degraded, unhealthy, error.
    runs: [u64; 4],
}

#[derive(Debug, Clone)]
struct Outcome {
    report: Report,
    /// When the run ended.
    ended: Instant,
    ended_at: SystemTime,
}

/// A check's state as the endpoints see it.
#[derive(Debug, Clone)]
pub struct Status {
    /// Whether it counts as passing (healthy or degraded, and recent).
    pub pass: bool,
    /// Healthy, degraded, unhealthy or error; unhealthy when stale or not run yet.
    pub verdict: Verdict,
    /// Its message, or why it has no recent result.
    pub message: String,
    /// How long the last run took.
    pub duration: Option<Duration>,
    /// When the last run ended.
    pub time: Option<SystemTime>,
}

impl Served {
    /// A check to serve, with its grants resolved.
    fn new(c: Check, grants: &crate::settings::GrantOverrides) -> Result<Served, crate::Failure> {
        let config = c.settings.run_config(grants)?;
        Ok(Served {
            name: c.name,
            groups: c.groups,
            interval: c.interval,
            definition: c.definition,
            source: c.source,
            params: c.settings.params,
            config,
            state: Mutex::default(),
        })
    }

    fn timeout(&self) -> Duration {
        self.config.limits.timeout
    }

    /// Runs the check until `stop` resolves (or its sender is dropped): once at once, then
    /// one run per interval from a phase of its own within the interval, so that thousands
    /// of checks loaded together do not all fire in the same millisecond. A run longer than
    /// the interval delays the next; runs never overlap. Each run waits for one of `runs`
    /// (the server's cap on check runs at once) and runs on `probes` under its timeout,
    /// kept by this task's clock. A run in progress when it stops is dropped, which ends
    /// it at once.
    async fn run_until(self: Arc<Self>, fleet: FleetRuntime, stop: oneshot::Receiver<()>) {
        tokio::select! {
            _ = stop => {}
            () = self.run_forever(fleet) => {}
        }
    }

    async fn run_forever(&self, fleet: FleetRuntime) {
        let phase = phase(&self.name, self.interval);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + phase, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                ticks.tick().await;
            }
            // The semaphore is never closed.
            let Ok(_turn) = fleet.runs.clone().acquire_owned().await else {
                return;
            };
            let report = run_by_the_clock(
                &fleet.probes,
                fleet.runner.clone(),
                self.source.clone(),
                self.params.clone(),
                self.config.clone(),
            )
            .await;
            self.record(report);
        }
    }

    fn record(&self, report: Report) {
        let (verdict, line) = (
            report.verdict,
            format!("{}: {}", report.probe, text::one_line(&report.message)),
        );
        let changed = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let before = state.last.as_ref().map(|o| o.report.verdict);
            state.runs[verdict_index(verdict)] += 1;
            state.last = Some(Outcome {
                report,
                ended: Instant::now(),
                ended_at: SystemTime::now(),
            });
            before != Some(verdict)
        };
        // State changes only, one line each: the log of a long-lived server. Written
        // without the lock, so a slow stderr never holds up the endpoints.
        if changed {
            log(format_args!(
                "check {} is now {}: {line}",
                self.name,
                verdict_word(verdict)
            ));
        }
    }

    /// The check's state now: a result older than twice its interval plus its timeout
    /// counts as failed, as does no result yet.
    pub fn status(&self) -> Status {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(last) = &state.last else {
            return Status {
                pass: false,
                verdict: Verdict::Unhealthy,
                message: "no result yet".into(),
                duration: None,
                time: None,
            };
        };
        let age = last.ended.elapsed();
        let limit = self.interval * 2 + self.timeout();
        let (pass, verdict, message) = if age > limit {
            (
                false,
                Verdict::Unhealthy,
                format!(
                    "stale: the last result is {} old (over twice the interval plus the timeout, {})",
                    text::duration(age),
                    text::duration(limit)
                ),
            )
        } else {
            let v = last.report.verdict;
            (
                matches!(v, Verdict::Healthy | Verdict::Degraded),
                v,
                last.report.message.clone(),
            )
        };
        Status {
            pass,
            verdict,
            message,
            duration: Some(last.report.elapsed),
            time: Some(last.ended_at),
        }
    }

    fn runs(&self) -> [u64; 4] {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).runs
    }
}

/// What the endpoints answer from: the checks being run and the modules of the checks
/// file as last (re)loaded.
#[derive(Debug)]
pub struct Serving {
    /// The checks being run.
    pub checks: Vec<Arc<Served>>,
    /// The `/probe` modules.
    pub modules: Vec<ServedModule>,
}

/// The checks being run. Each check is a task that keeps its schedule (timers only); its
/// runs are tasks on the runtime that runs guests, at most `--max-check-runs` at once, so
/// what the server holds (threads, pool slots, mappings) follows the runs in flight, not
/// the number of checks.
pub struct Fleet {
    runtime: FleetRuntime,
    /// Where the checks' schedules run.
    schedules: tokio::runtime::Handle,
    running: Vec<Running>,
}

/// What every check's runs share.
#[derive(Clone)]
pub struct FleetRuntime {
    /// The runner, with each probe compiled and linked once.
    pub runner: Arc<Runner>,
    /// The runtime that runs guests.
    pub probes: tokio::runtime::Handle,
    /// The turns of check runs at once (`--max-check-runs`).
    pub runs: Arc<tokio::sync::Semaphore>,
}

/// A check and the handle that stops its task when dropped.
struct Running {
    served: Arc<Served>,
    _stop: oneshot::Sender<()>,
}

/// The most checks one checks file may hold: far more than one server runs well (the
/// README has the measured figures), few enough that a mistaken file is refused with a
/// reason instead of taking the server's memory.
pub const MAX_CHECKS: usize = 100_000;

/// When in its interval a check runs, after its first run: spread over the interval by a
/// hash of its name, salted per process.
fn phase(name: &str, interval: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write(name.as_bytes());
    let nanos = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(hasher.finish() % nanos)
}

impl Fleet {
    /// No checks running yet; their schedules will run on `schedules`.
    pub fn new(runtime: FleetRuntime, schedules: tokio::runtime::Handle) -> Self {
        Fleet {
            runtime,
            schedules,
            running: Vec::new(),
        }
    }

    /// Serves `checks` from now on: a check whose table (and TLS files) are unchanged keeps
    /// its task, schedule and results; a new or changed one starts (and runs at once); one
    /// no longer in the file stops, its run in progress dropped. Nothing changes if any of
    /// it fails. Returns what to serve and a line saying what changed.
    pub fn apply(
        &mut self,
        checks: Checks,
        grants: &crate::settings::GrantOverrides,
    ) -> Result<(Arc<Serving>, String), crate::Failure> {
        if checks.checks.len() > MAX_CHECKS {
            return Err(crate::Failure::BadInput(format!(
                "{} checks in one file, more than the {MAX_CHECKS} one server runs; split \
                 them over several servers",
                checks.checks.len()
            )));
        }
        let modules = ServedModule::new(checks.modules, grants)?;
        let by_name: std::collections::HashMap<&str, usize> = self
            .running
            .iter()
            .enumerate()
            .map(|(i, r)| (r.served.name.as_str(), i))
            .collect();
        let mut kept = Vec::new();
        let mut started = Vec::new();
        for check in checks.checks {
            // Resolved whole, so a certificate rotated in place (same path, new content)
            // counts as a change.
            let served = Served::new(check, grants)?;
            match by_name.get(served.name.as_str()).copied().filter(|&i| {
                let r = &self.running[i].served;
                r.definition == served.definition
                    && r.config.sandbox.tls == served.config.sandbox.tls
            }) {
                Some(i) => kept.push(i),
                None => started.push(Arc::new(served)),
            }
        }
        let started: Vec<Running> = started
            .into_iter()
            .map(|served| self.start(served))
            .collect();
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        let mut running: Vec<Running> = kept.iter().filter_map(|&i| old[i].take()).collect();
        let stopped: Vec<Running> = old.into_iter().flatten().collect();
        let names = |list: &[Running]| -> BTreeSet<String> {
            list.iter().map(|r| r.served.name.clone()).collect()
        };
        let (new, gone) = (names(&started), names(&stopped));
        let mut changes = Vec::new();
        for (what, list) in [
            ("added", new.difference(&gone).collect::<Vec<_>>()),
            ("changed", new.intersection(&gone).collect()),
            ("removed", gone.difference(&new).collect()),
        ] {
            if !list.is_empty() {
                let list: Vec<&str> = list.into_iter().map(String::as_str).collect();
                changes.push(format!("{what} {}", list.join(", ")));
            }
        }
        // Dropping their stop handles ends the tasks of the checks not kept.
        drop(stopped);
        running.extend(started);
        running.sort_by(|a, b| a.served.name.cmp(&b.served.name));
        let summary = format!(
            "{} checks, {} modules{}",
            running.len(),
            modules.len(),
            if changes.is_empty() {
                String::new()
            } else {
                format!(" ({})", changes.join("; "))
            }
        );
        self.running = running;
        let serving = Serving {
            checks: self.running.iter().map(|r| r.served.clone()).collect(),
            modules,
        };
        Ok((Arc::new(serving), summary))
    }

    fn start(&self, served: Arc<Served>) -> Running {
        let (stop, stopped) = oneshot::channel();
        self.schedules
            .spawn(served.clone().run_until(self.runtime.clone(), stopped));
        Running {
            served,
            _stop: stop,
        }
    }
}

/// A `/probe` module as `serve` runs it.
#[derive(Debug)]
pub struct ServedModule {
    /// Its name in the checks file.
    pub name: String,
    source: ProbeSource,
    params: Vec<(String, String)>,
    target: String,
    config: RunConfig,
}

impl ServedModule {
    /// The modules to serve, with their grants resolved.
    fn new(
        modules: Vec<Module>,
        grants: &crate::settings::GrantOverrides,
    ) -> Result<Vec<ServedModule>, crate::Failure> {
        modules
            .into_iter()
            .map(|m| {
                let config = m.settings.run_config(grants)?;
                Ok(ServedModule {
                    name: m.name,
                    source: m.source,
                    params: m.settings.params,
                    target: m.target,
                    config,
                })
            })
            .collect()
    }
}

/// How much of Prometheus's scrape timeout `/probe` leaves for the answer to travel, as
/// blackbox_exporter does.
pub const SCRAPE_OFFSET: Duration = Duration::from_millis(500);

/// A `/probe` request, checked and ready to run: the module's probe with the target set,
/// under the module's timeout or the scrape's.
#[derive(Debug)]
pub struct ProbeRequest {
    source: ProbeSource,
    params: Vec<(String, String)>,
    config: RunConfig,
}

/// `GET /probe?module=M&target=T`, as blackbox_exporter answers it: runs module `M` with
/// its target parameter set to `T`, now, under the module's timeout or the scrape's
/// (`X-Prometheus-Scrape-Timeout-Seconds` less [`SCRAPE_OFFSET`]) if shorter. The target is
/// reached under the module's grants only (loopback unless it grants more), so `/probe` is
/// no proxy to anywhere. This checks the request; a bad one gets its answer (400) here.
pub fn probe_request(
    modules: &[ServedModule],
    query: &str,
    scrape_timeout: Option<&str>,
) -> Result<ProbeRequest, Answer> {
    let bad = |why: String| (400, TEXT, why + "\n");
    let mut module = None;
    let mut target = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "module" => module = Some(value.into_owned()),
            "target" => target = Some(value.into_owned()),
            _ => {}
        }
    }
    let names = || {
        modules
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(module_name) = module else {
        return Err(bad(format!(
            "give module=NAME; the modules are {}",
            names()
        )));
    };
    let Some(module) = modules.iter().find(|m| m.name == module_name) else {
        return Err(bad(format!(
            "unknown module {module_name}; the modules are {}",
            names()
        )));
    };
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Err(bad(format!(
            "give target=…, the {} of module {module_name}",
            module.target
        )));
    };
    let mut config = module.config.clone();
    if let Some(header) = scrape_timeout {
        let scrape = match header.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > SCRAPE_OFFSET.as_secs_f64() => {
                Duration::from_secs_f64(s) - SCRAPE_OFFSET
            }
            _ => {
                return Err(bad(format!(
                    "X-Prometheus-Scrape-Timeout-Seconds: {header}: expected more than {} seconds",
                    SCRAPE_OFFSET.as_secs_f64()
                )));
            }
        };
        config.limits.timeout = config.limits.timeout.min(scrape);
    }
    let mut params: Vec<(String, String)> = module
        .params
        .iter()
        .filter(|(k, _)| *k != module.target)
        .cloned()
        .collect();
    params.push((module.target.clone(), target));
    Ok(ProbeRequest {
        source: module.source.clone(),
        params,
        config,
    })
}

impl ProbeRequest {
    /// Runs the probe on `probes` (see [`run_by_the_clock`]) and answers with
    /// `probe_success`, `probe_duration_seconds` and the probe's numeric details as gauges.
    pub async fn answer(self, probes: &tokio::runtime::Handle, runner: Arc<Runner>) -> Answer {
        let start = Instant::now();
        let report = run_by_the_clock(probes, runner, self.source, self.params, self.config).await;
        gauges(&report, start.elapsed())
    }
}

/// How long past a run's timeout its caller waits for the run's own report before it
/// answers the timeout itself. The run ends at its deadline when its task is polled; this
/// covers the case where it is not, because every worker is busy with other guests.
pub const CLOCK_MARGIN: Duration = Duration::from_millis(200);

/// Runs one probe as a task on `probes`, the runtime that runs guests, and waits for it on
/// the caller's runtime: the timeout is kept by the caller's clock, not by the next time a
/// starved task is polled. With every worker busy with spinning guests (each yields at
/// every epoch tick, but hundreds take turns on two cores), a run whose deadline passed
/// may wait long for its turn; its caller answers `timeout after …` by the deadline plus
/// [`CLOCK_MARGIN`] and the run is dropped at its next turn.
pub async fn run_by_the_clock(
    probes: &tokio::runtime::Handle,
    runner: Arc<Runner>,
    source: ProbeSource,
    params: Vec<(String, String)>,
    config: RunConfig,
) -> Report {
    let start = Instant::now();
    let timeout = config.limits.timeout;
    let label = source.label();
    let task = probes.spawn(async move { runner.run(start, &source, &params, &config).await });
    let abort = task.abort_handle();
    // A run whose caller went away (a client that closed its connection) is dropped too.
    let _abort_on_drop = AbortOnDrop(abort.clone());
    let by = tokio::time::Instant::from_std(start + timeout + CLOCK_MARGIN);
    match tokio::time::timeout_at(by, task).await {
        Ok(Ok(report)) => report,
        // A panic is a healthprobe bug; it fails this run, not the server.
        Ok(Err(_)) => Report::failed(
            &label,
            &crate::Failure::Setup("the run panicked (a healthprobe bug; please report it)".into()),
            start.elapsed(),
        ),
        Err(_) => {
            abort.abort();
            Report::failed(
                &label,
                &crate::Failure::Timeout {
                    after: timeout,
                    during: None,
                },
                start.elapsed(),
            )
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A `/probe` answer for `report`, a run that took `took`: the verdict as a comment, then
/// the gauges.
fn gauges(report: &Report, took: Duration) -> Answer {
    // The verdict, for a person reading the answer; Prometheus skips comments.
    let verdict = format!(
        "# {}\n",
        text::one_line(&crate::output::render(report, crate::output::Format::Text))
    );
    let pass = matches!(report.verdict, Verdict::Healthy | Verdict::Degraded);
    let gauges = || -> prometheus::Result<String> {
        let registry = prometheus::Registry::new();
        let gauge = |name: &str, help: &str, value: f64| {
            let gauge = prometheus::Gauge::new(name, help)?;
            gauge.set(value);
            registry.register(Box::new(gauge))
        };
        gauge(
            "probe_success",
            "Displays whether or not the probe was a success",
            f64::from(u8::from(pass)),
        )?;
        gauge(
            "probe_duration_seconds",
            "Returns how long the probe took to complete in seconds",
            took.as_secs_f64(),
        )?;
        for (key, value) in &report.details {
            if let Ok(number) = value.trim().parse::<f64>()
                && number.is_finite()
            {
                // A detail whose name clashes with one already given is left out.
                let _ = gauge(
                    &format!("probe_{}", metric_name(key)),
                    &format!("The probe's detail {key}"),
                    number,
                );
            }
        }
        encode(&registry)
    };
    match gauges() {
        Ok(text) => (200, METRICS, verdict + &text),
        Err(e) => (500, TEXT, format!("cannot write the metrics: {e}\n")),
    }
}

/// Writes one line of the server's log on stderr, whole (`eprintln!` writes each piece of
/// its format apart, so whatever reads the log could see half a line). Lines go through a
/// thread of their own: a stderr that is full (a reader that stopped reading) blocks that
/// thread alone, never a check or an answer, and lines that find the queue full are
/// dropped and counted in the next line that is written. A closed or broken stderr is
/// ignored (see `output::print_err`).
pub fn log(line: std::fmt::Arguments) {
    let log = Log::get();
    let dropped = log.dropped.swap(0, Ordering::Relaxed);
    let line = if dropped > 0 {
        format!("healthprobe serve: {line} ({dropped} log lines dropped: stderr was not read)\n")
    } else {
        format!("healthprobe serve: {line}\n")
    };
    match &log.queue {
        Some(queue) => {
            log.pending.fetch_add(1, Ordering::SeqCst);
            if queue.try_send(line).is_err() {
                log.pending.fetch_sub(1, Ordering::SeqCst);
                log.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
            }
        }
        // No thread for the log: written here, which a full stderr may block.
        None => crate::output::print_err(&line),
    }
}

/// Waits until the lines logged so far are written, or `at_most` has passed (stderr may be
/// full): the last lines before the server exits.
pub fn flush_log(at_most: Duration) {
    let log = Log::get();
    let until = Instant::now() + at_most;
    while log.pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The log's queue and its writer thread.
struct Log {
    queue: Option<std::sync::mpsc::SyncSender<String>>,
    /// Lines queued and not yet written.
    pending: Arc<AtomicUsize>,
    /// Lines dropped since the last one queued.
    dropped: AtomicU64,
}

impl Log {
    fn get() -> &'static Log {
        static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let (send, receive) = std::sync::mpsc::sync_channel::<String>(LOG_QUEUE);
            let pending = Arc::new(AtomicUsize::new(0));
            let written = pending.clone();
            let queue = std::thread::Builder::new()
                .name("log".into())
                .spawn(move || {
                    for line in receive {
                        crate::output::print_err(&line);
                        written.fetch_sub(1, Ordering::SeqCst);
                    }
                })
                .ok()
                .map(|_| send);
            Log {
                queue,
                pending,
                dropped: AtomicU64::new(0),
            }
        })
    }
}

/// Log lines waiting to be written before more are dropped.
const LOG_QUEUE: usize = 1024;

/// The text format's content type.
const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `registry`'s metrics in Prometheus's text format.
fn encode(registry: &prometheus::Registry) -> prometheus::Result<String> {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// A detail's name as a metric name: lower case, `_` for anything else.
fn metric_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

const VERDICTS: [Verdict; 4] = [
    Verdict::Healthy,
    Verdict::Degraded,
    Verdict::Unhealthy,
    Verdict::Error,
];

fn verdict_index(v: Verdict) -> usize {
    VERDICTS.iter().position(|x| *x == v).unwrap_or(3)
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Healthy => "healthy",
        Verdict::Degraded => "degraded",
        Verdict::Unhealthy => "unhealthy",
        Verdict::Error => "error",
    }
}

/// An HTTP answer: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// The content type of plain answers.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Answers one GET request for `path` with `query` (without the `?`).
pub fn answer(checks: &[Arc<Served>], path: &str, query: &str) -> Answer {
    let verbose = query
        .split('&')
        .any(|p| p == "verbose" || p.starts_with("verbose="));
    match path.trim_end_matches('/') {
        "/livez" => group(checks, "liveness", "livez", verbose),
        "/readyz" => group(checks, "readiness", "readyz", verbose),
        "/health" => health(checks),
        "/metrics" => match metrics(checks) {
            Ok(text) => (200, METRICS, text),
            Err(e) => (500, TEXT, format!("cannot write the metrics: {e}\n")),
        },
        p => {
            for (prefix, group_name) in [("/livez/", "liveness"), ("/readyz/", "readiness")] {
                if let Some(name) = p.strip_prefix(prefix) {
                    return match checks
                        .iter()
                        .find(|c| c.name == name && c.groups.iter().any(|g| g == group_name))
                    {
                        Some(c) => one(c),
                        None => (
                            404,
                            TEXT,
                            format!("no check {name} in the {group_name} group\n"),
                        ),
                    };
                }
            }
            (
                404,
                TEXT,
                "not found; try /livez, /readyz, /health or /metrics\n".into(),
            )
        }
    }
}

/// `/livez` or `/readyz`: 200 `ok` when every check of the group passes, else 503; with
/// `?verbose`, one `[+]name ok` or `[-]name failed: reason` line per check, as
/// kube-apiserver writes them.
fn group(checks: &[Arc<Served>], group: &str, endpoint: &str, verbose: bool) -> Answer {
    let mut body = String::new();
    let mut pass = true;
    for check in checks
        .iter()
        .filter(|c| c.groups.iter().any(|g| g == group))
    {
        let status = check.status();
        pass &= status.pass;
        if verbose {
            if status.pass {
                let _ = writeln!(body, "[+]{} ok", check.name);
            } else {
                let _ = writeln!(
                    body,
                    "[-]{} failed: {}",
                    check.name,
                    text::one_line(&status.message)
                );
            }
        }
    }
    let code = if pass { 200 } else { 503 };
    if verbose {
        let _ = writeln!(
            body,
            "{endpoint} check {}",
            if pass { "passed" } else { "failed" }
        );
    } else if pass {
        body.push_str("ok");
    } else {
        let _ = write!(body, "{endpoint} check failed");
    }
    (code, TEXT, body)
}

fn one(check: &Served) -> Answer {
    let status = check.status();
    if status.pass {
        (200, TEXT, "ok".into())
    } else {
        (
            503,
            TEXT,
            format!("{} failed: {}", check.name, text::one_line(&status.message)),
        )
    }
}

/// `/health`, in the IETF draft "Health Check Response Format for HTTP APIs": `status`
/// pass, warn (a degraded check) or fail, and one entry per check.
fn health(checks: &[Arc<Served>]) -> Answer {
    let statuses: Vec<(&Served, Status)> = checks.iter().map(|c| (&**c, c.status())).collect();
    let overall = if statuses.iter().any(|(_, s)| !s.pass) {
        "fail"
    } else if statuses.iter().any(|(_, s)| s.verdict == Verdict::Degraded) {
        "warn"
    } else {
        "pass"
    };
    let mut entries = serde_json::Map::new();
    for (check, s) in &statuses {
        let status = match (s.pass, s.verdict) {
            (true, Verdict::Degraded) => "warn",
            (true, _) => "pass",
            (false, _) => "fail",
        };
        let mut entry = serde_json::json!({
            "componentId": check.name,
            "componentType": "component",
            "status": status,
            "output": s.message,
            "affectedEndpoints": check.groups,
        });
        if let Some(d) = s.duration {
            entry["observedValue"] = serde_json::json!(d.as_secs_f64());
            entry["observedUnit"] = "s".into();
        }
        if let Some(t) = s.time {
            entry["time"] = humantime::format_rfc3339_millis(t).to_string().into();
        }
        entries.insert(format!("{}:run", check.name), serde_json::json!([entry]));
    }
    let body = serde_json::json!({
        "status": overall,
        "description": "healthprobe serve",
        "checks": entries,
    });
    let code = if overall == "fail" { 503 } else { 200 };
    (code, "application/health+json", format!("{body:#}\n"))
}

/// `/metrics`, in Prometheus's text format: each check's success, duration and runs, and
/// the process's own memory, CPU, file descriptors and start time.
fn metrics(checks: &[Arc<Served>]) -> prometheus::Result<String> {
    use prometheus::{GaugeVec, IntCounterVec, Opts};
    let success = GaugeVec::new(
        Opts::new(
            "healthprobe_check_success",
            "Whether the check's latest result passes (1) or not (0; failed, stale or none yet).",
        ),
        &["check"],
    )?;
    let duration = GaugeVec::new(
        Opts::new(
            "healthprobe_check_duration_seconds",
            "How long the check's latest run took.",
        ),
        &["check"],
    )?;
    let runs = IntCounterVec::new(
        Opts::new(
            "healthprobe_check_runs_total",
            "Runs of the check since it was (re)loaded, by result.",
        ),
        &["check", "result"],
    )?;
    for check in checks {
        let status = check.status();
        let name = check.name.as_str();
        success
            .with_label_values(&[name])
            .set(f64::from(u8::from(status.pass)));
        if let Some(d) = status.duration {
            duration.with_label_values(&[name]).set(d.as_secs_f64());
        }
        for (verdict, n) in VERDICTS.iter().zip(check.runs()) {
            runs.with_label_values(&[name, verdict_word(*verdict)])
                .inc_by(n);
        }
    }
    let registry = prometheus::Registry::new();
    registry.register(Box::new(success))?;
    registry.register(Box::new(duration))?;
    registry.register(Box::new(runs))?;
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    encode(&registry)
}
