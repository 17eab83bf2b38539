//! The zombie regression (openzipkin/zipkin#3670), reproduced without Docker.

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
    let v = crate::support::harness_result(&out, "zombie regression")?;
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
