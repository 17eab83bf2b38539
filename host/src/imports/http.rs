//! Host implementation of the `healthprobe:probe/http` import, on `ureq`.
//!
//! ureq is blocking, so each request runs on tokio's blocking pool and is awaited with a
//! timeout: the guest's fiber (and the run's deadline) never depend on ureq honouring its
//! own timeout. ureq still gets the same remaining time as its global timeout so that the
//! blocking thread ends by the deadline too instead of lingering.

mod resolve;
mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use ureq::config::Config;
use ureq::unversioned::transport::{Connector, TcpConnector};
use ureq::{Agent, ResponseExt, http};
use wasmtime::component::{HasSelf, Linker};

use crate::activity::Activity;
use crate::bindings::healthprobe::probe::http::{self as wit, Error, Host, Request, Response};
use crate::bindings::healthprobe::probe::types;
use crate::imports::{Capability, RunInputs};
use crate::sandbox::network::NetPolicy;
use crate::sandbox::trust::{self, Trust};

use crate::text;
use resolve::PolicyResolver;
use transport::{Measure, ObservedTls, TimedTcp};

/// Largest response body handed to the guest.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Largest response header block accepted.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// ureq's buffer for the request head (its default, 128 KiB, is zeroed on every request:
/// a health check paid for it in page faults).
const REQUEST_BUFFER_BYTES: usize = 16 * 1024;
/// Redirects followed when the guest asks for it.
const MAX_REDIRECTS: u32 = 5;

/// What `inspect` says the import asks for.
pub const CAPABILITY: Capability = Capability {
    key: "http",
    description: "HTTP requests (host client)",
    interfaces: &["healthprobe:probe/http"],
    grant: super::wasi::net_grant,
};

/// Interfaces of this package that grant nothing by themselves.
pub const PLUMBING: &[&str] = &["healthprobe:probe/types"];

/// The import's per-run context: the grants it checks and the deadline it bounds every
/// request by.
pub struct HttpCtx {
    policy: NetPolicy,
    insecure_tls: bool,
    /// The operator's CA and client certificate.
    trust: Trust,
    /// When the run must be over; every request's timeout derives from it.
    deadline: Instant,
    /// The run's configured timeout, for messages.
    run_timeout: Duration,
    /// The request in flight, named in the timeout message if the deadline hits it.
    activity: Activity,
}

impl HttpCtx {
    /// The context of a run: its network grants and trust, its deadline.
    pub fn new(run: &RunInputs) -> Self {
        Self {
            policy: run.sandbox.net.clone(),
            insecure_tls: run.sandbox.insecure_tls,
            trust: run.sandbox.tls.clone(),
            deadline: run.deadline,
            run_timeout: run.limits.timeout,
            activity: run.activity.clone(),
        }
    }
}

/// Registers the `http` and `types` interfaces, served from the context `get` returns.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut HttpCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<HttpCtx>>(linker, get)?;
    types::add_to_linker::<T, HasSelf<HttpCtx>>(linker, get)
}

impl Host for HttpCtx {
    async fn max_body_bytes(&mut self) -> u64 {
        MAX_BODY_BYTES
    }

    async fn send(&mut self, req: Request) -> Result<Response, Error> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let own = req.timeout_ms.map(Duration::from_millis);
        let timeout = own.map_or(remaining, |t| t.min(remaining));
        // Messages name the timeout the operator set, unless the request's own was shorter.
        let shown = match own {
            Some(t) if t < remaining => t,
            _ => self.run_timeout,
        };
        if timeout.is_zero() {
            return Err(Error::Timeout(format!(
                "timeout: no time left for {}",
                req.url
            )));
        }
        if req.insecure && !self.insecure_tls {
            return Err(Error::Denied(format!(
                "request to {} without TLS verification refused; grant it with --allow-insecure-tls",
                req.url
            )));
        }
        let policy = self.policy.clone();
        let tls = self.trust.config(!req.insecure);
        let url = req.url.clone();
        let measure = Measure::default();
        let measuring = measure.clone();
        let task = tokio::task::spawn_blocking(move || {
            blocking_send(req, timeout, shown, &policy, tls, &measuring)
        });
        self.activity.set(Some(format!("waiting for {url}")));
        let outcome = tokio::time::timeout(timeout, task).await;
        // What was measured, however the request ended (a timeout keeps the phases so far).
        self.activity.exchanged(measure.take());
        // After a timeout the record stays: the run's own deadline usually fires in the
        // same instant, and its message should still name the URL.
        if !matches!(outcome, Err(_) | Ok(Ok(Err(Error::Timeout(_))))) {
            self.activity.set(None);
        }
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(Error::Protocol(format!("request to {url} failed: {join}"))),
            Err(_) => Err(Error::Timeout(format!(
                "timeout after {} waiting for {url}",
                text::duration(shown)
            ))),
        }
    }
}

impl types::Host for HttpCtx {}

fn blocking_send(
    req: Request,
    timeout: Duration,
    shown: Duration,
    policy: &NetPolicy,
    tls: Arc<ClientConfig>,
    measure: &Measure,
) -> Result<Response, Error> {
    let url = req.url.clone();
    let uri: http::Uri = req
        .url
        .parse()
        .map_err(|e| Error::Invalid(format!("invalid URL '{url}': {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(Error::Invalid(format!(
                "unsupported URL '{url}': only http:// and https:// are allowed"
            )));
        }
    }
    let mut builder = http::Request::builder()
        .method(req.method.as_str())
        .uri(uri);
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let config = Config::builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // Operators grant addresses, not proxies: a proxy from the environment would
        // both bypass the policy check and leak the probe's traffic elsewhere.
        .proxy(None)
        .max_redirects(if req.follow_redirects {
            MAX_REDIRECTS
        } else {
            0
        })
        .max_redirects_will_error(req.follow_redirects)
        .max_response_header_size(MAX_HEADER_BYTES)
        // The response head must fit in the input buffer.
        .input_buffer_size(MAX_HEADER_BYTES)
        .output_buffer_size(REQUEST_BUFFER_BYTES)
        .user_agent(concat!("healthprobe/", env!("CARGO_PKG_VERSION")))
        .save_redirect_history(true)
        .build();
    let connector = ()
        .chain(TimedTcp {
            tcp: TcpConnector::default(),
            measure: measure.clone(),
        })
        .chain(ObservedTls {
            config: tls,
            measure: measure.clone(),
        });
    let agent = Agent::with_parts(
        config,
        connector,
        PolicyResolver {
            policy: policy.clone(),
            measure: measure.clone(),
        },
    );
    let start = Instant::now();
    let denials_before = policy.denials().len();
    let result = match req.body {
        Some(body) => builder
            .body(body)
            .map_err(|e| Error::Invalid(format!("invalid request to {url}: {e}")))
            .and_then(|r| agent.run(r).map_err(|e| request_error(e, &url, shown))),
        None => builder
            .body(())
            .map_err(|e| Error::Invalid(format!("invalid request to {url}: {e}")))
            .and_then(|r| agent.run(r).map_err(|e| request_error(e, &url, shown))),
    };
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            // The resolver can only say "no address"; the policy knows which one it refused.
            return Err(match policy.denials().get(denials_before) {
                Some(denial) => Error::Denied(denial.to_string()),
                None => e,
            });
        }
    };
    let head = start.elapsed();
    measure.with(|m| {
        m.processing = transport::processing(head, m);
        m.redirects = response.get_redirect_history().map_or(0, |h| {
            u32::try_from(h.len().saturating_sub(1)).unwrap_or(u32::MAX)
        });
        m.version = Some(match response.version() {
            http::Version::HTTP_09 => 0.9,
            http::Version::HTTP_10 => 1.0,
            http::Version::HTTP_2 => 2.0,
            http::Version::HTTP_3 => 3.0,
            _ => 1.1,
        });
    });
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| request_error(e, &url, shown));
    measure.with(|m| m.transfer = start.elapsed().saturating_sub(head));
    let body = body?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Maps a ureq error to the WIT error variant by its type.
fn request_error(err: ureq::Error, url: &str, timeout: Duration) -> Error {
    use std::io::ErrorKind;
    use ureq::Error as E;
    match err {
        E::Timeout(_) => Error::Timeout(format!(
            "timeout after {} waiting for {url}",
            text::duration(timeout)
        )),
        E::HostNotFound => Error::Connect(format!("cannot resolve the host of {url}")),
        E::ConnectionFailed => Error::Connect(format!("cannot connect to {url}")),
        E::Io(io) if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            Error::Tls(format!("TLS with {url} failed: {}", trust::io_words(&io)))
        }
        E::Io(io) => match io.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Error::Timeout(format!(
                "timeout after {} waiting for {url}",
                text::duration(timeout)
            )),
            ErrorKind::ConnectionRefused => Error::Connect(format!("connection to {url} refused")),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                Error::Connect(format!("connection to {url} reset"))
            }
            ErrorKind::UnexpectedEof => {
                Error::Protocol(format!("{url} closed the connection before responding"))
            }
            _ => Error::Connect(format!("cannot reach {url}: {io}")),
        },
        E::BodyExceedsLimit(limit) => Error::TooLarge(format!(
            "response body of {url} exceeds {}",
            text::size(limit)
        )),
        E::LargeResponseHeader(_, limit) => Error::TooLarge(format!(
            "response headers of {url} exceed {}",
            text::size(limit as u64)
        )),
        E::Tls(msg) => Error::Tls(format!("TLS with {url} failed: {msg}")),
        E::Rustls(e) => Error::Tls(format!("TLS with {url} failed: {}", trust::words(&e))),
        E::Pem(e) => Error::Tls(format!("TLS with {url} failed: {e}")),
        E::TooManyRedirects => {
            Error::Protocol(format!("{url} redirected more than {MAX_REDIRECTS} times"))
        }
        E::RedirectFailed => {
            Error::Protocol(format!("{url} sent a redirect without a usable Location"))
        }
        E::BadUri(e) => Error::Invalid(format!("invalid URL '{url}': {e}")),
        E::Http(e) => Error::Invalid(format!("invalid request to {url}: {e}")),
        E::Protocol(ureq_proto::Error::OutputOverflow) => Error::Invalid(format!(
            "the request to {url} is too large: its method, URL and headers exceed {}",
            text::size(REQUEST_BUFFER_BYTES as u64)
        )),
        E::Protocol(e) => Error::Protocol(format!("{url} broke the HTTP protocol: {e}")),
        E::Decompress(_, e) => Error::Protocol(format!("cannot decompress the body of {url}: {e}")),
        other => Error::Protocol(format!("request to {url} failed: {other}")),
    }
}
