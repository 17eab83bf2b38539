//! Integrity and policy files: the `--sha256` pin and `--policy`.

use crate::support::{self, SilentServer, guest, healthprobe, temp_file};

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

#[test]
fn a_cwasm_is_hashed_only_when_pinned_or_verbose() {
    let cwasm = support::hostile_cwasm();
    let digest = sha256_of(&cwasm);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", cwasm.to_str().unwrap(), "mode=echo", "value=ok"];
        args.extend(extra);
        healthprobe(args)
    };
    // Mapped, not read: nothing to name.
    let plain = run(&[]);
    plain.expect(0, "healthy: hostile: ", &["ok"]);
    let verbose = run(&["--verbose"]);
    verbose.expect(0, "healthy: hostile: ", &["ok"]);
    assert!(
        verbose.stderr.contains(&format!("sha256: {digest}")),
        "{verbose:#?}"
    );
    run(&["--sha256", &digest]).expect(0, "healthy: hostile: ", &["ok"]);
    let wrong = format!(
        "{}{}",
        if digest.starts_with('0') { '1' } else { '0' },
        &digest[1..]
    );
    run(&["--sha256", &wrong]).expect(3, "error: ", &["sha256 mismatch", &digest]);
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
    .expect(3, "error: ", &["unknown key `alow-read`", "line 2"]);
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
