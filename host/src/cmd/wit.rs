//! `healthprobe wit`: the WIT package this binary implements, so a probe author needs
//! nothing but the binary to generate bindings in any language.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::output::{self, Format};
use crate::text;

/// The package, as compiled into the host's bindings (`bindings.rs` reads the same file).
pub const PROBE_WIT: &str = include_str!("../../../wit/probe.wit");

/// The file name the package is written under, in the directory layout that `wit-bindgen`,
/// `componentize-py` and `jco`/`componentize-js` read (`--wit DIR`).
pub const FILE_NAME: &str = "probe.wit";

/// `healthprobe:tls` (ALPN and the peer's certificate for `wasi:tls` handshakes), written
/// beside it as a dependency for probes that speak TLS.
pub const TLS_WIT: &str = include_str!("../../../wit/deps/tls/tls.wit");

/// Where `TLS_WIT` goes, under the directory.
pub const TLS_FILE: &str = "deps/tls/tls.wit";

/// Arguments of `healthprobe wit`.
#[derive(Debug, Args)]
pub struct WitArgs {
    /// Write `probe.wit` into this directory (created if missing) instead of printing it,
    /// with `healthprobe:tls` in `deps/tls/tls.wit`.
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
    let tls = dir.join(TLS_FILE);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        crate::confine::limit_writes(&[&dir]);
        write_package(&dir)
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
        "wrote healthprobe:probe@{} to {} (and healthprobe:tls to {}); generate bindings from the directory, e.g. `wit-bindgen c {}`",
        package_version(),
        file.display(),
        tls.display(),
        dir.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the package into `dir` (which exists): `probe.wit`, and `healthprobe:tls` in
/// `deps/tls/tls.wit`, the layout bindings generators read.
pub fn write_package(dir: &Path) -> std::io::Result<()> {
    let tls = dir.join(TLS_FILE);
    std::fs::create_dir_all(tls.parent().unwrap_or(dir))?;
    crate::fsio::write_atomically(&dir.join(FILE_NAME), &[PROBE_WIT.as_bytes()])?;
    crate::fsio::write_atomically(&tls, &[TLS_WIT.as_bytes()])
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
        assert_eq!(package_version(), "0.1.1");
    }
}
