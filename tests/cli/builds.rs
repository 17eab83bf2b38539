//! The runtime-only build (no Cranelift): bundled probes and `.cwasm` files run, `.wasm`
//! files are refused with what to do.
//!
//! Its test builds it, which takes minutes; the module's name sorts it among the first
//! tests the harness starts, so the build overlaps the rest of the suite instead of
//! running on after it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{closed_port, guest, healthprobe};

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
