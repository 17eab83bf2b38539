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
            // The seccomp filter names the process system calls in order to forbid them.
            if path.ends_with("confine.rs") {
                continue;
            }
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

/// Runs `worker` (an ignored test of this module) in a process of its own: a seccomp
/// filter cannot be taken back, so it must not land in the test runner.
fn in_own_process(worker: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            worker,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HEALTHPROBE_CONFINE_WORKER", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "worker failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_kernel_refuses_new_processes_once_the_filter_is_on_and_threads_still_work() {
    // Without the filter the same worker starts a process: the test can fail.
    let free = in_own_process(
        "no_processes::confine_worker",
        &[("HEALTHPROBE_CONFINE", "off")],
    );
    assert!(free.contains("spawn: ok"), "{free}");
    let confined = in_own_process("no_processes::confine_worker", &[]);
    assert!(confined.contains("spawn: refused (EPERM)"), "{confined}");
    assert!(confined.contains("thread: ok"), "{confined}");
    assert!(confined.contains("no_new_privs: 1"), "{confined}");
}

#[test]
#[ignore = "run by the_kernel_refuses_new_processes_once_the_filter_is_on… in a process of its own"]
fn confine_worker() {
    if std::env::var_os("HEALTHPROBE_CONFINE_WORKER").is_none() {
        return;
    }
    if std::env::var("HEALTHPROBE_CONFINE").as_deref() != Ok("off") {
        healthprobe::confine::forbid_processes().expect("install the filter");
    }
    match std::process::Command::new("/bin/true").status() {
        Ok(status) => println!("spawn: ok ({status})"),
        Err(e) if e.raw_os_error() == Some(1) => println!("spawn: refused (EPERM)"),
        Err(e) => println!("spawn: failed otherwise: {e}"),
    }
    let joined = std::thread::spawn(|| 6 * 7).join();
    let ok = matches!(joined, Ok(42));
    println!("thread: {}", if ok { "ok" } else { "failed" });
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("NoNewPrivs:"))
        .unwrap_or("NoNewPrivs: ?");
    println!(
        "no_new_privs: {}",
        line.split_whitespace().nth(1).unwrap_or("?")
    );
}

#[test]
fn verbose_says_the_filter_is_on() {
    let out = crate::support::healthprobe(["run", "tcp", "address=127.0.0.1:1", "--verbose"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("new processes: forbidden by a seccomp filter"),
        "{out:#?}"
    );
}

#[test]
fn the_kernel_refuses_file_writes_outside_the_allowed_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (allowed, other) = (dir.path().join("allowed"), dir.path().join("other"));
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let env = [
        ("HEALTHPROBE_WRITES_ALLOWED", allowed.to_str().unwrap()),
        ("HEALTHPROBE_WRITES_OTHER", other.to_str().unwrap()),
    ];
    // Without the rules the same worker writes both: the test can fail.
    let free = in_own_process(
        "no_processes::writes_worker",
        &[env[0], env[1], ("HEALTHPROBE_CONFINE", "off")],
    );
    assert!(
        free.contains("allowed: ok") && free.contains("other: ok"),
        "{free}"
    );
    std::fs::remove_file(other.join("file")).unwrap();
    std::fs::remove_file(other.join("thread")).unwrap();
    let confined = in_own_process("no_processes::writes_worker", &env);
    assert!(confined.contains("allowed: ok"), "{confined}");
    assert!(confined.contains("other: refused"), "{confined}");
    assert!(confined.contains("thread other: refused"), "{confined}");
    assert!(!other.join("file").exists() && !other.join("thread").exists());
}

#[test]
#[ignore = "run by the_kernel_refuses_file_writes_outside_the_allowed_directory in a process of its own"]
fn writes_worker() {
    let (Some(allowed), Some(other)) = (
        std::env::var_os("HEALTHPROBE_WRITES_ALLOWED"),
        std::env::var_os("HEALTHPROBE_WRITES_OTHER"),
    ) else {
        return;
    };
    let (allowed, other) = (
        std::path::PathBuf::from(allowed),
        std::path::PathBuf::from(other),
    );
    if std::env::var("HEALTHPROBE_CONFINE").as_deref() != Ok("off") {
        healthprobe::confine::limit_writes(&[&allowed]);
    }
    let write = |label: &str, path: std::path::PathBuf| match std::fs::write(&path, b"x") {
        Ok(()) => println!("{label}: ok"),
        Err(e) => println!("{label}: refused ({e})"),
    };
    write("allowed", allowed.join("file"));
    write("other", other.join("file"));
    // A thread started afterwards inherits the rules.
    let other_in_thread = other.join("thread");
    std::thread::spawn(move || write("thread other", other_in_thread))
        .join()
        .unwrap();
}

#[test]
fn verbose_says_where_a_run_may_write() {
    let out = crate::support::healthprobe(["run", "tcp", "address=127.0.0.1:1", "--verbose"]);
    assert!(
        out.stderr.contains("file writes: none (Landlock)"),
        "{out:#?}"
    );
}
