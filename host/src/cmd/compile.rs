//! `healthprobe compile PROBE.wasm -o PROBE.cwasm`: ahead-of-time compilation.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::CompileArgs;
use crate::output;
use crate::runner::{self, ProbeSource, Runner};

/// Compiles a component for this healthprobe's engine and writes the result.
pub fn execute(args: CompileArgs) -> Result<ExitCode, crate::Error> {
    let fail = |message: String| super::bad_input(&args.probe, &message);
    let source = match ProbeSource::resolve(&args.probe) {
        Ok(s) => s,
        Err(f) => return fail(f.to_string()),
    };
    let code = match runner::identify(&source) {
        Ok((code, _)) => code,
        Err(f) => return fail(f.to_string()),
    };
    let runner = Runner::new()?;
    let compiled = match runner.precompile(&code) {
        Ok(c) => c,
        Err(f) => return fail(f.to_string()),
    };
    let out = args.output.clone().unwrap_or_else(|| {
        let mut p = PathBuf::from(source.label());
        p.set_extension("cwasm");
        p
    });
    // Write to a temporary name and rename, so a reader never maps a half-written file.
    let tmp = out.with_extension("cwasm.tmp");
    if let Err(e) = std::fs::write(&tmp, &compiled).and_then(|()| std::fs::rename(&tmp, &out)) {
        let _ = std::fs::remove_file(&tmp);
        return fail(format!(
            "cannot write {}: {}",
            out.display(),
            output::io_error(&e)
        ));
    }
    println!(
        "compiled {} ({} bytes) to {} ({} bytes); run it with `healthprobe run {}`",
        source.label(),
        code.size(),
        out.display(),
        compiled.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
