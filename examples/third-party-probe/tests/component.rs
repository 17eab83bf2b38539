//! The built component under the real `healthprobe`, against a JSON endpoint on loopback,
//! through the SDK's harness. Build it first:
//! `cargo build --release --target wasm32-wasip2`; `healthprobe` comes from `HEALTHPROBE`
//! or the `PATH`.

// The harness runs healthprobe as a process: native test builds only.
#![cfg(not(target_family = "wasm"))]

use healthprobe_sdk::testing::{Healthprobe, built_component, http_server};

/// A JSON endpoint on loopback answering every request with `status` and `body`.
fn server(status: &'static str, body: &'static str) -> String {
    format!(
        "{}/metrics.json",
        http_server(status, "application/json", body)
    )
}

fn run(url: &str, extra: &[&str]) -> healthprobe_sdk::testing::Run {
    let wasm = built_component(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"));
    let params = [format!("url={url}"), "pointer=/queue/depth".to_string()]
        .into_iter()
        .chain(extra.iter().map(|s| s.to_string()));
    Healthprobe::new()
        .flag("--timeout")
        .flag("30s")
        .run(wasm, params)
}

#[test]
fn each_threshold_gives_its_verdict_and_the_depth_detail() {
    let url = server("200 OK", r#"{"queue": {"depth": 150}}"#);
    let healthy = run(&url, &["warn=200", "critical=300"]);
    assert_eq!(
        (healthy.exit_code, healthy.status()),
        (0, "healthy"),
        "{healthy:?}"
    );
    assert_eq!(
        healthy.detail("depth").and_then(|v| v.as_f64()),
        Some(150.0),
        "{healthy:?}"
    );
    let degraded = run(&url, &[]);
    assert_eq!(
        (degraded.exit_code, degraded.status()),
        (0, "degraded"),
        "{degraded:?}"
    );
    let unhealthy = run(&url, &["warn=10", "critical=100"]);
    assert_eq!(
        (unhealthy.exit_code, unhealthy.status()),
        (1, "unhealthy"),
        "{unhealthy:?}"
    );
}

#[test]
fn no_number_is_unhealthy_and_a_bad_threshold_is_an_error() {
    let run_busy = run(&server("200 OK", r#"{"queue": {"depth": "busy"}}"#), &[]);
    assert_eq!(run_busy.status(), "unhealthy", "{run_busy:?}");
    assert!(run_busy.message().contains("not a number"), "{run_busy:?}");
    let down = run(&server("503 Service Unavailable", "{}"), &[]);
    assert!(down.message().starts_with("HTTP 503 from"), "{down:?}");
    let bad = run("http://127.0.0.1:9/", &["warn=lots"]);
    assert_eq!((bad.exit_code, bad.status()), (3, "error"), "{bad:?}");
    assert!(bad.message().contains("warn"), "{bad:?}");
}
