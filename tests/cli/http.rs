//! The `http` probe against loopback HTTP servers.

use std::time::Duration;

use crate::support::{HttpServer, SilentServer, closed_port, healthprobe};

#[test]
fn http_200_is_healthy() {
    let server = HttpServer::fixed(200, r#"{"status":"UP"}"#);
    let url = server.url("/health");
    healthprobe(["run", "http", &format!("url={url}")]).expect(
        0,
        "healthy: http: ",
        &["HTTP 200", &url],
    );
}

#[test]
fn http_503_is_unhealthy() {
    let server = HttpServer::fixed(503, "down");
    healthprobe(["run", "http", &format!("url={}", server.url("/health"))]).expect(
        1,
        "unhealthy: http: ",
        &["HTTP 503"],
    );
}

#[test]
fn http_expect_status_overrides_the_default_range() {
    let server = HttpServer::fixed(503, "down");
    healthprobe([
        "run",
        "http",
        &format!("url={}", server.url("/")),
        "expect-status=503",
    ])
    .expect(0, "healthy: http: ", &["HTTP 503"]);
}

#[test]
fn http_body_mismatch_is_unhealthy() {
    let server = HttpServer::fixed(200, "all systems degraded");
    let url = format!("url={}", server.url("/"));
    healthprobe(["run", "http", &url, "expect-body=nominal"]).expect(
        1,
        "unhealthy: http: ",
        &["nominal"],
    );
    healthprobe(["run", "http", &url, "expect-body=degraded"]).expect(0, "healthy: http: ", &[]);
}

#[test]
fn http_expect_json_matches_spring_style_health() {
    let server = HttpServer::fixed(
        200,
        r#"{"status":"DOWN","components":{"db":{"status":"UP"}}}"#,
    );
    let url = format!("url={}", server.url("/health"));
    healthprobe(["run", "http", &url, "expect-json=/status=UP"]).expect(
        1,
        "unhealthy: http: ",
        &["DOWN", "UP"],
    );
    healthprobe(["run", "http", &url, "expect-json=/components/db/status=UP"]).expect(
        0,
        "healthy: http: ",
        &[],
    );
}

#[test]
fn http_sends_repeatable_headers() {
    let server = HttpServer::start(|req| {
        let has = |name: &'static str, value: &str| {
            req.headers()
                .iter()
                .any(|h| h.field.equiv(name) && h.value.as_str() == value)
        };
        let ok = has("X-One", "1") && has("X-Two", "2");
        (if ok { 200 } else { 400 }, vec![], String::new())
    });
    let url = format!("url={}", server.url("/"));
    healthprobe(["run", "http", &url, "header=X-One: 1", "header=X-Two:2"]).expect(
        0,
        "healthy: http: ",
        &[],
    );
    healthprobe(["run", "http", &url, "header=X-One: 1"]).expect(
        1,
        "unhealthy: http: ",
        &["HTTP 400"],
    );
}

#[test]
fn http_request_head_over_the_limit_is_named_and_one_under_it_is_sent() {
    let server = HttpServer::start(|req| {
        let len = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("X-Big"))
            .map_or(0, |h| h.value.as_str().len());
        (200, vec![], len.to_string())
    });
    let url = format!("url={}", server.url("/"));
    let big = |n: usize| format!("header=X-Big: {}", "a".repeat(n));
    // 10 KB fits the 16 KiB request buffer.
    healthprobe(["run", "http", &url, &big(10_000), "expect-body=10000"]).expect(
        0,
        "healthy: http: ",
        &[],
    );
    healthprobe(["run", "http", &url, &big(20_000)]).expect(
        1,
        "unhealthy: http: ",
        &["request to", "is too large", "exceed 16 KiB"],
    );
}

#[test]
fn http_connection_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "http", &format!("url=http://{addr}/health")]).expect(
        1,
        "unhealthy: http: ",
        &["refused"],
    );
}

#[test]
fn http_hung_server_times_out_within_the_deadline() {
    let server = SilentServer::start();
    healthprobe([
        "run",
        "http",
        &format!("url=http://{}/health", server.addr),
        "--timeout",
        "1s",
    ])
    .expect(1, "unhealthy: http: ", &["timeout"]);
    assert_eq!(server.accepted(), 1);
}

#[test]
fn http_server_dripping_one_byte_at_a_time_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                // A valid start, then one byte every 200 ms, forever: no per-read timeout
                // ever fires, only the deadline can end this.
                for byte in b"HTTP/1.1 200 OK\r\nX-Drip: "
                    .iter()
                    .chain(std::iter::repeat(&b'a'))
                {
                    if std::io::Write::write_all(&mut conn, &[*byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
    });
    healthprobe([
        "run",
        "http",
        &format!("url=http://{addr}/"),
        "--timeout",
        "2s",
    ])
    .expect(1, "unhealthy: http: ", &["timeout after 2s"]);
}

#[test]
fn http_json_output_is_one_object() {
    let server = HttpServer::fixed(200, "ok");
    let out = healthprobe([
        "run",
        "http",
        &format!("url={}", server.url("/")),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{out:#?}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["probe"], "http");
    assert!(v["message"].as_str().unwrap().contains("HTTP 200"));
    assert!(v["elapsed_ms"].is_u64());
    // Details keep the type the probe gave them.
    assert_eq!(v["details"]["status"], 200, "{v:#}");
    assert!(v["details"]["elapsed-ms"].is_u64(), "{v:#}");
    assert!(v["details"]["body-bytes"].is_u64(), "{v:#}");
    assert!(v["details"]["url"].is_string(), "{v:#}");
}

#[test]
fn quiet_prints_nothing() {
    let server = HttpServer::fixed(503, "down");
    let out = healthprobe([
        "run",
        "http",
        &format!("url={}", server.url("/")),
        "--quiet",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:#?}");
}

#[test]
fn http_ip_literal_with_a_trailing_dot_is_the_literal_and_is_never_looked_up() {
    // The policy allows `127.0.0.1.` as the loopback literal; handed to the system resolver
    // it would become a DNS query nobody granted (this used to fail with "failed to lookup
    // address information"). It must connect to the address directly.
    let server = HttpServer::fixed(200, r#"{"status":"UP"}"#);
    let url = format!("http://127.0.0.1.:{}/health", server.addr.port());
    healthprobe(["run", "http", &format!("url={url}")]).expect(0, "healthy: http: ", &["HTTP 200"]);
}
