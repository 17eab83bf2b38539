//! `healthprobe list`: the bundled probes and their parameters.

use std::process::ExitCode;

use clap::Args;

use crate::bindings::healthprobe::probe::types::ProbeInfo;
use crate::bundled;
use crate::flags::FormatArgs;
use crate::limits::Limits;
use crate::output::{self, Format};
use crate::report::Failure;
use crate::runner::{ProbeSource, Runner};

/// Arguments of `healthprobe list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub format: FormatArgs,
}

/// Prints every bundled probe with its parameters, as each probe describes itself.
pub fn execute(args: ListArgs) -> Result<ExitCode, crate::Error> {
    let format = args.format.format;
    let infos = match describe_all() {
        Ok(infos) => infos,
        Err((name, f)) => return Ok(output::fail(name, &f.to_string(), format)),
    };
    let text = match format {
        Format::Json => {
            let list: Vec<_> = infos
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name,
                        "version": i.version,
                        "description": i.description,
                        "params": i.params.iter().map(output::param_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::Value::Array(list).to_string()
        }
        Format::Text => {
            let mut lines = Vec::new();
            for (n, i) in infos.iter().enumerate() {
                if n > 0 {
                    lines.push(String::new());
                }
                lines.push(format!("{} {}: {}", i.name, i.version, i.description));
                let width = i.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
                for p in &i.params {
                    let notes = output::param_notes(p);
                    lines.push(format!("  {:width$}  {}{notes}", p.name, p.description));
                }
            }
            lines.join("\n")
        }
    };
    output::print_line(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Each bundled probe's description, or the first probe that could not describe itself.
fn describe_all() -> Result<Vec<ProbeInfo>, (&'static str, Failure)> {
    let setup = |f| ("list", f);
    // Listing writes nothing; set before the first thread starts.
    crate::confine::limit_writes(&[]);
    let runner = Runner::new().map_err(setup)?;
    let rt = super::runtime().map_err(setup)?;
    let limits = Limits::default();
    let mut infos = Vec::new();
    for b in &bundled::BUNDLED {
        let info = rt
            .block_on(runner.describe(&ProbeSource::Bundled(b), &limits))
            .map_err(|f| (b.name, f))?;
        infos.push(info);
    }
    rt.shutdown_background();
    Ok(infos)
}
