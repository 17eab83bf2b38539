//! No child processes, on any path.

#[test]
fn host_source_never_starts_a_process() {
    // The build script may run cargo; the binary's own code may not start anything.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for needle in [
                "process::Command",
                "Command::new",
                "fork(",
                "posix_spawn",
                "execv",
            ] {
                assert!(
                    !text.contains(needle),
                    "{} contains {needle}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 5, "walked only {files} files");
}
