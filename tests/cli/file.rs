//! Integration tests of the `file` probe with heartbeat files in temporary directories.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::support::healthprobe;

/// A heartbeat file modified `age` ago (negative: in the future), in a fresh directory.
/// Paths are canonical, as the host grants directories by their canonical paths.
fn heartbeat(age_secs: i64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap().join("heartbeat");
    let file = std::fs::File::create(&path).unwrap();
    let now = SystemTime::now();
    let offset = Duration::from_secs(age_secs.unsigned_abs());
    let mtime = if age_secs >= 0 {
        now - offset
    } else {
        now + offset
    };
    file.set_modified(mtime).unwrap();
    (dir, path)
}

fn run(path: &Path, grant: &Path, extra: &[&str]) -> crate::support::Outcome {
    let mut args = vec![
        "run".to_string(),
        "file".to_string(),
        format!("path={}", path.display()),
        "--allow-read".to_string(),
        grant.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    healthprobe(args)
}

#[test]
fn file_fresh_heartbeat_is_healthy() {
    let (_dir, path) = heartbeat(5);
    run(&path, path.parent().unwrap(), &["max-age=1m"]).expect(
        0,
        "healthy: file: ",
        &[&path.display().to_string(), "ago (max-age 1m)"],
    );
}

#[test]
fn file_existence_alone_is_healthy() {
    let (_dir, path) = heartbeat(7200);
    run(&path, path.parent().unwrap(), &[]).expect(0, "healthy: file: ", &["exists"]);
}

#[test]
fn file_stale_heartbeat_is_unhealthy_with_its_age() {
    let (_dir, path) = heartbeat(600);
    run(&path, path.parent().unwrap(), &["max-age=1m"]).expect(
        1,
        "unhealthy: file: ",
        &["is stale", "modified 10m", "max-age 1m"],
    );
}

#[test]
fn file_modified_in_the_future_is_unhealthy_with_max_age() {
    let (_dir, path) = heartbeat(-3600);
    run(&path, path.parent().unwrap(), &["max-age=1m"]).expect(
        1,
        "unhealthy: file: ",
        &["in the future"],
    );
}

#[test]
fn file_missing_is_unhealthy() {
    let (_dir, path) = heartbeat(0);
    let missing = path.with_file_name("no-such-heartbeat");
    run(&missing, path.parent().unwrap(), &[]).expect(
        1,
        "unhealthy: file: ",
        &[&format!("{} does not exist", missing.display())],
    );
}

#[test]
fn file_not_granted_says_which_flag_to_pass() {
    let (_dir, path) = heartbeat(0);
    let parent = path.parent().unwrap().display().to_string();
    healthprobe(["run", "file", &format!("path={}", path.display())]).expect(
        1,
        "unhealthy: file: ",
        &["not readable", &format!("--allow-read {parent}")],
    );
}

#[test]
fn file_granting_the_file_itself_is_exit_3_asking_for_a_directory() {
    let (_dir, path) = heartbeat(0);
    run(&path, &path, &[]).expect(3, "error: ", &["--allow-read", "directory"]);
}

#[test]
fn file_bad_max_age_is_exit_3() {
    let (_dir, path) = heartbeat(0);
    run(&path, path.parent().unwrap(), &["max-age=soon"]).expect(
        3,
        "error: file: ",
        &["max-age", "duration"],
    );
}
