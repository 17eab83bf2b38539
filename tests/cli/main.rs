//! Integration tests: the real `healthprobe` executable against real loopback servers and
//! real (test-only) guest components.

mod support;

// The bundled service probes, each against the real server (tests/cli/servers.rs).
mod dns;
mod file;
mod grpc;
mod memcached;
mod mysql;
mod postgres;
mod precompiled;
mod redis;
mod servers;
mod tcp_expect;

use std::time::Duration;

use support::{HttpServer, SilentServer, closed_port, guest, healthprobe, temp_file};

/// Generous bound on top of `--timeout`: these machines are shared and noisy.
const SLACK: Duration = Duration::from_secs(1);

// ---- the http probe ----

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
        &["request to", "is too large", "exceed 16.0 KiB"],
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
    .expect(1, "unhealthy: http: ", &["timeout"])
    .within(Duration::from_secs(1) + SLACK);
    assert_eq!(server.accepted(), 1);
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
    assert!(v["details"].is_object());
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

// ---- the network policy ----

/// Runs a bundled probe at a listener on 127.0.0.1 while granting only 127.0.0.2, so even
/// a policy bug keeps the traffic on loopback; the denial must name the address and the
/// flag, and the listener must see nothing.
fn assert_denied_and_unreached(probe: &str, param: &str) {
    let server = SilentServer::start();
    let target = if param == "url" {
        format!("http://{}/", server.addr)
    } else {
        server.addr.to_string()
    };
    healthprobe([
        "run",
        probe,
        &format!("{param}={target}"),
        "--allow-net",
        "127.0.0.2",
    ])
    .expect(
        1,
        &format!("unhealthy: {probe}: "),
        &["denied", &server.addr.to_string(), "--allow-net"],
    );
    assert_eq!(server.accepted(), 0, "the denied listener saw a connection");
}

#[test]
fn http_connect_denied_by_policy_names_the_address_and_reaches_nothing() {
    assert_denied_and_unreached("http", "url");
}

#[test]
fn tcp_connect_denied_by_policy_names_the_address_and_reaches_nothing() {
    assert_denied_and_unreached("tcp", "address");
}

#[test]
fn redirect_to_a_port_not_granted_is_denied() {
    let target = SilentServer::start();
    let location = format!("http://{}/", target.addr);
    let redirector = HttpServer::start(move |_| {
        (
            302,
            vec![("Location".into(), location.clone())],
            String::new(),
        )
    });
    let out = healthprobe([
        "run",
        "http",
        &format!("url={}", redirector.url("/")),
        "--allow-net",
        &redirector.addr.to_string(),
    ]);
    out.expect(
        1,
        "unhealthy: http: ",
        &["denied", &target.addr.to_string()],
    );
    assert_eq!(target.accepted(), 0);
}

#[test]
fn bad_allow_net_pattern_is_exit_3() {
    healthprobe([
        "run",
        "tcp",
        "address=127.0.0.1:1",
        "--allow-net",
        "10.0.0.0/99",
    ])
    .expect(3, "error: ", &["--allow-net"]);
}

// ---- the tcp probe ----

#[test]
fn tcp_accepting_listener_is_healthy() {
    let server = SilentServer::start();
    healthprobe(["run", "tcp", &format!("address={}", server.addr)]).expect(
        0,
        "healthy: tcp: ",
        &[&server.addr.to_string()],
    );
    assert_eq!(server.accepted(), 1);
}

#[test]
fn tcp_refused_is_unhealthy() {
    let addr = closed_port();
    healthprobe(["run", "tcp", &format!("address={addr}")]).expect(
        1,
        "unhealthy: tcp: ",
        &["refused", &addr.to_string()],
    );
}

#[test]
fn tcp_address_without_port_is_exit_3() {
    healthprobe(["run", "tcp", "address=127.0.0.1"]).expect(3, "error: tcp: ", &["address"]);
}

// ---- containment of hostile guests ----

#[test]
fn spinning_guest_times_out() {
    let wasm = support::hostile_cwasm();
    healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=spin".as_ref(),
        "--timeout".as_ref(),
        "3s".as_ref(),
        // Enough fuel that the deadline, not the fuel, ends the spin.
        "--fuel".as_ref(),
        "1000000000000".as_ref(),
    ])
    .expect(1, "unhealthy: hostile: ", &["timeout after 3s"])
    .within(Duration::from_secs(3) + SLACK);
}

#[test]
fn guest_blocked_in_a_host_sleep_times_out() {
    let wasm = support::hostile_cwasm();
    healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=sleep".as_ref(),
        "--timeout".as_ref(),
        "3s".as_ref(),
    ])
    .expect(1, "unhealthy: hostile: ", &["timeout after 3s"])
    .within(Duration::from_secs(3) + SLACK);
}

#[test]
fn guest_blocked_reading_a_silent_socket_times_out() {
    let server = SilentServer::start();
    let wasm = support::hostile_cwasm();
    let address = format!("address={}", server.addr);
    healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=tcp-read".as_ref(),
        address.as_ref(),
        "--timeout".as_ref(),
        "3s".as_ref(),
    ])
    .expect(1, "unhealthy: hostile: ", &["timeout after 3s"])
    .within(Duration::from_secs(3) + SLACK);
}

#[test]
fn guest_looping_over_host_http_calls_times_out() {
    let server = HttpServer::fixed(200, "ok");
    let wasm = support::hostile_cwasm();
    let url = format!("url={}", server.url("/"));
    healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=http-loop".as_ref(),
        url.as_ref(),
        "--timeout".as_ref(),
        "3s".as_ref(),
    ])
    .expect(1, "unhealthy: hostile: ", &["timeout after 3s"])
    .within(Duration::from_secs(3) + SLACK);
}

#[test]
fn fuel_exhaustion_is_unhealthy() {
    let wasm = guest("hostile");
    healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=spin".as_ref(),
        "--fuel".as_ref(),
        "5000000".as_ref(),
    ])
    .expect(1, "unhealthy: hostile: ", &["out of fuel"]);
}

#[test]
fn memory_growth_past_the_cap_is_unhealthy() {
    let wasm = guest("hostile");
    healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=memory".as_ref(),
        "--max-memory".as_ref(),
        "16MiB".as_ref(),
    ])
    .expect(1, "unhealthy: hostile: ", &["memory limit (16"])
    .within(Duration::from_secs(5));
}

#[test]
fn panicking_guest_is_unhealthy_with_its_message() {
    let wasm = guest("hostile");
    healthprobe(["run".as_ref(), wasm.as_os_str(), "mode=panic".as_ref()]).expect(
        1,
        "unhealthy: hostile: ",
        &["panicked", "the hostile probe gives up"],
    );
}

#[test]
fn flooding_guest_output_is_capped() {
    let wasm = guest("hostile");
    let out = healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=flood".as_ref(),
        "--verbose".as_ref(),
    ]);
    out.expect(0, "healthy: hostile: ", &["flooded"]);
    assert!(out.stderr.contains("--- probe stdout ---"), "{out:#?}");
}

#[test]
fn repeatable_parameters_reach_the_guest_in_order() {
    let wasm = guest("hostile");
    healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=echo".as_ref(),
        "value=a=1".as_ref(),
        "value=b".as_ref(),
    ])
    .expect(0, "healthy: hostile: ", &["a=1|b"]);
}

// ---- bad input: exit 3, never 2 ----

#[test]
fn missing_file_is_exit_3() {
    healthprobe(["run", "/nonexistent/probe.wasm"]).expect(
        3,
        "error: ",
        &["cannot read", "/nonexistent/probe.wasm"],
    );
}

#[test]
fn unknown_bundled_name_is_exit_3() {
    healthprobe(["run", "nosuchprobe"]).expect(
        3,
        "error: ",
        &["unknown probe 'nosuchprobe'", "http", "tcp"],
    );
}

#[test]
fn corrupt_bytes_are_exit_3() {
    let (_d, path) = temp_file("corrupt.wasm", b"\0asm\x0d\0\x01\0garbage-garbage-garbage");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["not a valid WebAssembly component"],
    );
    let (_d, path) = temp_file("text.wasm", b"#!/bin/sh\necho hi\n");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["not a WebAssembly file"],
    );
}

#[test]
fn core_module_is_exit_3() {
    // The smallest valid core module: magic and version 1, no sections.
    let (_d, path) = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    healthprobe(["run".as_ref(), path.as_os_str()]).expect(
        3,
        "error: ",
        &["core WebAssembly module, not a component"],
    );
}

#[test]
fn component_of_another_world_is_exit_3() {
    let wasm = guest("other-world");
    healthprobe(["run".as_ref(), wasm.as_os_str()]).expect(
        3,
        "error: ",
        &["not a healthprobe probe"],
    );
}

#[test]
fn unknown_parameter_is_exit_3_and_lists_the_known_ones() {
    healthprobe(["run", "http", "url=http://127.0.0.1:1/", "colour=blue"]).expect(
        3,
        "error: http: ",
        &["unknown parameter 'colour'", "url", "expect-status"],
    );
}

#[test]
fn missing_required_parameter_is_exit_3() {
    healthprobe(["run", "http"]).expect(3, "error: http: ", &["missing required parameter 'url'"]);
}

#[test]
fn malformed_parameter_value_is_exit_3() {
    healthprobe([
        "run",
        "http",
        "url=http://127.0.0.1:1/",
        "expect-status=abc",
    ])
    .expect(3, "error: http: ", &["expect-status"]);
    healthprobe(["run", "http", "url"]).expect(3, "error: ", &["KEY=VALUE"]);
}

#[test]
fn usage_errors_are_exit_3_not_2() {
    healthprobe(["run", "http", "--timeout", "soon"]).expect(3, "error: ", &["--timeout"]);
    healthprobe(["frobnicate"]).expect(3, "error: ", &["frobnicate"]);
    let help = healthprobe(["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("run"));
}

// ---- list ----

#[test]
fn list_shows_the_bundled_probes_and_their_parameters() {
    let out = healthprobe(["list"]);
    assert_eq!(out.code, 0, "{out:#?}");
    for needle in [
        "http ",
        "tcp ",
        "url",
        "expect-status",
        "expect-json",
        "header",
        "address",
        "required",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?}: {}",
            out.stdout
        );
    }
    let json = healthprobe(["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(v.as_array().unwrap().iter().any(|p| p["name"] == "http"));
}

// ---- no child processes, on any path ----

#[test]
fn host_source_never_starts_a_process() {
    // The build script may run cargo; the binary's own code may not start anything.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for needle in [
                "process::Command",
                "Command::new",
                "fork(",
                "posix_spawn",
                "execv",
            ] {
                assert!(
                    !text.contains(needle),
                    "{} contains {needle}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 5, "walked only {files} files");
}

// ---- sandboxed third-party probes: grants, inspection, integrity ----

/// `healthprobe run <hostile.wasm> mode=MODE extra...`
fn hostile(mode: &str, extra: &[&str]) -> support::Outcome {
    hostile_env(mode, extra, &[])
}

fn hostile_env(mode: &str, extra: &[&str], env: &[(&str, &str)]) -> support::Outcome {
    let wasm = support::hostile_cwasm();
    let mut args: Vec<std::ffi::OsString> =
        vec!["run".into(), wasm.into(), format!("mode={mode}").into()];
    args.extend(extra.iter().map(Into::into));
    support::healthprobe_env(args, env)
}

#[test]
fn sandbox_connect_to_a_port_not_granted_is_denied_and_reaches_nothing() {
    let server = SilentServer::start();
    let address = format!("address={}", server.addr);
    hostile("connect", &[&address, "--allow-net", "127.0.0.2"]).expect(
        1,
        "unhealthy: hostile: ",
        &["denied", &server.addr.to_string(), "--allow-net"],
    );
    assert_eq!(server.accepted(), 0, "the denied listener saw a connection");
    // The same probe, granted: it gets through, so the test above can fail.
    hostile(
        "connect",
        &[&address, "--allow-net", &server.addr.to_string()],
    )
    .expect(0, "healthy: hostile: ", &["escaped"]);
    assert_eq!(server.accepted(), 1);
}

#[test]
fn sandbox_name_lookup_needs_a_name_grant() {
    hostile("resolve", &["name=localhost", "--allow-net", "127.0.0.1"]).expect(
        1,
        "unhealthy: hostile: ",
        &["name lookup of localhost denied", "--allow-net localhost"],
    );
    hostile("resolve", &["name=localhost", "--allow-net", "localhost"]).expect(
        0,
        "healthy: hostile: ",
        &["escaped"],
    );
}

#[test]
fn sandbox_http_to_a_name_not_granted_is_denied() {
    let server = HttpServer::fixed(200, "ok");
    let url = format!("url=http://localhost:{}/", server.addr.port());
    healthprobe(["run", "http", &url, "--allow-net", "127.0.0.1"]).expect(
        1,
        "unhealthy: http: ",
        &["name lookup of localhost denied"],
    );
    healthprobe(["run", "http", &url, "--allow-net", "localhost"]).expect(
        0,
        "healthy: http: ",
        &[],
    );
}

#[test]
fn sandbox_files_are_not_readable_without_a_grant() {
    hostile("read-file", &["path=/etc/passwd"]).expect(
        1,
        "unhealthy: hostile: ",
        &["denied", "/etc/passwd"],
    );
    hostile("list-dir", &["path=."]).expect(1, "unhealthy: hostile: ", &["denied"]);
    hostile("list-dir", &["path=/"]).expect(1, "unhealthy: hostile: ", &["denied"]);
}

#[test]
fn sandbox_granted_directory_is_readable_but_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heartbeat");
    std::fs::write(&file, b"alive").unwrap();
    let grant = dir.path().to_str().unwrap();
    let path = format!("path={}", file.display());
    hostile("read-file", &[&path, "--allow-read", grant]).expect(
        0,
        "healthy: hostile: ",
        &["read 5 bytes"],
    );
    hostile("write-file", &[&path, "--allow-read", grant]).expect(
        1,
        "unhealthy: hostile: ",
        &["denied"],
    );
    let new = format!("path={}", dir.path().join("new").display());
    hostile("write-file", &[&new, "--allow-read", grant]).expect(
        1,
        "unhealthy: hostile: ",
        &["denied"],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"alive");
    assert!(!dir.path().join("new").exists());
    // Outside the granted directory nothing changes.
    hostile("read-file", &["path=/etc/passwd", "--allow-read", grant]).expect(
        1,
        "unhealthy: hostile: ",
        &["denied"],
    );
}

#[test]
fn sandbox_environment_is_empty_unless_granted() {
    let env = [("HEALTHPROBE_TEST_SECRET", "hunter2")];
    let out = hostile_env("env", &[], &env);
    out.expect(1, "unhealthy: hostile: ", &["denied"]);
    assert!(!out.stdout.contains("hunter2"));
    hostile_env("env", &["--env", "HEALTHPROBE_TEST_SECRET"], &env).expect(
        0,
        "healthy: hostile: ",
        &["HEALTHPROBE_TEST_SECRET=hunter2"],
    );
    hostile("env", &["--env", "GREETING=hi"]).expect(0, "healthy: hostile: ", &["GREETING=hi"]);
    hostile("env", &["--env", "HEALTHPROBE_TEST_UNSET_VAR"]).expect(
        3,
        "error: ",
        &["HEALTHPROBE_TEST_UNSET_VAR", "not set"],
    );
}

#[test]
fn sandbox_udp_is_off_unless_granted() {
    let counter = support::UdpCounter::start();
    let address = format!("address={}", counter.addr);
    hostile("udp", &[&address]).expect(1, "unhealthy: hostile: ", &["denied"]);
    hostile("udp", &[&address, "--allow-udp", "127.0.0.2"]).expect(
        1,
        "unhealthy: hostile: ",
        &["UDP traffic to", &counter.addr.to_string(), "--allow-udp"],
    );
    assert_eq!(counter.received(), 0, "a datagram got through");
    hostile("udp", &[&address, "--allow-udp", &counter.addr.to_string()]).expect(
        0,
        "healthy: hostile: ",
        &["escaped"],
    );
    assert_eq!(counter.received(), 1);
}

#[test]
fn sandbox_insecure_tls_needs_a_grant() {
    let server = HttpServer::fixed(200, "ok");
    let url = format!("url={}", server.url("/"));
    hostile("insecure", &[&url]).expect(
        1,
        "unhealthy: hostile: ",
        &["denied", "--allow-insecure-tls"],
    );
    hostile("insecure", &[&url, "--allow-insecure-tls"]).expect(
        0,
        "healthy: hostile: ",
        &["escaped"],
    );
}

#[test]
fn sandbox_caps_cannot_be_raised_by_the_probe() {
    hostile("spin", &["--fuel", "2000000"]).expect(1, "unhealthy: hostile: ", &["out of fuel"]);
    hostile("memory", &["--max-memory", "8MiB"]).expect(
        1,
        "unhealthy: hostile: ",
        &["memory limit (8 MiB)"],
    );
    hostile("sleep", &["--timeout", "1500ms"])
        .expect(1, "unhealthy: hostile: ", &["timeout after 1.5s"])
        .within(Duration::from_millis(1500) + SLACK);
}

#[test]
fn sha256_pin_refuses_other_content_before_compiling() {
    let wasm = guest("hostile");
    let digest = sha256_of(&wasm);
    let run = |pin: &str| {
        healthprobe([
            "run".as_ref(),
            wasm.as_os_str(),
            "mode=echo".as_ref(),
            "value=ok".as_ref(),
            "--sha256".as_ref(),
            pin.as_ref(),
        ])
    };
    run(&digest).expect(0, "healthy: hostile: ", &["ok"]);
    run(&digest.to_uppercase()).expect(0, "healthy: hostile: ", &["ok"]);
    let wrong = format!("{}0", &digest[..63]);
    let wrong = if wrong == digest {
        format!("{}1", &digest[..63])
    } else {
        wrong
    };
    run(&wrong).expect(3, "error: ", &["sha256 mismatch", &digest, &wrong]);
    // A corrupt file with the right pin would fail to compile; with a wrong pin it must
    // be refused as a mismatch, proving the check comes first.
    let (_d, corrupt) = temp_file("corrupt.wasm", b"\0asm\x0d\0\x01\0garbage");
    healthprobe([
        "run".as_ref(),
        corrupt.as_os_str(),
        "--sha256".as_ref(),
        wrong.as_ref(),
    ])
    .expect(3, "error: ", &["sha256 mismatch"]);
    healthprobe(["run", "http", "url=http://127.0.0.1:1/", "--sha256", "xyz"]).expect(
        3,
        "error: ",
        &["--sha256", "64 hex"],
    );
}

#[test]
fn verbose_output_shows_the_sha256() {
    let wasm = guest("hostile");
    let out = healthprobe([
        "run".as_ref(),
        wasm.as_os_str(),
        "mode=echo".as_ref(),
        "--verbose".as_ref(),
    ]);
    assert!(out.stderr.contains(&sha256_of(&wasm)), "{out:#?}");
}

fn sha256_of(path: &std::path::Path) -> String {
    let out = healthprobe([
        "inspect".as_ref(),
        path.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    let digest = v["sha256"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    digest
}

#[test]
fn policy_file_carries_grants_caps_params_and_pin() {
    let server = SilentServer::start();
    let wasm = support::hostile_cwasm();
    let digest = sha256_of(&wasm);
    let policy = format!(
        r#"
sha256 = "{digest}"
timeout = "3s"
fuel = 5000000000
max-memory = "32MiB"
allow-net = ["{addr}"]
env = ["FROM_FILE=yes"]

[params]
mode = "connect"
address = "{addr}"
"#,
        addr = server.addr
    );
    let (_d, file) = temp_file("policy.toml", policy.as_bytes());
    let run = |extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            wasm.clone().into(),
            "--policy".into(),
            file.clone().into(),
        ];
        args.extend(extra.iter().map(Into::into));
        healthprobe(args)
    };
    run(&[]).expect(
        0,
        "healthy: hostile: ",
        &["escaped", &server.addr.to_string()],
    );
    // The command line overrides the file: a parameter, then a grant.
    run(&["mode=env"]).expect(0, "healthy: hostile: ", &["FROM_FILE=yes"]);
    run(&["--allow-net", "127.0.0.2"]).expect(1, "unhealthy: hostile: ", &["denied"]);
    run(&["--timeout", "1500ms", "mode=sleep"]).expect(
        1,
        "unhealthy: hostile: ",
        &["timeout after 1.5s"],
    );
}

#[test]
fn policy_file_errors_name_the_problem() {
    let (_d, file) = temp_file(
        "p.toml",
        b"allow-net = [\"127.0.0.1\"]\nalow-read = [\"/tmp\"]\n",
    );
    healthprobe([
        "run".as_ref(),
        "tcp".as_ref(),
        "address=127.0.0.1:1".as_ref(),
        "--policy".as_ref(),
        file.as_os_str(),
    ])
    .expect(3, "error: ", &["unknown field `alow-read`", "line 2"]);
    let (_d, file) = temp_file("p.toml", b"timeout = \"soon\"\n");
    healthprobe([
        "run".as_ref(),
        "tcp".as_ref(),
        "address=127.0.0.1:1".as_ref(),
        "--policy".as_ref(),
        file.as_os_str(),
    ])
    .expect(3, "error: ", &["timeout"]);
    healthprobe([
        "run",
        "tcp",
        "address=127.0.0.1:1",
        "--policy",
        "/nonexistent/policy.toml",
    ])
    .expect(3, "error: ", &["/nonexistent/policy.toml"]);
}

#[test]
fn inspect_lists_exactly_the_network_capabilities_each_bundled_probe_uses() {
    let caps = |probe: &str, extra: &[&str]| {
        let mut args = vec!["inspect", probe, "--format", "json"];
        args.extend(extra);
        let out = healthprobe(args);
        assert_eq!(out.code, 0, "{out:#?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["probe"], probe);
        assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
        v["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["capability"].as_str().unwrap().to_string(),
                    c["granted"].as_bool().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let net = ["http", "tcp", "udp", "name-lookup", "files"];
    let pick = |all: Vec<(String, bool)>| {
        all.into_iter()
            .filter(|(c, _)| net.contains(&c.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(pick(caps("http", &[])), vec![("http".to_string(), true)]);
    assert_eq!(
        pick(caps("tcp", &[])),
        vec![("tcp".to_string(), true), ("name-lookup".to_string(), true)]
    );
    // Granted or not follows the flags given on the same command line.
    assert_eq!(
        pick(caps("tcp", &["--allow-net", "127.0.0.1"])),
        vec![
            ("tcp".to_string(), true),
            ("name-lookup".to_string(), false)
        ]
    );
}

#[test]
fn inspect_text_shows_hash_parameters_and_grants() {
    let out = healthprobe(["inspect", "http", "--allow-net", "10.0.0.0/8"]);
    assert_eq!(out.code, 0, "{out:#?}");
    for needle in [
        "http 0.1.0",
        "sha256:",
        "url [required]",
        "HTTP requests",
        "granted  to 10.0.0.0/8",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?}: {}",
            out.stdout
        );
    }
    let other = guest("other-world");
    healthprobe(["inspect".as_ref(), other.as_os_str()]).expect_code(3);
}

#[test]
fn third_party_example_probe_builds_and_runs() {
    let wasm = support::third_party_probe();
    let server = HttpServer::start(|req| {
        let depth = match req.url() {
            "/low" => 5,
            "/mid" => 500,
            _ => 5000,
        };
        (200, vec![], format!(r#"{{"queue":{{"depth":{depth}}}}}"#))
    });
    let run = |path: &str| {
        let url = format!("url={}", server.url(path));
        healthprobe([
            "run".as_ref(),
            wasm.as_os_str(),
            url.as_ref(),
            "pointer=/queue/depth".as_ref(),
        ])
    };
    run("/low").expect(0, "healthy: queue-depth: ", &["5"]);
    run("/mid").expect(0, "degraded: queue-depth: ", &["500"]);
    run("/high").expect(1, "unhealthy: queue-depth: ", &["5000"]);
    let out = healthprobe([
        "inspect".as_ref(),
        wasm.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let caps: Vec<&str> = v["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["capability"].as_str().unwrap())
        .collect();
    assert!(
        caps.contains(&"http") && !caps.contains(&"tcp") && !caps.contains(&"files"),
        "{caps:?}"
    );
}

// ---- hostile probes: the rest of the zoo ----

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
    .expect(1, "unhealthy: http: ", &["timeout after 2s"])
    .within(Duration::from_secs(2) + SLACK);
}

#[test]
fn tcp_probe_is_healthy_on_a_silent_server_it_only_connects() {
    // The tcp probe checks that the port accepts; a server that then says nothing is still
    // accepting. (Probes that expect a reply bound their reads by the deadline.)
    let server = SilentServer::start();
    healthprobe([
        "run",
        "tcp",
        &format!("address={}", server.addr),
        "--timeout",
        "2s",
    ])
    .expect(0, "healthy: tcp: ", &[])
    .within(Duration::from_secs(2) + SLACK);
}

#[test]
fn stack_exhaustion_is_unhealthy() {
    hostile("recurse", &[])
        .expect(1, "unhealthy: hostile: ", &["stack overflow"])
        .within(Duration::from_secs(5) + SLACK);
}

#[test]
fn a_one_megabyte_message_is_cut_to_fit_the_output_cap() {
    let out = hostile("big-message", &[]);
    out.expect(1, "unhealthy: hostile: ", &["xxxx"]);
    let json = hostile("big-message", &["--format", "json"]);
    json.expect(1, "{", &[]);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("still valid JSON");
    assert_eq!(v["status"], "unhealthy");
}

#[test]
fn odd_parameters_are_handled() {
    hostile("echo", &["value="]).expect(0, "healthy: hostile: ", &[]);
    let long = format!("value={}", "a".repeat(64 * 1024));
    hostile("echo", &[&long]).expect(0, "healthy: hostile: ", &["aaaa"]);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let wasm = guest("hostile");
        let bad = std::ffi::OsStr::from_bytes(b"value=\xff\xfe");
        healthprobe(["run".as_ref(), wasm.as_os_str(), "mode=echo".as_ref(), bad]).expect(
            3,
            "error: ",
            &["UTF-8"],
        );
    }
}

#[test]
fn component_importing_an_interface_the_host_lacks_is_exit_3() {
    let wasm = guest("bad-import");
    healthprobe(["run".as_ref(), wasm.as_os_str()]).expect(
        3,
        "error: ",
        &["cannot be linked", "test:missing/api"],
    );
    let out = healthprobe(["inspect".as_ref(), wasm.as_os_str()]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(
        out.stdout.contains("test:missing/api@0.1.0  NOT PROVIDED"),
        "{out:#?}"
    );
}

// ---- resource hygiene of the library ----

#[test]
fn resource_hygiene_over_a_thousand_runs() {
    // Measured in a process of its own: the other tests' threads and sockets would blur it.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "resource_hygiene_worker",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HEALTHPROBE_HYGIENE_WORKER", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "worker failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hygiene:"), "{stdout}");
}

#[test]
#[ignore = "run by resource_hygiene_over_a_thousand_runs in a process of its own"]
fn resource_hygiene_worker() {
    use healthprobe::{Limits, ProbeSource, RunConfig, Runner, Sandbox, Verdict};
    if std::env::var_os("HEALTHPROBE_HYGIENE_WORKER").is_none() {
        return;
    }
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let rss_kib = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .to_string();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };

    let ok = HttpServer::fixed(200, r#"{"status":"UP"}"#);
    // Listens but never accepts: connections complete in the kernel's backlog and hang, so
    // every such run times out inside a host call, without a server-side socket here.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let runner = Runner::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = ProbeSource::resolve("http").unwrap();
    let config = |timeout| RunConfig {
        limits: Limits {
            timeout,
            ..Limits::default()
        },
        sandbox: Sandbox::loopback(),
        sha256: None,
    };
    let fast = config(Duration::from_secs(5));
    let slow = config(Duration::from_millis(100));
    let ok_url = vec![("url".to_string(), ok.url("/health"))];
    let hung_url = vec![(
        "url".to_string(),
        format!("http://{}/", hung.local_addr().unwrap()),
    )];
    let run = |i: usize| {
        let start = std::time::Instant::now();
        let (args, config, want) = if i.is_multiple_of(20) {
            (&hung_url, &slow, Verdict::Unhealthy)
        } else {
            (&ok_url, &fast, Verdict::Healthy)
        };
        let report = rt.block_on(runner.run(start, &http, args, config));
        assert_eq!(report.verdict, want, "run {i}: {report:?}");
    };
    // Blocking threads of timed-out calls end on their own shortly after (ureq's own
    // timeout is the same 100 ms deadline): wait, within a generous bound, until the
    // counts stop falling, rather than for a fixed time.
    let settled = || {
        let start = std::time::Instant::now();
        let mut last = (fds(), threads());
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = (fds(), threads());
            if (now.0 >= last.0 && now.1 >= last.1) || start.elapsed() > Duration::from_secs(10) {
                return now;
            }
            last = now;
        }
    };
    for i in 0..50 {
        run(i);
    }
    let (fd0, th0) = settled();
    let rss0 = rss_kib();
    for i in 0..1000 {
        run(i);
    }
    let (fd1, th1) = settled();
    let rss1 = rss_kib();
    println!("hygiene: fds {fd0} -> {fd1}, threads {th0} -> {th1}, rss {rss0} KiB -> {rss1} KiB");
    assert!(fd1 <= fd0 + 8, "file descriptors grew: {fd0} -> {fd1}");
    assert!(th1 <= th0 + 8, "threads grew: {th0} -> {th1}");
    assert!(
        rss1 <= rss0 + 32 * 1024,
        "resident memory grew: {rss0} KiB -> {rss1} KiB"
    );
}

// ---- the zombie regression (openzipkin/zipkin#3670), reproduced without Docker ----

/// Runs tests/zombies/harness.py for one scenario and returns its JSON line, or `None`
/// when the harness had to skip (not root, no unshare).
fn zombie_scenario(label: &str, extra: &[&str], command: &[&str]) -> Option<serde_json::Value> {
    let harness =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/zombies/harness.py");
    let out = std::process::Command::new("python3")
        .arg(harness)
        .args(["--label", label, "--checks", "50"])
        .args(extra)
        .arg("--")
        .args(command)
        .output()
        .expect("run python3 tests/zombies/harness.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "harness output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if let Some(reason) = v.get("skip") {
        // Under CI a skip would hide the one result this product exists for.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "zombie test skipped under CI: {reason}"
        );
        eprintln!("zombie regression skipped: {reason}");
        return None;
    }
    assert!(v.get("error").is_none(), "harness error: {v}");
    eprintln!("zombie scenario {label}: {v}");
    Some(v)
}

#[test]
fn zombies_pile_up_with_a_shell_check_and_never_with_healthprobe() {
    // Baseline: Docker-like SIGKILL of the shell after 0.5 s; wget (one try, 2 s timeout)
    // is orphaned to the namespace's non-reaping PID 1 and ends as a zombie. If this shows
    // no zombies, the harness does not reproduce the bug and proves nothing below.
    let Some(baseline) = zombie_scenario(
        "sh+wget",
        &[],
        &["sh", "-c", "wget -q -t 1 -T 2 -O- {url} || exit 1"],
    ) else {
        return;
    };
    assert_eq!(baseline["killed"], 50, "{baseline}");
    assert!(
        baseline["zombies"].as_u64().unwrap() > 0,
        "the harness did not reproduce the leak: {baseline}"
    );

    let bin = env!("CARGO_BIN_EXE_healthprobe");
    let killed = zombie_scenario(
        "healthprobe-killed",
        &[],
        &[bin, "run", "http", "url={url}", "--timeout", "5s"],
    )
    .unwrap();
    assert_eq!(killed["killed"], 50, "{killed}");
    assert_eq!(
        (killed["zombies"].as_u64(), killed["live_orphans"].as_u64()),
        (Some(0), Some(0)),
        "{killed}"
    );

    // healthprobe's own deadline shorter than the monitor's: it ends every check itself.
    let timed = zombie_scenario(
        "healthprobe-timeout",
        &["--kill-after", "5"],
        &[bin, "run", "http", "url={url}", "--timeout", "1s"],
    )
    .unwrap();
    assert_eq!(timed["killed"], 0, "{timed}");
    assert_eq!(timed["exit_codes"], serde_json::json!({"1": 50}), "{timed}");
    for line in timed["outputs"].as_array().unwrap() {
        assert!(
            line.as_str()
                .unwrap()
                .starts_with("unhealthy: http: timeout after 1s"),
            "{timed}"
        );
    }
    assert_eq!(
        (timed["zombies"].as_u64(), timed["live_orphans"].as_u64()),
        (Some(0), Some(0)),
        "{timed}"
    );
}

// ---- precompiled components ----

#[test]
fn precompiled_component_runs_and_bad_ones_are_refused() {
    let wasm = guest("hostile");
    // Made by `healthprobe compile` (which the helper asserts succeeded).
    let cwasm = support::hostile_cwasm();
    healthprobe([
        "run".as_ref(),
        cwasm.as_os_str(),
        "mode=echo".as_ref(),
        "value=pre".as_ref(),
    ])
    .expect(0, "healthy: hostile: ", &["pre"]);

    // Truncated: refused with a clear message, never a crash.
    let bytes = std::fs::read(&cwasm).unwrap();
    for len in [bytes.len() / 2, 64, 4] {
        let (_d, cut) = temp_file("cut.cwasm", &bytes[..len]);
        healthprobe(["run".as_ref(), cut.as_os_str(), "mode=echo".as_ref()]).expect(
            3,
            "error: ",
            &["recompile"],
        );
    }

    // Compiled by an engine with other settings (no fuel, no epochs): wasmtime's
    // compatibility check must refuse it.
    let mut config = wasmtime::Config::new();
    config.consume_fuel(false).epoch_interruption(false);
    let other = wasmtime::Engine::new(&config).unwrap();
    let foreign = other
        .precompile_component(&std::fs::read(&wasm).unwrap())
        .unwrap();
    let (_d, path) = temp_file("foreign.cwasm", &foreign);
    healthprobe(["run".as_ref(), path.as_os_str(), "mode=echo".as_ref()]).expect(
        3,
        "error: ",
        &[
            "cannot load the precompiled component",
            "healthprobe compile",
        ],
    );
}

#[test]
fn a_table_past_the_cap_is_unhealthy() {
    // big-table links its function table at index 200000; the limiter refuses the table
    // when the instance is created, with a typed error reported as the cause.
    let wasm = guest("big-table");
    healthprobe(["run".as_ref(), wasm.as_os_str()])
        .expect(1, "unhealthy: ", &["table limit (100000 elements)"])
        .within(Duration::from_secs(5) + SLACK);
}
