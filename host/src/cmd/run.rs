//! `healthprobe run PROBE [KEY=VALUE…]`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::RunArgs;
use crate::output::{self, Format};
use crate::params;
use crate::runner::{ProbeSource, Report, Runner, Verdict};
use crate::settings;

/// How long past the deadline the watchdog waits before ending the process. The runner's
/// own timeout fires at the deadline; this only catches a thread that cannot be cancelled.
pub const WATCHDOG_MARGIN: Duration = Duration::from_millis(300);

/// Runs one probe and prints its result.
pub fn execute(args: RunArgs) -> Result<ExitCode, crate::Error> {
    let start = Instant::now();
    let format = args.output.format;
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
        &args.limits,
        args.sha256.as_deref(),
        &params,
    ) {
        Ok(s) => s,
        Err(failure) => return bad_input(failure.to_string()),
    };
    let runner = match Runner::new() {
        Ok(r) => r,
        Err(f) => return bad_input(f.to_string()),
    };
    // The last line of defence: whatever is stuck, the process reports and exits.
    {
        let reporter = reporter.clone();
        let label = source.label();
        let timeout = settings.limits.timeout;
        runner.watchdog(start + timeout + WATCHDOG_MARGIN, move || {
            let message = format!(
                "timeout after {} (a host call did not stop in time; ended by the watchdog)",
                output::duration(timeout)
            );
            let report = failure_report(&label, Verdict::Unhealthy, message, start);
            let _ = reporter.emit(&report, format, quiet, false, true);
        });
    }
    // After the watchdog: the grants' host names are resolved here.
    let config = match settings.run_config(&args.grants) {
        Ok(c) => c,
        Err(failure) => return bad_input(failure.to_string()),
    };
    #[cfg(feature = "compiler")]
    let runner = runner.with_cache(compile_cache(&args.cache));
    let rt = super::runtime()?;
    let mut report = rt.block_on(runner.run(start, &source, &settings.params, &config));
    // Blocking-pool threads may still sit in a host call that outlived the deadline;
    // waiting for them would undo the deadline.
    rt.shutdown_background();
    report.elapsed = start.elapsed();
    reporter.emit(&report, format, quiet, args.output.verbose, false)
}

/// The compile cache the options ask for: `--no-cache`, else `--cache-dir`, else the
/// environment variable (empty counts as unset), else the platform's cache directory.
#[cfg(feature = "compiler")]
fn compile_cache(args: &crate::cli::CacheArgs) -> Option<crate::cache::Cache> {
    use crate::cache::{Cache, ENV};
    if args.no_cache {
        return None;
    }
    let from_env = std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(Into::into);
    match args.cache_dir.clone().or(from_env) {
        Some(dir) => Some(Cache::new(dir)),
        None => Cache::platform(),
    }
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
        let printed = if quiet {
            Ok(())
        } else {
            print(report, format, verbose)
        };
        if exit {
            std::process::exit(code.into());
        }
        printed?;
        Ok(ExitCode::from(code))
    }
}

fn print(report: &Report, format: Format, verbose: bool) -> std::io::Result<()> {
    let line = output::render(report, format);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    if verbose {
        let room = output::MAX_OUTPUT.saturating_sub(line.len() + 1);
        eprint!("{}", output::render_guest_output(report, room));
    }
    Ok(())
}
