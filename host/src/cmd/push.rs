//! `healthprobe push FILE REF`: a probe component to an OCI registry, in the Wasm OCI
//! artifact layout (see [`crate::oci`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use super::pull::ConnectionArgs;
use crate::flags::FormatArgs;
use crate::oci::Reference;
use crate::output::{self, Format};
use crate::report::Failure;
use crate::text;

/// Arguments of `healthprobe push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component to push (a `.wasm` WebAssembly component).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Where to: `[oci://]REGISTRY/REPO:TAG`. The digest to pin is printed.
    #[arg(value_name = "REF")]
    pub reference: String,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(flatten)]
    pub format: FormatArgs,
}

/// Pushes the component and prints the reference pinned by the new manifest's digest.
pub fn execute(args: PushArgs) -> Result<ExitCode, crate::Error> {
    let format = args.format.format;
    let until = Instant::now() + args.connection.timeout;
    let fail = |f: Failure| Ok(output::fail(&args.reference, &f.to_string(), format));
    // push writes nothing.
    crate::confine::limit_writes(&[]);
    let reference = match Reference::parse(&args.reference) {
        Ok(r) => r,
        Err(f) => return fail(f),
    };
    let component = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            return fail(Failure::BadInput(format!(
                "cannot read {}: {}",
                args.file.display(),
                text::io_error(&e)
            )));
        }
    };
    let pushed = match args
        .connection
        .registry()
        .and_then(|r| r.push(&component, &reference, until))
    {
        Ok(p) => p,
        Err(f) => return fail(f),
    };
    let line = match format {
        Format::Json => serde_json::json!({
            "status": "pushed",
            "tag": reference.to_string(),
            "reference": pushed.reference.to_string(),
            "manifest_digest": pushed.reference.digest().map(|d| format!("sha256:{d}")),
            "layer_digest": format!("sha256:{}", pushed.layer),
            "size": component.len(),
        })
        .to_string(),
        Format::Text => format!(
            "pushed {} to {reference} ({}, component sha256:{}); pin it as {}",
            args.file.display(),
            text::size(component.len() as u64),
            pushed.layer,
            pushed.reference
        ),
    };
    output::print_line(&line)?;
    Ok(ExitCode::SUCCESS)
}
