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
