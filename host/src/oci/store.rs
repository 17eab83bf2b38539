//! Pulled artifacts, kept by digest under the compile cache's directory (`DIR/oci/`):
//! `manifests/sha256/HEX` holds a manifest's bytes as the registry served them, named by
//! their SHA-256, and `blobs/sha256/HEX` a component, named by its SHA-256 (the layer
//! digest). A blob is stored before the manifest that names it, each under a temporary
//! name and renamed into place, so a manifest found means its blob was complete.
//!
//! Nothing here is trusted for being here: a lookup hashes the manifest again, and the
//! component is hashed again when it is read to run (the layer digest is its pin).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::oci::artifact::{self, Artifact};
use crate::report::Failure;
use crate::text;

/// The most a manifest may take; a Wasm artifact's is under a kilobyte.
pub const MAX_MANIFEST: u64 = 1 << 20;

/// The store's directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// An artifact found in the store.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The manifest's SHA-256 (hex): what `oci://…@sha256:` pins.
    pub manifest: String,
    /// The component's SHA-256 (hex), as the manifest names its layer.
    pub layer: String,
    /// The component's size, as the manifest gives it.
    pub size: u64,
    /// The component file.
    pub path: PathBuf,
}

impl Store {
    /// The store in `cache_dir` (the compile cache's directory).
    pub fn new(cache_dir: &Path) -> Self {
        Store {
            dir: cache_dir.join("oci"),
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn manifest_path(&self, hex: &str) -> PathBuf {
        self.dir.join("manifests/sha256").join(hex)
    }

    /// Where the component with this SHA-256 is kept.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex)
    }

    /// The artifact pinned by manifest digest `hex`, if it is stored whole. A stored
    /// manifest whose bytes no longer hash to its name is refused: the store was changed
    /// by something else.
    pub fn lookup(&self, hex: &str) -> Result<Option<Stored>, Failure> {
        let path = self.manifest_path(hex);
        let bytes = match read_capped(&path, MAX_MANIFEST) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Failure::BadInput(format!(
                    "cannot read the stored manifest {}: {}",
                    path.display(),
                    text::io_error(&e)
                )));
            }
        };
        if sha256(&bytes) != hex {
            return Err(Failure::BadInput(format!(
                "the stored manifest {} does not match its digest sha256:{hex}: the store was changed; delete it and pull again",
                path.display()
            )));
        }
        let Artifact { layer, .. } = artifact::parse(&bytes).map_err(|why| {
            Failure::BadInput(format!(
                "the stored manifest {}: {why}; delete it and pull again",
                path.display()
            ))
        })?;
        let blob = self.blob_path(&layer.hex);
        if !blob.exists() {
            return Ok(None);
        }
        Ok(Some(Stored {
            manifest: hex.to_string(),
            layer: layer.hex,
            size: layer.size,
            path: blob,
        }))
    }

    /// A new blob file, written under a temporary name in the blobs' directory.
    pub fn new_blob(&self) -> std::io::Result<tempfile::NamedTempFile> {
        let dir = self.dir.join("blobs/sha256");
        std::fs::create_dir_all(&dir)?;
        tempfile::Builder::new().prefix(".pull-").tempfile_in(dir)
    }

    /// Keeps a blob whose SHA-256 was checked to be `hex`.
    pub fn keep_blob(&self, mut file: tempfile::NamedTempFile, hex: &str) -> std::io::Result<()> {
        file.flush()?;
        file.as_file().sync_all()?;
        file.persist(self.blob_path(hex)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Keeps a manifest, named by its SHA-256; its blob must be kept first.
    pub fn keep_manifest(&self, bytes: &[u8]) -> std::io::Result<String> {
        let hex = sha256(bytes);
        let path = self.manifest_path(&hex);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fsio::write_atomically(&path, &[bytes])?;
        Ok(hex)
    }
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "over {}, not a manifest",
            text::size(max)
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_found_only_with_its_blob_and_only_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let component = b"\0asm\x0d\0\x01\0";
        let layer = sha256(component);
        let manifest = artifact::manifest(
            &artifact::Descriptor::config(b"{}"),
            &artifact::Descriptor::layer(component),
        );
        let hex = sha256(&manifest);
        assert!(store.lookup(&hex).unwrap().is_none());
        // A manifest without its blob is not a stored artifact.
        store.keep_manifest(&manifest).unwrap();
        assert!(store.lookup(&hex).unwrap().is_none());
        let mut blob = store.new_blob().unwrap();
        blob.write_all(component).unwrap();
        store.keep_blob(blob, &layer).unwrap();
        let stored = store.lookup(&hex).unwrap().unwrap();
        assert_eq!(stored.layer, layer);
        assert_eq!(stored.size, component.len() as u64);
        assert_eq!(std::fs::read(&stored.path).unwrap(), component);
        // Changed on disk: refused, not used.
        std::fs::write(store.manifest_path(&hex), b"{}").unwrap();
        let e = store.lookup(&hex).unwrap_err().to_string();
        assert!(e.contains("does not match its digest"), "{e}");
    }
}
