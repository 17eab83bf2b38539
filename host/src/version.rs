//! What this binary is, for `healthprobe --version` and bug reports: the release, the
//! commit it was built from, the target, the wasmtime it runs probes with, and whether it
//! carries the compilers.

use std::sync::OnceLock;

use serde::Serialize;

/// The facts `--version` reports.
#[derive(Debug, Serialize)]
pub struct Version {
    /// The package version (`Cargo.toml`).
    pub version: &'static str,
    /// The git commit of the source tree, or `unknown` when it was built outside a git
    /// checkout without `HEALTHPROBE_COMMIT` set (see build.rs).
    pub commit: &'static str,
    /// The Rust target triple the binary was built for.
    pub target: &'static str,
    /// The wasmtime release that runs the probes (it decides which `.cwasm` files load).
    pub wasmtime: &'static str,
    /// `full` (runs `.wasm` components and compiles them) or `runtime-only` (bundled
    /// probes and `.cwasm` files only).
    pub build: &'static str,
}

/// This binary's version facts.
pub fn this() -> Version {
    Version {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("HEALTHPROBE_COMMIT"),
        target: env!("HEALTHPROBE_TARGET"),
        wasmtime: wasmtime_environ::VERSION,
        build: if cfg!(feature = "compiler") {
            "full"
        } else {
            "runtime-only"
        },
    }
}

/// The one line `--version` prints after the program's name, for example
/// `0.1.0 (commit 1a2b3c4d5e6f, x86_64-unknown-linux-musl, wasmtime 48.0.8, full)`.
pub fn line() -> &'static str {
    static LINE: OnceLock<String> = OnceLock::new();
    LINE.get_or_init(|| {
        let v = this();
        let commit = v.commit.get(..12).unwrap_or(v.commit);
        format!(
            "{} (commit {commit}, {}, wasmtime {}, {})",
            v.version, v.target, v.wasmtime, v.build
        )
    })
}

/// `--version --format json`: one JSON object, with the full commit hash.
pub fn json() -> String {
    serde_json::to_string(&this()).expect("plain strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_and_the_json_name_every_fact() {
        let v = this();
        let line = line();
        for part in [v.version, v.target, v.wasmtime, v.build] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
        let json: serde_json::Value = serde_json::from_str(&json()).unwrap();
        for key in ["version", "commit", "target", "wasmtime", "build"] {
            assert!(
                json[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} in {json}"
            );
        }
        assert!(v.wasmtime.starts_with("48."), "{}", v.wasmtime);
    }
}
