//! No DNS query leaves for a name the network policy did not grant, whatever its spelling.
//!
//! A refused lookup is not enough: the query itself can carry data out of the machine,
//! so it must never be sent. tests/dns/harness.py runs every case in a private network
//! namespace where every address is local and a DNS server on port 53 logs each question,
//! so a query to any resolver at all is seen and none can reach a real one.

use serde_json::{Value, json};

use crate::support::hostile_cwasm;

/// What a case must end with besides its DNS queries.
struct Verdict {
    code: i32,
    prefix: &'static str,
    needles: Vec<String>,
}

/// One command line run in the namespace, and what it must do there.
struct Case {
    label: String,
    argv: Vec<String>,
    verdict: Verdict,
    /// `None`: no query at all. `Some(name)`: a query for `name` must be seen (a positive
    /// control, which shows the harness sees the product's queries).
    queried: Option<&'static str>,
}

fn denied_lookup(prefix: &'static str, name: &str) -> Verdict {
    Verdict {
        code: 1,
        prefix,
        needles: vec![format!(
            "name lookup of {name} denied by network policy; grant it with --allow-net {name}"
        )],
    }
}

fn healthy(prefix: &'static str, needles: &[&str]) -> Verdict {
    Verdict {
        code: 0,
        prefix,
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

fn unhealthy(prefix: &'static str, needles: &[&str]) -> Verdict {
    Verdict {
        code: 1,
        ..healthy(prefix, needles)
    }
}

/// `{port}` is the harness's HTTP server on 127.0.0.1 inside the namespace.
fn cases() -> Vec<Case> {
    let bin = env!("CARGO_BIN_EXE_healthprobe").to_string();
    let hostile = hostile_cwasm().to_str().unwrap().to_string();
    let mut cases = Vec::new();
    let mut case = |args: &[&str], verdict: Verdict, queried: Option<&'static str>| {
        let (label, argv) = match args {
            ["hostile", rest @ ..] => (
                format!("hostile {}", rest.join(" ")),
                [bin.clone(), "run".into(), hostile.clone()]
                    .into_iter()
                    .chain(rest.iter().map(|a| a.to_string()))
                    .collect(),
            ),
            _ => (
                args.join(" "),
                std::iter::once(bin.clone())
                    .chain(args.iter().map(|a| a.to_string()))
                    .collect(),
            ),
        };
        cases.push(Case {
            label,
            argv,
            verdict,
            queried,
        });
    };

    // Names the default policy does not grant, through the `http` import: refused by the
    // host before ureq's resolver, in every spelling a resolver would still send. The
    // IP-like ones are addresses to inet_aton and to URL parsers but not literals to the
    // policy: names, which need a grant like any other.
    for name in [
        "EXAMPLE.test",
        "example.test.",
        "xn--bcher-kva.test",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "017700000001",
    ] {
        let url = format!("url=http://{name}:{{port}}/");
        case(
            &["run", "http", &url],
            denied_lookup("unhealthy: http: ", name),
            None,
        );
    }
    // A Unicode host is not a valid URI to the host's client: refused before any policy.
    case(
        &["run", "http", "url=http://bücher.test:{port}/"],
        unhealthy("unhealthy: http: ", &["invalid URL"]),
        None,
    );
    // IP literals with a trailing dot are the address: used, never handed to a resolver.
    case(
        &["run", "http", "url=http://127.0.0.1.:{port}/"],
        healthy("healthy: http: ", &["HTTP 200"]),
        None,
    );
    case(
        &["run", "http", "url=http://10.0.0.1.:{port}/"],
        unhealthy(
            "unhealthy: http: ",
            &["connection to 10.0.0.1:", "denied by network policy"],
        ),
        None,
    );
    // `localhost` is the default's one name, and always loopback: answered without DNS
    // in every spelling the policy accepts. glibc reads /etc/hosts only for the exact
    // name, and would send `localhost.` to DNS with the letter case the probe chose.
    for name in ["localhost", "localhost.", "LOCALHOST."] {
        let url = format!("url=http://{name}:{{port}}/");
        case(
            &["run", "http", &url],
            healthy("healthy: http: ", &["HTTP 200"]),
            None,
        );
    }

    // The same through WASI's ip-name-lookup. wasmtime-wasi maps names with UTS #46
    // before its resolver (fullwidth letters, the ideographic full stop), so those
    // spellings of a `.test` name, which this DNS server would answer, must be refused
    // as given.
    for name in [
        "EXAMPLE.test",
        "example.test.",
        "xn--bcher-kva.test",
        "bücher.test",
        "ｅｘａｍｐｌｅ．ｔｅｓｔ",
        "example。test",
        "localhost。",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "017700000001",
    ] {
        let param = format!("name={name}");
        case(
            &["hostile", "mode=resolve", &param],
            denied_lookup("unhealthy: hostile: ", name),
            None,
        );
    }
    case(
        &["hostile", "mode=resolve", "name=127.0.0.1."],
        healthy(
            "healthy: hostile: ",
            &["resolved 127.0.0.1. to [127.0.0.1:80]"],
        ),
        None,
    );
    for name in ["localhost", "localhost.", "LOCALHOST."] {
        let param = format!("name={name}");
        case(
            &["hostile", "mode=resolve", &param],
            healthy("healthy: hostile: ", &["127.0.0.1:80"]),
            None,
        );
    }
    // Bundled probes that resolve through WASI.
    case(
        &["run", "dns", "name=EXAMPLE.test."],
        denied_lookup("unhealthy: dns: ", "EXAMPLE.test."),
        None,
    );
    case(
        &["run", "tcp", "address=example.test.:{port}"],
        denied_lookup("unhealthy: tcp: ", "example.test."),
        None,
    );
    case(
        &["run", "tcp", "address=localhost.:{port}"],
        healthy("healthy: tcp: ", &[]),
        None,
    );

    // Positive controls: granted, the same lookups are sent and answered. A name grant is
    // resolved when the run starts; `*` resolves nothing then, so its query can only come
    // from the probe's own lookup.
    case(
        &[
            "run",
            "http",
            "url=http://example.test:{port}/",
            "--allow-net",
            "example.test:{port}",
        ],
        healthy("healthy: http: ", &["HTTP 200"]),
        Some("example.test"),
    );
    case(
        &[
            "run",
            "http",
            "url=http://ExAmPlE.test:{port}/",
            "--allow-net",
            "example.test:{port}",
        ],
        healthy("healthy: http: ", &["HTTP 200"]),
        Some("example.test"),
    );
    case(
        &[
            "hostile",
            "mode=resolve",
            "name=ExAmPlE.test",
            "--allow-net",
            "example.test",
        ],
        healthy(
            "healthy: hostile: ",
            &["resolved ExAmPlE.test to [127.0.0.1:80]"],
        ),
        Some("example.test"),
    );
    case(
        &[
            "run",
            "http",
            "url=http://example.test:{port}/",
            "--allow-net",
            "*",
        ],
        healthy("healthy: http: ", &["HTTP 200"]),
        Some("example.test"),
    );
    case(
        &[
            "hostile",
            "mode=resolve",
            "name=example.test",
            "--allow-net",
            "example.test",
        ],
        healthy(
            "healthy: hostile: ",
            &["resolved example.test to [127.0.0.1:80]"],
        ),
        Some("example.test"),
    );
    case(
        &[
            "hostile",
            "mode=resolve",
            "name=example.test",
            "--allow-net",
            "*",
        ],
        healthy(
            "healthy: hostile: ",
            &["resolved example.test to [127.0.0.1:80]"],
        ),
        Some("example.test"),
    );
    cases
}

/// Runs tests/dns/harness.py on `cases` and returns each case's result, in order, or
/// `None` when the harness had to skip (not root, no unshare).
fn run_in_namespace(cases: &[Case]) -> Option<Vec<Value>> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let input: Vec<Value> = cases
        .iter()
        .map(|c| json!({"label": c.label, "argv": c.argv}))
        .collect();
    let harness = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/dns/harness.py");
    // The harness passes its environment on to every case: the same as `support::healthprobe`.
    let mut child = Command::new("python3")
        .arg(harness)
        .env_remove("HEALTHPROBE_CACHE_DIR")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache"),
        )
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 tests/dns/harness.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = crate::support::harness_result(&out, "DNS leak test")?;
    let results = v["cases"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), cases.len(), "{v}");
    Some(results)
}

#[test]
fn dns_leak_no_query_leaves_for_a_name_not_granted() {
    let cases = cases();
    let Some(results) = run_in_namespace(&cases) else {
        return;
    };
    // Every case is checked before failing, so one run names every leak at once.
    let mut failures = Vec::new();
    for (case, r) in cases.iter().zip(&results) {
        let names: Vec<&str> = r["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["name"].as_str().unwrap_or("<no question>"))
            .collect();
        match case.queried {
            None if !names.is_empty() => failures.push(format!(
                "{}: DNS queries sent for {names:?}; result: {r}",
                case.label
            )),
            Some(name) if names.is_empty() => failures.push(format!(
                "{}: positive control, yet no query for {name} was seen: the harness \
                 does not see the product's queries; result: {r}",
                case.label
            )),
            // In lower case whatever the probe wrote: letter case would be a channel out.
            Some(name) if names.iter().any(|n| *n != name) => failures.push(format!(
                "{}: queries {names:?}, expected only {name}, in lower case; result: {r}",
                case.label
            )),
            _ => {}
        }
        let stdout = r["stdout"].as_str().unwrap_or_default();
        let v = &case.verdict;
        if r["code"] != v.code
            || !stdout.starts_with(v.prefix)
            || stdout.lines().count() != 1
            || v.needles.iter().any(|n| !stdout.contains(n.as_str()))
        {
            failures.push(format!(
                "{}: expected exit {} and one line starting {:?} containing {:?}; result: {r}",
                case.label, v.code, v.prefix, v.needles
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
