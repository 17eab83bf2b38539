//! `wasi:http/outgoing-handler`, the standard HTTP client interface of other languages'
//! toolchains, under the same rules as the `http` import: the network policy on every
//! address, the deadline on every wait, caps on what the server sends and on connections.
//! The `wasi-http` test guest GETs a URL through it, as JavaScript's `fetch` would.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::support::{HttpServer, SilentServer, guest, healthprobe};

fn fetch(url: &str, extra: &[&str]) -> crate::support::Outcome {
    let wasm = guest("wasi-http");
    let url = format!("url={url}");
    healthprobe(
        ["run", wasm.to_str().unwrap(), url.as_str()]
            .into_iter()
            .chain(extra.iter().copied()),
    )
}

#[test]
fn a_get_through_wasi_http_reports_the_status() {
    let server = HttpServer::fixed(200, "{\"status\":\"UP\"}");
    fetch(&server.url("/health"), &[]).expect(0, "healthy: wasi-http: ", &["HTTP 200, 15 bytes"]);
    let missing = HttpServer::fixed(404, "");
    fetch(&missing.url("/"), &[]).expect(1, "unhealthy: wasi-http: ", &["HTTP 404"]);
    // An IP literal with a trailing dot is the literal: no lookup, no denial.
    let dotted = format!("http://127.0.0.1.:{}/", server.addr.port());
    fetch(&dotted, &[]).expect(0, "healthy: wasi-http: ", &["HTTP 200"]);
}

#[test]
fn a_port_not_granted_is_denied_and_never_connected() {
    let server = SilentServer::start();
    fetch(
        &format!("http://{}/", server.addr),
        &["--allow-net", "127.0.0.1:1"],
    )
    .expect(
        1,
        "unhealthy: wasi-http: ",
        &[
            &format!("connection to {} denied by network policy", server.addr),
            &format!("--allow-net {}", server.addr),
            "DestinationIpProhibited",
        ],
    );
    assert_eq!(server.accepted(), 0);
}

#[test]
fn a_name_not_granted_is_never_looked_up() {
    fetch("http://probe-target.invalid/", &[]).expect(
        1,
        "unhealthy: wasi-http: ",
        &["name lookup of probe-target.invalid denied by network policy"],
    );
}

#[test]
fn a_redirect_to_a_port_not_granted_is_denied() {
    let target = SilentServer::start();
    let redirector = HttpServer::redirect(format!("http://{}/", target.addr));
    fetch(
        &redirector.url("/"),
        &["follow=1", "--allow-net", &redirector.addr.to_string()],
    )
    .expect(
        1,
        "unhealthy: wasi-http: ",
        &["denied by network policy", &target.addr.to_string()],
    );
    assert_eq!(target.accepted(), 0);
}

#[test]
fn a_finished_request_is_not_named_when_the_probe_times_out_later() {
    let server = HttpServer::fixed(200, "ok");
    // Enough fuel that the deadline, not the fuel, ends the spin (10^10 units, the
    // default, can run out within a second on a fast, idle core).
    let out = fetch(
        &server.url("/"),
        &[
            "then-spin=true",
            "--timeout",
            "1s",
            "--fuel",
            "1000000000000",
        ],
    );
    out.expect(1, "unhealthy: wasi-http: timeout after 1s", &[]);
    assert!(!out.stdout.contains("waiting for"), "{out:#?}");
}

#[test]
fn a_silent_server_ends_within_the_timeout_naming_the_url() {
    let server = SilentServer::start();
    let url = format!("http://{}/health", server.addr);
    fetch(&url, &["--timeout", "1s"]).expect(
        1,
        "unhealthy: wasi-http: ",
        &["timeout after 1s", &format!("waiting for {url}")],
    );
    assert_eq!(server.accepted(), 1);
}

/// A server that sends `head`, then `body_bytes` bytes of body, then (if `stall`) nothing
/// more while keeping the connection open.
fn raw_server(head: String, body_bytes: usize, stall: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let head = head.clone();
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request);
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&vec![b'x'; body_bytes]);
                if stall {
                    std::thread::sleep(Duration::from_secs(30));
                }
            });
        }
    });
    addr
}

#[test]
fn a_body_that_stalls_ends_within_the_timeout() {
    let addr = raw_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".into(),
        10,
        true,
    );
    fetch(&format!("http://{addr}/"), &["--timeout", "1s"]).expect(
        1,
        "unhealthy: wasi-http: ",
        &["timeout after 1s"],
    );
    // The guest's own between-bytes timeout, shorter than the run's, is honoured too.
    fetch(
        &format!("http://{addr}/"),
        &["timeout-ms=200", "--timeout", "5s"],
    )
    .expect(
        1,
        "unhealthy: wasi-http: ",
        &["reading the body after 10 bytes", "connection read timeout"],
    );
}

#[test]
fn a_body_over_the_cap_is_refused() {
    // Declared too large: refused before the body is read.
    let declared = raw_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n".into(),
        0,
        false,
    );
    fetch(&format!("http://{declared}/"), &[]).expect(
        1,
        "unhealthy: wasi-http: ",
        &["HttpResponseBodySize"],
    );
    // Not declared: cut off once it passes the cap.
    let streamed = raw_server(
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(),
        2 * 1024 * 1024,
        false,
    );
    fetch(&format!("http://{streamed}/"), &[]).expect(
        1,
        "unhealthy: wasi-http: ",
        &["reading the body", "body size exceeds limit"],
    );
}

#[test]
fn a_response_head_over_the_cap_is_refused() {
    let huge = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let addr = raw_server(huge, 0, false);
    fetch(&format!("http://{addr}/"), &[]).expect(
        1,
        "unhealthy: wasi-http: ",
        &["HttpResponseHeaderSectionSize"],
    );
}

#[test]
fn connections_count_against_the_socket_cap() {
    // Each response's body stalls, so each request keeps its connection open.
    let addr = raw_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".into(),
        10,
        true,
    );
    let url = format!("http://{addr}/");
    fetch(
        &url,
        &["requests=3", "timeout-ms=300", "--max-sockets", "3"],
    )
    .expect(
        1,
        "unhealthy: wasi-http: HTTP 200, reading the body after 10 bytes",
        &["connection read timeout"],
    );
    fetch(
        &url,
        &["requests=4", "timeout-ms=300", "--max-sockets", "3"],
    )
    .expect(
        1,
        "unhealthy: wasi-http: socket limit (3 open at once) reached, raise it with --max-sockets",
        &["ConnectionLimitReached"],
    );
}

#[test]
fn inspect_names_wasi_http_with_its_grants() {
    let wasm = guest("wasi-http");
    let out = healthprobe([
        "inspect",
        wasm.to_str().unwrap(),
        "--allow-net",
        "127.0.0.1:8080",
    ]);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout
            .contains("HTTP requests (wasi:http)  granted  to 127.0.0.1:8080"),
        "{out:#?}"
    );
}

#[test]
fn https_verifies_certificates_unless_the_operator_allows_otherwise() {
    let pki = crate::tls::Pki::new();
    let Some(server) = crate::tls::HttpsServer::start(&pki.server, None) else {
        return;
    };
    let url = format!("https://127.0.0.1:{}/", server.port);
    // Signed by the test's own CA, which is not in the Mozilla roots: refused.
    fetch(&url, &[]).expect(1, "unhealthy: wasi-http: ", &["TlsCertificateError"]);
    // The operator's CA is wasi:http's too.
    let ca = pki.ca.display().to_string();
    fetch(&url, &["--tls-ca", &ca]).expect(0, "healthy: wasi-http: ", &["HTTP 200, 2 bytes"]);
    // The operator's flag turns verification off for every wasi:http request of the run;
    // the connection is still TLS.
    fetch(&url, &["--allow-insecure-tls"]).expect(
        0,
        "healthy: wasi-http: ",
        &["HTTP 200, 2 bytes"],
    );
}
