//! Secrets by reference (`KEY@file=PATH`, `KEY@env=VAR`, `{ file = … }`, `{ env = … }`)
//! and their redaction: a hostile probe that puts every value it was given into its
//! message, details, output and errors, and a server that echoes one back, never get a
//! secret into any output channel.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::serve::Serve;
use crate::support::{healthprobe, healthprobe_env, hostile_cwasm};

const FROM_FILE: &str = "hunter2-from-a-file";
const FROM_ENV: &str = "hunter2-from-the-env";
const BY_NAME: &str = "hunter2-given-as-password";

/// A secret file as `echo VALUE > file` or `docker secret create` leave it.
fn secret_file(dir: &std::path::Path, value: &str) -> String {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path.display().to_string()
}

fn assert_hidden(what: &str, text: &str) {
    for secret in [FROM_FILE, FROM_ENV, BY_NAME] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

#[test]
fn secrets_never_reach_the_output_of_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), FROM_FILE);
    let wasm = hostile_cwasm();
    for format in ["text", "json"] {
        let out = healthprobe_env(
            [
                "run",
                wasm.to_str().unwrap(),
                "mode=leak",
                &format!("value@file={file}"),
                "value@env=HEALTHPROBE_TEST_SECRET",
                &format!("password={BY_NAME}"),
                "--format",
                format,
                "--verbose",
            ],
            &[("HEALTHPROBE_TEST_SECRET", FROM_ENV)],
        );
        assert_eq!(out.code, 1, "{out:#?}");
        // The probe did get the values: it leaked three of them, each redacted.
        assert!(
            out.stdout
                .contains("leaking [redacted] [redacted] [redacted]"),
            "{out:#?}"
        );
        assert!(out.stderr.contains("stderr: [redacted]"), "{out:#?}");
        assert_hidden("run's stdout", &out.stdout);
        assert_hidden("run's stderr", &out.stderr);
    }
    // An error the probe words with the value.
    let out = healthprobe([
        "run",
        wasm.to_str().unwrap(),
        "mode=leak-error",
        &format!("value@file={file}"),
    ]);
    out.expect(
        3,
        "error: hostile: invalid value for parameter 'value': '[redacted]'",
        &[],
    );
    assert_hidden("run's error", &out.stdout);
}

#[test]
fn a_missing_secret_is_exit_3_naming_the_parameter_and_its_source() {
    let wasm = hostile_cwasm();
    healthprobe([
        "run",
        wasm.to_str().unwrap(),
        "mode=echo",
        "value@file=/nonexistent/db-password",
    ])
    .expect(
        3,
        "error: ",
        &["parameter value: file /nonexistent/db-password: cannot read it"],
    );
    healthprobe([
        "run",
        wasm.to_str().unwrap(),
        "mode=echo",
        "value@env=HEALTHPROBE_TEST_NOT_SET",
    ])
    .expect(
        3,
        "error: ",
        &["parameter value: environment variable HEALTHPROBE_TEST_NOT_SET: not set"],
    );
    healthprobe(["run", wasm.to_str().unwrap(), "mode=echo", "value@vault=x"]).expect(
        3,
        "error: ",
        &["KEY@file=PATH or KEY@env=VARIABLE"],
    );
}

/// A server that echoes what it gets: the bundled tcp probe sends the secret, and quotes
/// the echo in its mismatch message, which the host redacts.
#[test]
fn a_server_echoing_a_secret_does_not_leak_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0; 256];
            if let Ok(n @ 1..) = conn.read(&mut buf) {
                let _ = conn.write_all(&buf[..n]);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), FROM_FILE);
    let out = healthprobe([
        "run".to_string(),
        "tcp".into(),
        format!("address={addr}"),
        format!("send@file={file}"),
        "expect=^NOT-THE-ECHO".into(),
        "--format=json".into(),
    ]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("[redacted]"), "{out:#?}");
    assert_hidden("the tcp probe's verdict", &out.stdout);
}

/// `serve`: a check and a module with secrets from files; no endpoint and no log line
/// shows them. A checks file naming a secret that cannot be read is refused.
#[test]
fn secrets_never_reach_serves_endpoints_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), FROM_FILE);
    let wasm = hostile_cwasm();
    let serve = Serve::start(&format!(
        r#"
[checks.leaky]
probe = "{wasm}"
interval = "200ms"
params = {{ mode = "leak", value = {{ file = "{file}" }}, password = "{BY_NAME}" }}

[modules.leaky]
probe = "{wasm}"
target = "name"
params = {{ mode = "leak", value = {{ file = "{file}" }} }}
"#,
        wasm = wasm.display()
    ));
    serve.wait_for("/health", |b| b.contains("leaking"));
    let log = serve.log_contains("check leaky is now unhealthy");
    assert!(log.contains("[redacted]"), "{log}");
    assert_hidden("serve's log", &log);
    for path in [
        "/health",
        "/readyz?verbose",
        "/readyz/leaky",
        "/metrics",
        "/probe?module=leaky&target=x",
    ] {
        let (_, _, body) = serve.get(path);
        assert_hidden(path, &body);
    }
    let (_, _, probe) = serve.get("/probe?module=leaky&target=x");
    assert!(probe.contains("[redacted]"), "{probe}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[checks.db]\nprobe = \"tcp\"\nparams = { address = \"127.0.0.1:1\", send = { file = \"/nonexistent/pw\" } }\n",
    )
    .unwrap();
    healthprobe(["run", "--config", bad.to_str().unwrap()]).expect(
        3,
        "error: ",
        &["[checks.db]: params.send: file /nonexistent/pw: cannot read it"],
    );
}
