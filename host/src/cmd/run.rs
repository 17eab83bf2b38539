//! `healthprobe run PROBE [KEY=VALUE…]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::flags::{CacheArgs, GrantArgs, LimitArgs, OutputArgs};
use crate::output::{self, Format};
use crate::params;
use crate::report::{Report, Verdict};
use crate::runner::{ProbeSource, RunConfig, Runner};
use crate::settings;
use crate::text;

/// Arguments of `healthprobe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A bundled probe name (`http`, `tcp`, …), the path of a `.wasm` component, or a
    /// `.cwasm` made by `healthprobe compile`.
    #[arg(value_name = "PROBE")]
    pub probe: String,

    /// Probe parameters as KEY=VALUE; repeat a key for a repeatable parameter.
    #[arg(value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub grants: GrantArgs,

    /// Refuse to run the probe unless its SHA-256 is HEX (see `healthprobe inspect`).
    #[arg(long, value_name = "HEX", value_parser = settings::parse_sha256)]
    pub sha256: Option<String>,

    /// Read grants, caps, parameters and the pinned hash from a TOML policy file;
    /// options and parameters on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// How long past the deadline the watchdog waits before ending the process. The runner's
/// own timeout fires at the deadline; this only catches a thread that cannot be cancelled.
pub const WATCHDOG_MARGIN: Duration = Duration::from_millis(300);

/// Runs one probe and prints its result.
pub fn execute(args: RunArgs) -> Result<ExitCode, crate::Error> {
    let start = Instant::now();
    let format = args.output.format.format;
    let quiet = args.output.quiet;
    let reporter = Reporter::default();
    let label = args.probe.clone();

    let bad_input = |message: String| {
        let report = failure_report(&label, Verdict::Error, message, start);
        reporter.emit(&report, format, quiet, false, false)
    };
    let params: Vec<(String, String)> =
        match args.params.iter().map(|p| params::parse_pair(p)).collect() {
            Ok(p) => p,
            Err(message) => return bad_input(message),
        };
    let source = match ProbeSource::resolve(&args.probe) {
        Ok(s) => s,
        Err(failure) => return bad_input(failure.to_string()),
    };

    let settings = match settings::resolve(
        args.policy.as_deref(),
        &args.limits.overrides(),
        args.sha256.as_deref(),
        &params,
    ) {
        Ok(s) => s,
        Err(failure) => return bad_input(failure.to_string()),
    };
    #[cfg(feature = "compiler")]
    let cache = args.cache.open(&source);
    #[cfg(not(feature = "compiler"))]
    args.cache.open(&source);
    let runner = match Runner::new() {
        Ok(r) => r,
        Err(f) => return bad_input(f.to_string()),
    };
    // The last line of defence, this command's policy: whatever is stuck, the process
    // reports and exits. Kept until the result is printed.
    let _watchdog = {
        let reporter = reporter.clone();
        let label = source.label();
        let timeout = settings.limits.timeout;
        runner.at(start + timeout + WATCHDOG_MARGIN, move || {
            let message = format!(
                "timeout after {} (a host call did not stop in time; ended by the watchdog)",
                text::duration(timeout)
            );
            let report = failure_report(&label, Verdict::Unhealthy, message, start);
            let _ = reporter.emit(&report, format, quiet, false, true);
        })
    };
    // After the watchdog: the grants' host names are resolved here.
    let config = match settings.run_config(&args.grants.overrides()) {
        // `--verbose` prints the digest of what ran, so a `.cwasm` is hashed (and read).
        Ok(c) => RunConfig {
            report_sha256: args.output.verbose,
            ..c
        },
        Err(failure) => return bad_input(failure.to_string()),
    };
    #[cfg(feature = "compiler")]
    let runner = runner.with_cache(cache);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(failure) => return bad_input(failure.to_string()),
    };
    let mut report = rt.block_on(runner.run(start, &source, &settings.params, &config));
    // Blocking-pool threads may still sit in a host call that outlived the deadline;
    // waiting for them would undo the deadline.
    rt.shutdown_background();
    report.elapsed = start.elapsed();
    reporter.emit(&report, format, quiet, args.output.verbose, false)
}

fn failure_report(probe: &str, verdict: Verdict, message: String, start: Instant) -> Report {
    Report {
        verdict,
        probe: probe.to_string(),
        message,
        details: Vec::new(),
        elapsed: start.elapsed(),
        stdout: (Vec::new(), 0),
        stderr: (Vec::new(), 0),
        sha256: None,
        code: None,
    }
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
        let code = report.verdict.exit_code();
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            // Only the watchdog can get here, after main printed; main's code stands.
            return Ok(ExitCode::from(code));
        }
        *done = true;
        if !quiet {
            // With stdout closed the verdict still stands: Docker and Kubernetes read only
            // the exit status.
            let _ = print(report, format, verbose);
        }
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
        eprint!("{}", output::render_guest_output(report, &notes, room));
    }
    Ok(())
}
