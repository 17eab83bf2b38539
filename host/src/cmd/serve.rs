//! `healthprobe serve --config FILE [--listen ADDR]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use clap::Args;

use crate::checks::Checks;
use crate::flags::{CacheArgs, FormatArgs, GrantArgs, LimitArgs};
use crate::output;
use crate::runner::Runner;
use crate::serve::{self, Fleet};
use crate::text;

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

/// Serves until SIGTERM or SIGINT, then exits 0; SIGHUP reloads the checks file. A setup
/// problem (a bad checks file, an address in use) exits 3 before serving.
pub fn execute(args: ServeArgs) -> Result<ExitCode, crate::Error> {
    let format = args.format.format;
    let subject = "serve";
    let checks = match Checks::load(&args.config, &args.limits.overrides()) {
        Ok(c) => c,
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    let sources = checks
        .checks
        .iter()
        .map(|c| &c.source)
        .chain(checks.modules.iter().map(|m| &m.source));
    #[cfg(feature = "compiler")]
    let cache = args.cache.open(sources);
    #[cfg(not(feature = "compiler"))]
    args.cache.open(sources);
    let runner = match Runner::new() {
        Ok(r) => r,
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    #[cfg(feature = "compiler")]
    let runner = runner.with_cache(cache);
    let runner = Arc::new(runner);
    let grants = args.grants.overrides();
    let limits = args.limits.overrides();
    let mut fleet = Fleet::new(runner.clone());
    let serving = match fleet.apply(checks, &grants) {
        Ok((serving, _)) => serving,
        Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
    };
    let check_count = serving.checks.len();
    let serving = Arc::new(RwLock::new(serving));
    // /probe runs on one runtime for the life of the server: its workers, and the threads
    // its blocking host calls run on, are started once, not for every probe (a thread and a
    // runtime per probe were an eighth of serve's time under load). A probe cannot hold a
    // worker: a guest yields at every epoch tick, and blocking calls run on the blocking
    // pool.
    let probes = match tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .thread_name("probe")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Ok(output::fail(
                subject,
                &format!("cannot start the async runtime: {e}"),
                format,
            ));
        }
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
    {
        let (server, serving, path) = (server.clone(), serving.clone(), args.config.clone());
        let rt = match super::runtime() {
            Ok(rt) => rt,
            Err(f) => return Ok(output::fail(subject, &f.to_string(), format)),
        };
        // Signal handlers are installed before serving starts.
        let mut signals = {
            let _in_runtime = rt.enter();
            Signals::install()
        };
        std::thread::spawn(move || {
            while rt.block_on(signals.next()) == Signal::Reload {
                // A reload builds everything before it swaps: a bad file changes nothing.
                match Checks::load(&path, &limits).and_then(|c| fleet.apply(c, &grants)) {
                    Ok((new, summary)) => {
                        *serving.write().unwrap_or_else(|e| e.into_inner()) = new;
                        eprintln!("healthprobe serve: reloaded {}: {summary}", path.display());
                    }
                    Err(f) => eprintln!(
                        "healthprobe serve: reload failed, still serving the checks loaded before: {}",
                        text::one_line(&f.to_string())
                    ),
                }
            }
            eprintln!("healthprobe serve: stopping");
            server.unblock();
        });
    }
    eprintln!(
        "healthprobe serve: {check_count} checks, listening on http://{}",
        args.listen
    );
    for request in server.incoming_requests() {
        let now = serving.read().unwrap_or_else(|e| e.into_inner()).clone();
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        if path == "/probe" && *request.method() == tiny_http::Method::Get {
            // A probe takes up to its timeout: it runs on the probes' runtime, so the
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
            let (runner, running) = (runner.clone(), probes_running.clone());
            let query = query.to_string();
            probes.spawn(async move {
                let answer =
                    serve::probe(&now.modules, &runner, &query, scrape_timeout.as_deref()).await;
                running.fetch_sub(1, Ordering::SeqCst);
                // Writing the answer blocks if the client does not read: not on a worker.
                tokio::task::spawn_blocking(move || respond(request, answer));
            });
            continue;
        }
        let answer = match request.method() {
            tiny_http::Method::Get | tiny_http::Method::Head => {
                serve::answer(&now.checks, path, query)
            }
            _ => (405, "text/plain; charset=utf-8", "only GET\n".into()),
        };
        respond(request, answer);
    }
    // Checks and probes may be in the middle of a run (a probe's request may be blocked on a
    // hung server until its deadline): exiting ends them, without waiting.
    probes.shutdown_background();
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

#[derive(Debug, PartialEq)]
enum Signal {
    /// SIGTERM (what Docker and Kubernetes send) or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signals `serve` handles; without handlers (they could not be installed) it waits
/// for ever, and the default actions still stop the process.
struct Signals(Option<[tokio::signal::unix::Signal; 3]>);

impl Signals {
    /// Installs the handlers; call within a runtime.
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (|| {
            Some([
                signal(SignalKind::terminate()).ok()?,
                signal(SignalKind::interrupt()).ok()?,
                signal(SignalKind::hangup()).ok()?,
            ])
        })();
        Signals(handlers)
    }

    async fn next(&mut self) -> Signal {
        let Some([term, int, hup]) = &mut self.0 else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => Signal::Stop,
            _ = int.recv() => Signal::Stop,
            _ = hup.recv() => Signal::Reload,
        }
    }
}
