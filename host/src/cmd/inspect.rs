//! `healthprobe inspect PROBE`: what a probe is, what it asks for, what it would get.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::flags::{CacheArgs, CodeLimitArgs, FormatArgs, GrantArgs, OciArgs};
use crate::output::{self, Format};
use crate::runner::{Inspection, ProbeSource, Runner};
use crate::settings;

/// Arguments of `healthprobe inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A bundled probe name, the path of a `.wasm` component, a `.cwasm`, or
    /// `oci://REGISTRY/REPO@sha256:DIGEST`.
    #[arg(value_name = "PROBE")]
    pub probe: String,

    #[command(flatten)]
    pub grants: GrantArgs,

    /// Read grants from a TOML policy file, as `run --policy` does.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    #[command(flatten)]
    pub code: CodeLimitArgs,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub oci: OciArgs,

    #[command(flatten)]
    pub format: FormatArgs,
}

/// Prints the inspection; exit 3 if the probe could not be run as it stands.
pub fn execute(args: InspectArgs) -> Result<ExitCode, crate::Error> {
    let format = args.format.format;
    let fail = |message: String| Ok(output::fail(&args.probe, &message, format));
    let mut source = match ProbeSource::resolve(&args.probe, &args.cache.oci(&args.oci)) {
        Ok(s) => s,
        Err(f) => return fail(f.to_string()),
    };
    let (sandbox, limits) =
        match settings::resolve(args.policy.as_deref(), &args.code.limits(), None, &[])
            .and_then(|s| Ok((s.sandbox(&args.grants)?, s.limits)))
        {
            Ok(s) => s,
            Err(f) => return fail(f.to_string()),
        };
    let cache = args.cache.open([&source], args.oci.pull);
    let until = std::time::Instant::now() + crate::oci::PULL_TIMEOUT;
    match crate::oci::fetch([(&mut source, limits.code.max_size, until)], &args.oci) {
        Ok(lines) => lines
            .iter()
            .for_each(|l| output::print_err(&format!("{l}\n"))),
        Err(f) => return fail(f.to_string()),
    }
    let (runner, rt) = match Runner::new().and_then(|r| Ok((r, super::runtime()?))) {
        Ok(x) => x,
        Err(f) => return fail(f.to_string()),
    };
    let runner = runner.with_cache(cache);
    let inspected = rt.block_on(runner.inspect(&source, &limits));
    rt.shutdown_background();
    let Inspection {
        size,
        sha256,
        code: how,
        capabilities: caps,
        unsupported: unknown,
        info,
    } = match inspected {
        Ok(x) => x,
        Err(f) => return fail(f.to_string()),
    };
    let (info, problem) = match info {
        Ok(i) => (Some(i), None),
        Err(f) => (None, Some(f.to_string())),
    };

    let source_text = match &source {
        ProbeSource::Bundled(b) => format!("bundled ({})", b.name),
        ProbeSource::File(p) => p.display().to_string(),
        ProbeSource::Oci(p) => p.label(),
    };
    // For an `oci://` probe, the digest its reference pins (the manifest's); `sha256` is
    // the component's own, the layer digest.
    let manifest = match &source {
        ProbeSource::Oci(p) => p.manifest_digest(),
        _ => None,
    };
    let text = match format {
        Format::Json => {
            let v = serde_json::json!({
                "probe": info.as_ref().map(|i| &i.name),
                "version": info.as_ref().map(|i| &i.version),
                "description": info.as_ref().map(|i| &i.description),
                "source": source_text,
                "size": size,
                "sha256": sha256,
                "manifest_digest": manifest.as_ref().map(|m| format!("sha256:{m}")),
                "code": how,
                "params": info.as_ref().map(|i| i.params.iter().map(output::param_json).collect::<Vec<_>>()),
                "capabilities": caps.iter().map(|c| {
                    let (granted, detail) = (c.grant)(&sandbox);
                    serde_json::json!({"capability": c.key, "description": c.description, "granted": granted, "detail": detail})
                }).collect::<Vec<_>>(),
                "unsupported_imports": unknown,
                "error": problem,
            });
            v.to_string()
        }
        Format::Text => {
            let mut out = Vec::new();
            match &info {
                Some(i) => out.push(format!("{} {}: {}", i.name, i.version, i.description)),
                None => out.push(format!("{}: (could not describe itself)", source.label())),
            }
            out.push(format!("source:  {source_text}"));
            out.push(format!("size:    {size} bytes"));
            match &manifest {
                Some(m) => {
                    out.push(format!("manifest: sha256:{m} (the digest oci:// pins)"));
                    out.push(format!("layer:   sha256:{sha256} (the component's own SHA-256, as --sha256 pins a file)"));
                }
                None => out.push(format!("sha256:  {sha256}")),
            }
            out.push(format!("code:    {how}"));
            if let Some(i) = &info {
                out.push("parameters:".into());
                for p in &i.params {
                    let notes = output::param_notes(p);
                    out.push(format!("  {}{notes}: {}", p.name, p.description));
                }
            }
            out.push("asks for:".into());
            let width = caps.iter().map(|c| c.description.len()).max().unwrap_or(0);
            for c in &caps {
                let (granted, detail) = (c.grant)(&sandbox);
                let mark = if granted { "granted" } else { "DENIED " };
                out.push(format!("  {:width$}  {mark}  {detail}", c.description));
            }
            for u in &unknown {
                out.push(format!(
                    "  {u}  NOT PROVIDED by healthprobe: the probe cannot run"
                ));
            }
            if let Some(p) = &problem {
                out.push(output::render_error("", p, Format::Text));
            }
            out.join("\n")
        }
    };
    output::print_line(&text)?;
    Ok(ExitCode::from(if problem.is_some() {
        crate::EXIT_ERROR
    } else {
        0
    }))
}
