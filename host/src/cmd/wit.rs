//! `healthprobe wit`: the WIT package this binary implements, so a probe author needs
//! nothing but the binary to generate bindings in any language.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::output::{self, Format};
use crate::text;

/// The package, as compiled into the host's bindings (`bindings.rs` reads the same file).
pub const PROBE_WIT: &str = include_str!("../../../wit/probe.wit");

/// The file name the package is written under, in the directory layout that `wit-bindgen`,
/// `componentize-py` and `jco`/`componentize-js` read (`--wit DIR`).
pub const FILE_NAME: &str = "probe.wit";

/// Arguments of `healthprobe wit`.
#[derive(Debug, Args)]
pub struct WitArgs {
    /// Write `probe.wit` into this directory (created if missing) instead of printing it.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the WIT package, or writes it into a directory.
pub fn execute(args: WitArgs) -> Result<ExitCode, crate::Error> {
    let Some(dir) = args.out_dir else {
        crate::confine::limit_writes(&[]);
        output::print_line(PROBE_WIT.trim_end())?;
        return Ok(ExitCode::SUCCESS);
    };
    let file = dir.join(FILE_NAME);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        crate::confine::limit_writes(&[&dir]);
        crate::fsio::write_atomically(&file, &[PROBE_WIT.as_bytes()])
    });
    if let Err(e) = written {
        return Ok(output::fail(
            "wit",
            &format!(
                "cannot write {}: {}; choose a directory you can write to",
                file.display(),
                text::io_error(&e)
            ),
            Format::Text,
        ));
    }
    output::print_line(&format!(
        "wrote healthprobe:probe@{} to {}; generate bindings from the directory, e.g. `wit-bindgen c {}`",
        package_version(),
        file.display(),
        dir.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The version in the package line (`package healthprobe:probe@X;`).
pub fn package_version() -> &'static str {
    PROBE_WIT
        .lines()
        .find_map(|l| l.trim().strip_prefix("package healthprobe:probe@"))
        .and_then(|v| v.strip_suffix(';'))
        .unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_package_is_versioned() {
        assert_eq!(package_version(), "0.1.0");
    }
}
