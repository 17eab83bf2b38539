//! `healthprobe list`: the bundled probes and their parameters.

use std::process::ExitCode;

use crate::bundled;
use crate::cli::ListArgs;
use crate::output::{self, Format};
use crate::runner::{Limits, ProbeSource, Runner};

/// Prints every bundled probe with its parameters, as each probe describes itself.
pub fn execute(args: ListArgs) -> Result<ExitCode, crate::Error> {
    let runner = Runner::new()?;
    let rt = super::runtime()?;
    let limits = Limits::default();
    let mut infos = Vec::new();
    for b in &bundled::BUNDLED {
        let info = rt.block_on(runner.describe(&ProbeSource::Bundled(b), &limits))?;
        infos.push(info);
    }
    rt.shutdown_background();
    match args.format {
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
            println!("{}", serde_json::Value::Array(list));
        }
        Format::Text => {
            for (n, i) in infos.iter().enumerate() {
                if n > 0 {
                    println!();
                }
                println!("{} {}: {}", i.name, i.version, i.description);
                let width = i.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
                for p in &i.params {
                    let notes = output::param_notes(p);
                    println!("  {:width$}  {}{notes}", p.name, p.description);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
