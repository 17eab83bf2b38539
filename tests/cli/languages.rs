//! Probes in other languages, built with each language's own toolchain from its registry
//! by `examples/probes/build.sh` (componentize-py from PyPI, componentize-js from npm,
//! Debian's clang and wasi-libc for C),
//! then run like any third-party `.wasm`: through the compile cache, under the same
//! network policy and deadline. The JavaScript example uses the standard `fetch`, which
//! reaches the host through `wasi:http`.
//!
//! The toolchains are downloaded on first use. Where they cannot be (no Python venv
//! module, no node), the tests skip, except under `CI=true`, where `.ci/run` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::{HttpServer, SilentServer, healthprobe};

/// The examples' `.wasm` files, built once per test run; `None` when the toolchains are
/// missing outside CI.
pub(crate) fn examples() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            let out = Command::new(root.join("examples/probes/build.sh"))
                .env("HEALTHPROBE", env!("CARGO_BIN_EXE_healthprobe"))
                .output()
                .expect("run examples/probes/build.sh");
            if out.status.success() {
                return Some(root.join("target/example-probes"));
            }
            let why = format!(
                "examples/probes/build.sh failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: {why}");
            None
        })
        .as_deref()
}

/// Runs an example with its own compile cache and a timeout that fits a first compile
/// (a few seconds for these 12-18 MB components) on a busy machine.
fn run(wasm: &Path, cache: &Path, args: &[&str]) -> crate::support::Outcome {
    healthprobe(
        [
            "run",
            wasm.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--timeout",
            "60s",
        ]
        .into_iter()
        .chain(args.iter().copied()),
    )
}

#[test]
fn the_python_example_compares_a_prometheus_sample_with_thresholds() {
    let Some(dir) = examples() else { return };
    let wasm = dir.join("prometheus-threshold.wasm");
    let cache = tempfile::tempdir().unwrap();
    let server = HttpServer::start(|_| {
        (
            200,
            vec![("Content-Type".into(), "text/plain; version=0.0.4".into())],
            "# TYPE queue_depth gauge\nqueue_depth{queue=\"mail\"} 3\nqueue_depth{queue=\"jobs\"} 120\n".into(),
        )
    });
    let url = format!("url={}", server.url("/metrics"));
    // A first run whose timeout is shorter than the compile says so, and what to do.
    healthprobe([
        "run",
        wasm.to_str().unwrap(),
        "--no-cache",
        "--timeout",
        "500ms",
        &url,
        "metric=up",
    ])
    .expect(
        1,
        "unhealthy: ",
        &[
            "timeout after 500ms while compiling the probe",
            "healthprobe compile",
        ],
    );
    let check = |metric: &str| {
        let metric = format!("metric={metric}");
        run(
            &wasm,
            cache.path(),
            &[&url, &metric, "warn=100", "critical=1000"],
        )
    };
    check("queue_depth{queue=\"mail\"}").expect(
        0,
        "healthy: prometheus-threshold: ",
        &["queue_depth{queue=\"mail\"} = 3"],
    );
    check("queue_depth{queue=\"jobs\"}").expect(
        0,
        "degraded: prometheus-threshold: ",
        &["= 120 (warning at 100)"],
    );
    check("missing").expect(
        1,
        "unhealthy: prometheus-threshold: ",
        &["no sample missing"],
    );
    // The host's http import applies the policy to a Python probe as to any other.
    let denied = healthprobe([
        "run",
        wasm.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        &url,
        "metric=up",
        "--allow-net",
        "127.0.0.1:1",
    ]);
    denied.expect(
        1,
        "unhealthy: prometheus-threshold: ",
        &["denied by network policy"],
    );
}

#[test]
fn the_javascript_example_fetches_through_wasi_http_under_the_same_rules() {
    let Some(dir) = examples() else { return };
    let wasm = dir.join("actuator-health.wasm");
    let cache = tempfile::tempdir().unwrap();
    let health = |body: &'static str| HttpServer::fixed(200, body);
    let up = health(
        r#"{"status":"UP","components":{"db":{"status":"UP"},"redis":{"status":"UP","components":{"primary":{"status":"UP"}}}}}"#,
    );
    run(
        &wasm,
        cache.path(),
        &[&format!("url={}", up.url("/actuator/health"))],
    )
    .expect(0, "healthy: actuator-health: UP (3 components)", &[]);
    let partly = health(
        r#"{"status":"UP","components":{"db":{"status":"UP"},"mail":{"status":"OUT_OF_SERVICE"}}}"#,
    );
    run(&wasm, cache.path(), &[&format!("url={}", partly.url("/"))]).expect(
        0,
        "degraded: actuator-health: UP, but mail OUT_OF_SERVICE",
        &[],
    );
    let down = health(r#"{"status":"DOWN","components":{"db":{"status":"DOWN"}}}"#);
    run(&wasm, cache.path(), &[&format!("url={}", down.url("/"))]).expect(
        1,
        "unhealthy: actuator-health: DOWN: db DOWN",
        &[],
    );

    // `fetch` to a port not granted: denied, and the server never sees a connection.
    let silent = SilentServer::start();
    let url = format!("url=http://{}/actuator/health", silent.addr);
    run(
        &wasm,
        cache.path(),
        &[&url, "--allow-net", &up.addr.to_string()],
    )
    .expect(
        1,
        "unhealthy: actuator-health: ",
        &[&format!(
            "connection to {} denied by network policy",
            silent.addr
        )],
    );
    assert_eq!(silent.accepted(), 0);

    // `fetch` to a hung server ends within the timeout (the code is cached by now).
    healthprobe([
        "run",
        wasm.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        &url,
        "--timeout",
        "2s",
    ])
    .expect(
        1,
        "unhealthy: actuator-health: ",
        &["timeout after 2s", "waiting for http://"],
    );
    assert_eq!(silent.accepted(), 1);
}

#[test]
fn the_c_example_grades_the_slowest_of_its_requests() {
    let Some(dir) = examples() else { return };
    let wasm = dir.join("http-latency.wasm");
    let cache = tempfile::tempdir().unwrap();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = requests.clone();
    let server = HttpServer::start(move |req| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match req.url() {
            "/slow" => {
                std::thread::sleep(Duration::from_millis(300));
                (200, vec![], "ok".into())
            }
            "/down" => (503, vec![], "maintenance".into()),
            _ => (200, vec![], "ok".into()),
        }
    });
    let check = |path: &str, args: &[&str]| {
        let url = format!("url={}", server.url(path));
        run(&wasm, cache.path(), &[&[url.as_str()], args].concat())
    };
    check("/fast", &["warn-ms=250", "critical-ms=1000"]).expect(
        0,
        "healthy: http-latency: slowest of 3 requests to http://",
        &[],
    );
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    check("/slow", &["requests=2", "warn-ms=250", "critical-ms=1000"]).expect(
        0,
        "degraded: http-latency: slowest of 2 requests to http://",
        &["(warning at 250 ms)"],
    );
    check("/slow", &["requests=1", "warn-ms=100", "critical-ms=250"]).expect(
        1,
        "unhealthy: http-latency: ",
        &["(critical at 250 ms)"],
    );
    check("/down", &[]).expect(
        1,
        "unhealthy: http-latency: HTTP 503 from http://",
        &["(expected 200-399)"],
    );
    // Parameters the C code refuses are bad input, as for any probe.
    check("/fast", &["requests=50"]).expect(3, "", &["requests", "expected 1 to 20"]);
    check("/fast", &["warn-ms=soon"]).expect(3, "", &["warn-ms", "whole number"]);

    // The host's http import applies the network policy and the deadline to C as to Rust.
    let silent = SilentServer::start();
    let hung = format!("url=http://{}/", silent.addr);
    run(
        &wasm,
        cache.path(),
        &[&hung, "--allow-net", &server.addr.to_string()],
    )
    .expect(
        1,
        "unhealthy: http-latency: ",
        &["denied by network policy"],
    );
    assert_eq!(silent.accepted(), 0);
    healthprobe([
        "run",
        wasm.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
        &hung,
        "--timeout",
        "2s",
    ])
    .expect(1, "unhealthy: http-latency: ", &["timeout"]);
}
