//! `healthprobe serve --config FILE [--listen ADDR]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use clap::Args;

use crate::checks::Checks;
use crate::flags::{CacheArgs, FormatArgs, GrantArgs, LimitArgs};
use crate::output;
use crate::runner::Runner;
use crate::serve::{self, Served, ServedModule};

/// Arguments of `healthprobe serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The checks file: the checks to run, each on its own interval (see `run --config`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Where to serve /livez, /readyz, /health, /metrics and /probe.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,

    /// Most /probe requests run at once; one more is answered 503 at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_probes: usize,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub grants: GrantArgs,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub format: FormatArgs,
}

/// Serves until SIGTERM or SIGINT, then exits 0; a setup problem (a bad checks file, an
/// address in use) exits 3 before serving.
pub fn execute(args: ServeArgs) -> Result<ExitCode, crate::Error> {
    let started = SystemTime::now();
    let format = args.format.format;
    let subject = "serve";
    let checks = match Checks::load(&args.config, &args.limits.overrides()) {
        Ok(c) => c,
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    #[cfg(feature = "compiler")]
    let cache = args.cache.open(checks.checks.iter().map(|c| &c.source));
    #[cfg(not(feature = "compiler"))]
    args.cache.open(checks.checks.iter().map(|c| &c.source));
    let runner = match Runner::new() {
        Ok(r) => r,
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    #[cfg(feature = "compiler")]
    let runner = runner.with_cache(cache);
    let runner = Arc::new(runner);
    let grants = args.grants.overrides();
    let served = match Served::new(checks.checks, &grants) {
        Ok(s) => s,
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    let modules = match ServedModule::new(checks.modules, &grants) {
        Ok(m) => Arc::new(m),
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    let probes_running = Arc::new(AtomicUsize::new(0));
    let server = match tiny_http::Server::http(args.listen) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            return Ok(output::fail(
                subject,
                &format!(
                    "cannot listen on {}: {e}; give another --listen address",
                    args.listen
                ),
                format,
            ));
        }
    };
    // Each check on a thread and runtime of its own: whatever one check does to its
    // thread (a host call that blocks it, a guest that spins between yields), the others
    // run on theirs, on time.
    for check in &served {
        let (check, runner) = (check.clone(), runner.clone());
        let rt = match super::runtime() {
            Ok(rt) => rt,
            Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("check {}", check.name))
            .spawn(move || rt.block_on(check.run_forever(runner)));
        if let Err(e) = spawned {
            let why = format!("cannot start a thread for a check: {e}");
            return Ok(output::fail(subject, &why, format));
        }
    }
    {
        let server = server.clone();
        let rt = match super::runtime() {
            Ok(rt) => rt,
            Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
        };
        // Signal handlers are installed before serving starts.
        let stop = {
            let _in_runtime = rt.enter();
            stop_signal()
        };
        std::thread::spawn(move || {
            rt.block_on(stop);
            eprintln!("healthprobe serve: stopping");
            server.unblock();
        });
    }
    eprintln!(
        "healthprobe serve: {} checks, listening on http://{}",
        served.len(),
        args.listen
    );
    for request in server.incoming_requests() {
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        if path == "/probe" && *request.method() == tiny_http::Method::Get {
            // A probe takes up to its timeout: it runs on a thread of its own, so the
            // other endpoints keep answering at once.
            if probes_running.fetch_add(1, Ordering::SeqCst) >= args.max_probes {
                probes_running.fetch_sub(1, Ordering::SeqCst);
                let why = format!(
                    "{} probes are running, the most --max-probes allows; try again\n",
                    args.max_probes
                );
                respond(request, (503, "text/plain; charset=utf-8", why));
                continue;
            }
            let scrape_timeout = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("X-Prometheus-Scrape-Timeout-Seconds"))
                .map(|h| h.value.to_string());
            let (modules, runner, running) =
                (modules.clone(), runner.clone(), probes_running.clone());
            let query = query.to_string();
            let spawned = std::thread::Builder::new()
                .name("probe".into())
                .spawn(move || {
                    let answer = serve::probe(&modules, &runner, &query, scrape_timeout.as_deref());
                    running.fetch_sub(1, Ordering::SeqCst);
                    respond(request, answer);
                });
            if spawned.is_err() {
                probes_running.fetch_sub(1, Ordering::SeqCst);
            }
            continue;
        }
        let answer = match request.method() {
            tiny_http::Method::Get | tiny_http::Method::Head => {
                serve::answer(&served, path, query, started)
            }
            _ => (405, "text/plain; charset=utf-8", "only GET\n".into()),
        };
        respond(request, answer);
    }
    // Checks may be in the middle of a run on their threads: exiting ends them.
    Ok(ExitCode::SUCCESS)
}

fn respond(request: tiny_http::Request, (code, content_type, body): serve::Answer) {
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
        .expect("a valid header");
    let response = tiny_http::Response::from_string(body)
        .with_status_code(code)
        .with_header(header);
    // A client that went away is its own problem.
    let _ = request.respond(response);
}

/// Resolves on SIGTERM (what Docker and Kubernetes send) or SIGINT. The handlers are
/// installed when this is called, within a runtime.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            // Without handlers the default action still ends the process.
            _ => std::future::pending().await,
        }
    }
}
