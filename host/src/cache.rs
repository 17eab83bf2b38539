//! The compile cache: `run PROBE.wasm` compiles a component once and later runs load the
//! native code, the way `healthprobe compile` output loads.
//!
//! An entry is keyed by the component's SHA-256 and a hash of the engine's settings (and
//! this healthprobe's version), so a changed component or another engine never finds a
//! stale entry. Entries are written whole and renamed into place, and carry a checksum of
//! their own bytes that is checked before wasmtime sees them: a truncated, corrupt or
//! foreign file is ignored and replaced, never loaded. A cache that cannot be created or
//! written (a read-only file system) only means compiling in memory.
//!
//! The checksum is XXH3-128, not a cryptographic hash: it guards against accidents (a
//! disk error, a file cut short or left by something else), which a 128-bit checksum
//! detects as surely as SHA-256 did. It never guarded against an attacker, who could as
//! well write a matching SHA-256 into a directory they can write to; the cache directory's
//! permissions do that. SHA-256 of a 48 MB entry took 25 ms here, XXH3 3 ms.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// Marks the end of an entry, before its checksum: a file without it is not ours (nor is
/// one from before the checksum was XXH3: it is replaced).
const TRAILER_MAGIC: &[u8; 8] = b"hpcache2";
/// Magic plus the XXH3-128 checksum, little-endian.
const TRAILER_LEN: usize = TRAILER_MAGIC.len() + 16;

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

    /// Whether `entry` exists and is intact, read in a stream (the caller maps it to
    /// load the code; reading it whole into memory would count it in the peak RSS).
    pub fn verify(entry: &Path) -> Result<bool, Corrupt> {
        use std::io::Read;
        let Ok(mut file) = std::fs::File::open(entry) else {
            return Ok(false);
        };
        let len = file.metadata().map_err(|_| Corrupt)?.len();
        let body_len = len.checked_sub(TRAILER_LEN as u64).ok_or(Corrupt)?;
        let mut hasher = Xxh3::new();
        let read = crate::fsio::stream((&mut file).take(body_len), |piece| hasher.update(piece))
            .map_err(|_| Corrupt)?;
        let mut trailer = [0; TRAILER_LEN];
        if read != body_len || file.read_exact(&mut trailer).is_err() {
            return Err(Corrupt);
        }
        Self::check(hasher.digest128(), &trailer).map(|()| true)
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
        Self::check(xxh3_128(body), trailer)?;
        bytes.truncate(body_len);
        Ok(Some(bytes))
    }

    fn check(sum: u128, trailer: &[u8]) -> Result<(), Corrupt> {
        let (magic, stored) = trailer.split_at(TRAILER_MAGIC.len());
        if magic != TRAILER_MAGIC || stored != sum.to_le_bytes() {
            return Err(Corrupt);
        }
        Ok(())
    }

    /// Stores `precompiled` as `entry`: written to a temporary file in the same
    /// directory, then renamed, so no reader sees half an entry.
    pub fn store(&self, entry: &Path, precompiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::fsio::write_atomically(
            entry,
            &[
                precompiled,
                TRAILER_MAGIC,
                &xxh3_128(precompiled).to_le_bytes(),
            ],
        )
    }
}

/// A cache entry that is not intact (truncated, altered, or not written by healthprobe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

#[cfg(test)]
mod tests {
    use super::*;

    /// A multiple of `fsio::stream`'s piece size.
    const PIECES: u64 = 4 << 20;

    #[test]
    fn entries_round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("nested"));
        let engine = Engine::default();
        let entry = cache.entry("abc", &engine);
        assert_eq!(Cache::load(&entry), Ok(None));
        assert_eq!(Cache::verify(&entry), Ok(false));
        // Several pieces for `verify`, the trailer across two of them.
        let code: Vec<u8> = (0..PIECES - 5).map(|i| (i % 251) as u8).collect();
        cache.store(&entry, &code).unwrap();
        assert_eq!(Cache::load(&entry), Ok(Some(code.clone())));
        assert_eq!(Cache::verify(&entry), Ok(true));

        // One flipped byte (early, late, in the checksum), a truncation, a foreign file:
        // each is refused by both.
        let stored = std::fs::read(&entry).unwrap();
        for at in [
            3,
            PIECES as usize - 100,
            PIECES as usize + 2,
            stored.len() - 1,
        ] {
            let mut bytes = stored.clone();
            bytes[at] ^= 1;
            std::fs::write(&entry, &bytes).unwrap();
            assert_eq!(Cache::load(&entry), Err(Corrupt), "byte {at}");
            assert_eq!(Cache::verify(&entry), Err(Corrupt), "byte {at}");
        }
        for bad in [&stored[..10], &stored[..stored.len() - 1], &[0u8; 100][..]] {
            std::fs::write(&entry, bad).unwrap();
            assert_eq!(Cache::load(&entry), Err(Corrupt));
            assert_eq!(Cache::verify(&entry), Err(Corrupt));
        }
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
