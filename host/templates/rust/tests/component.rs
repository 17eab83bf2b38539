//! The built component under the real `healthprobe`, against a server on loopback: run
//! `cargo build --release --target wasm32-wasip2` first (build.sh does both).

// The harness runs healthprobe as a process: native test builds only.
#![cfg(not(target_family = "wasm"))]

use std::io::{Read, Write};
use std::net::TcpListener;

use healthprobe_sdk::testing::{Healthprobe, built_component};

/// A server on loopback that answers every request with `status`; its URL.
fn server(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    url
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
