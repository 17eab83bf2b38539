//! `wasi:http/outgoing-handler` (wasmtime-wasi-http), the standard HTTP client interface
//! that other languages' toolchains use (JavaScript's `fetch`, Python's and Go's WASI HTTP
//! clients), under the rules of the `http` import:
//!
//! - the network policy on every resolved address; a name is looked up only if granted by
//!   name, an IP literal (also `127.0.0.1.`) never goes to the resolver;
//! - the run's deadline on every wait: the lookup, the connect, the TLS handshake, the
//!   response head and every read of the body (the guest's `request-options` can only
//!   shorten them);
//! - caps on the response head and body, and on the request body the host buffers;
//! - connections count against `--max-sockets`;
//! - no proxy from the environment; TLS verification on unless `--allow-insecure-tls`.
//!
//! wasmtime-wasi-http provides the interface and hands every request to
//! [`Hooks::send_request`]; its own default sender (which resolves and connects with no
//! policy and no deadline) is not compiled in.

pub mod memory;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use wasmtime::component::Linker;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

use crate::activity::Activity;
use crate::imports::http::{MAX_BODY_BYTES, MAX_HEADER_BYTES};
use crate::imports::sockets::{ConnCap, ConnPermit};
use crate::imports::{Capability, RunInputs};
use crate::sandbox::network::{self, NetPolicy};
use memory::{HostMemory, InFlight, InFlightGuard, max_in_flight};

/// What `inspect` says the interface asks for: the same grants as the `http` import.
pub const CAPABILITY: Capability = Capability {
    key: "wasi-http",
    description: "HTTP requests (wasi:http)",
    interfaces: &["wasi:http/outgoing-handler"],
    grant: super::wasi::net_grant,
};

/// Interfaces of wasi:http that grant nothing by themselves (requests, responses, fields
/// and bodies as resources).
pub const PLUMBING: &[&str] = &["wasi:http/types"];

/// Largest write to a request body the host accepts at once; with one chunk buffered,
/// a request body holds at most twice this in host memory.
pub(crate) const REQUEST_CHUNK_BYTES: usize = 64 * 1024;

/// Whether `component` imports any of `wasi:http`: only then does its linker need the
/// interface (few probes do, and registering it costs every run start-up time).
pub fn imported_by(component: &wasmtime::component::Component) -> bool {
    component
        .component_type()
        .imports(component.engine())
        .any(|(name, _)| name.starts_with("wasi:http/"))
}

/// Registers `wasi:http/outgoing-handler` and `wasi:http/types`: through `T`'s
/// [`WasiHttpView`](wasmtime_wasi_http::WasiHttpView), with the functions that keep guest
/// data charged to the account in the state `get` returns.
pub fn add_to_linker<T: wasmtime_wasi_http::WasiHttpView + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> WasiHttpParts<'_>,
) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    memory::add_to_linker(linker, get)
}

/// What the functions `wasi:http` defines again reach of a store: the interface's state and
/// the store's resource table.
pub struct WasiHttpParts<'a> {
    /// The interface's per-run state.
    pub state: &'a mut WasiHttp,
    /// The store's resource table.
    pub table: &'a mut wasmtime::component::ResourceTable,
}

/// The interface's per-run state: wasmtime-wasi-http's own context (which caps each header
/// map a guest builds), the account of the host memory the guest holds through it, and the
/// hooks that send every request.
pub struct WasiHttp {
    /// wasmtime-wasi-http's context.
    pub ctx: WasiHttpCtx,
    /// Header maps, request bodies and strings the host keeps for the guest.
    pub memory: HostMemory,
    /// Where requests go.
    pub hooks: Hooks,
}

impl WasiHttp {
    /// The state of a run, whose connections count against the socket cap (`cap`, with
    /// the WASI sockets).
    pub fn new(run: &RunInputs, cap: ConnCap) -> Self {
        let mut ctx = WasiHttpCtx::new();
        ctx.set_field_size_limit(MAX_HEADER_BYTES);
        Self {
            ctx,
            memory: HostMemory::new(run.limits.max_memory, run.exceeded.clone()),
            hooks: Hooks {
                in_flight: InFlight::default(),
                max_in_flight: max_in_flight(run.limits.max_sockets),
                policy: run.sandbox.net.clone(),
                tls: run.sandbox.tls.config(!run.sandbox.insecure_tls),
                deadline: run.deadline,
                activity: run.activity.clone(),
                cap,
            },
        }
    }
}

/// How long after the run's deadline the host's own bounds on a request fire. The run is
/// cut off at the deadline and says `timeout after …`, naming the URL; a request's bounds
/// come after, so they never pre-empt that message with a bare error code of the guest's
/// making. They only end tasks that outlive their run (the store is dropped right after the
/// cut-off, which cancels them anyway).
const AFTER_DEADLINE: Duration = Duration::from_millis(200);

/// Sends the requests of one run (see the module documentation).
pub struct Hooks {
    policy: NetPolicy,
    /// The operator's trust; verifying unless `--allow-insecure-tls` (a `wasi:http` request
    /// cannot ask for it itself).
    tls: Arc<rustls::ClientConfig>,
    deadline: Instant,
    activity: Activity,
    /// The socket cap; the store refreshes its count of WASI sockets on each call.
    pub cap: ConnCap,
    /// Requests sent whose tasks are not over.
    pub in_flight: InFlight,
    /// The most of them `handle` lets be at once.
    pub max_in_flight: usize,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Sent = Result<(http::Response<WasiBody>, IoFuture), Error>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        // Named in the timeout message if the deadline hits the request; cleared once the
        // response has been read whole or failed.
        let waiting = format!("waiting for {}", request.uri());
        self.activity.set(Some(waiting.clone()));
        let job = Job {
            _in_flight: self.in_flight.enter(),
            policy: self.policy.clone(),
            tls: self.tls.clone(),
            deadline: tokio::time::Instant::from_std(self.deadline) + AFTER_DEADLINE,
            permit: self.cap.admit(),
            waiting: Waiting {
                activity: self.activity.clone(),
                what: waiting,
            },
        };
        Box::new(job.send(request, options.unwrap_or_default()))
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        REQUEST_CHUNK_BYTES
    }

    fn p2_error_from_hyper(
        &mut self,
        e: &hyper::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
        if e.is_parse_too_large() {
            ErrorCode::HttpResponseHeaderSectionSize(u32::try_from(MAX_HEADER_BYTES).ok())
        } else if e.is_timeout() {
            ErrorCode::HttpResponseTimeout
        } else if e.is_incomplete_message() {
            ErrorCode::HttpResponseIncomplete
        } else {
            ErrorCode::HttpProtocolError
        }
    }
}

/// What a request needs once it has left the store.
struct Job {
    /// Counts the request until its task is over or dropped.
    _in_flight: InFlightGuard,
    policy: NetPolicy,
    tls: Arc<rustls::ClientConfig>,
    deadline: tokio::time::Instant,
    permit: Option<ConnPermit>,
    waiting: Waiting,
}

/// The activity a request recorded, to clear when it is over. Only done when it ends, not
/// when it is dropped: the deadline drops requests still waiting, and the timeout message
/// must still name them.
#[derive(Clone)]
struct Waiting {
    activity: Activity,
    what: String,
}

impl Waiting {
    fn over(&self) {
        self.activity.clear_if(&self.what);
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

impl Job {
    /// The deadline, or `after` from now if that comes first.
    fn by(&self, after: Option<Duration>) -> tokio::time::Instant {
        by(self.deadline, after)
    }

    async fn send(self, req: http::Request<WasiBody>, options: RequestOptions) -> Sent {
        let waiting = self.waiting.clone();
        let sent = self.exchange(req, options).await;
        if sent.is_err() {
            waiting.over();
        }
        sent
    }

    async fn exchange(mut self, mut req: http::Request<WasiBody>, options: RequestOptions) -> Sent {
        let uri = req.uri().clone();
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let Some(permit) = self.permit.take() else {
            return Err(Error::ConnectionLimitReached);
        };

        let addrs = self.addresses(&host, port).await?;
        let connect_by = self.by(options.connect_timeout);
        let mut stream = None;
        let mut refused = None;
        for addr in addrs {
            match timeout_at(connect_by, TcpStream::connect(addr)).await {
                Err(_) => return Err(Error::ConnectionTimeout),
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => refused = Some(e),
            }
        }
        let tcp = match (stream, refused) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(Error::Connect(e)),
            (None, None) => return Err(Error::DestinationNotFound),
        };
        let io: Box<dyn Stream> = if tls {
            let name = server_name(&host)?;
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            match timeout_at(connect_by, connector.connect(name, tcp)).await {
                Err(_) => return Err(Error::ConnectionTimeout),
                Ok(Err(e)) => return Err(tls_error(e)),
                Ok(Ok(s)) => Box::new(s),
            }
        } else {
            Box::new(tcp)
        };
        let (mut sender, conn) = timeout_at(
            connect_by,
            hyper::client::conn::http1::Builder::new()
                .max_header_size(MAX_HEADER_BYTES)
                .handshake::<_, WasiBody>(TokioIo::new(io)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

        // The request carries the scheme and authority; on the wire (no proxy) it is the
        // path and query alone.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = http::Uri::builder()
            .path_and_query(path)
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;

        // Wait for the head while driving the connection, as wasmtime-wasi-http's default
        // sender does (hyper's connection future does the I/O).
        let head_by = self.by(options.first_byte_timeout);
        let mut send = pin!(timeout_at(head_by, sender.send_request(req)));
        let mut conn = Some(conn);
        let response = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::ConnectionReadTimeout)),
            Poll::Ready(Ok(r)) => Poll::Ready(r.map_err(Error::from)),
            Poll::Pending => {
                let Some(c) = conn.as_mut() else {
                    return Poll::Pending;
                };
                let done = ready!(Pin::new(c).poll(cx));
                conn = None;
                match done {
                    Ok(()) => match send.as_mut().poll(cx) {
                        Poll::Ready(Err(_)) => Poll::Ready(Err(Error::ConnectionReadTimeout)),
                        Poll::Ready(Ok(r)) => Poll::Ready(r.map_err(Error::from)),
                        Poll::Pending => Poll::Pending,
                    },
                    Err(e) => Poll::Ready(Err(Error::from(e))),
                }
            }
        })
        .await?;
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared
            && n > MAX_BODY_BYTES
        {
            return Err(Error::HttpResponseBodySize(Some(n)));
        }
        let between = options.between_bytes_timeout;
        let deadline = self.deadline;
        let first_by = self.by(between);
        let response = response.map(|body| {
            CappedBody {
                inner: body,
                waiting: self.waiting.clone(),
                read: 0,
                between,
                deadline,
                timer: Box::pin(tokio::time::sleep_until(first_by)),
            }
            .boxed_unsync()
        });
        let io: IoFuture = Box::new(async move {
            // The connection is counted as long as it is open.
            let _permit = permit;
            match conn {
                None => Ok(()),
                Some(conn) => match timeout_at(deadline, conn).await {
                    Err(_) => Err(Error::ConnectionReadTimeout),
                    Ok(r) => r.map_err(Error::from),
                },
            }
        });
        Ok((response, io))
    }

    /// The addresses to try: every resolved address the policy allows. A name is looked up
    /// only if it is granted by name; a refusal is recorded for the verdict.
    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
        let all: Vec<SocketAddr> = match network::ip_literal(host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => {
                if !self.policy.check_lookup(host) {
                    return Err(Error::HttpRequestDenied);
                }
                let name = network::resolver_name(host);
                match timeout_at(self.deadline, tokio::net::lookup_host((name, port))).await {
                    Err(_) => return Err(Error::DnsTimeout),
                    Ok(Err(e)) => {
                        return Err(Error::DnsError {
                            rcode: Some(e.to_string()),
                            info_code: None,
                        });
                    }
                    Ok(Ok(addrs)) => addrs.collect(),
                }
            }
        };
        let allowed: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| self.policy.allows(*a))
            .collect();
        if allowed.is_empty() {
            match all.first() {
                // Records the denial, with the grant that would allow it.
                Some(first) => {
                    self.policy.check(*first, Some(host));
                    return Err(Error::DestinationIpProhibited);
                }
                None => return Err(Error::DestinationNotFound),
            }
        }
        Ok(allowed)
    }
}

/// The name the server's certificate must carry: an IP address for a literal.
fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    match network::ip_literal(host) {
        Some(ip) => Ok(ServerName::IpAddress(ip.into())),
        None => ServerName::try_from(host.trim_end_matches('.').to_owned())
            .map_err(|_| Error::HttpRequestUriInvalid),
    }
}

/// A certificate the client refused is `tls-certificate-error`; anything else in the
/// handshake is `tls-protocol-error`.
fn tls_error(e: std::io::Error) -> Error {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if certificate {
        Error::TlsCertificateError
    } else {
        Error::TlsProtocolError
    }
}

/// A response body with the `http` import's size cap, whose every read is bounded by the
/// run's deadline and by the guest's between-bytes timeout, if shorter.
struct CappedBody {
    waiting: Waiting,
    inner: Incoming,
    read: u64,
    between: Option<Duration>,
    deadline: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl CappedBody {
    fn next_wait(&self) -> tokio::time::Instant {
        by(self.deadline, self.between)
    }
}

/// `deadline`, or `after` from now if that comes first (a guest's own timeout can only
/// shorten a wait).
fn by(deadline: tokio::time::Instant, after: Option<Duration>) -> tokio::time::Instant {
    after.map_or(deadline, |t| {
        tokio::time::Instant::now()
            .checked_add(t)
            .map_or(deadline, |at| at.min(deadline))
    })
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        let polled = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                }
                if this.read > MAX_BODY_BYTES {
                    Some(Err(Error::HttpResponseBodySize(Some(this.read))))
                } else {
                    let next = this.next_wait();
                    this.timer.as_mut().reset(next);
                    Some(Ok(frame))
                }
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => Some(Err(Error::HttpResponseTimeout)),
            Poll::Ready(Some(Err(e))) => Some(Err(Error::from(e))),
            Poll::Ready(None) => None,
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Some(Err(Error::ConnectionReadTimeout)),
                Poll::Pending => return Poll::Pending,
            },
        };
        // The whole body read, or an error the guest will see: the request is over.
        if !matches!(polled, Some(Ok(_))) {
            this.waiting.over();
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
