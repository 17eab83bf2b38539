//! `healthprobe compile PROBE.wasm -o PROBE.cwasm`: ahead-of-time compilation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::flags::{CacheDirArgs, CodeLimitArgs, OciArgs};
use crate::output::{self, Format};
use crate::runner::{self, ProbeSource, Runner};
use crate::settings;
use crate::text;

/// Arguments of `healthprobe compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The `.wasm` component, `oci://REGISTRY/REPO@sha256:DIGEST` (or a bundled probe
    /// name).
    #[arg(value_name = "PROBE")]
    pub probe: String,

    /// Where to write the precompiled component [default: PROBE with extension .cwasm].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub code: CodeLimitArgs,

    #[command(flatten)]
    pub cache: CacheDirArgs,

    #[command(flatten)]
    pub oci: OciArgs,
}

/// Compiles a component for this healthprobe's engine and writes the result.
pub fn execute(args: CompileArgs) -> Result<ExitCode, crate::Error> {
    let fail = |message: String| Ok(output::fail(&args.probe, &message, Format::Text));
    let mut source = match ProbeSource::resolve(&args.probe, &args.cache.oci(&args.oci)) {
        Ok(s) => s,
        Err(f) => return fail(f.to_string()),
    };
    let limits = match settings::resolve(None, &args.code.limits(), None, &[]) {
        Ok(s) => s.limits.code,
        Err(f) => return fail(f.to_string()),
    };
    let out = args.output.clone().unwrap_or_else(|| {
        let mut p = match &source {
            // In the working directory, named after the repository.
            ProbeSource::Oci(p) => PathBuf::from(p.name()),
            _ => PathBuf::from(source.label()),
        };
        p.set_extension("cwasm");
        p
    });
    // Before the first thread starts: the output's directory is the only place written
    // (a temporary file, then renamed).
    let out_dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // And the store, when a pull may write to it.
    let store = args.cache.dir().filter(|_| args.oci.pull);
    let mut writable = vec![out_dir.as_path()];
    if let Some(d) = &store
        && std::fs::create_dir_all(d).is_ok()
    {
        writable.push(d);
    }
    crate::confine::limit_writes(&writable);
    let until = std::time::Instant::now() + crate::oci::PULL_TIMEOUT;
    match crate::oci::fetch([(&mut source, limits.max_size, until)], &args.oci) {
        Ok(lines) => lines
            .iter()
            .for_each(|l| output::print_err(&format!("{l}\n"))),
        Err(f) => return fail(f.to_string()),
    }
    let code = match runner::identify(&source, &limits, false, None) {
        Ok(code) => code,
        Err(f) => return fail(f.to_string()),
    };
    let compiled = match Runner::new().and_then(|runner| {
        let compiled = runner.precompile(&code, &limits)?;
        runner.check_precompiled(&compiled)?;
        Ok(compiled)
    }) {
        Ok(c) => c,
        Err(f) => return fail(f.to_string()),
    };
    // Never in place: a running healthprobe may have the old file mapped.
    if let Err(e) = crate::fsio::write_atomically(&out, &[&compiled]) {
        return fail(format!(
            "cannot write {}: {}",
            out.display(),
            text::io_error(&e)
        ));
    }
    output::print_line(&format!(
        "compiled {} ({} bytes) to {} ({} bytes); run it with `healthprobe run {}`",
        source.label(),
        code.size(),
        out.display(),
        compiled.len(),
        out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
