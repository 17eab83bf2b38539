//! The built component under the real `healthprobe`, against a server on loopback: run
//! `cargo build --release --target wasm32-wasip2` first (build.sh does both).

// The harness runs healthprobe as a process: native test builds only.
#![cfg(not(target_family = "wasm"))]

use healthprobe_sdk::testing::{Healthprobe, built_component, http_server};

/// A server on loopback that answers every request with `status`; its URL.
fn server(status: &'static str) -> String {
    format!("{}/health", http_server(status, "text/plain", ""))
}

fn component() -> std::path::PathBuf {
    built_component(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"))
}

#[test]
fn healthy_when_the_server_answers_as_expected() {
    let run = Healthprobe::new().run(component(), [format!("url={}", server("200 OK"))]);
    assert_eq!((run.exit_code, run.status()), (0, "healthy"), "{run:?}");
    assert!(run.detail("status").is_some(), "{run:?}");
}

#[test]
fn unhealthy_on_another_status_or_no_server() {
    let run = Healthprobe::new().run(component(), [format!("url={}", server("503 Service Unavailable"))]);
    assert_eq!((run.exit_code, run.status()), (1, "unhealthy"), "{run:?}");
    assert!(run.message().contains("HTTP 503"), "{run:?}");

    let run = Healthprobe::new().flag("--timeout").flag("2s").run(component(), ["url=http://127.0.0.1:9/"]);
    assert_eq!((run.exit_code, run.status()), (1, "unhealthy"), "{run:?}");
}

#[test]
fn a_bad_parameter_is_the_operators_error() {
    let run = Healthprobe::new().run(component(), ["url=http://127.0.0.1:9/", "expect-status=OK"]);
    assert_eq!((run.exit_code, run.status()), (3, "error"), "{run:?}");
    assert!(run.message().contains("expect-status"), "{run:?}");
}
