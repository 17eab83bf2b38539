//! Writing files that other healthprobe processes may map while they run: never in place.

use std::io::Write;
use std::path::Path;

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
