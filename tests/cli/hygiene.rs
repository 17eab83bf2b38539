//! Resource hygiene of the library over a thousand runs.

use std::time::Duration;

use crate::support::HttpServer;

#[test]
fn resource_hygiene_over_a_thousand_runs() {
    // Measured in a process of its own: the other tests' threads and sockets would blur it.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hygiene::resource_hygiene_worker",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HEALTHPROBE_HYGIENE_WORKER", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "worker failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hygiene:"), "{stdout}");
}

#[test]
#[ignore = "run by resource_hygiene_over_a_thousand_runs in a process of its own"]
fn resource_hygiene_worker() {
    use healthprobe::{Deadline, Limits, ProbeSource, RunConfig, Runner, Sandbox, Verdict};
    if std::env::var_os("HEALTHPROBE_HYGIENE_WORKER").is_none() {
        return;
    }
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let rss_kib = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap()
            .to_string();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };

    let ok = HttpServer::fixed(200, r#"{"status":"UP"}"#);
    // Listens but never accepts: connections complete in the kernel's backlog and hang, so
    // every such run times out inside a host call, without a server-side socket here.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let runner = Runner::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = ProbeSource::resolve("http", &Default::default()).unwrap();
    let config = |timeout| RunConfig {
        limits: Limits {
            timeout,
            ..Limits::default()
        },
        sandbox: Sandbox::loopback(),
        sha256: None,
        report_sha256: false,
        secrets: Vec::new(),
    };
    let fast = config(Duration::from_secs(5));
    let slow = config(Duration::from_millis(100));
    let ok_url = vec![("url".to_string(), ok.url("/health"))];
    let hung_url = vec![(
        "url".to_string(),
        format!("http://{}/", hung.local_addr().unwrap()),
    )];
    let run = |i: usize| {
        let (args, config, want) = if i.is_multiple_of(20) {
            (&hung_url, &slow, Verdict::Unhealthy)
        } else {
            (&ok_url, &fast, Verdict::Healthy)
        };
        let deadline = Deadline::from_now(config.limits.timeout);
        let report = rt.block_on(runner.run(deadline, &http, args, config));
        assert_eq!(report.verdict, want, "run {i}: {report:?}");
    };
    // Blocking threads of timed-out calls end on their own shortly after (ureq's own
    // timeout is the same 100 ms deadline): wait, within a generous bound, until the
    // counts stop falling, rather than for a fixed time.
    let settled = || {
        let start = std::time::Instant::now();
        let mut last = (fds(), threads());
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = (fds(), threads());
            if (now.0 >= last.0 && now.1 >= last.1) || start.elapsed() > Duration::from_secs(10) {
                return now;
            }
            last = now;
        }
    };
    for i in 0..50 {
        run(i);
    }
    let (fd0, th0) = settled();
    let rss0 = rss_kib();
    for i in 0..1000 {
        run(i);
    }
    let (fd1, th1) = settled();
    let rss1 = rss_kib();
    println!("hygiene: fds {fd0} -> {fd1}, threads {th0} -> {th1}, rss {rss0} KiB -> {rss1} KiB");
    assert!(fd1 <= fd0 + 8, "file descriptors grew: {fd0} -> {fd1}");
    assert!(th1 <= th0 + 8, "threads grew: {th0} -> {th1}");
    assert!(
        rss1 <= rss0 + 32 * 1024,
        "resident memory grew: {rss0} KiB -> {rss1} KiB"
    );
}

/// wasmtime keeps the addresses of every loaded image in one table for the process and
/// aborts on a second image at the same addresses. A bundled probe's code is loaded where
/// it lies, so two runners in one process, or two first runs of one probe side by side
/// (`serve`, `run --config`), must not each load it there.
#[test]
fn one_bundled_probe_runs_in_two_runners_and_side_by_side() {
    use healthprobe::{Deadline, Limits, ProbeSource, RunConfig, Runner, Sandbox, Verdict};
    let ok = HttpServer::fixed(200, "ok");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = RunConfig {
        limits: Limits::default(),
        sandbox: Sandbox::loopback(),
        sha256: None,
        report_sha256: false,
        secrets: Vec::new(),
    };
    let http = ProbeSource::resolve("http", &Default::default()).unwrap();
    let params = vec![("url".to_string(), ok.url("/"))];
    let first = Runner::new().unwrap();
    let second = Runner::new().unwrap();
    let (a, b) = rt.block_on(futures_util::future::join(
        first.run(
            Deadline::from_now(config.limits.timeout),
            &http,
            &params,
            &config,
        ),
        first.run(
            Deadline::from_now(config.limits.timeout),
            &http,
            &params,
            &config,
        ),
    ));
    let c = rt.block_on(second.run(
        Deadline::from_now(config.limits.timeout),
        &http,
        &params,
        &config,
    ));
    for report in [a, b, c] {
        assert_eq!(report.verdict, Verdict::Healthy, "{report:?}");
    }
}
