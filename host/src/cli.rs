//! The command line: argument definitions and dispatch to one module per subcommand.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cmd;
use crate::output::Format;
use crate::policy::Grant;

/// Run WebAssembly health probes in-process: bounded by a deadline, sandboxed, and
/// without ever starting a child process.
///
/// Exit status: 0 healthy (or degraded), 1 unhealthy, 3 the probe could not be run.
#[derive(Debug, Parser)]
#[command(name = "healthprobe", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a probe once and report healthy, degraded or unhealthy.
    Run(RunArgs),
    /// Show what a probe is, what it asks for, and what the given flags would grant it.
    Inspect(InspectArgs),
    /// Compile a probe ahead of time to a `.cwasm` that `run` loads without compiling.
    Compile(CompileArgs),
    /// List the bundled probes and their parameters.
    List(ListArgs),
}

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
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
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

/// Where a `.wasm` probe's compiled code is kept between runs (bundled probes and
/// `.cwasm` files need no compiling).
#[derive(Debug, Args, Default)]
pub struct CacheArgs {
    /// Keep compiled `.wasm` probes in DIR [default: $HEALTHPROBE_CACHE_DIR, else the
    /// platform cache directory, such as ~/.cache/healthprobe]; if it cannot be written,
    /// the probe is compiled in memory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile `.wasm` probes in memory every time, without the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// Caps on a run. Each overrides the policy file, which overrides the default.
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Deadline for the whole run, host calls included (`500ms`, `2s`, `1m`) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// WebAssembly fuel: roughly the number of instructions the probe may execute
    /// [default: 10000000000].
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,

    /// Largest size of each linear memory of the probe (`64MiB`, `512KiB`) [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
}

/// What the probe is granted. Everything is denied unless granted here (or in the policy
/// file), except TCP and HTTP to loopback.
#[derive(Debug, Args, Default)]
pub struct GrantArgs {
    /// Allow TCP, HTTP and name lookups to HOST, HOST:PORT, IP, IP:PORT, CIDR, *:PORT or *
    /// (repeatable). Replaces the default, loopback only (127.0.0.0/8, ::1, localhost).
    #[arg(long, value_name = "PATTERN")]
    pub allow_net: Vec<Grant>,

    /// Allow UDP to the same kinds of patterns (repeatable); UDP is off by default.
    #[arg(long, value_name = "PATTERN")]
    pub allow_udp: Vec<Grant>,

    /// Let the probe read directory PATH (read-only, at the same path) (repeatable).
    #[arg(long, value_name = "PATH")]
    pub allow_read: Vec<PathBuf>,

    /// Pass environment variable NAME (its current value) or set NAME=VALUE (repeatable).
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,

    /// Allow HTTP requests that ask to skip TLS certificate verification.
    #[arg(long)]
    pub allow_insecure_tls: bool,
}

/// Output options shared by the subcommands that report.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Print nothing; only the exit status tells the result.
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print the probe's own stdout/stderr, its SHA-256 and timings (on stderr).
    #[arg(long, short)]
    pub verbose: bool,
}

/// Arguments of `healthprobe inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A bundled probe name, the path of a `.wasm` component, or a `.cwasm`.
    #[arg(value_name = "PROBE")]
    pub probe: String,

    #[command(flatten)]
    pub grants: GrantArgs,

    /// Read grants from a TOML policy file, as `run --policy` does.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Arguments of `healthprobe compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The `.wasm` component (or a bundled probe name).
    #[arg(value_name = "PROBE")]
    pub probe: String,

    /// Where to write the precompiled component [default: PROBE with extension .cwasm].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Arguments of `healthprobe list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A SHA-256 given as 64 hex digits, normalised to lower case.
pub fn parse_sha256(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "expected 64 hex digits, got '{}'",
            crate::output::excerpt(s, 80)
        ))
    }
}

/// A duration like `500ms`, `2s` or `1m`, greater than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration like 500ms, 2s or 1m"))?;
    if d.is_zero() {
        return Err("the timeout must be greater than zero".into());
    }
    Ok(d)
}

/// A size like `64MiB`, greater than zero.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("{e}; expected a size like 64MiB or 512KiB"))?;
    if size.as_u64() == 0 {
        return Err("the size must be greater than zero".into());
    }
    Ok(size.as_u64())
}

/// Parses the process arguments and runs the subcommand.
pub fn run() -> Result<ExitCode, crate::Error> {
    run_from(std::env::args_os())
}

/// Parses `args` and runs the subcommand.
pub fn run_from(args: impl IntoIterator<Item = OsString>) -> Result<ExitCode, crate::Error> {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return Ok(usage_error(e)),
    };
    match cli.command {
        Command::Run(args) => cmd::run::execute(args),
        Command::Inspect(args) => cmd::inspect::execute(args),
        Command::Compile(args) => cmd::compile::execute(args),
        Command::List(args) => cmd::list::execute(args),
    }
}

/// clap exits with 2 on a usage error, which Docker reserves: print its message and
/// return 3 instead; `--help` and `--version` keep 0.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{e}");
            ExitCode::SUCCESS
        }
        _ => {
            // clap's message spans lines (the problem, then usage and a tip); keep the
            // problem, folded into the one line the contract allows.
            let text = e.render().to_string();
            let problem: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let problem = problem.join(" ");
            let problem = problem.strip_prefix("error: ").unwrap_or(&problem);
            println!(
                "{}",
                crate::output::error_line(&format!(
                    "{problem}; run `healthprobe --help` for usage"
                ))
            );
            ExitCode::from(crate::EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("abc").unwrap_err().contains("like 500ms"));
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert!(parse_size("lots").is_err());
    }
}
