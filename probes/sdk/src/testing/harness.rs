//! The real component under the real host: `healthprobe run --format json` on the probe's
//! built `.wasm`, for a probe's end-to-end tests.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The component `cargo build --release --target wasm32-wasip2` made of the crate at
/// `manifest_dir` named `package`: give it `env!("CARGO_MANIFEST_DIR")` and
/// `env!("CARGO_PKG_NAME")`. `CARGO_TARGET_DIR` is honoured when absolute (a test runs in
/// the package folder, not where cargo was started).
///
/// Panics, failing the test with the command to run, if it has not been built: an
/// end-to-end test must not pass by testing nothing.
#[track_caller]
pub fn built_component(manifest_dir: &str, package: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .unwrap_or_else(|| Path::new(manifest_dir).join("target"));
    let path = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --release --target wasm32-wasip2` first",
        path.display()
    );
    path
}

/// The `healthprobe` binary, to run a built component as an operator would:
///
/// ```no_run
/// use healthprobe_sdk::testing::{Healthprobe, built_component};
///
/// let wasm = built_component(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"));
/// let run = Healthprobe::new()
///     .flag("--timeout")
///     .flag("2s")
///     .run(&wasm, ["address=127.0.0.1:6379"]);
/// assert_eq!(run.status(), "healthy", "{run:?}");
/// assert_eq!(run.exit_code, 0);
/// assert!(run.detail("elapsed-ms").is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Healthprobe {
    program: OsString,
    flags: Vec<OsString>,
}

impl Default for Healthprobe {
    fn default() -> Self {
        Self::new()
    }
}

impl Healthprobe {
    /// The binary named by the `HEALTHPROBE` environment variable, else `healthprobe` on
    /// the `PATH`.
    pub fn new() -> Self {
        Healthprobe {
            program: std::env::var_os("HEALTHPROBE").unwrap_or_else(|| "healthprobe".into()),
            flags: Vec::new(),
        }
    }

    /// One more argument for `healthprobe run` before the probe (`--timeout`, `2s`,
    /// `--allow-net`, …).
    #[must_use]
    pub fn flag(mut self, flag: impl Into<OsString>) -> Self {
        self.flags.push(flag.into());
        self
    }

    /// Runs `healthprobe run --format json FLAGS PROBE PARAMS` and parses its answer.
    /// `probe` is a `.wasm` path or a bundled probe's name.
    ///
    /// Panics (failing the test) when the binary cannot be started or its output is not
    /// JSON, saying which.
    #[track_caller]
    pub fn run<I, P>(&self, probe: impl AsRef<Path>, params: I) -> Run
    where
        I: IntoIterator<Item = P>,
        P: Into<OsString>,
    {
        let output = Command::new(&self.program)
            .args(["run", "--format", "json"])
            .args(&self.flags)
            .arg(probe.as_ref())
            .args(params.into_iter().map(Into::into))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {:?} (install healthprobe, or name it in HEALTHPROBE): {e}",
                    self.program
                )
            });
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("healthprobe's answer is not JSON ({e}): {stdout:?}; stderr: {stderr:?}")
        });
        Run {
            exit_code: output.status.code().unwrap_or(-1),
            json,
            stderr,
        }
    }
}

/// What one `healthprobe run --format json` answered.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit status: 0 healthy or degraded, 1 unhealthy, 3 could not run (a bad
    /// parameter, a component that cannot be loaded).
    pub exit_code: i32,
    /// The whole answer: `status`, `message`, `probe`, `elapsed_ms`, `details`, ….
    pub json: Value,
    /// What healthprobe wrote to stderr (warnings, `--verbose`).
    pub stderr: String,
}

impl Run {
    /// `healthy`, `degraded`, `unhealthy` or `error`.
    pub fn status(&self) -> &str {
        self.json["status"].as_str().unwrap_or_default()
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or_default()
    }

    /// The detail `name` the probe reported, if it did.
    pub fn detail(&self, name: &str) -> Option<&Value> {
        self.json["details"].get(name)
    }
}

/// A server on loopback that answers every HTTP request with `status` (for example
/// `"503 Service Unavailable"`), `content_type` and `body`, for as long as the test runs;
/// its address as `http://127.0.0.1:PORT` (add the path).
pub fn http_server(status: &'static str, content_type: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the test server");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("the test server's address")
    );
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            // The request's head, then one answer and the connection closed.
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    url
}
