//! The command line: argument definitions and dispatch to one module per subcommand.

use std::ffi::OsString;
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
    /// List the bundled probes and their parameters.
    List(ListArgs),
}

/// Arguments of `healthprobe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A bundled probe name (`http`, `tcp`, …) or the path of a `.wasm` component.
    #[arg(value_name = "PROBE")]
    pub probe: String,

    /// Probe parameters as KEY=VALUE; repeat a key for a repeatable parameter.
    #[arg(value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Deadline for the whole run, host calls included (`500ms`, `2s`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// WebAssembly fuel: roughly the number of instructions the probe may execute.
    #[arg(long, value_name = "N", default_value_t = crate::runner::DEFAULT_FUEL)]
    pub fuel: u64,

    /// Largest size of each linear memory of the probe (`64MiB`, `512KiB`).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_memory: u64,

    /// Allow connections to HOST, HOST:PORT, IP, IP:PORT, CIDR, *:PORT or * (repeatable).
    /// Replaces the default, which is loopback only (127.0.0.0/8, ::1, localhost).
    #[arg(long, value_name = "PATTERN")]
    pub allow_net: Vec<Grant>,

    #[command(flatten)]
    pub output: OutputArgs,
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

    /// Also print the probe's own stdout/stderr and timings (on stderr).
    #[arg(long, short)]
    pub verbose: bool,
}

/// Arguments of `healthprobe list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration like 500ms, 2s or 1m"))?;
    if d.is_zero() {
        return Err("the timeout must be greater than zero".into());
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
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
