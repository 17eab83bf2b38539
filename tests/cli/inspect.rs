//! `list` and `inspect`: what probes are, and what they ask for.

use crate::support::{guest, healthprobe};

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
fn wit_prints_the_package_probes_are_written_against() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/probe.wit");
    let expected = std::fs::read_to_string(repo).unwrap();
    let out = healthprobe(["wit"]);
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stdout.trim_end(), expected.trim_end());
    assert!(out.stdout.contains("package healthprobe:probe@0.1.1;"));

    // Into a directory that does not exist yet, ready for `wit-bindgen` or componentize-py.
    let dir = tempfile::tempdir().unwrap();
    let wit_dir = dir.path().join("deep").join("wit");
    let out = healthprobe(["wit".as_ref(), "-o".as_ref(), wit_dir.as_os_str()]);
    out.expect(0, "wrote healthprobe:probe@0.1.1 to ", &["probe.wit"]);
    assert_eq!(
        std::fs::read_to_string(wit_dir.join("probe.wit")).unwrap(),
        expected
    );
    let tls = std::fs::read_to_string(wit_dir.join("deps/tls/tls.wit")).unwrap();
    assert!(tls.contains("package healthprobe:tls@0.1.0;"), "{tls}");

    // A directory that cannot be made: exit 3 naming the path.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let blocked = file.join("wit");
    healthprobe(["wit".as_ref(), "-o".as_ref(), blocked.as_os_str()]).expect(
        3,
        "error: wit: cannot write ",
        &["a-file/wit/probe.wit", "choose a directory"],
    );
}

#[test]
fn inspect_compiles_through_the_cache_that_run_then_uses() {
    let wasm = guest("hostile");
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let flag = ["--cache-dir", cache_dir.to_str().unwrap()];
    let inspect = |format: &str| {
        healthprobe(
            ["inspect", wasm.to_str().unwrap(), "--format", format]
                .into_iter()
                .chain(flag),
        )
    };
    let first = inspect("text");
    assert_eq!(first.code, 0, "{first:#?}");
    assert!(
        first
            .stdout
            .contains("code:    compiled, stored in the compile cache"),
        "{first:#?}"
    );
    let second = inspect("json");
    assert_eq!(second.code, 0, "{second:#?}");
    let v: serde_json::Value = serde_json::from_str(&second.stdout).expect("JSON");
    assert!(
        v["code"]
            .as_str()
            .unwrap()
            .starts_with("loaded from the compile cache"),
        "{v}"
    );
    let run = healthprobe(
        [
            "run",
            wasm.to_str().unwrap(),
            "mode=echo",
            "value=x",
            "--verbose",
        ]
        .into_iter()
        .chain(flag),
    );
    run.expect(0, "healthy: hostile: ", &["x"]);
    assert!(
        run.stderr.contains("loaded from the compile cache"),
        "{run:#?}"
    );
}
