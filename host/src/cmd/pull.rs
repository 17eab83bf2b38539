//! `healthprobe pull REF [-o FILE]`: a probe from an OCI registry, in the Wasm OCI
//! artifact layout (see [`crate::oci`]), into the store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::flags::{CacheDirArgs, FormatArgs, RegistryArgs, parse_duration, parse_size};
use crate::oci::{self, Reference, Registry, registry};
use crate::output::{self, Format};
use crate::report::Failure;
use crate::text;

/// Arguments of `healthprobe pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The artifact: `[oci://]REGISTRY/REPO@sha256:DIGEST`, or `REGISTRY/REPO:TAG` (pull
    /// then prints the digest to pin it by).
    #[arg(value_name = "REF")]
    pub reference: String,

    /// Also write the component to FILE.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Largest component to download; checked against the manifest before downloading
    /// [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    #[command(flatten)]
    pub cache: CacheDirArgs,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(flatten)]
    pub format: FormatArgs,
}

/// How `pull` and `push` reach the registry.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Trust this CA certificate (PEM) for the registry, beside the system's CAs.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Give up after DURATION.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1m")]
    pub timeout: Duration,
}

impl ConnectionArgs {
    pub(super) fn registry(&self) -> Result<Registry, Failure> {
        Registry::new(registry::Options {
            ca: self.tls_ca.clone(),
            ca_flag: "--tls-ca",
            insecure: self.registry.insecure_registry,
        })
    }
}

/// Pulls the artifact into the store (and to `-o FILE`), and prints the pinned reference.
pub fn execute(args: PullArgs) -> Result<ExitCode, crate::Error> {
    let format = args.format.format;
    let until = Instant::now() + args.connection.timeout;
    let fail = |f: Failure| Ok(output::fail(&args.reference, &f.to_string(), format));
    let reference = match Reference::parse(&args.reference) {
        Ok(r) => r,
        Err(f) => return fail(f),
    };
    let Some(dir) = args.cache.dir() else {
        return fail(Failure::BadInput(
            "no directory to keep pulled probes in: give --cache-dir DIR (or set HEALTHPROBE_CACHE_DIR)".into(),
        ));
    };
    let store = oci::Store::new(&dir);
    // Before the first thread starts: writes go to the store and the output's directory.
    let out_dir = args.output.as_ref().map(|o| match o.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    });
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(Failure::BadInput(format!(
            "cannot create the store's directory {}: {}; give a writable --cache-dir",
            dir.display(),
            text::io_error(&e)
        )));
    }
    let writable: Vec<&std::path::Path> = std::iter::once(dir.as_path())
        .chain(out_dir.as_deref())
        .collect();
    crate::confine::limit_writes(&writable);
    let max_size = args
        .max_size
        .unwrap_or(crate::limits::CodeLimits::default().max_size);
    let pulled = match args
        .connection
        .registry()
        .and_then(|r| r.pull(&reference, &store, max_size, until))
    {
        Ok(p) => p,
        Err(f) => return fail(f),
    };
    if let Some(out) = &args.output
        && let Err(f) = copy_checked(&pulled.path, &pulled.layer, out)
    {
        return fail(f);
    }
    let line = match format {
        Format::Json => serde_json::json!({
            "status": if pulled.already { "stored" } else { "pulled" },
            "reference": pulled.reference.to_string(),
            "manifest_digest": pulled.reference.digest().map(|d| format!("sha256:{d}")),
            "layer_digest": format!("sha256:{}", pulled.layer),
            "size": pulled.size,
            "path": pulled.path,
            "output": args.output,
        })
        .to_string(),
        Format::Text => {
            let mut line = format!(
                "{}; run it with `healthprobe run {}`",
                pulled.summary(),
                pulled.reference
            );
            if let Some(out) = &args.output {
                line.push_str(&format!("; wrote {}", out.display()));
            }
            line
        }
    };
    output::print_line(&line)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the stored component to `out`, checking again that it is the layer's bytes.
fn copy_checked(
    stored: &std::path::Path,
    layer: &str,
    out: &std::path::Path,
) -> Result<(), Failure> {
    let bytes = std::fs::read(stored).map_err(|e| {
        Failure::BadInput(format!(
            "cannot read the stored component {}: {}",
            stored.display(),
            text::io_error(&e)
        ))
    })?;
    if oci::store::sha256(&bytes) != layer {
        return Err(Failure::BadInput(format!(
            "the stored component {} does not match its layer digest sha256:{layer}: the store was changed; delete it and pull again",
            stored.display()
        )));
    }
    crate::fsio::write_atomically(out, &[&bytes]).map_err(|e| {
        Failure::BadInput(format!(
            "cannot write {}: {}",
            out.display(),
            text::io_error(&e)
        ))
    })
}
