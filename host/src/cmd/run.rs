//! `healthprobe run PROBE [KEY=VALUE…]`, and `healthprobe run --config FILE [CHECK…]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::checks::Checks;
use crate::flags::{CacheArgs, GrantArgs, LimitArgs, OciArgs, OutputArgs};
use crate::oci;
use crate::output::{self, Format};
use crate::params;
use crate::report::{Failure, Report, Verdict};
use crate::runner::{Deadline, ProbeSource, RunConfig, Runner};
use crate::settings::{self, Settings};
use crate::text;

/// Arguments of `healthprobe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A bundled probe name (`http`, `tcp`, …), the path of a `.wasm` component, a
    /// `.cwasm` made by `healthprobe compile`, or `oci://REGISTRY/REPO@sha256:DIGEST`.
    /// With --config: a check to run.
    #[arg(value_name = "PROBE", required_unless_present = "config")]
    pub probe: Option<String>,

    /// Probe parameters as KEY=VALUE; repeat a key for a repeatable parameter. With
    /// --config: more checks to run.
    #[arg(value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Run the checks of a TOML checks file (all, or the ones named instead of PROBE)
    /// side by side, and report one verdict: healthy only if every check passes.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["policy", "sha256"])]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub grants: GrantArgs,

    /// Refuse to run the probe unless its SHA-256 is HEX (see `healthprobe inspect`).
    #[arg(long, value_name = "HEX", value_parser = crate::flags::parse_sha256)]
    pub sha256: Option<String>,

    /// Read grants, caps, parameters and the pinned hash from a TOML policy file;
    /// options and parameters on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub oci: OciArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// How long past the deadline the watchdog waits before ending the process. The runner's
/// own timeout fires at the deadline; this only catches a thread that cannot be cancelled.
pub const WATCHDOG_MARGIN: Duration = Duration::from_millis(300);

/// What `run` runs: the checks of a checks file, or the probe named on the command line,
/// which is a checks file of one check. Both go through the same steps in [`execute`].
enum Plan {
    File(Checks),
    One {
        label: String,
        source: ProbeSource,
        settings: Box<Settings>,
    },
}

/// One check to run: its name, what it runs and its settings.
struct Job<'a> {
    name: &'a str,
    source: &'a ProbeSource,
    settings: &'a Settings,
}

impl Plan {
    /// Reads the checks file, or resolves the probe, its parameters and its policy file.
    fn new(args: &RunArgs) -> Result<Self, Failure> {
        let oci = args.cache.oci(&args.oci);
        if let Some(path) = &args.config {
            return Ok(Plan::File(Checks::load(path, &args.limits, &oci)?));
        }
        let label = args.probe.clone().unwrap_or_default();
        let params: Vec<params::Given> = args
            .params
            .iter()
            .map(|p| params::parse_arg(p))
            .collect::<Result<_, _>>()
            .map_err(Failure::BadInput)?;
        let source = ProbeSource::resolve(&label, &oci)?;
        let settings = settings::resolve(
            args.policy.as_deref(),
            &args.limits,
            args.sha256.as_deref(),
            &params,
        )?;
        Ok(Plan::One {
            label,
            source,
            settings: Box::new(settings),
        })
    }

    /// Every probe the plan may run.
    fn sources(&self) -> Vec<&ProbeSource> {
        match self {
            Plan::One { source, .. } => vec![source],
            Plan::File(checks) => checks.checks.iter().map(|c| &c.source).collect(),
        }
    }

    /// With --pull, pulls the `oci://` probes not stored yet, each within its check's
    /// deadline from `start`; the lines say what was resolved and pulled.
    fn fetch(&mut self, args: &OciArgs, start: Instant) -> Result<Vec<String>, Failure> {
        match self {
            Plan::One {
                source, settings, ..
            } => {
                let until = start + settings.limits.timeout;
                oci::fetch([(source, settings.limits.code.max_size, until)], args)
            }
            Plan::File(checks) => checks.fetch(args, |s| start + s.limits.timeout),
        }
    }

    /// The checks to run: the one probe, or the checks named (all when none is).
    fn jobs(&self, names: &[String]) -> Result<Vec<Job<'_>>, Failure> {
        Ok(match self {
            Plan::One {
                label,
                source,
                settings,
            } => vec![Job {
                name: label,
                source,
                settings,
            }],
            Plan::File(checks) => checks
                .select(names)?
                .into_iter()
                .map(|c| Job {
                    name: &c.name,
                    source: &c.source,
                    settings: &c.settings,
                })
                .collect(),
        })
    }
}

/// Runs the probe, or the checks of a checks file side by side in one process, each under
/// its own timeout from one start, and prints one verdict.
pub fn execute(args: RunArgs) -> Result<ExitCode, crate::Error> {
    let start = Instant::now();
    let format = args.output.format.format;
    let (quiet, verbose) = (args.output.quiet, args.output.verbose);
    let reporter = Reporter::default();
    let one = args.config.is_none();
    let label = match &args.probe {
        Some(probe) if one => probe.clone(),
        _ => String::new(),
    };
    let bad_input = |failure: Failure| {
        let report = Report::new(Verdict::Error, &label, failure.to_string(), start.elapsed());
        reporter.emit(&report, format, quiet, false, false)
    };

    let mut plan = match Plan::new(&args) {
        Ok(p) => p,
        Err(failure) => return bad_input(failure),
    };
    // Before the first thread starts (a pull's): file writes confined to the cache.
    let cache = args.cache.open(plan.sources(), args.oci.pull);
    match plan.fetch(&args.oci, start) {
        Ok(lines) if !quiet => lines
            .iter()
            .for_each(|l| output::print_err(&format!("{l}\n"))),
        Ok(_) => {}
        Err(failure) => return bad_input(failure),
    }
    // With --config, the positional arguments name checks.
    let names: Vec<String> = if one {
        Vec::new()
    } else {
        args.probe.iter().chain(&args.params).cloned().collect()
    };
    let jobs = match plan.jobs(&names) {
        Ok(j) => j,
        Err(failure) => return bad_input(failure),
    };
    let runner = match Runner::new() {
        Ok(r) => r,
        Err(failure) => return bad_input(failure),
    };
    // The watchdog waits for the longest check, and names the probe when there is one.
    let timeout = jobs.iter().map(|j| j.settings.limits.timeout).max();
    let longest = Deadline::new(start, timeout.unwrap_or_default());
    let watched = match jobs.first() {
        Some(job) if one => job.source.label(),
        _ => String::new(),
    };
    let _watchdog = watchdog(&runner, &reporter, watched, longest, (format, quiet));
    // After the watchdog: the grants' host names are resolved here.
    let mut configs = Vec::new();
    for job in &jobs {
        match job.settings.run_config(&args.grants) {
            // `--verbose` prints the digest of what ran, so a `.cwasm` is hashed (and read).
            Ok(c) => configs.push(RunConfig {
                report_sha256: verbose,
                ..c
            }),
            Err(failure) => return bad_input(failure),
        }
    }
    let runner = runner.with_cache(cache);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(failure) => return bad_input(failure),
    };
    let mut reports = rt.block_on(futures_util::future::join_all(
        jobs.iter().zip(&configs).map(|(job, config)| {
            let deadline = Deadline::new(start, config.limits.timeout);
            runner.run(deadline, job.source, &job.settings.params, config)
        }),
    ));
    // Blocking-pool threads may still sit in a host call that outlived the deadline;
    // waiting for them would undo the deadline.
    rt.shutdown_background();

    if one && let Some(mut report) = reports.pop() {
        report.elapsed = start.elapsed();
        return reporter.emit(&report, format, quiet, verbose, false);
    }
    let results: Vec<(&str, Report)> = jobs.iter().map(|j| j.name).zip(reports).collect();
    let combined = crate::checks::combine(&results, start.elapsed());
    if verbose && !quiet {
        for (name, report) in &results {
            output::print_err(&format!(
                "{name}: {}\n",
                output::render(report, Format::Text)
            ));
        }
    }
    let line = match format {
        Format::Text => output::render(&combined, format),
        Format::Json => output::render_checks(&combined, &results),
    };
    reporter.emit_line(&line, combined.verdict.exit_code(), quiet, false)
}

/// The last line of defence, this command's policy: whatever is stuck `timeout` (plus
/// [`WATCHDOG_MARGIN`]) after `start`, the process reports `label` unhealthy and exits.
/// Keep the timer until the result is printed.
fn watchdog(
    runner: &Runner,
    reporter: &Reporter,
    label: String,
    deadline: Deadline,
    (format, quiet): (Format, bool),
) -> crate::runner::Timer {
    let reporter = reporter.clone();
    runner.at(deadline.at() + WATCHDOG_MARGIN, move || {
        let message = format!(
            "timeout after {} (a host call did not stop in time; ended by the watchdog)",
            text::duration(deadline.timeout())
        );
        let report = Report::new(Verdict::Unhealthy, &label, message, deadline.elapsed());
        let _ = reporter.emit(&report, format, quiet, false, true);
    })
}

/// Prints the result exactly once, whether the main thread or the watchdog gets there
/// first.
#[derive(Debug, Clone, Default)]
struct Reporter {
    done: Arc<Mutex<bool>>,
}

impl Reporter {
    /// `exit` ends the process with the verdict's status while the lock is still held:
    /// that is how the watchdog reports, so main cannot print a second line between the
    /// watchdog's line and its exit.
    fn emit(
        &self,
        report: &Report,
        format: Format,
        quiet: bool,
        verbose: bool,
        exit: bool,
    ) -> Result<ExitCode, crate::Error> {
        self.once(report.verdict.exit_code(), exit, || {
            if !quiet {
                let _ = print(report, format, verbose);
            }
        })
    }

    /// Prints `line` as the result, with exit status `code`.
    fn emit_line(
        &self,
        line: &str,
        code: u8,
        quiet: bool,
        exit: bool,
    ) -> Result<ExitCode, crate::Error> {
        self.once(code, exit, || {
            if !quiet {
                let _ = output::print_line(line);
            }
        })
    }

    fn once(&self, code: u8, exit: bool, print: impl FnOnce()) -> Result<ExitCode, crate::Error> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            // Only the watchdog can get here, after main printed; main's code stands.
            return Ok(ExitCode::from(code));
        }
        *done = true;
        // With stdout closed the verdict still stands: Docker and Kubernetes read only the
        // exit status.
        print();
        if exit {
            std::process::exit(code.into());
        }
        Ok(ExitCode::from(code))
    }
}

fn print(report: &Report, format: Format, verbose: bool) -> std::io::Result<()> {
    let line = output::render(report, format);
    output::print_line(&line)?;
    if verbose {
        let room = output::MAX_OUTPUT.saturating_sub(line.len() + 1);
        let notes = crate::confine::describe();
        output::print_err(&output::render_guest_output(report, &notes, room));
    }
    Ok(())
}
