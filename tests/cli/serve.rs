//! `serve`: checks on their intervals in the background, results over HTTP.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, HttpServer, SLACK, SilentServer, guest};

/// A running `healthprobe serve`, stopped (SIGKILL) when dropped.
pub(crate) struct Serve {
    child: Child,
    pub addr: String,
    /// The checks file.
    file: std::path::PathBuf,
    /// What it wrote on stderr so far.
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `serve` on a free loopback port with `checks` as its checks file, and waits
    /// until it answers. A port another test's server took first makes `serve` exit 3:
    /// then it starts again on another.
    pub fn start(checks: &str) -> Serve {
        Serve::start_with(checks, &[])
    }

    /// [`Serve::start`] with more arguments.
    pub(crate) fn start_with(checks: &str, extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checks.toml");
        std::fs::write(&file, checks).unwrap();
        let mut tries = 0;
        loop {
            tries += 1;
            let addr = {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            };
            let child = Command::new(env!("CARGO_BIN_EXE_healthprobe"))
                .args([
                    "serve",
                    "--config",
                    file.to_str().unwrap(),
                    "--listen",
                    &addr,
                ])
                .args(if extra.contains(&"--cache-dir") {
                    vec![]
                } else {
                    vec!["--cache-dir".into(), dir.path().join("cache")]
                })
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start healthprobe serve");
            let mut serve = Serve {
                child,
                addr,
                file: file.clone(),
                log: Arc::default(),
                _dir: tempfile::tempdir().unwrap(),
            };
            let (mut stderr, log) = (serve.child.stderr.take().unwrap(), serve.log.clone());
            std::thread::spawn(move || {
                let mut piece = [0; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut piece) {
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&piece[..n]));
                }
            });
            if serve.answers() {
                serve._dir = dir;
                return serve;
            }
            assert!(tries < 5, "serve never listened");
        }
    }

    /// Whether this `serve` (not another test's server on its port) answers, waiting up
    /// to [`support::WAIT`]; false once it has exited.
    fn answers(&mut self) -> bool {
        let deadline = Instant::now() + support::WAIT;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if TcpStream::connect(&self.addr).is_ok()
                && self
                    .get("/metrics")
                    .2
                    .contains("# TYPE process_start_time_seconds")
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("serve did not answer on {}", self.addr);
    }

    /// GET `path`: the status code, the content type and the body.
    pub fn get(&self, path: &str) -> (u16, String, String) {
        self.get_with(path, "")
    }

    /// GET `path` with `headers` (each ending in CRLF).
    fn get_with(&self, path: &str, headers: &str) -> (u16, String, String) {
        http_get(&self.addr, path, headers).expect("serve answers")
    }

    /// Polls `path` until `until` holds for its body (at most [`support::WAIT`]).
    pub fn wait_for(&self, path: &str, until: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + support::WAIT;
        loop {
            let (_, _, body) = self.get(path);
            if until(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} never got there: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most [`support::WAIT`]) until what `serve` wrote on stderr has a whole
    /// line containing `text`, and returns all of it.
    pub fn log_contains(&self, text: &str) -> String {
        let deadline = Instant::now() + support::WAIT;
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.lines().any(|l| l.contains(text)) && log.ends_with('\n') {
                return log;
            }
            assert!(Instant::now() < deadline, "no {text:?} in the log: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`TERM`, `HUP`) to `serve`, as a container runtime or an operator
    /// would; the host itself never starts a process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `healthprobe_check_runs_total` for `check` and `result`.
    fn runs(&self, check: &str, result: &str) -> u64 {
        let (_, _, metrics) = self.get("/metrics");
        let series =
            format!("healthprobe_check_runs_total{{check=\"{check}\",result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
            .parse()
            .unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn endpoints_report_each_group_and_check_in_their_formats() {
    let web = HttpServer::fixed(200, "ok");
    let serve = Serve::start(&format!(
        r#"
[defaults]
interval = "200ms"
timeout = "2s"

[checks.web]
probe = "http"
params = {{ url = "{}" }}
groups = ["liveness", "readiness"]

[checks.cache]
probe = "redis"
params = {{ address = "127.0.0.1:1" }}
"#,
        web.url("/health")
    ));
    let verbose = serve.wait_for("/readyz?verbose", |b| !b.contains("no result yet"));
    assert_eq!(
        verbose,
        "[-]cache failed: connection to 127.0.0.1:1 refused\n[+]web ok\nreadyz check failed\n"
    );
    assert_eq!(serve.get("/readyz").0, 503);
    let (code, content_type, body) = serve.get("/livez");
    assert_eq!((code, body.as_str()), (200, "ok"));
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(
        serve.get("/livez?verbose").2,
        "[+]web ok\nlivez check passed\n"
    );
    assert_eq!(serve.get("/livez/web").0, 200);
    assert_eq!(serve.get("/readyz/cache").0, 503);
    assert_eq!(
        serve.get("/livez/cache").0,
        404,
        "cache is not in the liveness group"
    );
    assert_eq!(serve.get("/nowhere").0, 404);

    let (code, content_type, body) = serve.get("/health");
    assert_eq!(
        (code, content_type.as_str()),
        (503, "application/health+json")
    );
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "fail");
    assert_eq!(health["checks"]["web:run"][0]["status"], "pass");
    assert_eq!(health["checks"]["cache:run"][0]["status"], "fail");
    assert!(
        health["checks"]["web:run"][0]["time"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let (code, content_type, metrics) = serve.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for line in [
        "healthprobe_check_success{check=\"web\"} 1",
        "healthprobe_check_success{check=\"cache\"} 0",
        "# TYPE healthprobe_check_runs_total counter",
        "# TYPE healthprobe_check_duration_seconds gauge",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line} in {metrics}");
    }
    // Each check runs again on its interval.
    let before = serve.runs("web", "healthy");
    serve.wait_for("/metrics", |_| serve.runs("web", "healthy") >= before + 2);
}

/// Isolation: a check that hangs in a host call, one that spins, one that floods sockets
/// and one that bombs memory, in the same file as a healthy check, never delay its results.
#[test]
fn a_hostile_check_never_holds_up_another() {
    let web = HttpServer::fixed(200, "ok");
    let hung = SilentServer::start();
    let sink = SilentServer::start();
    // Precompiled, so that the first runs begin at once instead of after a compile.
    let hostile = support::hostile_cwasm();
    let serve = Serve::start(&format!(
        r#"
[checks.web]
probe = "http"
params = {{ url = "{}" }}
interval = "100ms"

[checks.hung]
probe = "http"
params = {{ url = "http://{}/" }}
timeout = "6s"
interval = "100ms"

[checks.spin]
probe = "{hostile}"
params = {{ mode = "spin" }}
timeout = "6s"
fuel = 1000000000000
interval = "100ms"

[checks.flood]
probe = "{hostile}"
params = {{ mode = "sockets", address = "{}", count = "500" }}
timeout = "6s"
max-sockets = 500
interval = "100ms"

[checks.memory]
probe = "{hostile}"
params = {{ mode = "memory" }}
max-memory = "16MiB"
interval = "100ms"
"#,
        web.url("/"),
        hung.addr,
        sink.addr,
        hostile = hostile.display()
    ));
    // While three of the others hold their first runs for 6 s each and the fourth fills
    // its memory again and again, web keeps running every 100 ms: once the flood has
    // begun, five more runs of web come in before any of the three has a result.
    serve.wait_for("/readyz?verbose", |b| b.contains("[+]web ok"));
    support::wait_until("the flood's first connection", || sink.accepted() > 0);
    let before = serve.runs("web", "healthy");
    serve.wait_for("/metrics", |_| serve.runs("web", "healthy") >= before + 5);
    let others: u64 = ["hung", "spin", "flood"]
        .iter()
        .flat_map(|c| ["healthy", "degraded", "unhealthy", "error"].map(|r| serve.runs(c, r)))
        .sum();
    assert_eq!(others, 0, "web waited for the others");
    // Then the three end by their own timeouts, and say so; web is still fine.
    let verbose = serve.wait_for("/readyz?verbose", |b| {
        b.matches("timeout after 6s").count() == 3
    });
    for check in ["hung", "spin", "flood", "memory"] {
        assert!(
            verbose.contains(&format!("[-]{check} failed: ")),
            "{verbose}"
        );
    }
    assert!(verbose.contains("memory limit"), "{verbose}");
    assert!(verbose.contains("[+]web ok"), "{verbose}");
}

#[test]
fn sigterm_stops_the_server_within_a_second() {
    let web = HttpServer::fixed(200, "ok");
    let hung = SilentServer::start();
    let mut serve = Serve::start(&format!(
        "[checks.web]\nprobe = \"http\"\nparams = {{ url = \"{}\" }}\n\n\
         [modules.slow]\nprobe = \"http\"\ntarget = \"url\"\ntimeout = \"30s\"\n",
        web.url("/")
    ));
    serve.wait_for("/readyz", |b| b == "ok");
    // Even with a probe waiting on a hung server for another 30 s.
    let addr = serve.addr.clone();
    let target = format!("http://{}/", hung.addr);
    std::thread::spawn(move || {
        let _ = Command::new("curl")
            .args(["--silent", "--max-time", "40"])
            .arg(format!("http://{addr}/probe?module=slow&target={target}"))
            .output();
    });
    support::wait_until("the probe's connection", || hung.accepted() > 0);
    let start = Instant::now();
    serve.signal("TERM");
    let status = serve.child.wait().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1) + SLACK,
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    let log = serve.log_contains("stopping");
    assert!(
        log.contains("check web is now healthy: http: HTTP 200"),
        "{log}"
    );
}

#[test]
fn sighup_reloads_the_checks_file_and_a_bad_one_changes_nothing() {
    let web = HttpServer::fixed(200, "ok");
    let kept = format!(
        "[defaults]\ninterval = \"200ms\"\n\n[checks.kept]\nprobe = \"http\"\nparams = {{ url = \"{}\" }}\n",
        web.url("/")
    );
    let serve = Serve::start(&format!(
        "{kept}\n[checks.gone]\nprobe = \"tcp\"\nparams = {{ address = \"{}\" }}\n",
        web.addr
    ));
    serve.wait_for("/readyz?verbose", |b| {
        b.contains("[+]gone ok") && b.contains("[+]kept ok")
    });
    let kept_runs = serve.runs("kept", "healthy");

    // `kept` is unchanged, `gone` leaves, `added` arrives (and fails: nothing listens).
    std::fs::write(
        &serve.file,
        format!(
            "{kept}\n[checks.added]\nprobe = \"redis\"\nparams = {{ address = \"127.0.0.1:1\" }}\n"
        ),
    )
    .unwrap();
    serve.signal("HUP");
    serve.log_contains("reloaded");
    let verbose = serve.wait_for("/readyz?verbose", |b| !b.contains("no result yet"));
    assert_eq!(
        verbose,
        "[-]added failed: connection to 127.0.0.1:1 refused\n[+]kept ok\nreadyz check failed\n"
    );
    assert_eq!(serve.get("/readyz/gone").0, 404);
    let log = serve.log_contains("(added added; removed gone)");
    assert!(
        log.contains("reloaded ") && log.contains(": 2 checks, 0 modules"),
        "{log}"
    );
    // The unchanged check kept its thread, schedule and counts.
    assert!(serve.runs("kept", "healthy") >= kept_runs);
    assert!(!serve.get("/metrics").2.contains("check=\"gone\""));

    // A bad file is refused with its reason, and the checks loaded before go on.
    std::fs::write(&serve.file, "[checks.x]\nprobe = \"tcp\"\nbogus = 1\n").unwrap();
    serve.signal("HUP");
    let log = serve.log_contains("reload failed");
    assert!(
        log.contains("reload failed, still serving the checks loaded before: checks file ")
            && log.contains("unknown key `bogus`"),
        "{log}"
    );
    let before = serve.runs("kept", "healthy");
    serve.wait_for("/metrics", |_| serve.runs("kept", "healthy") >= before + 2);
    assert_eq!(serve.get("/readyz/added").0, 503);

    // A changed check starts again under its new table.
    std::fs::write(
        &serve.file,
        format!(
            "{kept}\n[checks.added]\nprobe = \"tcp\"\nparams = {{ address = \"{}\" }}\n",
            web.addr
        ),
    )
    .unwrap();
    serve.signal("HUP");
    serve.log_contains("(changed added)");
    serve.wait_for("/readyz", |b| b == "ok");
}

#[test]
fn a_bad_checks_file_or_a_taken_address_is_refused_before_serving() {
    let (_dir, file) =
        support::temp_file("checks.toml", b"[checks.a]\nprobe = \"tcp\"\nbogus = 1\n");
    support::healthprobe(["serve", "--config", file.to_str().unwrap()]).expect(
        3,
        "error: serve: checks file ",
        &["unknown key `bogus`", "line 3"],
    );
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let (_dir, file) = support::temp_file("checks.toml", b"[checks.a]\nprobe = \"tcp\"\n");
    let addr = taken.local_addr().unwrap().to_string();
    support::healthprobe([
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--listen",
        &addr,
    ])
    .expect(3, "error: serve: cannot listen on ", &[&addr, "--listen"]);
    // More probes at once than the server's pools leave room for.
    support::healthprobe([
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--max-probes",
        "501",
    ])
    .expect(3, "error: ", &["--max-probes", "501", "1..=500"]);
    support::healthprobe([
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--max-check-runs",
        "0",
    ])
    .expect(3, "error: ", &["--max-check-runs", "1..=500"]);
    // A file of more checks than one server runs is refused with the reason, not carried
    // until something gives way.
    let mut many = String::new();
    for i in 0..=100_000 {
        many.push_str(&format!(
            "[checks.c{i}]\nprobe = \"tcp\"\nparams = {{ address = \"127.0.0.1:1\" }}\n"
        ));
    }
    let (_dir, file) = support::temp_file("checks.toml", many.as_bytes());
    support::healthprobe(["serve", "--config", file.to_str().unwrap()]).expect(
        3,
        "error: serve: 100001 checks in one file, more than the 100000 one server runs",
        &["split them over several servers"],
    );
}

/// GET `path` from `addr` with `headers` (each ending in CRLF), through `curl`: a strict
/// client, so a malformed answer fails the test. The status code, the content type and
/// the body; `None` if nothing answered.
pub(crate) fn http_get(addr: &str, path: &str, headers: &str) -> Option<(u16, String, String)> {
    let mut curl = Command::new("curl");
    curl.args(["--silent", "--show-error", "--max-time", "10"])
        // The status line and the content type on stderr, the body alone on stdout.
        .args(["--write-out", "%{stderr}%{http_code}\n%{content_type}"]);
    for header in headers.split("\r\n").filter(|h| !h.is_empty()) {
        curl.args(["--header", header]);
    }
    let out = curl.arg(format!("http://{addr}{path}")).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let meta = String::from_utf8(out.stderr).ok()?;
    let (code, content_type) = meta.split_once('\n')?;
    Some((
        code.parse().ok()?,
        content_type.to_string(),
        String::from_utf8(out.stdout).ok()?,
    ))
}

/// The value of an unlabelled series in a Prometheus text answer.
pub(crate) fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .parse()
        .unwrap()
}

#[test]
fn probe_runs_a_module_now_like_blackbox_exporter_within_its_grants() {
    let web = HttpServer::fixed(200, "ok");
    let hung = SilentServer::start();
    let elsewhere = SilentServer::start();
    let serve = Serve::start_with(
        &format!(
            r#"
[checks.web]
probe = "http"
params = {{ url = "{}" }}

[modules.http_2xx]
probe = "http"
target = "url"
timeout = "4s"
allow-net = ["{}", "{}"]
"#,
            web.url("/"),
            web.addr,
            hung.addr
        ),
        &["--max-probes", "1"],
    );
    let probe = |target: &str| format!("/probe?module=http_2xx&target={target}");
    let (code, content_type, body) = serve.get(&probe(&web.url("/metrics")));
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert_eq!(sample(&body, "probe_success"), 1.0, "{body}");
    assert_eq!(sample(&body, "probe_http_status_code"), 200.0, "{body}");
    assert!(sample(&body, "probe_duration_seconds") > 0.0);
    assert!(body.starts_with("# healthy: http: HTTP 200"), "{body}");

    // Only where the module's grants allow: the target is no open proxy.
    let (code, _, body) = serve.get(&probe(&format!("http://{}/", elsewhere.addr)));
    assert_eq!((code, sample(&body, "probe_success")), (200, 0.0), "{body}");
    assert!(body.contains("denied by network policy"), "{body}");
    assert_eq!(elsewhere.accepted(), 0);

    assert_eq!(serve.get("/probe?module=nope&target=x").0, 400);
    assert_eq!(serve.get("/probe?module=http_2xx").0, 400);

    // Prometheus's scrape timeout, less half a second, when shorter than the module's.
    let start = Instant::now();
    let (_, _, body) = serve.get_with(
        &probe(&format!("http://{}/", hung.addr)),
        "X-Prometheus-Scrape-Timeout-Seconds: 1.5\r\n",
    );
    assert!(
        start.elapsed() < Duration::from_secs(1) + SLACK,
        "{:?}",
        start.elapsed()
    );
    assert_eq!(sample(&body, "probe_success"), 0.0);
    assert!(body.contains("timeout after 1s"), "{body}");
    // Each run has its own log of denials: the earlier request's is not in this answer.
    assert!(!body.contains("denied"), "{body}");

    // One probe at a time (--max-probes 1): one more is turned away at once.
    let held = hung.accepted();
    std::thread::scope(|s| {
        let first = s.spawn(|| serve.get(&probe(&format!("http://{}/", hung.addr))));
        support::wait_until("the first probe's connection", || hung.accepted() > held);
        let (code, _, body) = serve.get(&probe(&web.url("/")));
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("--max-probes"), "{body}");
        assert_eq!(first.join().unwrap().0, 200);
    });
}

/// /probe requests share one runtime: guests that spin for their whole timeout, more of
/// them than the machine has cores, do not hold up a probe of another module.
#[test]
fn spinning_probes_never_hold_up_another_probe() {
    let web = HttpServer::fixed(200, "ok");
    let serve = Serve::start(&format!(
        r#"
[modules.spin]
probe = "{}"
target = "value"
timeout = "3s"
fuel = 1000000000000
params = {{ mode = "spin" }}

[modules.http_2xx]
probe = "http"
target = "url"
"#,
        guest("hostile").display()
    ));
    // Compiled and linked by one short probe first, so that the ones below spin at once
    // instead of compiling while the other probe is answered.
    let (code, _, body) = serve.get_with(
        "/probe?module=spin&target=x",
        "X-Prometheus-Scrape-Timeout-Seconds: 1\r\n",
    );
    assert_eq!((code, sample(&body, "probe_success")), (200, 0.0), "{body}");
    let spinners = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    std::thread::scope(|s| {
        let spinning: Vec<_> = (0..spinners)
            .map(|_| s.spawn(|| serve.get("/probe?module=spin&target=x")))
            .collect();
        // Let them all start spinning.
        std::thread::sleep(Duration::from_millis(500));
        let start = Instant::now();
        let (code, _, body) = serve.get(&format!("/probe?module=http_2xx&target={}", web.url("/")));
        let took = start.elapsed();
        assert_eq!((code, sample(&body, "probe_success")), (200, 1.0), "{body}");
        assert!(
            took < SLACK,
            "the probe waited {took:?} for the spinning ones"
        );
        for spin in spinning {
            let (code, _, body) = spin.join().unwrap();
            assert_eq!(code, 200);
            assert_eq!(sample(&body, "probe_success"), 0.0, "{body}");
            assert!(body.contains("timeout after 3s"), "{body}");
        }
    });
}

/// A long life: a check run every millisecond for thousands of runs (more with
/// `HEALTHPROBE_SOAK_RUNS`, e.g. 100000) leaves the process's descriptors and memory where
/// they were after its first few hundred runs.
#[test]
fn memory_and_descriptors_stay_flat_over_thousands_of_runs() {
    let runs: u64 = std::env::var("HEALTHPROBE_SOAK_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let serve = Serve::start(&format!(
        "[checks.tcp]\nprobe = \"tcp\"\ninterval = \"1ms\"\nparams = {{ address = \"{addr}\" }}\n"
    ));
    let reading = |at: u64| {
        let deadline = Instant::now() + Duration::from_secs(600);
        while serve.runs("tcp", "healthy") < at {
            assert!(
                Instant::now() < deadline,
                "fewer than {at} runs in 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let metrics = serve.get("/metrics").2;
        (
            sample(&metrics, "process_open_fds"),
            sample(&metrics, "process_resident_memory_bytes") / 1048576.0,
            serve.runs("tcp", "healthy"),
        )
    };
    let (fds, rss, first) = reading(500);
    let (fds_after, rss_after, last) = reading(runs);
    eprintln!(
        "after {first} runs: {fds} descriptors, {rss:.1} MiB; after {last}: {fds_after}, {rss_after:.1} MiB"
    );
    assert!(
        fds_after <= fds + 2.0,
        "{fds} descriptors, then {fds_after}"
    );
    assert!(
        rss_after <= rss + 8.0,
        "{rss:.1} MiB resident, then {rss_after:.1} MiB"
    );
    assert_eq!(
        serve.runs("tcp", "unhealthy") + serve.runs("tcp", "error"),
        0
    );
}

/// Interpreters compiled to components (the Python and JavaScript examples, 12-18 MB
/// each, with thousands of functions) fit the pools of run slots `serve` runs probes in:
/// as a check, and as a module run by many /probe requests at once.
#[test]
fn interpreted_probes_fit_the_servers_pools() {
    let Some(examples) = crate::languages::examples() else {
        return;
    };
    let (python, javascript) = (
        examples.join("prometheus-threshold.wasm"),
        examples.join("actuator-health.wasm"),
    );
    let metrics = HttpServer::start(|_| {
        (
            200,
            vec![("Content-Type".into(), "text/plain; version=0.0.4".into())],
            "# TYPE queue_depth gauge\nqueue_depth{queue=\"mail\"} 3\n".into(),
        )
    });
    let health = HttpServer::fixed(
        200,
        r#"{"status":"UP","components":{"db":{"status":"UP"}}}"#,
    );
    // Compiled before `serve` starts, which then loads them from the cache at once.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let metric = r#"metric=queue_depth{queue="mail"}"#;
    for (wasm, args) in [
        (
            &python,
            vec![format!("url={}", metrics.url("/")), metric.into()],
        ),
        (&javascript, vec![format!("url={}", health.url("/"))]),
    ] {
        let wasm = wasm.to_str().unwrap();
        support::healthprobe(
            ["run", wasm, "--cache-dir", cache_dir, "--timeout", "60s"]
                .into_iter()
                .chain(args.iter().map(String::as_str)),
        )
        .expect(0, "healthy: ", &[]);
    }
    let serve = Serve::start_with(
        &format!(
            r#"
[checks.queue]
probe = "{}"
params = {{ url = "{}", metric = 'queue_depth{{queue="mail"}}', warn = "100", critical = "1000" }}
interval = "200ms"
timeout = "10s"

[modules.actuator]
probe = "{}"
target = "url"
timeout = "10s"
"#,
            python.display(),
            metrics.url("/"),
            javascript.display()
        ),
        &["--cache-dir", cache_dir],
    );
    serve.wait_for("/readyz", |b| b == "ok");
    let probe = format!("/probe?module=actuator&target={}", health.url("/"));
    std::thread::scope(|s| {
        let answers: Vec<_> = (0..6)
            .map(|_| s.spawn(|| (0..3).map(|_| serve.get(&probe)).collect::<Vec<_>>()))
            .collect();
        for (code, _, body) in answers.into_iter().flat_map(|a| a.join().unwrap()) {
            assert_eq!((code, sample(&body, "probe_success")), (200, 1.0), "{body}");
            assert!(body.starts_with("# healthy: actuator-health: UP"), "{body}");
        }
    });
    serve.wait_for("/metrics", |_| serve.runs("queue", "healthy") >= 2);
}

/// Idle connections (a client that connected and sent nothing, or half a request) hold a
/// descriptor each, not a worker: the endpoints still answer at once. A HEAD request gets
/// the headers alone.
#[test]
fn idle_connections_hold_up_no_answer() {
    use std::io::Write as _;
    let serve = Serve::start("[modules.tcp]\nprobe = \"tcp\"\ntarget = \"address\"\n");
    let idle: Vec<TcpStream> = (0..64)
        .map(|i| {
            let mut c = TcpStream::connect(&serve.addr).unwrap();
            if i % 2 == 1 {
                c.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").unwrap();
            }
            c
        })
        .collect();
    let start = Instant::now();
    assert_eq!(serve.get("/livez").2, "ok");
    assert!(start.elapsed() < SLACK, "{:?}", start.elapsed());

    let mut head = TcpStream::connect(&serve.addr).unwrap();
    head.write_all(b"HEAD /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    head.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n"),
        "a body after the head: {answer}"
    );
    drop(idle);
}

/// A file of modules alone serves /probe (blackbox_exporter's use) with no checks.
#[test]
fn a_file_of_modules_alone_serves_probe() {
    let web = HttpServer::fixed(200, "ok");
    let serve = Serve::start("[modules.tcp]\nprobe = \"tcp\"\ntarget = \"address\"\n");
    let (code, _, body) = serve.get(&format!("/probe?module=tcp&target={}", web.addr));
    assert_eq!((code, sample(&body, "probe_success")), (200, 1.0), "{body}");
    assert_eq!(serve.get("/readyz").2, "ok");
}

/// Debian's Prometheus, scraping `serve` as it would in production: `/metrics` as a plain
/// target, `/probe` as blackbox_exporter's relabelled targets. The values are read back
/// through Prometheus's own query API.
#[test]
fn prometheus_scrapes_metrics_and_probe() {
    let Some(prometheus) = support::which("prometheus") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus is missing (scripts/test installs it)"
        );
        eprintln!("skipped: no prometheus (Debian package prometheus)");
        return;
    };
    let web = HttpServer::fixed(200, "ok");
    let serve = Serve::start(&format!(
        r#"
[checks.web]
probe = "http"
params = {{ url = "{}" }}
interval = "200ms"

[modules.http_2xx]
probe = "http"
target = "url"
"#,
        web.url("/")
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: healthprobe
    static_configs: [{{ targets: ["{serve}"] }}]
  - job_name: http_2xx
    metrics_path: /probe
    params: {{ module: [http_2xx] }}
    static_configs: [{{ targets: ["{target}"] }}]
    relabel_configs:
      - {{ source_labels: [__address__], target_label: __param_target }}
      - {{ source_labels: [__param_target], target_label: instance }}
      - {{ target_label: __address__, replacement: "{serve}" }}
"#,
            serve = serve.addr,
            target = web.url("/health")
        ),
    )
    .unwrap();
    let (mut child, addr) = start_prometheus(&prometheus, &config, dir.path());
    let query = |q: &str| -> Option<String> {
        let (_, _, body) = http_get(&addr, &format!("/api/v1/query?query={q}"), "")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(v["data"]["result"][0]["value"][1].as_str()?.to_string())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = (None, None, None);
    while Instant::now() < deadline {
        seen = (
            query("probe_success"),
            query("probe_http_status_code"),
            query("healthprobe_check_success%7Bcheck%3D%22web%22%7D"),
        );
        if seen.0.is_some() && seen.1.is_some() && seen.2.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen,
        (Some("1".into()), Some("200".into()), Some("1".into())),
        "probe_success, probe_http_status_code and healthprobe_check_success as Prometheus read them"
    );
}

/// Starts `prometheus` with `config`, its data under `dir`, on a free loopback port, and
/// waits until it is ready (a port another test's server took first is tried again).
pub(crate) fn start_prometheus(
    prometheus: &std::path::Path,
    config: &std::path::Path,
    dir: &std::path::Path,
) -> (Child, String) {
    // A free port, taken again by the next try if another test's server got it first.
    (1..=5)
        .find_map(|_| {
            let addr = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string();
            let mut child = Command::new(prometheus)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if http_get(&addr, "/-/ready", "")
                    .is_some_and(|(code, _, body)| code == 200 && body.contains("Prometheus"))
                {
                    return Some((child, addr));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            None
        })
        .expect("prometheus never became ready")
}

/// One GET with a plain socket (no client process, so that hundreds can be in flight from
/// one test): the status code and the body, and how long the answer took from the connect.
fn raw_get(addr: &str, path: &str) -> (u16, String, Duration) {
    use std::io::Write as _;
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: healthprobe\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let took = start.elapsed();
    let code = answer
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (code, body, took)
}

/// CPU starvation: as many spinning /probe runs as `--max-probes` lets in (200, on a
/// machine of a few cores) each still answer by their timeout, kept by the clock of the
/// runtime that answers requests; and /livez, /readyz, /health and /metrics answer within
/// the second a kubelet waits, all along.
#[test]
fn hundreds_of_spinning_probes_miss_no_deadline_and_hold_up_no_endpoint() {
    const SPINNERS: usize = 200;
    let timeout = Duration::from_secs(2);
    let web = HttpServer::fixed(200, "ok");
    let serve = Serve::start_with(
        &format!(
            r#"
[checks.web]
probe = "http"
params = {{ url = "{}" }}
interval = "500ms"

[modules.spin]
probe = "{}"
target = "value"
timeout = "2s"
fuel = 1000000000000
params = {{ mode = "spin" }}
"#,
            web.url("/"),
            support::hostile_cwasm().display()
        ),
        &["--max-probes", &SPINNERS.to_string()],
    );
    serve.wait_for("/livez", |b| b == "ok");
    let started = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let spinning: Vec<_> = (0..SPINNERS)
            .map(|_| {
                s.spawn(|| {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    raw_get(&serve.addr, "/probe?module=spin&target=x")
                })
            })
            .collect();
        support::wait_until("every spinner's request", || {
            started.load(std::sync::atomic::Ordering::SeqCst) == SPINNERS
        });
        // While they spin: each health endpoint, again and again.
        let mut slowest = Duration::ZERO;
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            for path in ["/livez", "/readyz", "/health", "/metrics"] {
                let (code, body, took) = raw_get(&serve.addr, path);
                assert!(code == 200 || code == 503, "{path}: {code} {body}");
                slowest = slowest.max(took);
            }
        }
        assert!(
            slowest < Duration::from_secs(1),
            "a health endpoint took {slowest:?} under load"
        );
        for spin in spinning {
            let (code, body, took) = spin.join().unwrap();
            assert_eq!(code, 200, "{body}");
            assert_eq!(sample(&body, "probe_success"), 0.0, "{body}");
            assert!(body.contains("timeout after 2s"), "{body}");
            // The clock's margin past the timeout, and the allowance for a loaded machine
            // (connecting and writing the answer).
            assert!(
                took < timeout + Duration::from_millis(200) + SLACK,
                "a spinning probe answered after {took:?}"
            );
        }
    });
    assert_eq!(serve.get("/livez").2, "ok");
    let peak = peak_kib(&serve);
    assert!(peak < 300 << 10, "serve peaked at {peak} KiB");
}

/// The peak resident memory of `serve` so far, in KiB.
fn peak_kib(serve: &Serve) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A probe's answer of 200,000 details is cut before `/probe` renders it: the answer is
/// small and quick, and the server's memory stays low.
#[test]
fn a_flood_of_details_is_cut_before_probe_renders_it() {
    let serve = Serve::start(&format!(
        r#"
[modules.details]
probe = "{}"
target = "count"
params = {{ mode = "details" }}
"#,
        support::hostile_cwasm().display()
    ));
    let (code, body, took) = raw_get(&serve.addr, "/probe?module=details&target=200000");
    assert_eq!(code, 200, "{body}");
    assert_eq!(sample(&body, "probe_success"), 1.0, "{body}");
    assert_eq!(
        sample(&body, "probe_hostile_details_dropped"),
        199_936.0,
        "{body}"
    );
    let gauges = body
        .lines()
        .filter(|l| l.starts_with("probe_hostile_detail_"))
        .count();
    assert_eq!(gauges, 64, "{body}");
    assert!(took < support::DEFAULT_TIMEOUT + SLACK, "{took:?}");
    let peak = peak_kib(&serve);
    assert!(peak < 300 << 10, "serve peaked at {peak} KiB");
}

/// Scale: a checks file of 2,000 checks is served by tasks, not a thread each: every check
/// reports, the server stays up and answers, with a few threads whatever the number of
/// checks.
#[test]
fn two_thousand_checks_all_report_from_a_few_threads() {
    const CHECKS: usize = 2_000;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Room in the accept queue for the first runs, which all come at once.
    nix::sys::socket::listen(&listener, nix::sys::socket::Backlog::new(4096).unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let mut file = String::new();
    for i in 0..CHECKS {
        file.push_str(&format!(
            "[checks.c{i}]\nprobe = \"tcp\"\ninterval = \"10s\"\nparams = {{ address = \"{addr}\" }}\n\n"
        ));
    }
    let serve = Serve::start(&file);
    let metrics = serve.wait_for("/metrics", |m| {
        m.lines()
            .filter(|l| {
                l.starts_with("healthprobe_check_runs_total{")
                    && l.contains("result=\"healthy\"")
                    && !l.ends_with(" 0")
            })
            .count()
            == CHECKS
    });
    let failed: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("healthprobe_check_runs_total{")
                && !l.contains("result=\"healthy\"")
                && !l.ends_with(" 0")
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} checks failed, the first: {:?}; {}",
        failed.len(),
        failed.first(),
        serve
            .get("/readyz?verbose")
            .2
            .lines()
            .find(|l| l.starts_with("[-]"))
            .unwrap_or_default()
    );
    let threads = sample(&metrics, "process_threads");
    assert!(threads < 100.0, "{threads} threads for {CHECKS} checks");
    serve.wait_for("/readyz", |b| b == "ok");
    let (code, body) = (serve.get("/health").0, serve.get("/livez").2);
    assert_eq!((code, body.as_str()), (200, "ok"));
    // A reload that changes one check of the 2,000 restarts that one alone.
    let changed = file.replacen(
        "[checks.c7]\nprobe = \"tcp\"\ninterval = \"10s\"",
        "[checks.c7]\nprobe = \"tcp\"\ninterval = \"20s\"",
        1,
    );
    assert_ne!(changed, file);
    std::fs::write(&serve.file, changed).unwrap();
    serve.signal("HUP");
    let log = serve.log_contains("reloaded");
    assert!(
        log.contains(&format!("{CHECKS} checks, 0 modules (changed c7)")),
        "{log}"
    );
}
