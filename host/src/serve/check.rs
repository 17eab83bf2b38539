//! One check as `serve` runs it: its schedule (a task that keeps its interval, from a phase
//! of its own), its runs, and what the endpoints read of them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::clock::run_by_the_clock;
use super::logging::log;
use crate::checks::{Check, Definition};
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
    pub(super) definition: Definition,
    source: ProbeSource,
    params: Vec<(String, String)>,
    pub(super) config: RunConfig,
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
    pub(super) fn new(
        c: Check,
        grants: &crate::flags::GrantArgs,
    ) -> Result<Served, crate::Failure> {
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
    pub(super) async fn run_until(
        self: Arc<Self>,
        fleet: FleetRuntime,
        stop: oneshot::Receiver<()>,
    ) {
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
                verdict.as_str()
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

    pub(super) fn runs(&self) -> [u64; 4] {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).runs
    }
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

/// The verdicts in the order of [`Served::runs`]' counts.
pub(super) const VERDICTS: [Verdict; 4] = [
    Verdict::Healthy,
    Verdict::Degraded,
    Verdict::Unhealthy,
    Verdict::Error,
];

fn verdict_index(v: Verdict) -> usize {
    VERDICTS.iter().position(|x| *x == v).unwrap_or(3)
}
