//! Where a probe's code comes from, and reading it: a bundled probe, or a file, hashed in a
//! stream as far as the run needs (the compile cache's key, a pinned or reported SHA-256)
//! and refused over its size limit before it is read.

use std::path::{Path, PathBuf};

use wasmtime::{Engine, Precompiled};

use crate::bundled;
use crate::fsio::KnownKeys;
use crate::limits::CodeLimits;
use crate::oci;
use crate::report::Failure;
use crate::text;

/// Where a probe comes from.
#[derive(Debug, Clone)]
pub enum ProbeSource {
    /// A probe compiled into this binary.
    Bundled(&'static bundled::Bundled),
    /// A component file given by path.
    File(PathBuf),
    /// A component from an OCI registry (`oci://`), read from the store of pulled probes.
    Oci(Box<oci::Probe>),
}

impl ProbeSource {
    /// Resolves the PROBE argument: a bundled name first, else an `oci://` reference (if
    /// `oci` allows it), else a path.
    pub fn resolve(arg: &str, oci: &oci::Access) -> Result<Self, Failure> {
        if let Some(b) = bundled::find(arg) {
            return Ok(Self::Bundled(b));
        }
        if oci::is_oci(arg) {
            return Ok(Self::Oci(Box::new(oci.probe(arg)?)));
        }
        let path = Path::new(arg);
        let looks_like_path = arg.contains(std::path::MAIN_SEPARATOR)
            || arg.contains('/')
            || path.extension().is_some();
        if !looks_like_path && !path.exists() {
            return Err(Failure::BadInput(format!(
                "unknown probe '{arg}': not a bundled probe ({}) and no such file; run `healthprobe list` or give a path to a .wasm component",
                bundled::names().join(", ")
            )));
        }
        // The string test first: a path that is there costs no extra `stat` per run.
        if looks_like_reference(arg) && !path.exists() {
            return Err(Failure::BadInput(format!(
                "no such file '{arg}'; for a probe in an OCI registry write oci://{arg}"
            )));
        }
        Ok(Self::File(path.to_path_buf()))
    }

    /// The name used in messages until the probe has described itself.
    pub fn label(&self) -> String {
        match self {
            Self::Bundled(b) => b.name.to_string(),
            Self::File(p) => p.display().to_string(),
            Self::Oci(p) => p.label(),
        }
    }
}

/// A probe's code: precompiled in the binary, or a file (a component or a `.cwasm`).
#[derive(Debug)]
pub enum Code {
    /// A bundled probe.
    Bundled(&'static bundled::Bundled),
    /// A file, hashed but not kept: a cached or precompiled run never needs its bytes.
    File(FileCode),
}

impl Code {
    /// The size of the component as given (for a bundled probe, before precompiling).
    pub fn size(&self) -> u64 {
        match self {
            Code::Bundled(b) => b.wasm_size as u64,
            Code::File(f) => f.size,
        }
    }

    /// Its SHA-256 (for a bundled probe, of the component as built), if it was computed:
    /// see [`identify`].
    pub fn digest(&self) -> Option<&str> {
        match self {
            Code::Bundled(b) => Some(b.sha256),
            Code::File(f) => f.sha256.as_deref(),
        }
    }

    /// What identifies the code within one process (a digest of its content), if any.
    pub(super) fn key(&self) -> Option<&str> {
        match self {
            Code::Bundled(b) => Some(b.sha256),
            Code::File(f) => f.key.as_deref().or(f.sha256.as_deref()),
        }
    }
}

/// A probe file. Reading an 18 MB component and a 48 MB cache entry into memory to run
/// it cost more than everything else a cached run of it does, so a component is hashed
/// in a stream (not read at all once the compile cache knows the file), and read whole
/// only to be compiled.
#[derive(Debug)]
pub struct FileCode {
    pub(super) path: PathBuf,
    pub(super) size: u64,
    max_size: u64,
    /// The SHA-256, when asked for.
    pub(super) sha256: Option<String>,
    /// A component's BLAKE3, the compile cache's key: half the time SHA-256 takes here,
    /// which a cached run of a big component spends on every check.
    pub(super) key: Option<String>,
    /// What a `.cwasm` holds; `None` for anything else.
    pub(super) precompiled: Option<Precompiled>,
}

impl FileCode {
    /// The file's bytes, read again; refused if they are not the ones hashed.
    pub(super) fn read(&self) -> Result<Vec<u8>, Failure> {
        let bytes = read_capped(&self.path, self.max_size).map_err(cannot_read)??;
        let again = Digests::of(&bytes, self.sha256.is_some(), self.key.is_some());
        if again.sha256 != self.sha256 || again.key != self.key {
            return Err(Failure::BadInput(
                "the probe file changed while healthprobe read it; run the check again once it is written (replace probe files by renaming, not in place)".into(),
            ));
        }
        Ok(bytes)
    }
}

/// Whether a missing file's name reads as a registry reference given without `oci://`:
/// a host with a dot, port or `localhost` first, and a tag or digest last
/// (`ghcr.io/org/probe:1.0`, `127.0.0.1:5000/p@sha256:…`).
fn looks_like_reference(arg: &str) -> bool {
    let Some((host, rest)) = arg.split_once('/') else {
        return false;
    };
    let registry =
        !host.starts_with('.') && (host.contains('.') || host.contains(':') || host == "localhost");
    let last = rest.rsplit('/').next().unwrap_or(rest);
    registry && (last.contains(':') || last.contains("@sha256:"))
}

fn cannot_read(e: std::io::Error) -> Failure {
    Failure::BadInput(format!(
        "cannot read the probe file: {}; check the path",
        text::io_error(&e)
    ))
}

/// Finds the probe's code, hashed as far as needed: a component's compile-cache key
/// (BLAKE3, or from `known` if it has the file and no SHA-256 is asked), and the SHA-256
/// of any file if `sha256` (pinned, `--verbose`, `inspect`). A `.cwasm` hashed for
/// neither is mapped, never read. A file larger than `limits.max_size` is refused before
/// it is read.
pub(crate) fn identify(
    source: &ProbeSource,
    limits: &CodeLimits,
    sha256: bool,
    known: Option<&dyn KnownKeys>,
) -> Result<Code, Failure> {
    let path = match source {
        ProbeSource::Bundled(b) => return Ok(Code::Bundled(b)),
        ProbeSource::File(path) => path,
        ProbeSource::Oci(probe) => {
            // The layer digest pins the stored file, as --sha256 pins a file.
            let (path, layer) = probe.component()?;
            let code = identify(&ProbeSource::File(path), limits, true, known)?;
            // Only components come from a registry: a `.cwasm` would run as native code.
            if matches!(&code, Code::File(f) if f.precompiled.is_some()) {
                return Err(Failure::BadInput(
                    "the stored artifact is a precompiled .cwasm, which runs as native code; only components are taken from a registry".into(),
                ));
            }
            if code.digest() != Some(layer.as_str()) {
                return Err(Failure::BadInput(format!(
                    "the stored component does not match its layer digest sha256:{layer}: the store was changed; delete it and pull {} again",
                    source.label()
                )));
            }
            return Ok(code);
        }
    };
    // Reads the ELF header and section table only; a damaged `.cwasm` is not detected and
    // is refused by its header once read, as any other file that is not a component.
    let precompiled = Engine::detect_precompiled_file(path).ok().flatten();
    let key = cfg!(feature = "compiler") && precompiled.is_none();
    let (size, digests) = if sha256 || key {
        hash_capped(path, limits.max_size, sha256, key, known).map_err(cannot_read)??
    } else {
        let size = std::fs::metadata(path).map_err(cannot_read)?.len();
        if size > limits.max_size {
            return Err(too_big(size, limits.max_size));
        }
        (size, Digests::default())
    };
    Ok(Code::File(FileCode {
        path: path.clone(),
        size,
        max_size: limits.max_size,
        sha256: digests.sha256,
        key: digests.key,
        precompiled,
    }))
}

/// The hex digests of a file's content that were asked for.
#[derive(Default)]
pub(super) struct Digests {
    pub(super) sha256: Option<String>,
    pub(super) key: Option<String>,
}

impl Digests {
    pub(super) fn of(bytes: &[u8], sha256: bool, key: bool) -> Self {
        let mut hashers = Hashers::new(sha256, key);
        hashers.update(bytes);
        hashers.finish()
    }
}

struct Hashers {
    sha256: Option<sha2::Sha256>,
    #[cfg(feature = "compiler")]
    key: Option<blake3::Hasher>,
}

impl Hashers {
    fn new(sha256: bool, key: bool) -> Self {
        use sha2::Digest;
        #[cfg(not(feature = "compiler"))]
        let _ = key;
        Hashers {
            sha256: sha256.then(sha2::Sha256::new),
            #[cfg(feature = "compiler")]
            key: key.then(blake3::Hasher::new),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        #[cfg(feature = "compiler")]
        if let Some(h) = &mut self.key {
            h.update(bytes);
        }
    }

    fn finish(self) -> Digests {
        use sha2::Digest;
        Digests {
            sha256: self.sha256.map(|h| format!("{:x}", h.finalize())),
            #[cfg(feature = "compiler")]
            key: self.key.map(|h| h.finalize().to_hex().to_string()),
            #[cfg(not(feature = "compiler"))]
            key: None,
        }
    }
}

fn too_big(size: u64, max: u64) -> Failure {
    Failure::BadInput(format!(
        "the probe file is {}, over the size limit of {}; raise --max-size if you trust it",
        text::size(size),
        text::size(max)
    ))
}

/// The file's size and digests, read in a stream through a bound, or the refusal if it is
/// larger than `max` (a file that grows after its size was checked is refused too). A key
/// that `known` has is not computed, and the file is not read if nothing else is asked.
fn hash_capped(
    path: &Path,
    max: u64,
    sha256: bool,
    key: bool,
    known: Option<&dyn KnownKeys>,
) -> std::io::Result<Result<(u64, Digests), Failure>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let before = file.metadata()?;
    let size = before.len();
    if size > max {
        return Ok(Err(too_big(size, max)));
    }
    // A pinned or reported SHA-256 is of what runs: the key is then computed alongside it.
    if key
        && !sha256
        && let Some(k) = known.and_then(|k| k.known(&before))
    {
        let digests = Digests {
            sha256: None,
            key: Some(k),
        };
        return Ok(Ok((size, digests)));
    }
    let mut hasher = Hashers::new(sha256, key);
    let total = crate::fsio::stream((&mut file).take(max.saturating_add(1)), |piece| {
        hasher.update(piece)
    })?;
    if total > max {
        return Ok(Err(too_big(total, max)));
    }
    let digests = hasher.finish();
    if let (Some(k), Some(index)) = (&digests.key, known) {
        index.remember(&before, &file.metadata()?, k);
    }
    Ok(Ok((total, digests)))
}

/// The file's bytes, or the refusal if it is larger than `max`; read through a bound, so a
/// file that grows after its size was checked is refused too.
fn read_capped(path: &Path, max: u64) -> std::io::Result<Result<Vec<u8>, Failure>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > max {
        return Ok(Err(too_big(size, max)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Err(too_big(bytes.len() as u64, max)));
    }
    Ok(Ok(bytes))
}

#[cfg(test)]
mod tests {
    use super::looks_like_reference;

    #[test]
    fn registry_references_are_told_from_paths() {
        for reference in [
            "ghcr.io/org/probe:1.0",
            "127.0.0.1:5000/p/raw:v1",
            "localhost/p@sha256:0123",
            "registry.example/a/b@sha256:0123",
        ] {
            assert!(looks_like_reference(reference), "{reference}");
        }
        for path in [
            "./probe.wasm",
            "../probes/x.wasm",
            "probes.d/x.wasm",
            "build/probe.cwasm",
            "probe.wasm",
            "/abs/path.wasm",
        ] {
            assert!(!looks_like_reference(path), "{path}");
        }
    }
}
