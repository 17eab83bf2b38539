//! Writing files that other healthprobe processes may map while they run (never in
//! place), and reading big ones in a stream.

use std::io::{Read, Write};
use std::path::Path;

/// Feeds everything `input` yields to `each`, a piece at a time, and returns how many
/// bytes that was. The pieces are small enough to stay in the CPU's cache between the
/// copy out of the page cache and the hashing: with 1 MiB pieces, reading an 18 MB
/// component took three times as long here.
pub fn stream(mut input: impl Read, mut each: impl FnMut(&[u8])) -> std::io::Result<u64> {
    let mut buf = vec![0; 128 * 1024];
    let mut total = 0u64;
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                each(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes `parts` to `path` atomically and durably: into a fresh temporary file in the
/// same directory (a unique name, so concurrent writers never share one), flushed to
/// disk, then renamed over `path`. A reader sees the old file or the whole new one, never
/// a half-written one, and a crash leaves no truncated file under `path`.
pub fn write_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    for part in parts {
        tmp.write_all(part)?;
    }
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Where a component's compile-cache key may be known without reading the component: the
/// compile cache's index of files it has hashed before.
pub trait KnownKeys {
    /// The key of the file described by `file`, if it was hashed before and has not
    /// changed since.
    fn known(&self, file: &std::fs::Metadata) -> Option<String>;
    /// Remembers `key` for the file that was `before` when hashing began and `after` when
    /// it ended (nothing is remembered if the two differ).
    fn remember(&self, before: &std::fs::Metadata, after: &std::fs::Metadata, key: &str);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.cwasm");
        write_atomically(&path, &[b"old"]).unwrap();
        write_atomically(&path, &[b"ne", b"w"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
