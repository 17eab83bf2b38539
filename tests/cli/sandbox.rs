//! Sandboxed third-party probes: every grant denied by default, and each also run with
//! the grant to show the test can fail.

use crate::support::{self, HttpServer, SilentServer, healthprobe, hostile, hostile_env};

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
    hostile("sleep", &["--timeout", "1500ms"]).expect(
        1,
        "unhealthy: hostile: ",
        &["timeout after 1.5s"],
    );
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
