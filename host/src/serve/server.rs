//! The HTTP server: the runtime that answers and the one that runs guests, the listener,
//! hyper's connections, and the signals (SIGTERM and SIGINT stop, SIGHUP reloads the checks
//! file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use super::check::FleetRuntime;
use super::endpoints::{Answer, TEXT, answer};
use super::fleet::{Fleet, Serving};
use super::logging::{flush_log, log};
use super::probe::probe_request;
use crate::checks::Checks;
use crate::flags::{GrantArgs, LimitArgs, OciArgs};
use crate::report::Failure;
use crate::runner::Runner;
use crate::text;

/// How `serve` serves, from its command line.
#[derive(Debug)]
pub struct Options {
    /// The checks file, read again on SIGHUP.
    pub config: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Most /probe requests at once.
    pub max_probes: u16,
    /// Most check runs at once.
    pub max_check_runs: u16,
    /// The operator's grants, over each check's.
    pub grants: GrantArgs,
    /// The operator's limits, for a reload's checks file.
    pub limits: LimitArgs,
    /// Which `oci://` probes a reload's checks file may name, and whether to pull them.
    pub oci: (crate::oci::Access, OciArgs),
}

/// When a pull started now must end: serve pulls when it loads a checks file, where no
/// check's deadline bounds it.
pub fn pull_deadline() -> std::time::Instant {
    std::time::Instant::now() + crate::oci::PULL_TIMEOUT
}

/// Serves `checks` (loaded from `options.config`) with `runner` until SIGTERM or SIGINT; a
/// setup problem (a bad check, an address in use) is an error before serving starts.
pub fn serve(checks: Checks, runner: Arc<Runner>, options: Options) -> Result<(), Failure> {
    let Options {
        config,
        listen,
        max_probes,
        max_check_runs,
        grants,
        limits,
        oci,
    } = options;
    // Two runtimes, so that what the probes do never delays an answer. `probes` runs the
    // guests of checks and /probe requests, for the life of the server: its workers, and
    // the threads its blocking host calls run on (at most tokio's 512), are started once.
    // `endpoints`, on this thread, keeps the checks' schedules and accepts connections and
    // answers them: /livez, /readyz, /health and /metrics never wait behind a guest, and a
    // run's timeout is kept by this runtime's clock even when every worker of `probes` is
    // busy with spinning guests (`super::run_by_the_clock`).
    let probes = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .thread_name("probe")
        .build();
    let (probes, rt) = match probes.and_then(|p| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map(|e| (p, e))
    }) {
        Ok(both) => both,
        Err(e) => {
            return Err(Failure::Setup(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    let mut fleet = Fleet::new(
        FleetRuntime {
            runner: runner.clone(),
            probes: probes.handle().clone(),
            runs: Arc::new(tokio::sync::Semaphore::new(usize::from(max_check_runs))),
        },
        rt.handle().clone(),
    );
    let (serving, _) = fleet.apply(checks, &grants)?;
    let check_count = serving.checks.len();
    let serving = Arc::new(RwLock::new(serving));
    let listener = match std::net::TcpListener::bind(listen).and_then(|l| {
        l.set_nonblocking(true)?;
        let _in_runtime = rt.enter();
        tokio::net::TcpListener::from_std(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            return Err(Failure::Setup(format!(
                "cannot listen on {}: {e}; give another --listen address",
                listen
            )));
        }
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, serving, path) = (stop.clone(), serving.clone(), config.clone());
        let signals_rt = crate::runner::runtime()?;
        // Signal handlers are installed before serving starts.
        let mut signals = {
            let _in_runtime = signals_rt.enter();
            Signals::install()
        };
        // A reload compiles and describes probes, which may block: on a thread of its
        // own, not on the runtime that answers requests.
        std::thread::spawn(move || {
            while signals_rt.block_on(signals.next()) == Signal::Reload {
                // A reload builds everything before it swaps: a bad file changes nothing.
                let loaded = Checks::load(&path, &limits, &oci.0).and_then(|mut checks| {
                    for line in checks.fetch(&oci.1, |_| pull_deadline())? {
                        log(format_args!("{line}"));
                    }
                    fleet.apply(checks, &grants)
                });
                match loaded {
                    Ok((new, summary)) => {
                        *serving.write().unwrap_or_else(|e| e.into_inner()) = new;
                        log(format_args!("reloaded {}: {summary}", path.display()));
                    }
                    Err(f) => log(format_args!(
                        "reload failed, still serving the checks loaded before: {}",
                        text::one_line(&f.to_string())
                    )),
                }
            }
            log(format_args!("stopping"));
            stop.notify_one();
        });
    }
    log(format_args!(
        "{check_count} checks, listening on http://{}",
        listen
    ));
    let server = Arc::new(Server {
        runner,
        probes: probes.handle().clone(),
        serving,
        probes_running: AtomicUsize::new(0),
        max_probes: usize::from(max_probes),
    });
    rt.block_on(async {
        loop {
            tokio::select! {
                () = stop.notified() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(server.clone().connection(stream));
                    }
                    // Out of descriptors, or a connection reset before it was accepted:
                    // waiting a little lets connections close instead of spinning.
                    Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
                },
            }
        }
    });
    // Checks and probes may be in the middle of a run (a probe's request may be blocked on a
    // hung server until its deadline): exiting ends them, without waiting.
    rt.shutdown_background();
    probes.shutdown_background();
    flush_log(LOG_FLUSH);
    Ok(())
}

/// How long the last log lines may take to be written when the server stops.
const LOG_FLUSH: Duration = Duration::from_millis(500);

/// How long accepting waits after a failure (no descriptor left) before it tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// How long a client has to send a request's head once it connected or sent the one
/// before: an idle or trickling connection holds a descriptor, not a thread, but not for
/// ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What every connection shares.
struct Server {
    runner: Arc<Runner>,
    /// The runtime that runs /probe's guests.
    probes: tokio::runtime::Handle,
    serving: Arc<RwLock<Arc<Serving>>>,
    probes_running: AtomicUsize,
    max_probes: usize,
}

impl Server {
    /// Serves one connection's requests (HTTP/1.1, kept alive) until the client closes it.
    async fn connection(self: Arc<Self>, stream: tokio::net::TcpStream) {
        // Answers are small and written whole: no reason to wait for more to send.
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn(move |request| {
            let server = self.clone();
            async move { Ok::<_, std::convert::Infallible>(server.answer(request).await) }
        });
        // A client that goes away mid-answer is its own problem.
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await;
    }

    async fn answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let now = self
            .serving
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (path, query) = (request.uri().path(), request.uri().query().unwrap_or(""));
        let answer = match *request.method() {
            hyper::Method::GET if path == "/probe" => self.probe(&now, &request, query).await,
            hyper::Method::GET | hyper::Method::HEAD => answer(&now.checks, path, query),
            _ => (405, TEXT, "only GET\n".into()),
        };
        let (code, content_type, body) = answer;
        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() =
            hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        response
    }

    /// `/probe`, unless `--max-probes` are running already. The connection waits for it
    /// up to its timeout (and [`super::CLOCK_MARGIN`]), while the other endpoints keep
    /// answering.
    async fn probe(
        &self,
        now: &Serving,
        request: &hyper::Request<hyper::body::Incoming>,
        query: &str,
    ) -> Answer {
        let Some(_slot) = ProbeSlot::take(&self.probes_running, self.max_probes) else {
            let why = format!(
                "{} probes are running, the most --max-probes allows; try again\n",
                self.max_probes
            );
            return (503, TEXT, why);
        };
        let scrape_timeout = request
            .headers()
            .get("X-Prometheus-Scrape-Timeout-Seconds")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        match probe_request(&now.modules, query, scrape_timeout.as_deref()) {
            Ok(request) => request.answer(&self.probes, self.runner.clone()).await,
            Err(bad) => bad,
        }
    }
}

/// One of the `--max-probes` places, given back when the probe ends or is dropped (its
/// client went away).
struct ProbeSlot<'a>(&'a AtomicUsize);

impl<'a> ProbeSlot<'a> {
    fn take(running: &'a AtomicUsize, max: usize) -> Option<Self> {
        running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ProbeSlot(running))
    }
}

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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
