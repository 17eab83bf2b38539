//! Builds the bundled probes (the `probes/` workspace, for `wasm32-wasip2`) and embeds them.
//!
//! This runs cargo as a child process at *build* time; the `healthprobe` binary itself
//! never starts a process.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

// The engine settings of the binary itself, so the precompiled probes load into it.
#[path = "src/runner/engine_config.rs"]
mod engine;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.parent().expect("host/ has a parent").to_path_buf();
    let probes = root.join("probes");
    let target_dir = target_dir(&root).join("probes");

    watch(&root.join("wit"));
    watch(&manifest.join("src/runner/engine_config.rs"));
    watch(&probes.join("Cargo.toml"));
    watch(&probes.join("Cargo.lock"));
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(&probes)
        .expect("probes/ exists")
        .flatten()
    {
        let dir = entry.path();
        if dir.join("Cargo.toml").is_file() {
            watch(&dir.join("Cargo.toml"));
            watch(&dir.join("src"));
            crates.push(dir);
        }
    }

    ensure_wasm_target();
    link_order(&manifest);
    commit(&root);

    // A clean environment: the outer build's RUSTFLAGS, TARGET, clippy wrapper, coverage
    // flags and so on are for the native host, not for the wasm guests.
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.env_clear();
    for var in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "TMPDIR",
        "CARGO_MAKEFLAGS",
    ] {
        if let Some(v) = env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let status = cmd
        .args([
            "build",
            "--release",
            "--locked",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(probes.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("cannot run cargo to build the bundled probes");
    assert!(
        status.success(),
        "building the bundled probes failed (see above); is the target installed? rustup target add wasm32-wasip2"
    );

    let out_wasm = target_dir.join("wasm32-wasip2").join("release");
    let mut list = Vec::new();
    for dir in &crates {
        let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let file = out_wasm.join(format!("probe_{}.wasm", name.replace('-', "_")));
        if file.is_file() {
            list.push((name.to_string(), file));
        }
    }
    list.sort();
    embed(&list);
}

/// The build's target directory: `CARGO_TARGET_DIR`, else the one `OUT_DIR` lies in, which
/// is how `--target-dir` and `build.target-dir` reach a build script:
/// `TARGET_DIR[/TRIPLE]/PROFILE/build/PACKAGE-HASH/out`.
fn target_dir(root: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            root.join(dir)
        };
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let Some(mut dir) = out.ancestors().nth(4).map(Path::to_path_buf) else {
        return root.join("target");
    };
    if env::var_os("TARGET").is_some_and(|t| dir.file_name() == Some(&t)) {
        dir.pop();
    }
    dir
}

/// Hands lld the functions a health check runs (`link-order.txt`, made by
/// `scripts/link-order`), which it places together: the kernel maps a binary's code 64 KiB
/// around each page a process touches, so scattered code made 4 MB of it resident for a
/// check that runs under 1 MB. Other linkers lack the option and get nothing; lld skips
/// names it does not find, so a file from another toolchain only costs memory.
fn link_order(manifest: &Path) {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let Some(linker) = env::var_os("RUSTC_LINKER") else {
        return;
    };
    let name = Path::new(&linker).file_name().unwrap_or_default();
    if name != "rust-lld" && name != "ld.lld" {
        return;
    }
    let order = manifest.join("link-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!(
        "cargo:rustc-link-arg-bins=--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bins=--no-warn-symbol-ordering");
}

/// The commit `--version` reports (`src/version.rs`): `HEALTHPROBE_COMMIT` when set (a
/// build from a source archive, or a packager's), else git's HEAD, else `unknown`.
fn commit(root: &Path) {
    println!("cargo:rerun-if-env-changed=HEALTHPROBE_COMMIT");
    let commit = env::var("HEALTHPROBE_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git_head(root))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HEALTHPROBE_COMMIT={}", commit.trim());
}

/// HEAD's commit, watching what moves it so that a new commit or checkout rebuilds with the
/// new hash: HEAD (a checkout), the branches (a commit writes its branch's file) and
/// packed-refs. `--git-path` finds them in a linked worktree too.
fn git_head(root: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    for path in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(found) = git(&["rev-parse", "--git-path", path]) {
            let found = root.join(found);
            // cargo reruns a build script on every build for a path that does not exist.
            if found.exists() {
                watch(&found);
            }
        }
    }
    Some(head)
}

/// The probes stored uncompressed: the checks run most often (an HTTP endpoint, an open
/// port, Redis), which then start without decompressing anything (`src/bundled.rs`). The
/// rest are LZ4-compressed, which keeps the binary within its size budget.
const RAW: &[&str] = &["http", "tcp", "redis"];

/// Precompiles each probe for the target's baseline CPU with the engine settings the
/// binary uses (`src/runner/engine_config.rs`), and writes `OUT_DIR/bundled.rs` embedding the results:
/// a bundled probe is never compiled at run time.
fn embed(list: &[(String, PathBuf)]) {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target = env::var("TARGET").expect("set by cargo");
    // For the run-time compiler too (runner.rs), which then skips probing this CPU.
    println!("cargo:rustc-env=HEALTHPROBE_TARGET={target}");
    let config = engine::config(Some(&target))
        .unwrap_or_else(|e| panic!("wasmtime cannot compile for {target}: {e}"));
    let engine = wasmtime::Engine::new(&config).unwrap_or_else(|e| {
        panic!(
            "build the precompiling engine for {target}: {e}; for another architecture than \
             this machine's, build with --features cross"
        )
    });
    // An array, not a slice: a static may hold the `OnceLock`s only by value.
    let mut code = format!(
        "/// The probes compiled into this binary, by name.\npub static BUNDLED: [Bundled; {}] = [\n",
        list.len()
    );
    let mut statics = String::new();
    for (name, file) in list {
        let wasm = std::fs::read(file).expect("read a built probe");
        let cwasm = engine
            .precompile_component(&wasm)
            .unwrap_or_else(|e| panic!("precompiling the bundled probe {name}: {e:?}"));
        let sha256 = format!("{:x}", sha2::Sha256::digest(&wasm));
        let stored = if RAW.contains(&name.as_str()) {
            // Page-aligned in the binary, so the code runs where it lies (bundled.rs).
            let out = out_dir.join(format!("{name}.cwasm"));
            std::fs::write(&out, &cwasm).expect("write a precompiled probe");
            let ident = name.to_uppercase();
            writeln!(
                statics,
                "static {ident}: &PageAligned<[u8; {}]> = &PageAligned(*include_bytes!({:?}));",
                cwasm.len(),
                out.display().to_string()
            )
            .unwrap();
            format!("Stored::Raw(&{ident}.0)")
        } else {
            // Native code is bulky (two to three times the .wasm); LZ4 halves it for a
            // fraction of a millisecond at load time.
            let out = out_dir.join(format!("{name}.cwasm.lz4"));
            std::fs::write(&out, lz4_flex::compress_prepend_size(&cwasm))
                .expect("write a precompiled probe");
            format!(
                "Stored::Lz4(include_bytes!({:?}))",
                out.display().to_string()
            )
        };
        writeln!(
            code,
            "    Bundled {{ name: {name:?}, precompiled: {stored}, sha256: {sha256:?}, wasm_size: {}, loaded: std::sync::OnceLock::new() }},",
            wasm.len()
        )
        .unwrap();
    }
    code.push_str("];\n");
    code.push_str(&statics);
    std::fs::write(out_dir.join("bundled.rs"), code).expect("write bundled.rs");
}

/// Installs the `wasm32-wasip2` standard library with rustup when it is missing, so that a
/// fresh clone builds with one command.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-wasip2").is_dir()) {
        return;
    }
    println!(
        "cargo:warning=installing the wasm32-wasip2 target with rustup (needed for the bundled probes)"
    );
    let ok = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the wasm32-wasip2 target is missing and rustup could not add it: run `rustup target add wasm32-wasip2`"
    );
}

fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}
