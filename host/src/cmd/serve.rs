//! `healthprobe serve --config FILE [--listen ADDR]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::checks::Checks;
use crate::flags::{CacheArgs, FormatArgs, GrantArgs, LimitArgs, OciArgs};
use crate::output;
use crate::runner::Runner;
use crate::serve;

/// Arguments of `healthprobe serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The checks file: the checks to run, each on its own interval (see `run --config`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Where to serve /livez, /readyz, /health, /metrics and /probe.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,

    /// Most /probe requests run at once; one more is answered 503 at once. At most 500.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PROBES)))]
    pub max_probes: u16,

    /// Most check runs at once; a run that finds them all taken waits its turn. Checks run
    /// as tasks, so this, not the number of checks, sizes what the server holds (a slot of
    /// wasmtime's pools per run). Raise it if more checks than this may hang at once (each
    /// holds its turn until its timeout). At most 500.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_CHECK_RUNS)))]
    pub max_check_runs: u16,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub grants: GrantArgs,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub oci: OciArgs,

    #[command(flatten)]
    pub format: FormatArgs,
}

/// Serves until SIGTERM or SIGINT, then exits 0; SIGHUP reloads the checks file. A setup
/// problem (a bad checks file, an address in use) exits 3 before serving.
pub fn execute(args: ServeArgs) -> Result<ExitCode, crate::Error> {
    let format = args.format.format;
    let subject = "serve";
    let access = args.cache.oci(&args.oci);
    let mut checks = match Checks::load(&args.config, &args.limits, &access) {
        Ok(c) => c,
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    let sources = checks
        .checks
        .iter()
        .map(|c| &c.source)
        .chain(checks.modules.iter().map(|m| &m.source));
    let cache = args.cache.open(sources, args.oci.pull);
    // Pulled once, here (and on a reload), never when a check runs.
    match checks.fetch(&args.oci, |_| serve::pull_deadline()) {
        Ok(lines) => lines.iter().for_each(|l| serve::log(format_args!("{l}"))),
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    }
    let slots = u32::from(args.max_check_runs) + u32::from(args.max_probes);
    let runner = match Runner::new() {
        Ok(r) => r.pooled(slots),
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    let runner = runner.with_cache(cache);
    let runner = Arc::new(runner);
    let options = serve::Options {
        config: args.config,
        listen: args.listen,
        max_probes: args.max_probes,
        max_check_runs: args.max_check_runs,
        grants: args.grants.clone(),
        limits: args.limits.clone(),
        oci: (access, args.oci.clone()),
    };
    match serve::serve(checks, runner, options) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(f) => Ok(output::fail(subject, &f.to_string(), format)),
    }
}

/// The most `--max-probes` and `--max-check-runs` allow; together, the runner's pools hold
/// a slot for each.
const MAX_PROBES: u16 = 500;
const MAX_CHECK_RUNS: u16 = 500;
const _: () = assert!(MAX_PROBES as u32 + MAX_CHECK_RUNS as u32 <= crate::runner::POOL_SLOTS);
