//! Where a probe's native code comes from: bundled probes precompiled at build time, the
//! compile cache for `.wasm` files, and the runtime-only build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use healthprobe::cache::Cache;

use crate::support::{Outcome, closed_port, guest, healthprobe, healthprobe_env, temp_file};

/// `healthprobe run GUEST mode=echo value=VALUE --verbose` plus `extra`, with `env`.
fn echo(wasm: &Path, value: &str, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut args = vec![
        "run".to_string(),
        wasm.display().to_string(),
        "mode=echo".into(),
        format!("value={value}"),
        "--verbose".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = healthprobe_env(&args, env);
    out.expect(0, "healthy: hostile: ", &[value]);
    out
}

/// The cache entries in `dir` (not its index of files, `keys/` and `verified/`).
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn bundled_probes_run_code_precompiled_at_build_time() {
    let addr = closed_port();
    let dir = tempfile::tempdir().unwrap();
    // tcp's code is stored as is, memcached's LZ4-compressed (host/build.rs): both run in
    // place, and `compile` writes out the same code for either.
    for probe in ["tcp", "memcached"] {
        let unhealthy = format!("unhealthy: {probe}: ");
        let out = healthprobe(["run", probe, &format!("address={addr}"), "--verbose"]);
        out.expect(1, &unhealthy, &["refused"]);
        assert!(
            out.stderr
                .contains("code: precompiled when healthprobe was built"),
            "{out:#?}"
        );

        // `compile` of a bundled probe writes out the embedded code, which runs as a file.
        let cwasm = dir.path().join(format!("{probe}.cwasm"));
        healthprobe([
            "compile".as_ref(),
            probe.as_ref(),
            "-o".as_ref(),
            cwasm.as_os_str(),
        ])
        .expect(0, &format!("compiled {probe} "), &[]);
        let out = healthprobe([
            "run".as_ref(),
            cwasm.as_os_str(),
            format!("address={addr}").as_ref(),
            "--verbose".as_ref(),
        ]);
        out.expect(1, &unhealthy, &["refused"]);
        assert!(out.stderr.contains("code: precompiled file"), "{out:#?}");
    }
}

#[test]
fn a_wasm_file_is_compiled_once_then_loaded_from_the_cache() {
    let wasm = guest("hostile");
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let flag = ["--cache-dir", cache_dir.to_str().unwrap()];

    let first = echo(&wasm, "one", &flag, &[]);
    assert!(
        first
            .stderr
            .contains("compiled, stored in the compile cache"),
        "{first:#?}"
    );
    let stored = entries(&cache_dir);
    assert_eq!(stored.len(), 1, "{stored:?}");

    let second = echo(&wasm, "two", &flag, &[]);
    assert!(
        second.stderr.contains("loaded from the compile cache"),
        "{second:#?}"
    );

    // A damaged entry (one byte flipped, then cut short) is never loaded: the run
    // compiles again, replaces it, and the next run hits the cache again.
    let entry = &stored[0];
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    for damaged in [&bytes[..], &bytes[..100]] {
        std::fs::write(entry, damaged).unwrap();
        let out = echo(&wasm, "again", &flag, &[]);
        assert!(
            out.stderr
                .contains("replaced an unusable compile cache entry"),
            "{out:#?}"
        );
        let hit = echo(&wasm, "hit", &flag, &[]);
        assert!(
            hit.stderr.contains("loaded from the compile cache"),
            "{hit:#?}"
        );
    }
    assert_eq!(entries(&cache_dir).len(), 1);

    // --no-cache compiles in memory and leaves the cache alone.
    let out = echo(&wasm, "none", &["--no-cache"], &[]);
    assert!(out.stderr.contains("compiled in memory"), "{out:#?}");
}

/// A cached run does not read the component again while the file is unchanged (the cache
/// remembers its key by the file's identity); a file changed in place, even to the same
/// size with its modification time put back, is another identity, and is hashed and
/// compiled again: the code that runs is never that of an earlier content.
#[test]
fn a_component_changed_in_place_is_never_taken_for_the_cached_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let wasm = dir.path().join("probe.wasm");
    std::fs::copy(guest("hostile"), &wasm).unwrap();
    let original = std::fs::metadata(&wasm).unwrap().modified().unwrap();
    // The cache remembers only files left alone for two seconds.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let run = |value: &str| {
        let out = healthprobe([
            "run".as_ref(),
            wasm.as_os_str(),
            "mode=echo".as_ref(),
            format!("value={value}").as_ref(),
            "--cache-dir".as_ref(),
            cache_dir.as_os_str(),
        ]);
        out.expect(0, "healthy: hostile: ", &[value]);
    };
    run("one");
    let keys: Vec<_> = std::fs::read_dir(cache_dir.join("keys"))
        .expect("the key was remembered")
        .collect();
    assert_eq!(keys.len(), 1);
    run("two");
    assert_eq!(entries(&cache_dir).len(), 1);

    // The same size, one byte of a custom section changed, the old modification time.
    let mut bytes = std::fs::read(&wasm).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"processed-by")
        .expect("a producers section");
    bytes[at + 11] = b'Y';
    std::fs::write(&wasm, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&wasm)
        .unwrap()
        .set_modified(original)
        .unwrap();
    run("three");
    assert_eq!(
        entries(&cache_dir).len(),
        2,
        "the changed file was compiled into an entry of its own"
    );
}

#[test]
fn an_intact_cache_entry_for_another_engine_is_replaced() {
    let wasm = guest("hostile");
    let bytes = std::fs::read(&wasm).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Where healthprobe looks for this component, holding code from an engine without
    // fuel or epochs, with a valid checksum: only wasmtime's own check can refuse it.
    let runner = healthprobe::runner::Runner::new().unwrap();
    let cache = Cache::new(dir.path().to_path_buf());
    let entry = cache.entry(
        &healthprobe::runner::cache_key(&bytes),
        runner.wasm_engine().unwrap(),
    );
    let other = wasmtime::Engine::new(
        wasmtime::Config::new()
            .consume_fuel(false)
            .epoch_interruption(false),
    )
    .unwrap();
    cache
        .store(&entry, &other.precompile_component(&bytes).unwrap())
        .unwrap();

    let out = echo(
        &wasm,
        "fresh",
        &["--cache-dir", dir.path().to_str().unwrap()],
        &[],
    );
    assert!(
        out.stderr
            .contains("replaced an unusable compile cache entry"),
        "{out:#?}"
    );
    let hit = echo(
        &wasm,
        "hit",
        &["--cache-dir", dir.path().to_str().unwrap()],
        &[],
    );
    assert!(
        hit.stderr.contains("loaded from the compile cache"),
        "{hit:#?}"
    );
}

#[test]
fn the_cache_directory_comes_from_the_environment_then_the_platform() {
    let wasm = guest("hostile");
    let dir = tempfile::tempdir().unwrap();
    let from_env = dir.path().join("env");
    echo(
        &wasm,
        "env",
        &[],
        &[("HEALTHPROBE_CACHE_DIR", from_env.to_str().unwrap())],
    );
    assert_eq!(entries(&from_env).len(), 1);

    // Unset (empty) variable: the platform's cache directory, under XDG_CACHE_HOME.
    let xdg = dir.path().join("xdg");
    echo(
        &wasm,
        "xdg",
        &[],
        &[
            ("HEALTHPROBE_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", xdg.to_str().unwrap()),
        ],
    );
    assert_eq!(entries(&xdg.join("healthprobe")).len(), 1);
}

#[test]
fn an_unwritable_cache_compiles_in_memory_and_says_nothing() {
    let wasm = guest("hostile");
    // A directory under a regular file can never be created, even by root (for whom a
    // read-only mode bit would not stop the write).
    let (_d, file) = temp_file("not-a-dir", b"x");
    let cache_dir = file.join("cache");
    let args = [
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=echo".as_ref(),
        "value=quiet".as_ref(),
        "--cache-dir".as_ref(),
        cache_dir.as_os_str(),
    ];
    let out = healthprobe(args);
    out.expect(0, "healthy: hostile: quiet", &[]);
    assert_eq!(out.stderr, "", "nothing alarming: {out:#?}");
    let out = echo(
        &wasm,
        "why",
        &["--cache-dir", cache_dir.to_str().unwrap()],
        &[],
    );
    assert!(
        out.stderr
            .contains("compiled in memory (no compile cache: cannot write to"),
        "{out:#?}"
    );
}

/// The runtime-only build (no Cranelift), built on first use as the workspace's
/// `healthprobe-runtime-only` binary, in the target directory of this test run: cargo
/// holds no lock while tests run, the units it shares with the full build are reused, and
/// its own name keeps it from replacing the `healthprobe` binary the other tests run.
fn runtime_only() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            let status = Command::new(env!("CARGO"))
                .args(["build", "--locked", "-p", "healthprobe-runtime-only"])
                .arg("--manifest-path")
                .arg(root.join("Cargo.toml"))
                .status()
                .expect("run cargo to build the runtime-only healthprobe");
            assert!(
                status.success(),
                "building the runtime-only healthprobe failed"
            );
            Path::new(env!("CARGO_BIN_EXE_healthprobe")).with_file_name("healthprobe-runtime-only")
        })
        .clone()
}

fn run_runtime_only(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(runtime_only()).args(args).output().unwrap()
}

#[test]
fn the_runtime_only_build_runs_bundled_and_precompiled_probes_and_refuses_wasm() {
    // It says what it is, for bug reports.
    let out = run_runtime_only(&["--version".as_ref()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with(", runtime-only)\n"),
        "{out:?}"
    );

    let addr = closed_port();
    let param = format!("address={addr}");
    let out = run_runtime_only(&["run".as_ref(), "tcp".as_ref(), param.as_ref()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("unhealthy: tcp: connection to"),
        "{out:?}"
    );

    // A .cwasm from the full build loads: the engines' settings agree.
    let wasm = guest("hostile");
    let dir = tempfile::tempdir().unwrap();
    let cwasm = dir.path().join("hostile.cwasm");
    healthprobe([
        "compile".as_ref(),
        wasm.as_os_str(),
        "-o".as_ref(),
        cwasm.as_os_str(),
    ])
    .expect(0, "compiled ", &[]);
    let out = run_runtime_only(&[
        "run".as_ref(),
        cwasm.as_os_str(),
        "mode=echo".as_ref(),
        "value=rt".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "healthy: hostile: rt\n"
    );

    // A .wasm needs the compiler: exit 3 saying what to do.
    for args in [
        vec!["run".as_ref(), wasm.as_os_str(), "mode=echo".as_ref()],
        vec!["compile".as_ref(), wasm.as_os_str()],
    ] {
        let out = run_runtime_only(&args);
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with("error: ")
                && stdout.contains("runtime-only")
                && stdout.contains("healthprobe compile"),
            "{out:?}"
        );
    }
}

#[test]
fn precompiled_component_runs_and_bad_ones_are_refused() {
    let wasm = guest("hostile");
    // Made by `healthprobe compile` (which the helper asserts succeeded).
    let cwasm = crate::support::hostile_cwasm();
    healthprobe([
        "run".as_ref(),
        cwasm.as_os_str(),
        "mode=echo".as_ref(),
        "value=pre".as_ref(),
    ])
    .expect(0, "healthy: hostile: ", &["pre"]);

    // Truncated: refused with a clear message, never a crash.
    let bytes = std::fs::read(&cwasm).unwrap();
    for len in [bytes.len() / 2, 64, 4] {
        let (_d, cut) = temp_file("cut.cwasm", &bytes[..len]);
        healthprobe(["run".as_ref(), cut.as_os_str(), "mode=echo".as_ref()]).expect(
            3,
            "error: ",
            &["recompile"],
        );
    }

    // Compiled by an engine with other settings (no fuel, no epochs): wasmtime's
    // compatibility check must refuse it.
    let mut config = wasmtime::Config::new();
    config.consume_fuel(false).epoch_interruption(false);
    let other = wasmtime::Engine::new(&config).unwrap();
    let foreign = other
        .precompile_component(&std::fs::read(&wasm).unwrap())
        .unwrap();
    let (_d, path) = temp_file("foreign.cwasm", &foreign);
    healthprobe(["run".as_ref(), path.as_os_str(), "mode=echo".as_ref()]).expect(
        3,
        "error: ",
        &[
            "cannot load the precompiled component",
            "healthprobe compile",
        ],
    );
}
