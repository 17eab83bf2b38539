//! The compile cache: `run PROBE.wasm` compiles a component once and later runs load the
//! native code, the way `healthprobe compile` output loads.
//!
//! An entry is keyed by the component's SHA-256 and a hash of the engine's settings (and
//! this healthprobe's version), so a changed component or another engine never finds a
//! stale entry. Entries are written whole and renamed into place, and carry a SHA-256 of
//! their own bytes that is checked before wasmtime sees them: a truncated, corrupt or
//! foreign file is ignored and replaced, never loaded. A cache that cannot be created or
//! written (a read-only file system) only means compiling in memory.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

/// Marks the end of an entry, before its checksum: a file without it is not ours.
const TRAILER_MAGIC: &[u8; 8] = b"hpcache1";
/// Magic plus SHA-256.
const TRAILER_LEN: usize = TRAILER_MAGIC.len() + 32;

/// The environment variable naming the cache directory (what `--cache-dir` overrides).
pub const ENV: &str = "HEALTHPROBE_CACHE_DIR";

/// A compile-cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// What happened to one lookup, for `--verbose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Loaded from this entry.
    Hit(PathBuf),
    /// Compiled, and stored in this entry.
    Stored(PathBuf),
    /// Compiled; the cache could not be used (why).
    Unavailable(String),
    /// Compiled; an entry existed but was corrupt or foreign, and was replaced.
    Replaced(PathBuf),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Hit(p) => write!(f, "loaded from the compile cache ({})", p.display()),
            Outcome::Stored(p) => {
                write!(f, "compiled, stored in the compile cache ({})", p.display())
            }
            Outcome::Replaced(p) => write!(
                f,
                "compiled; replaced an unusable compile cache entry ({})",
                p.display()
            ),
            Outcome::Unavailable(why) => write!(f, "compiled in memory (no compile cache: {why})"),
        }
    }
}

impl Cache {
    /// The cache in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Cache { dir }
    }

    /// The platform's cache directory for healthprobe (`$XDG_CACHE_HOME/healthprobe` or
    /// `~/.cache/healthprobe` on Linux), if the platform has one.
    pub fn platform() -> Option<Self> {
        dirs::cache_dir().map(|d| Cache::new(d.join("healthprobe")))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for a component with SHA-256 `digest` lives under `engine`.
    pub fn entry(&self, digest: &str, engine: &Engine) -> PathBuf {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        self.dir
            .join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// The precompiled bytes in `entry`, if it exists and is intact.
    pub fn load(entry: &Path) -> Result<Option<Vec<u8>>, Corrupt> {
        let mut bytes = match std::fs::read(entry) {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        let Some(body_len) = bytes.len().checked_sub(TRAILER_LEN) else {
            return Err(Corrupt);
        };
        let (body, trailer) = bytes.split_at(body_len);
        let (magic, sum) = trailer.split_at(TRAILER_MAGIC.len());
        if magic != TRAILER_MAGIC || Sha256::digest(body).as_slice() != sum {
            return Err(Corrupt);
        }
        bytes.truncate(body_len);
        Ok(Some(bytes))
    }

    /// Stores `precompiled` as `entry`: written to a temporary file in the same
    /// directory, then renamed, so no reader sees half an entry.
    pub fn store(&self, entry: &Path, precompiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::fsio::write_atomically(
            entry,
            &[precompiled, TRAILER_MAGIC, &Sha256::digest(precompiled)],
        )
    }
}

/// A cache entry that is not intact (truncated, altered, or not written by healthprobe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("nested"));
        let engine = Engine::default();
        let entry = cache.entry("abc", &engine);
        assert_eq!(Cache::load(&entry), Ok(None));
        cache.store(&entry, b"native code").unwrap();
        assert_eq!(Cache::load(&entry), Ok(Some(b"native code".to_vec())));

        // One flipped byte, a truncation, a foreign file: each is refused.
        let mut bytes = std::fs::read(&entry).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&entry, &bytes).unwrap();
        assert_eq!(Cache::load(&entry), Err(Corrupt));
        std::fs::write(&entry, &bytes[..10]).unwrap();
        assert_eq!(Cache::load(&entry), Err(Corrupt));
        std::fs::write(&entry, vec![0u8; 100]).unwrap();
        assert_eq!(Cache::load(&entry), Err(Corrupt));
    }

    #[test]
    fn the_key_depends_on_content_and_engine_settings() {
        let cache = Cache::new(PathBuf::from("/c"));
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let fuel = Engine::new(&config).unwrap();
        assert_ne!(cache.entry("a", &plain), cache.entry("b", &plain));
        assert_ne!(cache.entry("a", &plain), cache.entry("a", &fuel));
        assert_eq!(
            cache.entry("a", &plain),
            cache.entry("a", &Engine::default())
        );
    }
}
