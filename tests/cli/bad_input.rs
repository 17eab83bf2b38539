//! Bad input: exit 3 (never 2) with a message that says what was wrong.

use crate::support::{guest, healthprobe, temp_file};

#[test]
fn missing_file_is_exit_3() {
    healthprobe(["run", "/nonexistent/probe.wasm"]).expect(
        3,
        "error: ",
        &["cannot read", "/nonexistent/probe.wasm"],
    );
}

#[test]
fn unknown_bundled_name_is_exit_3() {
    healthprobe(["run", "nosuchprobe"]).expect(
        3,
        "error: ",
        &["unknown probe 'nosuchprobe'", "http", "tcp"],
    );
}

#[test]
fn corrupt_bytes_are_exit_3() {
    let (_d, path) = temp_file("corrupt.wasm", b"\0asm\x0d\0\x01\0garbage-garbage-garbage");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["not a valid WebAssembly component"],
    );
    let (_d, path) = temp_file("text.wasm", b"#!/bin/sh\necho hi\n");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["not a WebAssembly file"],
    );
}

#[test]
fn core_module_is_exit_3() {
    // The smallest valid core module: magic and version 1, no sections.
    let (_d, path) = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["core WebAssembly module, not a component"],
    );
}

#[test]
fn component_of_another_world_is_exit_3() {
    let wasm = guest("other-world");
    healthprobe(["run".as_ref(), wasm.as_os_str()]).expect(
        3,
        "error: ",
        &["not a healthprobe probe"],
    );
    compile_is_refused(&wasm, &["not a healthprobe probe"]);
}

#[test]
fn component_importing_an_interface_the_host_lacks_is_exit_3() {
    let wasm = guest("bad-import");
    healthprobe(["run".as_ref(), wasm.as_os_str()]).expect(
        3,
        "error: ",
        &["cannot be linked", "test:missing/api"],
    );
    let out = healthprobe(["inspect".as_ref(), wasm.as_os_str()]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(
        out.stdout.contains("test:missing/api@0.1.0  NOT PROVIDED"),
        "{out:#?}"
    );
    // `compile` refuses what `run` cannot link, with run's message, and writes nothing.
    compile_is_refused(&wasm, &["cannot be linked", "test:missing/api"]);
}

#[test]
fn unknown_parameter_is_exit_3_and_lists_the_known_ones() {
    healthprobe(["run", "http", "url=http://127.0.0.1:1/", "colour=blue"]).expect(
        3,
        "error: http: ",
        &["unknown parameter 'colour'", "url", "expect-status"],
    );
}

#[test]
fn missing_required_parameter_is_exit_3() {
    healthprobe(["run", "http"]).expect(3, "error: http: ", &["missing required parameter 'url'"]);
}

#[test]
fn malformed_parameter_value_is_exit_3() {
    healthprobe([
        "run",
        "http",
        "url=http://127.0.0.1:1/",
        "expect-status=abc",
    ])
    .expect(3, "error: http: ", &["expect-status"]);
    healthprobe(["run", "http", "url"]).expect(3, "error: ", &["KEY=VALUE"]);
}

#[test]
fn usage_errors_are_exit_3_not_2() {
    healthprobe(["run", "http", "--timeout", "soon"]).expect(3, "error: ", &["--timeout"]);
    healthprobe(["frobnicate"]).expect(3, "error: ", &["frobnicate"]);
    let help = healthprobe(["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("run"));
}

#[test]
fn version_names_the_commit_target_wasmtime_and_build_in_text_and_json() {
    let text = healthprobe(["--version"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let line = text.stdout.trim_end();
    assert_eq!(line.lines().count(), 1, "{line}");
    let pattern = format!("healthprobe {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&pattern), "{line}");
    assert!(line.ends_with(", full)"), "{line}");
    assert!(line.contains(", wasmtime 48."), "{line}");
    assert!(line.contains(std::env::consts::ARCH), "{line}");

    let json = healthprobe(["--version", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["build"], "full");
    assert!(v["wasmtime"].as_str().unwrap().starts_with("48."), "{v}");
    assert!(
        v["target"]
            .as_str()
            .unwrap()
            .contains(std::env::consts::ARCH),
        "{v}"
    );
    // Built from a git checkout: the full hash of its HEAD (40 hex digits); from a source
    // archive: `unknown`.
    let commit = v["commit"].as_str().unwrap();
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.git")
        .exists();
    if checkout {
        assert!(
            commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{v}"
        );
    } else {
        assert_eq!(commit, "unknown");
    }
    assert!(
        line.contains(&commit[..commit.len().min(12)]),
        "{line} vs {commit}"
    );
}

#[test]
fn errors_are_json_under_format_json_for_every_command() {
    // The one-line JSON object every command prints when it cannot do its work.
    let error_json = |args: &[&str], needle: &str| {
        let out = healthprobe(args);
        assert_eq!(out.code, 3, "{out:#?}");
        assert_eq!(out.stdout.lines().count(), 1, "{out:#?}");
        let v: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:#?}"));
        assert_eq!(v["status"], "error", "{v}");
        assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
        v
    };
    let v = error_json(
        &["inspect", "/nonexistent/probe.wasm", "--format", "json"],
        "cannot read",
    );
    assert_eq!(v["probe"], "/nonexistent/probe.wasm");
    error_json(
        &["inspect", "nosuchprobe", "--format", "json"],
        "unknown probe",
    );
    error_json(
        &["run", "/nonexistent/probe.wasm", "--format", "json"],
        "cannot read",
    );
    // A usage error is found before the arguments are parsed; the request for JSON is
    // still honoured.
    let v = error_json(&["list", "--format", "json", "--bogus"], "--bogus");
    assert!(v["probe"].is_null(), "{v}");
    error_json(
        &["run", "http", "--format=json", "--timeout", "soon"],
        "--timeout",
    );
    // Text stays the default.
    healthprobe(["inspect", "nosuchprobe"]).expect(3, "error: nosuchprobe: ", &["unknown probe"]);
}

#[test]
fn a_broken_stdout_never_panics_and_keeps_the_contract() {
    // stdout is a pipe whose reading end is already closed: every write fails (EPIPE).
    let broken = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_healthprobe"))
            .args(args)
            .env("XDG_CACHE_HOME", std::env::temp_dir())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        (out.status.code(), stderr)
    };
    // A check's verdict still reaches Docker through the exit status.
    assert_eq!(broken(&["run", "tcp", "address=127.0.0.1:1"]).0, Some(1));
    assert_eq!(broken(&["run", "nosuchprobe"]).0, Some(3));
    // Commands whose whole output is lost say so on stderr and exit 3.
    for args in [
        &["list"][..],
        &["list", "--format", "json"],
        &["inspect", "http"],
        &["inspect", "nosuchprobe", "--format", "json"],
        &["frobnicate"],
    ] {
        let (code, stderr) = broken(args);
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
    }
}

#[test]
fn a_closed_or_broken_stderr_never_panics_and_keeps_the_exit_status() {
    let server = crate::support::HttpServer::fixed(200, "ok");
    let url = format!("url={}", server.url("/"));
    let (_dir, checks) = crate::support::temp_file(
        "checks.toml",
        format!(
            "[checks.web]\nprobe = \"http\"\nparams = {{ url = \"{}\" }}\n",
            server.url("/")
        )
        .as_bytes(),
    );
    let runs: [&[&str]; 4] = [
        &["run", "http", &url, "--verbose"],
        &["run", "tcp", "address=127.0.0.1:1", "--verbose"],
        &["run", "--config", checks.to_str().unwrap(), "--verbose"],
        &["run", "--bogus-flag"],
    ];
    let codes = [0, 1, 0, 3];
    for (args, code) in runs.iter().zip(codes) {
        for out in without_stderr(args, &std::env::temp_dir()) {
            assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
            // The verdict is on stdout either way.
            assert_eq!(
                out.stdout.iter().filter(|&&b| b == b'\n').count(),
                1,
                "{args:?}: {out:?}"
            );
        }
    }
}

/// Runs healthprobe with `args` twice: with stderr a pipe whose reading end is already
/// closed (every write fails with EPIPE), then with stderr closed altogether (`2>&-`, done
/// by the shell of the test, not the host).
fn without_stderr<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    cache: &std::path::Path,
) -> [std::process::Output; 2] {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let broken = std::process::Command::new(env!("CARGO_BIN_EXE_healthprobe"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .stderr(writer)
        .output()
        .unwrap();
    let closed = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 2>&-")
        .arg(env!("CARGO_BIN_EXE_healthprobe"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    [broken, closed]
}

/// Every other command, with stderr a broken pipe and closed: the exit status is the one it
/// has with a working stderr, and stdout still gets the answer.
#[test]
fn every_command_keeps_its_exit_status_without_a_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let cwasm = dir.path().join("hostile.cwasm");
    let missing = dir.path().join("missing.toml");
    let wasm = guest("hostile");
    let commands: [(Vec<&std::ffi::OsStr>, i32); 8] = [
        (vec!["list".as_ref()], 0),
        (vec!["wit".as_ref()], 0),
        (vec!["--version".as_ref()], 0),
        (vec!["inspect".as_ref(), "http".as_ref()], 0),
        (vec!["inspect".as_ref(), "no-such-probe".as_ref()], 3),
        (
            vec![
                "compile".as_ref(),
                wasm.as_os_str(),
                "-o".as_ref(),
                cwasm.as_os_str(),
            ],
            0,
        ),
        (
            vec!["serve".as_ref(), "--config".as_ref(), missing.as_os_str()],
            3,
        ),
        (vec!["no-such-command".as_ref()], 3),
    ];
    for (args, code) in &commands {
        for out in without_stderr(args, dir.path()) {
            assert_eq!(out.status.code(), Some(*code), "{args:?}: {out:?}");
            assert!(!out.stdout.is_empty(), "{args:?}: {out:?}");
        }
    }
}

#[test]
fn component_using_the_async_abi_is_refused_with_the_flag_that_avoids_it() {
    let wasm = guest("async-export");
    let needles = ["component model's async ABI", "componentize-qjs --sync"];
    healthprobe(["run".as_ref(), wasm.as_os_str(), "--no-cache".as_ref()])
        .expect(3, "error: ", &needles);
    compile_is_refused(&wasm, &needles);
}

/// `compile` refuses `wasm` with exit 3 and a message holding `needles`, and writes no
/// `.cwasm`: it refuses what `run` would.
fn compile_is_refused(wasm: &std::path::Path, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let cwasm = dir.path().join("refused.cwasm");
    healthprobe([
        "compile".as_ref(),
        wasm.as_os_str(),
        "-o".as_ref(),
        cwasm.as_os_str(),
    ])
    .expect(3, "error: ", needles);
    assert!(!cwasm.exists());
}

/// A grant of a variable healthprobe does not have is refused the same way by every
/// command, in the same lower-case `error:` form as every other message.
#[test]
fn an_env_grant_of_an_unset_variable_names_it_in_every_command() {
    let var = "HEALTHPROBE_TEST_SURELY_UNSET";
    for args in [
        &["run", "tcp", "address=127.0.0.1:9", "--env", var][..],
        &["inspect", "tcp", "--env", var],
    ] {
        healthprobe(args).expect(
            3,
            "error: tcp: --env HEALTHPROBE_TEST_SURELY_UNSET: not set in healthprobe's environment",
            &["give HEALTHPROBE_TEST_SURELY_UNSET=VALUE"],
        );
    }
}
