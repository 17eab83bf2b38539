//! The bundled `grpc` probe: one `grpc.health.v1.Health/Check` call over cleartext
//! HTTP/2 with prior knowledge (h2c), on a plain TCP connection.

mod h2;
mod health;

use healthprobe_sdk::tcp::{self, FrameError, Framed, Link, TcpError, Tls};
use healthprobe_sdk::{
    Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo, Value,
};
use prost::Message;

struct GrpcProbe;

impl Probe for GrpcProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "grpc",
            env!("CARGO_PKG_VERSION"),
            "Calls the gRPC Health Checking Protocol (grpc.health.v1.Health/Check) over \
             cleartext HTTP/2 (h2c), or over TLS with tls=true (ALPN h2); healthy when the \
             status is SERVING.",
        )
        .param(ParamSpec::required(
            "address",
            "Server as host:port, for example 127.0.0.1:50051.",
        ))
        .param(
            ParamSpec::optional(
                "service",
                "Service whose health to ask for, for example service=helloworld.Greeter; \
                 empty asks about the whole server.",
            )
            .default(""),
        )
        .param(ParamSpec::optional(
            "authority",
            "The :authority (host) of the request, for example authority=api.internal:443, \
             for servers or proxies that route by it; without it, the address.",
        ))
        .param(
            ParamSpec::optional(
                "metadata",
                "Request metadata as name:value, for example metadata=x-api-key:abc123; give \
                 it once per header. Names ending in -bin take base64 values.",
            )
            .repeatable(),
        )
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let address = params.required_str("address")?.trim();
        tcp::parse_address(address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let service = params.required_str("service")?;
        let authority = params.string_or("authority", address).trim();
        health::check_authority(authority)
            .map_err(|reason| CheckError::invalid_param("authority", reason))?;
        let metadata = params
            .list("metadata")
            .into_iter()
            .map(health::parse_metadata)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| CheckError::invalid_param("metadata", reason))?;
        let tls = Tls::from_params(params, address, false)?;
        let request = Request {
            scheme: if tls == Tls::Off { "http" } else { "https" },
            service,
            authority,
            metadata,
            // The server may give up when the probe would: tell it the time left.
            timeout_ms: budget.remaining().as_millis().clamp(1, 99_999_999) as u64,
        };

        let outcome = tcp::connect(address, &budget)
            .and_then(|conn| match tls.server_name() {
                Some(name) => conn.start_tls_alpn(name, &["h2"]),
                None => Ok(conn),
            })
            .map_err(Failure::Tcp)
            .and_then(|conn| {
                // Over TLS, HTTP/2 only if the server chose it.
                let h2 = conn.tls_peer().map(|p| p.protocol.as_deref());
                if matches!(h2, Some(p) if p != Some("h2")) {
                    return Err(Failure::NoAlpn);
                }
                call(&mut Connection::new(conn), &request)
            });
        let elapsed_ms = budget.elapsed().as_millis();
        let target = if service.is_empty() {
            format!("{address} (whole server)")
        } else {
            format!("service '{service}' at {address}")
        };
        let result = match outcome {
            Ok(reply) => reply.into_result(&target, elapsed_ms),
            Err(Failure::Tcp(e)) => e.into_verdict()?,
            Err(failure) => failure.into_result(address),
        };
        Ok(result
            .detail("address", address)
            .detail("service", service)
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(GrpcProbe);

/// What to send.
struct Request<'a> {
    /// `http`, or `https` over TLS.
    scheme: &'static str,
    service: &'a str,
    authority: &'a str,
    metadata: Vec<(String, String)>,
    timeout_ms: u64,
}

impl Request<'_> {
    /// The connection preface, our SETTINGS and the whole request on stream 1.
    fn encode(&self) -> Vec<u8> {
        let user_agent = concat!("healthprobe-grpc/", env!("CARGO_PKG_VERSION"));
        let timeout = format!("{}m", self.timeout_ms);
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", self.scheme.as_bytes()),
            (b":path", health::CHECK_PATH.as_bytes()),
            (b":authority", self.authority.as_bytes()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", user_agent.as_bytes()),
            (b"grpc-timeout", timeout.as_bytes()),
        ];
        for (name, value) in &self.metadata {
            fields.push((name.as_bytes(), value.as_bytes()));
        }
        let block = loona_hpack::Encoder::new().encode(fields);
        let message = health::HealthCheckRequest {
            service: self.service.to_string(),
        }
        .encode_to_vec();

        let mut out = h2::PREFACE.to_vec();
        out.extend(h2::settings(&[(h2::SETTINGS_ENABLE_PUSH, 0)]));
        out.extend(h2::headers(STREAM, &block, false));
        out.extend(h2::frame(
            h2::DATA,
            h2::END_STREAM,
            STREAM,
            &health::frame_message(&message),
        ));
        out
    }
}

/// The probe's one stream.
const STREAM: u32 = 1;

/// Most response body bytes the probe keeps: a health response is a few bytes.
const MAX_BODY: usize = 64 * 1024;

/// Why the call gave no usable answer.
#[derive(Debug)]
enum Failure {
    /// Connecting, reading or writing failed (refused, timeout, …).
    Tcp(TcpError),
    /// The peer answered with text (HTTP/1); the text is its first line.
    NotHttp2(String),
    /// The peer answered with a TLS record.
    Tls,
    /// Over TLS, the server did not choose HTTP/2 (ALPN `h2`).
    NoAlpn,
    /// The peer closed the connection before the response was complete.
    Closed(&'static str),
    /// The peer broke HTTP/2 or gRPC; the text says how.
    Protocol(String),
    /// The server reset the stream (RST_STREAM) with this error code.
    Reset(u32),
    /// The server is going away (GOAWAY) with this error code and debug text.
    GoAway(u32, String),
}

impl Failure {
    fn into_result(self, address: &str) -> CheckResult {
        let (message, kind) = match self {
            Failure::Tcp(e) => {
                return CheckResult::unhealthy(e.to_string()).detail("error", e.kind());
            }
            Failure::NotHttp2(line) => (
                format!(
                    "{address} is not an HTTP/2 server: it answered \"{line}\" (the probe speaks \
                     cleartext HTTP/2 with prior knowledge, as gRPC servers do)"
                ),
                "not-http2",
            ),
            Failure::Tls => (
                format!("{address} answered with TLS; give tls=true to speak TLS to it"),
                "tls",
            ),
            Failure::NoAlpn => (
                format!(
                    "{address} did not choose HTTP/2 in the TLS handshake (ALPN h2), as a gRPC \
                     server does"
                ),
                "alpn",
            ),
            Failure::Closed(when) => (format!("{address} closed the connection {when}"), "closed"),
            Failure::Protocol(what) => (format!("{address}: {what}"), "protocol"),
            Failure::Reset(code) => (
                format!(
                    "{address} reset the health check stream ({})",
                    h2::error_name(code)
                ),
                "reset",
            ),
            Failure::GoAway(code, debug) => {
                let debug = if debug.is_empty() {
                    String::new()
                } else {
                    format!(": {debug}")
                };
                (
                    format!(
                        "{address} closed the HTTP/2 connection (GOAWAY {}){debug}",
                        h2::error_name(code)
                    ),
                    "goaway",
                )
            }
        };
        CheckResult::unhealthy(message).detail("error", kind)
    }
}

/// The response: headers, trailers and body of stream 1.
#[derive(Debug, Default)]
struct Reply {
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    trailers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

fn find<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

impl Reply {
    /// A trailer, or the same field in the headers of a trailers-only response.
    fn trailer(&self, name: &str) -> Option<&[u8]> {
        find(&self.trailers, name).or_else(|| find(&self.headers, name))
    }

    fn into_result(self, target: &str, elapsed_ms: u128) -> CheckResult {
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let http_status = find(&self.headers, ":status").map(text).unwrap_or_default();
        let grpc_status = self.trailer("grpc-status").map(text);
        let grpc_message = self
            .trailer("grpc-message")
            .map(health::percent_decode)
            .unwrap_or_default();
        // A status code is a number when it reads as one, as the server should send it.
        let code = |s: &str| {
            s.parse::<i64>()
                .map_or_else(|_| Value::from(s), Value::Integer)
        };
        let unhealthy = |message: String, kind: &str| {
            let r = CheckResult::unhealthy(message)
                .detail("error", kind)
                .detail("http-status", code(&http_status));
            match &grpc_status {
                Some(s) => r.detail("grpc-status", code(s)),
                None => r,
            }
        };

        if http_status != "200" {
            let grpc = match &grpc_status {
                Some(code) => format!(" (grpc-status {code}: {grpc_message})"),
                None => String::new(),
            };
            return unhealthy(
                format!("{target} answered HTTP {http_status} instead of 200{grpc}"),
                "http-status",
            );
        }
        let content_type = find(&self.headers, "content-type")
            .map(text)
            .unwrap_or_default();
        if !content_type.starts_with("application/grpc") {
            return unhealthy(
                format!(
                    "{target} answered content-type '{content_type}', not application/grpc: not \
                     a gRPC server"
                ),
                "content-type",
            );
        }
        let Some(code_text) = &grpc_status else {
            return unhealthy(
                format!("{target} ended the response without grpc-status"),
                "protocol",
            );
        };
        let Ok(code) = code_text.trim().parse::<u32>() else {
            return unhealthy(
                format!("{target} sent grpc-status '{code_text}', not a number"),
                "protocol",
            );
        };
        if code != 0 {
            let hint = match code {
                5 => " (the server has no health status for this service)",
                12 => " (the server does not implement grpc.health.v1.Health)",
                _ => "",
            };
            let message = if grpc_message.is_empty() {
                String::new()
            } else {
                format!(": {grpc_message}")
            };
            return unhealthy(
                format!(
                    "{target} answered grpc-status {code} {}{message}{hint}",
                    health::code_name(code)
                ),
                "grpc-status",
            );
        }
        let response = match health::unframe_message(&self.body).and_then(|m| {
            health::HealthCheckResponse::decode(m)
                .map_err(|e| format!("the response is not a HealthCheckResponse: {e}"))
        }) {
            Ok(r) => r,
            Err(what) => return unhealthy(format!("{target}: {what}"), "protocol"),
        };
        let status = health::serving_status_name(response.status);
        if response.status == health::SERVING {
            CheckResult::healthy(format!("{target} is SERVING ({elapsed_ms} ms)"))
                .detail("status", status)
        } else {
            CheckResult::unhealthy(format!("{target} is {status}"))
                .detail("status", status)
                .detail("error", "not-serving")
        }
    }
}

/// A connection that reads whole frames.
struct Connection<L> {
    link: Framed<L>,
}

impl<L: Link> Connection<L> {
    fn new(link: L) -> Self {
        Connection {
            // A frame header and the largest payload `read_frame` accepts.
            link: Framed::new(link).max(9 + h2::MAX_FRAME),
        }
    }

    /// Buffer at least `n` bytes; `Ok(false)` if the peer closed the connection first.
    fn fill(&mut self, n: usize) -> Result<bool, Failure> {
        match self.link.fill(n, "the response") {
            Ok(()) => Ok(true),
            Err(FrameError::Closed { .. }) => Ok(false),
            Err(FrameError::Tcp { error, .. }) => Err(Failure::Tcp(error)),
            Err(other) => Err(Failure::Protocol(other.to_string())),
        }
    }

    /// Check that the peer speaks HTTP/2 before reading its first frame: an HTTP/1
    /// server answers the preface with a status line, a TLS server with an alert.
    fn expect_http2(&mut self) -> Result<(), Failure> {
        let complete = self.fill(9)?;
        // Text where a binary frame header belongs: an HTTP/1 status line, or an error
        // page from a server that takes the preface for a bad HTTP/1 request.
        let is_text = |b: &u8| b.is_ascii_graphic() || b.is_ascii_whitespace();
        if !self.link.buffered().is_empty() && self.link.buffered().iter().take(9).all(is_text) {
            while !self.link.buffered().contains(&b'\n') && self.link.buffered().len() < 256 {
                if !matches!(self.fill(self.link.buffered().len() + 1), Ok(true)) {
                    break;
                }
            }
            let line = self
                .link
                .buffered()
                .split(|&b| b == b'\r' || b == b'\n')
                .next()
                .unwrap_or_default();
            let line: String = String::from_utf8_lossy(line).chars().take(100).collect();
            return Err(Failure::NotHttp2(line));
        }
        if matches!(self.link.buffered(), [0x15 | 0x16, 0x03, ..]) {
            return Err(Failure::Tls);
        }
        if !complete {
            return Err(Failure::Closed(if self.link.buffered().is_empty() {
                "without answering the HTTP/2 preface"
            } else {
                "in the middle of its HTTP/2 preface"
            }));
        }
        let header = self.peek_header();
        if header.kind != h2::SETTINGS || header.stream != 0 || header.flags & h2::ACK != 0 {
            return Err(Failure::Protocol(format!(
                "not an HTTP/2 server: its first frame should be SETTINGS, got bytes {}",
                self.link
                    .buffered()
                    .iter()
                    .take(9)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )));
        }
        Ok(())
    }

    fn peek_header(&self) -> h2::FrameHeader {
        let mut header = [0u8; 9];
        header.copy_from_slice(&self.link.buffered()[..9]);
        h2::FrameHeader::parse(&header)
    }

    /// Read one frame; `Closed` when the peer hangs up.
    fn read_frame(&mut self) -> Result<(h2::FrameHeader, Vec<u8>), Failure> {
        if !self.fill(9)? {
            return Err(Failure::Closed("before the response was complete"));
        }
        let header = self.peek_header();
        if header.len > h2::MAX_FRAME {
            return Err(Failure::Protocol(format!(
                "a frame of {} bytes, over the {} the probe allows",
                header.len,
                h2::MAX_FRAME
            )));
        }
        if !self.fill(9 + header.len)? {
            return Err(Failure::Closed("in the middle of a frame"));
        }
        let mut frame = self
            .link
            .read_exact(9 + header.len, "the response")
            .map_err(|e| Failure::Protocol(e.to_string()))?;
        Ok((header, frame.split_off(9)))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.link.link_mut().send(bytes).map_err(Failure::Tcp)
    }
}

/// Frames a response may take before the probe gives up on a chatty peer.
const MAX_FRAMES: usize = 1_000;

/// Send the request and read frames until stream 1 ends.
fn call<L: Link>(conn: &mut Connection<L>, request: &Request<'_>) -> Result<Reply, Failure> {
    conn.send(&request.encode())?;
    conn.expect_http2()?;

    let mut decoder = loona_hpack::Decoder::new();
    // The probe never raises SETTINGS_HEADER_TABLE_SIZE from its default.
    decoder.set_max_allowed_table_size(4096);
    let mut reply = Reply::default();
    let mut block: Option<(Vec<u8>, bool)> = None; // header block being assembled, END_STREAM
    for _ in 0..MAX_FRAMES {
        let (header, payload) = conn.read_frame()?;
        if let Some((pending, end_stream)) = &mut block {
            if header.kind != h2::CONTINUATION || header.stream != STREAM {
                return Err(Failure::Protocol(
                    "a header block was interrupted by another frame".to_string(),
                ));
            }
            pending.extend_from_slice(&payload);
            if header.flags & h2::END_HEADERS != 0 {
                let end = *end_stream;
                let bytes = std::mem::take(pending);
                block = None;
                if header_block(&mut decoder, &mut reply, &bytes, end)? {
                    return Ok(reply);
                }
            }
            continue;
        }
        match header.kind {
            // Acknowledge the server's settings and answer its pings; their ACKs (and
            // the server's ACK of the probe's settings) need nothing.
            h2::SETTINGS if header.stream == 0 && header.flags & h2::ACK == 0 => {
                conn.send(&h2::frame(h2::SETTINGS, h2::ACK, 0, &[]))?;
            }
            h2::PING if header.stream == 0 && header.flags & h2::ACK == 0 => {
                conn.send(&h2::frame(h2::PING, h2::ACK, 0, &payload))?;
            }
            h2::GOAWAY => {
                let last = payload.get(..4).map_or(0, |b| {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
                });
                let code = payload
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                // A graceful GOAWAY that still covers stream 1 lets the response finish.
                if code != 0 || last < STREAM {
                    let debug = String::from_utf8_lossy(payload.get(8..).unwrap_or_default());
                    return Err(Failure::GoAway(code, debug.chars().take(200).collect()));
                }
            }
            h2::RST_STREAM if header.stream == STREAM => {
                let code = payload
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                return Err(Failure::Reset(code));
            }
            h2::HEADERS if header.stream == STREAM => {
                let bytes = h2::unpad(&header, &payload).ok_or_else(|| {
                    Failure::Protocol("a HEADERS frame with bad padding".to_string())
                })?;
                let end = header.flags & h2::END_STREAM != 0;
                if header.flags & h2::END_HEADERS == 0 {
                    block = Some((bytes, end));
                } else if header_block(&mut decoder, &mut reply, &bytes, end)? {
                    return Ok(reply);
                }
            }
            h2::DATA if header.stream == STREAM => {
                let bytes = h2::unpad(&header, &payload).ok_or_else(|| {
                    Failure::Protocol("a DATA frame with bad padding".to_string())
                })?;
                if reply.body.len() + bytes.len() > MAX_BODY {
                    return Err(Failure::Protocol(format!(
                        "the response body exceeds {MAX_BODY} bytes"
                    )));
                }
                reply.body.extend_from_slice(&bytes);
                if header.flags & h2::END_STREAM != 0 {
                    return Ok(reply);
                }
            }
            h2::PUSH_PROMISE => {
                return Err(Failure::Protocol(
                    "a PUSH_PROMISE although the probe disabled push".to_string(),
                ));
            }
            // The request is one small DATA frame, far inside any flow-control window.
            h2::WINDOW_UPDATE => {}
            // PRIORITY, frames of other streams and unknown types carry nothing the
            // probe needs.
            _ => {}
        }
    }
    Err(Failure::Protocol(format!(
        "no complete response after {MAX_FRAMES} frames"
    )))
}

/// Decode a header block into the reply's headers (the first block) or trailers;
/// `Ok(true)` when it ends the stream.
fn header_block(
    decoder: &mut loona_hpack::Decoder<'_>,
    reply: &mut Reply,
    bytes: &[u8],
    end_stream: bool,
) -> Result<bool, Failure> {
    let fields = decoder
        .decode(bytes)
        .map_err(|e| Failure::Protocol(format!("cannot decode the response headers: {e:?}")))?;
    if reply.headers.is_empty() {
        reply.headers = fields;
    } else {
        reply.trailers.extend(fields);
    }
    Ok(end_stream)
}

#[cfg(test)]
mod tests;
