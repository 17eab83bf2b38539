//! The compile cache: `run PROBE.wasm` compiles a component once and later runs load the
//! native code, the way `healthprobe compile` output loads.
//!
//! An entry is keyed by the component's BLAKE3 and a hash of the engine's settings (and
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
//!
//! Reading a big component to hash it, and its entry to check it, still cost a cached run
//! of the 18 MB Python example two thirds of its time. So the cache also remembers, by the
//! file's identity in the file system ([`FileId`]: device, inode, size, and the times of
//! its last change), the key of each component file it hashed (`keys/`) and each entry
//! whose checksum matched (`verified/`). A file whose identity is unchanged is not read
//! again: any write, truncation, replacement or `touch` changes the identity, and a file
//! changed less than two seconds before it was read is not remembered (its times could
//! stay the same through a second change). That is how make, git and ccache tell an
//! unchanged file. A pinned (`--sha256`) or reported SHA-256 is always computed from the
//! bytes, and the key with it.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

    /// Where the entry for the component whose BLAKE3 (hex) is `key` lives under `engine`.
    pub fn entry(&self, key: &str, engine: &Engine) -> PathBuf {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        self.dir
            .join(format!("{key}-{:016x}.cwasm", hasher.finish()))
    }

    /// Whether `entry` exists and is intact: its checksum is checked by reading it in a
    /// stream (the caller maps it to load the code; reading it whole into memory would
    /// count it in the peak RSS), unless this file was checked before and has not changed
    /// since (see [`FileId`]): reading a 48 MB entry to check it was a third of a cached
    /// run of the Python example.
    pub fn verify(&self, entry: &Path) -> Result<bool, Corrupt> {
        self.verify_at(entry, SystemTime::now())
    }

    fn verify_at(&self, entry: &Path, now: SystemTime) -> Result<bool, Corrupt> {
        use std::io::Read;
        let Ok(mut file) = std::fs::File::open(entry) else {
            return Ok(false);
        };
        let meta = file.metadata().map_err(|_| Corrupt)?;
        let id = FileId::of(&meta);
        let record = self.verified_record(entry);
        if let Some(id) = id
            && recorded(&record).is_some_and(|r| r == id.to_string())
        {
            return Ok(true);
        }
        let body_len = meta.len().checked_sub(TRAILER_LEN as u64).ok_or(Corrupt)?;
        let mut hasher = Xxh3::new();
        let read = crate::fsio::stream((&mut file).take(body_len), |piece| hasher.update(piece))
            .map_err(|_| Corrupt)?;
        let mut trailer = [0; TRAILER_LEN];
        if read != body_len || file.read_exact(&mut trailer).is_err() {
            return Err(Corrupt);
        }
        Self::check(hasher.digest128(), &trailer)?;
        if let Some(id) = id
            && id.settled(now)
            && file.metadata().ok().and_then(|m| FileId::of(&m)) == Some(id)
        {
            record_best_effort(&record, &id.to_string());
        }
        Ok(true)
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

/// The index of component files already hashed: a file's key is remembered by its
/// identity in the file system ([`FileId`]), so that a cached run of a big component
/// does not read it (hashing the 18 MB Python example was a third of a cached run).
/// A changed file has another identity and is hashed again; so is a file changed so
/// recently that a second change could leave its identity as it was.
impl crate::fsio::KnownKeys for Cache {
    fn known(&self, file: &std::fs::Metadata) -> Option<String> {
        let id = FileId::of(file)?;
        let record = recorded(&self.key_record(&id))?;
        let (identity, key) = record.rsplit_once(' ')?;
        (identity == id.to_string() && is_key(key)).then(|| key.to_owned())
    }

    fn remember(&self, before: &std::fs::Metadata, after: &std::fs::Metadata, key: &str) {
        self.remember_at(before, after, key, SystemTime::now());
    }
}

impl Cache {
    fn remember_at(
        &self,
        before: &std::fs::Metadata,
        after: &std::fs::Metadata,
        key: &str,
        now: SystemTime,
    ) {
        let (Some(id), Some(again)) = (FileId::of(before), FileId::of(after)) else {
            return;
        };
        if id == again && id.settled(now) && is_key(key) {
            record_best_effort(&self.key_record(&id), &format!("{id} {key}"));
        }
    }

    /// Where the key of the file `id` is kept: one record per file (device and inode),
    /// replaced when the file changes, so the index grows with the files, not with their
    /// versions.
    fn key_record(&self, id: &FileId) -> PathBuf {
        self.dir
            .join("keys")
            .join(format!("{:x}-{:x}", id.dev, id.ino))
    }

    /// Where the identity of `entry`, as it was when its checksum last matched, is kept.
    fn verified_record(&self, entry: &Path) -> PathBuf {
        let name = entry.file_stem().unwrap_or_default();
        self.dir.join("verified").join(name)
    }
}

/// The one line in the record at `path`, if there is one.
fn recorded(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(256)
        .read_to_string(&mut text)
        .ok()?;
    Some(text.trim_end().to_owned())
}

/// Writes `line` as the record at `path`, if it can: without it, the next run reads
/// and hashes the file again, as it would have anyway.
fn record_best_effort(path: &Path, line: &str) {
    let _ = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| crate::fsio::write_atomically(path, &[line.as_bytes(), b"\n"]));
}

/// Whether `key` looks like a compile-cache key (a hex BLAKE3).
fn is_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A file's identity as the file system keeps it: which file (device and inode), its size,
/// and when its content (mtime) and its inode (ctime) last changed. Any write, truncation,
/// rename over it or `touch` moves the ctime forward, and no unprivileged program can set
/// it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    /// How long a file must have been left alone before its identity is taken to stand for
    /// its content. File systems keep times in ticks (milliseconds on most, one or two
    /// seconds on some), and a write in the same tick as the one before leaves the times as
    /// they were (what git calls "racily clean"). Two seconds covers the coarsest tick.
    const SETTLE: Duration = Duration::from_secs(2);

    /// The identity in `meta`; `None` where the platform does not give one.
    fn of(meta: &std::fs::Metadata) -> Option<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileId {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }

    /// Whether the file was last changed at least [`Self::SETTLE`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let now = i128::try_from(now.as_nanos()).unwrap_or(i128::MAX);
        let ago = |(secs, nanos): (i64, i64)| {
            now - (i128::from(secs) * 1_000_000_000 + i128::from(nanos))
        };
        let settle = i128::try_from(Self::SETTLE.as_nanos()).unwrap_or(i128::MAX);
        ago(self.mtime) >= settle && ago(self.ctime) >= settle
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (dev, ino, size) = (self.dev, self.ino, self.size);
        let ((ms, mn), (cs, cn)) = (self.mtime, self.ctime);
        write!(f, "{dev} {ino} {size} {ms}.{mn:09} {cs}.{cn:09}")
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
        assert_eq!(cache.verify(&entry), Ok(false));
        // Several pieces for `verify`, the trailer across two of them.
        let code: Vec<u8> = (0..PIECES - 5).map(|i| (i % 251) as u8).collect();
        cache.store(&entry, &code).unwrap();
        assert_eq!(Cache::load(&entry), Ok(Some(code.clone())));
        assert_eq!(cache.verify(&entry), Ok(true));

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
            assert_eq!(cache.verify(&entry), Err(Corrupt), "byte {at}");
        }
        for bad in [&stored[..10], &stored[..stored.len() - 1], &[0u8; 100][..]] {
            std::fs::write(&entry, bad).unwrap();
            assert_eq!(Cache::load(&entry), Err(Corrupt));
            assert_eq!(cache.verify(&entry), Err(Corrupt));
        }
    }

    /// Later than any file a test writes has settled.
    fn later() -> SystemTime {
        SystemTime::now() + 2 * FileId::SETTLE
    }

    /// Writes `bytes` over `path`, in place. The tests record files younger than
    /// [`FileId::SETTLE`] (with [`later`]), so a rewrite could fall in the same clock
    /// tick and keep the times; it is dated a minute back to tell it apart, as a real
    /// write after the settling time is by its ctime.
    fn rewrite(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn a_key_is_remembered_for_the_unchanged_file_only() {
        use crate::fsio::KnownKeys;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let component = dir.path().join("probe.wasm");
        std::fs::write(&component, b"first").unwrap();
        let meta = std::fs::metadata(&component).unwrap();
        let key = "ab".repeat(32);
        // Just written: its times could survive a second write, so nothing is kept.
        cache.remember(&meta, &meta, &key);
        assert_eq!(cache.known(&meta), None);
        // Changed while it was hashed: nothing is kept.
        rewrite(&component, b"other");
        let after = std::fs::metadata(&component).unwrap();
        cache.remember_at(&meta, &after, &key, later());
        assert_eq!(cache.known(&meta), None);
        cache.remember_at(&after, &after, &key, later());
        assert_eq!(cache.known(&after), Some(key.clone()));
        // The same content written again, a replacement: each is another identity, and
        // the key is not known for it.
        rewrite(&component, b"other");
        let rewritten = std::fs::metadata(&component).unwrap();
        assert_eq!(cache.known(&rewritten), None);
        let replacement = dir.path().join("new.wasm");
        std::fs::write(&replacement, b"other").unwrap();
        std::fs::rename(&replacement, &component).unwrap();
        assert_eq!(cache.known(&std::fs::metadata(&component).unwrap()), None);
        // A record that is not a key is ignored.
        cache.remember_at(&rewritten, &rewritten, "not a key", later());
        assert_eq!(cache.known(&rewritten), None);
    }

    #[test]
    fn a_verified_entry_is_read_again_once_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let entry = cache.entry("abc", &Engine::default());
        let code: Vec<u8> = (0..PIECES + 7).map(|i| (i % 251) as u8).collect();
        cache.store(&entry, &code).unwrap();
        let record = cache.verified_record(&entry);
        // Just written: checked, not recorded.
        assert_eq!(cache.verify(&entry), Ok(true));
        assert!(!record.exists());
        assert_eq!(cache.verify_at(&entry, later()), Ok(true));
        assert!(record.exists());
        assert_eq!(cache.verify(&entry), Ok(true));
        // Any change to the entry, even one that keeps its size, is checked again.
        let mut bytes = std::fs::read(&entry).unwrap();
        bytes[100] ^= 1;
        rewrite(&entry, &bytes);
        assert_eq!(cache.verify(&entry), Err(Corrupt));
        assert_eq!(cache.verify_at(&entry, later()), Err(Corrupt));
        std::fs::remove_file(&entry).unwrap();
        assert_eq!(cache.verify(&entry), Ok(false));
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
