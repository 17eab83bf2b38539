//! `run --config FILE [CHECK…]`: several checks from a checks file, side by side in one
//! process, one verdict.

use std::time::Duration;

use crate::support::{self, HttpServer, SLACK, SilentServer, healthprobe};

/// Writes `text` as a checks file and runs `run --config FILE` with `args`.
fn run_checks(text: &str, args: &[&str]) -> support::Outcome {
    let (_dir, path) = support::temp_file("checks.toml", text.as_bytes());
    let mut all = vec!["run", "--config", path.to_str().unwrap()];
    all.extend(args);
    healthprobe(all)
}

#[test]
fn one_verdict_names_every_check_that_failed() {
    let web = HttpServer::fixed(200, "ok");
    // Nothing listens on port 1 (and no test's server can take it).
    let closed = "127.0.0.1:1";
    let file = format!(
        r#"
[defaults]
timeout = "3s"

[checks.web]
probe = "http"
params = {{ url = "{}" }}

[checks.port]
probe = "tcp"
params = {{ address = "{}" }}

[checks.cache]
probe = "redis"
params = {{ address = "{closed}" }}
"#,
        web.url("/health"),
        web.addr,
    );
    run_checks(&file, &[]).expect(1, "unhealthy: 1 of 3 checks failed: cache: ", &[closed]);
    // Named checks only; a check that is not in the file is bad input.
    run_checks(&file, &["web", "port"]).expect(0, "healthy: 2 checks passed (port, web)", &[]);
    run_checks(&file, &["web", "db"]).expect(
        3,
        "error: no check named db in the checks file; it has cache, port, web",
        &[],
    );

    // JSON: the verdict, and each check with its own status, message and details.
    let out = run_checks(&file, &["--format", "json"]);
    out.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(v["status"], "unhealthy");
    let checks = v["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks.iter().find(|c| c["name"] == name).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (status("web"), status("port"), status("cache")),
        ("healthy".into(), "healthy".into(), "unhealthy".into())
    );
    assert_eq!(checks[2]["probe"], "http");
    // Details keep their type: an HTTP status is a number.
    assert!(checks[2]["details"]["status"].is_u64(), "{v:#}");
}

#[test]
fn checks_run_side_by_side_each_under_its_own_timeout() {
    let hung = SilentServer::start();
    let web = HttpServer::fixed(200, "ok");
    // Two checks that hang for their whole timeout: side by side, the run takes one
    // timeout, not two.
    let file = format!(
        r#"
[checks.slow-a]
probe = "http"
params = {{ url = "http://{hung}/" }}
timeout = "1500ms"

[checks.slow-b]
probe = "redis"
params = {{ address = "{hung}" }}
timeout = "1500ms"

[checks.web]
probe = "http"
params = {{ url = "{}" }}
timeout = "1s"
"#,
        web.url("/"),
        hung = hung.addr,
    );
    run_checks(&file, &[])
        .expect(
            1,
            "unhealthy: 2 of 3 checks failed: slow-a: ",
            &["timeout after 1.5s", "slow-b: ", "timeout after 1.5s"],
        )
        .within(Duration::from_millis(1500) + SLACK);
}

#[test]
fn a_degraded_check_passes_with_a_warning() {
    let wasm = support::third_party_probe();
    let server = HttpServer::fixed(200, r#"{"queue":{"depth":500}}"#);
    let file = format!(
        r#"
[checks.queue]
probe = "{}"
params = {{ url = "{}", pointer = "/queue/depth" }}

[checks.up]
probe = "tcp"
params = {{ address = "{}" }}
"#,
        wasm.display(),
        server.url("/"),
        server.addr
    );
    run_checks(&file, &[]).expect(
        0,
        "degraded: 2 checks passed, 1 degraded: queue: queue depth 500 at /queue/depth (warn 100, critical 1000)",
        &[],
    );
}

#[test]
fn a_bad_checks_file_is_refused_with_where_the_mistake_is() {
    let bad = |text: &str, needles: &[&str]| {
        run_checks(text, &[]).expect(3, "error: checks file ", needles);
    };
    bad(
        "[checks.api]\nprobe = \"http\"\nparams = { url = \"http://127.0.0.1:1/\" }\ntimeuot = \"2s\"\n",
        &["unknown key `timeuot`", "line"],
    );
    bad(
        "[checks.api]\nprobe = \"nosuch.wasm\"\n",
        &["[checks.api]: probe: unknown probe 'nosuch.wasm'"],
    );
    bad(
        "[checks.api]\nprobe = \"tcp\"\nallow-net = [\"not a grant!\"]\n",
        &["[checks.api]: allow-net"],
    );
    bad("[defaults]\ntimeout = \"1s\"\n", &["no checks"]);
    // A check whose parameters the probe refuses: the run says which check.
    run_checks(
        "[checks.api]\nprobe = \"tcp\"\nparams = { port = \"1\" }\n",
        &[],
    )
    .expect(3, "error: 1 of 1 check could not run: api: ", &["port"]);
    healthprobe(["run", "--config", "/nonexistent/checks.toml"]).expect(
        3,
        "error: checks file /nonexistent/checks.toml: cannot read it",
        &[],
    );
}
