//! The command line: the subcommands and dispatch to one module per subcommand, each of
//! which owns its arguments (`crate::cmd`); shared flag groups are in `crate::flags`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;
use crate::output::{self, Format};

/// Run WebAssembly health probes in-process: bounded by a deadline, sandboxed, and
/// without ever starting a child process.
///
/// Exit status: 0 healthy (or degraded), 1 unhealthy, 3 the probe could not be run.
#[derive(Debug, Parser)]
#[command(name = "healthprobe", version = crate::version::line(), about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a probe once and report healthy, degraded or unhealthy.
    Run(cmd::run::RunArgs),
    /// Show what a probe is, what it asks for, and what the given flags would grant it.
    Inspect(cmd::inspect::InspectArgs),
    /// Compile a probe ahead of time to a `.cwasm` that `run` loads without compiling.
    Compile(cmd::compile::CompileArgs),
    /// List the bundled probes and their parameters.
    List(cmd::list::ListArgs),
    /// Print the WIT package that probes are written against (or write it to a directory).
    Wit(cmd::wit::WitArgs),
    /// Start a probe project: a folder with the probe, its build script, tests and README.
    New(cmd::new::NewArgs),
    /// Pull a probe from an OCI registry into the store (the cache directory), and print
    /// the reference pinned by digest to run it by.
    #[cfg(feature = "compiler")]
    Pull(cmd::pull::PullArgs),
    /// Push a probe component to an OCI registry as a Wasm OCI artifact, and print the
    /// reference pinned by digest.
    #[cfg(feature = "compiler")]
    Push(cmd::push::PushArgs),
    /// Run the checks of a checks file in the background and serve their results over
    /// HTTP: /livez, /readyz, /health and /metrics.
    Serve(cmd::serve::ServeArgs),
}

/// Forbids new processes for good (see `crate::confine`), then parses the process
/// arguments and runs the subcommand. Where the kernel cannot install the filter,
/// healthprobe still runs (it starts no process either way) and `--verbose` says so.
pub fn run() -> Result<ExitCode, crate::Error> {
    let _ = crate::confine::forbid_processes();
    run_from(std::env::args_os())
}

/// Parses `args` and runs the subcommand. Like the `healthprobe` process, it confines the
/// calling process's file writes (Landlock, see `crate::confine`) before the command starts
/// its threads: call it only in a process of its own.
pub fn run_from(args: impl IntoIterator<Item = OsString>) -> Result<ExitCode, crate::Error> {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return Ok(usage_error(e, asks_for_json(&args))),
    };
    match cli.command {
        Command::Run(args) => cmd::run::execute(args),
        Command::Inspect(args) => cmd::inspect::execute(args),
        Command::Compile(args) => cmd::compile::execute(args),
        Command::List(args) => cmd::list::execute(args),
        Command::Serve(args) => cmd::serve::execute(args),
        #[cfg(feature = "compiler")]
        Command::Pull(args) => cmd::pull::execute(args),
        #[cfg(feature = "compiler")]
        Command::Push(args) => cmd::push::execute(args),
        Command::Wit(args) => cmd::wit::execute(args),
        Command::New(args) => cmd::new::execute(args),
    }
}

/// Whether the arguments ask for JSON, for an error found before they could be parsed.
fn asks_for_json(args: &[OsString]) -> bool {
    args.windows(2)
        .any(|w| w[0] == "--format" && w[1] == "json")
        || args.iter().any(|a| a == "--format=json")
}

/// clap exits with 2 on a usage error, which Docker reserves: print its message and
/// return 3 instead; `--help` and `--version` keep 0.
fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        // `--version --format json`: clap knows no format for its version, so it is ours.
        ErrorKind::DisplayVersion if json => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", crate::version::json()).and_then(|()| stdout.flush());
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let mut stdout = std::io::stdout().lock();
            let _ = write!(stdout, "{e}").and_then(|()| stdout.flush());
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
            let format = if json { Format::Json } else { Format::Text };
            output::fail(
                "",
                &format!("{problem}; run `healthprobe --help` for usage"),
                format,
            )
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
    fn json_is_recognised_before_parsing() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(asks_for_json(&args(&[
            "healthprobe",
            "list",
            "--format",
            "json"
        ])));
        assert!(asks_for_json(&args(&[
            "healthprobe",
            "list",
            "--format=json"
        ])));
        assert!(!asks_for_json(&args(&[
            "healthprobe",
            "list",
            "--format",
            "text"
        ])));
    }
}
