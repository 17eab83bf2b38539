//! `serve`'s `/probe` as a drop-in for blackbox_exporter: every answer passes Prometheus's
//! own linter (`promtool check metrics`), and Debian's Prometheus, scraping blackbox_exporter
//! and `healthprobe serve` for the same targets and loading the same alert rules (written
//! for blackbox_exporter's metric names), fires the same alerts for both.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::serve::{Serve, http_get, start_prometheus};
use crate::support::{self, HttpServer, SilentServer};

/// A Debian tool the tests need, or `None` (skip) outside CI; in CI its absence fails.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = support::which(name);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is missing (scripts/test installs {package})"
        );
        eprintln!("skipped: no {name} (Debian package {package})");
    }
    found
}

/// `promtool check metrics` of `text`: its complaints, empty when clean.
fn promtool(promtool: &Path, text: &str) -> String {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        String::new()
    } else {
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

/// Every bundled probe's `/probe` answer, healthy and failing, the example probes' and a
/// flood of details, and `/metrics`: all clean under `promtool check metrics`.
#[test]
fn every_answer_passes_promtool() {
    let Some(promtool_bin) = tool("promtool", "prometheus") else {
        return;
    };
    let web = HttpServer::start(|_| {
        (
            200,
            vec![(
                "Last-Modified".into(),
                "Wed, 21 Oct 2015 07:28:00 GMT".into(),
            )],
            "ok".into(),
        )
    });
    let pki = crate::tls::Pki::new();
    let https = crate::tls::HttpsServer::start(&pki.server, None);
    let grpc = crate::grpc::HealthServer::start_with(None, None);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    // The example probes' servers, kept to the end of the test.
    let mut servers = Vec::new();
    let mut modules = String::new();
    let mut requests = Vec::new();
    let mut module =
        |name: &str, probe: &str, target_param: &str, extra: &str, targets: &[&str]| {
            modules.push_str(&format!(
                "[modules.{name}]\nprobe = \"{probe}\"\ntarget = \"{target_param}\"\n\
             timeout = \"60s\"\ntls-ca = \"{}\"\n{extra}\n",
                pki.ca.display()
            ));
            for t in targets {
                requests.push(format!("/probe?module={name}&target={t}"));
            }
        };
    let url = web.url("/health");
    module(
        "http",
        "http",
        "url",
        "",
        &[&url, &format!("http://{closed}/")],
    );
    if let Some(https) = &https {
        module(
            "https",
            "http",
            "url",
            "",
            &[&format!("https://127.0.0.1:{}/", https.port)],
        );
    }
    let web_addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    module("tcp", "tcp", "address", "", &[&web_addr, &closed]);
    module("dns", "dns", "name", "", &["localhost", "nosuch.invalid"]);
    module(
        "grpc",
        "grpc",
        "address",
        "",
        &[grpc.address().trim_start_matches("address="), &closed],
    );
    for probe in [
        "redis",
        "postgres",
        "mysql",
        "memcached",
        "mqtt",
        "nats",
        "zookeeper",
        "smtp",
        "ldap",
        "amqp",
    ] {
        module(probe, probe, "address", "", &[&closed]);
    }
    module(
        "file",
        "file",
        "path",
        &format!("allow-read = [\"{}\"]", dir.path().display()),
        &[&dir.path().display().to_string()],
    );
    module(
        "details",
        &support::hostile_cwasm().display().to_string(),
        "count",
        "params = { mode = \"details\" }",
        &["100"],
    );
    if let Some(examples) = crate::languages::examples() {
        let metrics = HttpServer::fixed(200, "# TYPE queue_depth gauge\nqueue_depth 3\n");
        let health = HttpServer::fixed(200, r#"{"status":"UP","components":{}}"#);
        module(
            "python",
            &examples
                .join("prometheus-threshold.wasm")
                .display()
                .to_string(),
            "url",
            "params = { metric = \"queue_depth\" }",
            &[&metrics.url("/")],
        );
        module(
            "javascript",
            &examples.join("actuator-health.wasm").display().to_string(),
            "url",
            "",
            &[&health.url("/")],
        );
        module(
            "c",
            &examples.join("http-latency.wasm").display().to_string(),
            "url",
            "",
            &[&health.url("/")],
        );
        servers.extend([metrics, health]);
    }
    let serve = Serve::start(&modules);
    let mut complaints = Vec::new();
    for request in &requests {
        let (code, _, body) = serve.get(request);
        assert_eq!(code, 200, "{request}: {body}");
        let found = promtool(&promtool_bin, &body);
        if !found.is_empty() {
            complaints.push(format!("{request}:\n{found}\n{body}"));
        }
    }
    let (_, _, metrics) = serve.get("/metrics");
    let found = promtool(&promtool_bin, &metrics);
    if !found.is_empty() {
        complaints.push(format!("/metrics:\n{found}"));
    }
    assert!(complaints.is_empty(), "{}", complaints.join("\n\n"));

    // What the names promise: the http probe's answer in blackbox_exporter's terms.
    let (_, _, body) = serve.get(&format!("/probe?module=http&target={url}"));
    let sample = |name: &str| crate::serve::sample(&body, name);
    assert_eq!(sample("probe_http_status_code"), 200.0, "{body}");
    assert_eq!(sample("probe_http_uncompressed_body_length"), 2.0, "{body}");
    assert_eq!(sample("probe_http_ssl"), 0.0, "{body}");
    assert_eq!(sample("probe_ip_protocol"), 4.0, "{body}");
    assert_eq!(
        sample("probe_http_last_modified_timestamp_seconds"),
        1_445_412_480.0,
        "{body}"
    );
    assert!(
        body.contains("probe_http_duration_seconds{phase=\"connect\"}"),
        "{body}"
    );
    assert!(!body.contains("_ms "), "{body}");
    if let Some(https) = &https {
        let (_, _, body) = serve.get(&format!(
            "/probe?module=https&target=https://127.0.0.1:{}/",
            https.port
        ));
        let sample = |name: &str| crate::serve::sample(&body, name);
        assert_eq!(sample("probe_http_ssl"), 1.0, "{body}");
        assert!(
            sample("probe_ssl_earliest_cert_expiry") > crate::tls::now() as f64,
            "{body}"
        );
        assert!(
            body.contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"),
            "{body}"
        );
    }
}

/// A Prometheus scraping blackbox_exporter and healthprobe for the same four targets (a
/// healthy server, a 500, one that never answers, an HTTPS one whose certificate expires
/// in ten days), with the same rules: the same alerts fire for both exporters.
#[test]
fn the_same_alerts_fire_for_blackbox_exporter_and_healthprobe() {
    let (Some(prometheus), Some(blackbox)) = (
        tool("prometheus", "prometheus"),
        tool(
            "prometheus-blackbox-exporter",
            "prometheus-blackbox-exporter",
        ),
    ) else {
        return;
    };
    let pki = crate::tls::Pki::new();
    let Some(https) = crate::tls::HttpsServer::start(&pki.soon, None) else {
        return;
    };
    let healthy = HttpServer::fixed(200, "ok");
    let failing = HttpServer::fixed(500, "down");
    let hung = SilentServer::start();
    let targets = [
        healthy.url("/"),
        failing.url("/"),
        format!("http://{}/", hung.addr),
        format!("https://127.0.0.1:{}/", https.port),
    ];
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.ca.display();

    let bb_config = dir.path().join("blackbox.yml");
    std::fs::write(
        &bb_config,
        format!(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n    http:\n      \
             preferred_ip_protocol: ip4\n      tls_config:\n        ca_file: {ca}\n"
        ),
    )
    .unwrap();
    let bb = Exporter::start(&blackbox, &bb_config);
    let serve = Serve::start(&format!(
        "[modules.http_2xx]\nprobe = \"http\"\ntarget = \"url\"\ntimeout = \"2s\"\n\
         tls-ca = \"{ca}\"\n"
    ));

    let rules = dir.path().join("rules.yml");
    // Rules as shared for blackbox_exporter (the awesome-prometheus-alerts collection's
    // blackbox group), written for its metric names.
    std::fs::write(
        &rules,
        r#"groups:
  - name: blackbox
    rules:
      - alert: BlackboxProbeFailed
        expr: probe_success == 0
      - alert: BlackboxSlowProbe
        expr: avg_over_time(probe_duration_seconds[1m]) > 1
      - alert: BlackboxProbeHttpFailure
        expr: probe_http_status_code <= 199 OR probe_http_status_code >= 400
      - alert: BlackboxSslCertificateWillExpireSoon
        expr: 3 <= round((last_over_time(probe_ssl_earliest_cert_expiry[10m]) - time()) / 86400, 0.1) < 20
      - alert: BlackboxSslCertificateExpired
        expr: round((last_over_time(probe_ssl_earliest_cert_expiry[10m]) - time()) / 86400, 0.1) < 0
"#,
    )
    .unwrap();
    let job = |name: &str, exporter: &str| {
        format!(
            r#"
  - job_name: {name}
    metrics_path: /probe
    params: {{ module: [http_2xx] }}
    static_configs: [{{ targets: [{targets}] }}]
    relabel_configs:
      - {{ source_labels: [__address__], target_label: __param_target }}
      - {{ source_labels: [__param_target], target_label: instance }}
      - {{ target_label: __address__, replacement: "{exporter}" }}"#,
            targets = targets
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 3s\n  scrape_timeout: 3s\n  evaluation_interval: 1s\n\
             rule_files: [\"{}\"]\nscrape_configs:{}{}\n",
            rules.display(),
            job("blackbox", &bb.addr),
            job("healthprobe", &serve.addr)
        ),
    )
    .unwrap();
    let (mut child, addr) = start_prometheus(&prometheus, &config, dir.path());

    let firing = |job: &str| -> Option<BTreeSet<(String, String)>> {
        let (_, _, body) = http_get(&addr, "/api/v1/alerts", "")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(
            v["data"]["alerts"]
                .as_array()?
                .iter()
                .filter(|a| a["labels"]["job"] == job && a["state"] == "firing")
                .map(|a| {
                    let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
                    (label("alertname"), label("instance"))
                })
                .collect(),
        )
    };
    let alert = |name: &str, target: &String| (name.to_string(), target.clone());
    let expected: BTreeSet<_> = [
        alert("BlackboxProbeFailed", &targets[1]),
        alert("BlackboxProbeHttpFailure", &targets[1]),
        alert("BlackboxProbeFailed", &targets[2]),
        alert("BlackboxProbeHttpFailure", &targets[2]),
        alert("BlackboxSlowProbe", &targets[2]),
        alert("BlackboxSslCertificateWillExpireSoon", &targets[3]),
    ]
    .into();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = (None, None);
    while Instant::now() < deadline {
        seen = (firing("blackbox"), firing("healthprobe"));
        if seen.0.as_ref() == Some(&expected) && seen.1.as_ref() == Some(&expected) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen.0.as_ref(),
        Some(&expected),
        "blackbox_exporter's alerts"
    );
    assert_eq!(
        seen.1, seen.0,
        "healthprobe's alerts, then blackbox_exporter's"
    );
}

/// A running blackbox_exporter, killed on drop.
struct Exporter {
    child: Child,
    addr: String,
}

impl Exporter {
    /// Starts it with `config` on a free loopback port and waits until it answers.
    fn start(binary: &Path, config: &Path) -> Exporter {
        for _ in 0..5 {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string();
            let mut child = Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--web.listen-address={addr}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start blackbox_exporter");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if http_get(&addr, "/-/healthy", "").is_some_and(|(code, _, _)| code == 200) {
                    return Exporter { child, addr };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("blackbox_exporter never answered");
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
