//! Writing a probe outside this repository: the SDK as a packaged crate carrying its own
//! WIT, and `healthprobe new`'s projects, each built with its own build script and run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{HttpServer, guest, healthprobe, temp_file};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Every `.wit` file under `dir`, relative to it.
fn wit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "wit") {
                files.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_sdk_carries_the_repositorys_wit() {
    let (ours, sdk) = (root().join("wit"), root().join("probes/sdk/wit"));
    assert_eq!(wit_files(&ours), wit_files(&sdk), "the same files");
    for file in wit_files(&ours) {
        assert_eq!(
            std::fs::read_to_string(ours.join(&file)).unwrap(),
            std::fs::read_to_string(sdk.join(&file)).unwrap(),
            "probes/sdk/wit/{} differs from wit/{0}: copy wit/ into probes/sdk/wit/",
            file.display()
        );
    }
}

/// A probe of the current WIT written without the SDK (as another language's is): the
/// host fills in its declared defaults and says which, and its details keep their types.
#[test]
fn the_host_fills_in_defaults_and_details_keep_their_type() {
    let wasm = guest("probe-raw");
    let out = healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "name=Ann".as_ref(),
        "--format=json".as_ref(),
    ]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["message"], "params: [name=Ann greeting=hi] defaulted: [greeting]",
        "{v:#}"
    );
    let d = &v["details"];
    assert_eq!(
        (&d["text"], &d["integer"], &d["number"], &d["flag"]),
        (
            &serde_json::json!("a b"),
            &serde_json::json!(-42),
            &serde_json::json!(1.5),
            &serde_json::json!(true)
        ),
        "{v:#}"
    );
    // A value given is not a default.
    let out = healthprobe(["run".as_ref(), wasm.as_os_str(), "greeting=yo".as_ref()]);
    out.expect(0, "healthy: raw: params: [greeting=yo] defaulted: []", &[]);
}

/// A probe built against `healthprobe:probe@0.1.0`, before typed details, still runs as it
/// did: text details, and no defaults filled in (that world's contract).
#[test]
fn a_probe_built_for_wit_0_1_0_still_runs() {
    let wasm = guest("probe-0-1-0");
    let out = healthprobe(["run".as_ref(), wasm.as_os_str(), "--format=json".as_ref()]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["message"], "given: []", "{v:#}");
    assert_eq!(v["details"]["count"], "0", "{v:#}");
    let out = healthprobe(["inspect".as_ref(), wasm.as_os_str()]);
    out.expect_code(0);
    assert!(out.stdout.contains("greeting"), "{out:#?}");
}

#[test]
fn new_refuses_a_bad_name_or_a_folder_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    healthprobe(["new", "My_Probe", "--dir", d]).expect(
        3,
        "error: new: invalid probe name \"My_Probe\"",
        &["for example queue-depth"],
    );
    healthprobe(["new", "../escape", "--dir", d]).expect_code(3);
    healthprobe(["new", "taken", "--dir", d]).expect(0, "wrote ", &["taken/build.sh"]);
    healthprobe(["new", "taken", "--dir", d, "--lang", "python"]).expect(
        3,
        "error: new: ",
        &["taken already exists"],
    );
    healthprobe(["new", "x", "--lang", "cobol", "--dir", d]).expect_code(3);
    let (_file, not_a_dir) = temp_file("file", b"");
    healthprobe(["new", "x", "--dir", not_a_dir.to_str().unwrap()]).expect(
        3,
        "error: new: cannot write ",
        &["--dir"],
    );
}

/// Runs a project's `build.sh`, failing the test with its output if it fails.
fn build(project: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(project.join("build.sh"));
    cmd.env("HEALTHPROBE", env!("CARGO_BIN_EXE_healthprobe"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run build.sh");
    assert!(
        out.status.success(),
        "{}/build.sh failed ({}):\n{}{}",
        project.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The built component answers a healthy and an unhealthy server as the template says.
fn runs_against_loopback(wasm: &Path) {
    let ok = HttpServer::fixed(200, "ok");
    let down = HttpServer::fixed(503, "down");
    let cache = tempfile::tempdir().unwrap();
    let run = |url: String| {
        healthprobe([
            "run",
            "--timeout",
            "60s",
            "--cache-dir",
            cache.path().to_str().unwrap(),
            wasm.to_str().unwrap(),
            &format!("url={url}"),
        ])
    };
    run(ok.url("/health")).expect(0, "healthy: ", &["HTTP 200 from"]);
    run(down.url("/health")).expect(1, "unhealthy: ", &["HTTP 503 from", "(expected 200)"]);
}

/// `cargo package`, then a project from `healthprobe new --lang rust` that depends on
/// `healthprobe-sdk = "0.1"` resolved to the unpacked `.crate` (as a registry would serve
/// it) in a temporary directory: no path into this repository. Its build script builds the
/// component and runs its native and end-to-end tests (the SDK's harness running this
/// healthprobe).
#[test]
fn a_rust_probe_builds_from_the_packaged_sdk_outside_the_repository() {
    let target = root().join("target/authoring");
    let cargo = || {
        let mut c = Command::new(env!("CARGO"));
        // The suite's own flags (CI lints the host with them) are not the project's.
        c.env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_BUILD_TARGET")
            .env("CARGO_TARGET_DIR", &target);
        c
    };
    let packaged = cargo()
        .args([
            "package",
            "-p",
            "healthprobe-sdk",
            "--allow-dirty",
            "--no-verify",
        ])
        .arg("--manifest-path")
        .arg(root().join("probes/Cargo.toml"))
        .output()
        .unwrap();
    assert!(packaged.status.success(), "cargo package: {packaged:?}");
    let version = std::fs::read_to_string(root().join("probes/sdk/Cargo.toml"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(String::from)
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unpacked = Command::new("tar")
        .arg("xzf")
        .arg(target.join(format!("package/healthprobe-sdk-{version}.crate")))
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(unpacked.success());
    let sdk = dir.path().join(format!("healthprobe-sdk-{version}"));
    assert!(
        sdk.join("wit/probe.wit").is_file(),
        "the WIT travels in the crate"
    );

    healthprobe(["new", "demo-probe", "--dir", dir.path().to_str().unwrap()]).expect(
        0,
        "wrote ",
        &["demo-probe/build.sh", "demo_probe.wasm"],
    );
    let project = dir.path().join("demo-probe");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    // A 0.x crate's compatible releases share its minor version: "0.2" for 0.2.0.
    let requirement = version.rsplit_once('.').unwrap().0;
    assert!(
        manifest.contains(&format!("healthprobe-sdk = \"{requirement}\"")),
        "the template asks for the SDK version this repository has ({version}):\n{manifest}"
    );
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "{manifest}\n[patch.crates-io]\nhealthprobe-sdk = {{ path = {:?} }}\n",
            sdk.to_str().unwrap()
        ),
    )
    .unwrap();
    // The versions this repository's probes are tested with (crates already downloaded).
    std::fs::copy(root().join("probes/Cargo.lock"), project.join("Cargo.lock")).unwrap();

    let mut build_sh = Command::new(project.join("build.sh"));
    build_sh
        .env("HEALTHPROBE", env!("CARGO_BIN_EXE_healthprobe"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env("CARGO_TARGET_DIR", &target);
    let out = build_sh.output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "build.sh: {log}");
    for test in [
        "the_expected_status_is_healthy_any_other_is_not ... ok",
        "healthy_when_the_server_answers_as_expected ... ok",
        "unhealthy_on_another_status_or_no_server ... ok",
        "a_bad_parameter_is_the_operators_error ... ok",
    ] {
        assert!(log.contains(test), "{test}: {log}");
    }
    assert!(
        !log.contains(root().join("probes").to_str().unwrap()),
        "nothing built from the repository's probes/: {log}"
    );
    runs_against_loopback(&target.join("wasm32-wasip2/release/demo_probe.wasm"));
}

/// The Python, JavaScript and C projects, built with the toolchains the examples fetched
/// (for C, its componentize program in the examples' build directory, so it is built once).
#[test]
fn python_javascript_and_c_projects_build_and_run() {
    if crate::languages::examples().is_none() {
        return;
    }
    let tools = root().join("target/example-probe-tools");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (lang, tool, path) in [
        (
            "python",
            "COMPONENTIZE_PY",
            tools.join("venv/bin/componentize-py"),
        ),
        (
            "javascript",
            "COMPONENTIZE_JS",
            tools.join("js/node_modules/.bin/componentize-js"),
        ),
        ("c", "CARGO_TARGET_DIR", tools.join("c-componentize")),
    ] {
        let name = format!("{lang}-probe");
        healthprobe(["new", &name, "--lang", lang, "--dir", d]).expect(0, "wrote ", &[]);
        let project = dir.path().join(&name);
        assert!(project.join("wit/probe.wit").is_file(), "{lang}: the WIT");
        let out = build(&project, &[(tool, &path)]);
        let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(log.contains(&format!("built {name}.wasm")), "{lang}: {log}");
        runs_against_loopback(&project.join(format!("{name}.wasm")));
    }
}
