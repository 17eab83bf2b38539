//! Fetches `url` through `wasi:http/outgoing-handler`, the interface JavaScript's `fetch`
//! and other languages' WASI HTTP clients use, and reports the status and body size, or
//! the `error-code` the host gave. Like `fetch`, it follows a redirect by sending a new
//! request, which the host checks again.

use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasi::io::streams::StreamError;

struct WasiHttp;

impl Probe for WasiHttp {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "wasi-http",
            "0.0.0",
            "GETs a URL through wasi:http (test only).",
        )
        .param(ParamSpec::required("url", "http:// or https:// URL"))
        .param(ParamSpec::optional(
            "hoard-fields",
            "header maps to create and keep before the request (default 0)",
        ))
        .param(ParamSpec::optional(
            "drop-requests",
            "requests to send and drop at once before the request (default 0)",
        ))
        .param(ParamSpec::optional(
            "hoard-bytes",
            "bytes of one header in each hoarded map (default 60000; 0: none)",
        ))
        .param(ParamSpec::optional(
            "timeout-ms",
            "connect, first-byte and between-bytes timeouts asked of the host",
        ))
        .param(ParamSpec::optional(
            "requests",
            "requests whose responses are held open at once (default 1)",
        ))
        .param(ParamSpec::optional(
            "follow",
            "redirects to follow (default 0)",
        ))
        .param(ParamSpec::optional(
            "then-spin",
            "compute forever once the body is read (true/false)",
        ))
    }

    fn check(params: &Params, _budget: Budget) -> Result<CheckResult, CheckError> {
        let number = |name: &str, default: u64| match params.str(name) {
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| CheckError::invalid_param(name, "not a number")),
            None => Ok(default),
        };
        let timeout = params
            .str("timeout-ms")
            .map(|_| number("timeout-ms", 0).map(|ms| ms * 1_000_000))
            .transpose()?;
        let requests = number("requests", 1)?.max(1);
        let follow = number("follow", 0)?;
        let mut url = params.required_str("url")?.to_string();

        // Host memory the guest's own memory cap does not see: header maps kept alive.
        // Requests sent and dropped unanswered, as fast as the host takes them.
        let dropped = number("drop-requests", 0)?;
        for n in 0..dropped {
            if let Err(e) = send(&url, timeout) {
                return Ok(CheckResult::unhealthy(format!(
                    "request {} of {dropped}: {e}",
                    n + 1
                )));
            }
        }

        let hoard = number("hoard-fields", 0)?;
        let value = vec![b'a'; usize::try_from(number("hoard-bytes", 60_000)?).unwrap_or(0)];
        let mut kept = Vec::new();
        for n in 0..hoard {
            let fields = Fields::new();
            if value.is_empty() {
                kept.push(fields);
                continue;
            }
            if let Err(e) = fields.append("x-hoard", &value) {
                return Ok(CheckResult::unhealthy(format!(
                    "header map {} of {hoard}: {e:?}",
                    n + 1
                )));
            }
            kept.push(fields);
        }

        // Responses held unread: each keeps its connection open.
        let mut held = Vec::new();
        for n in 1..requests {
            match get(&url, timeout) {
                Ok(r) => held.push(r),
                Err(e) => return Ok(CheckResult::unhealthy(format!("request {n}: {e}"))),
            }
        }
        let mut redirects = 0;
        let response = loop {
            let response = match get(&url, timeout) {
                Ok(r) => r,
                Err(e) => return Ok(CheckResult::unhealthy(e)),
            };
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .into_iter()
                .next()
                .and_then(|v| String::from_utf8(v).ok());
            match location {
                Some(to) if (300..400).contains(&status) && redirects < follow => {
                    redirects += 1;
                    url = to;
                }
                _ => break response,
            }
        };
        let status = response.status();
        let body = response
            .consume()
            .map_err(|()| CheckError::invalid_config("no body"))?;
        let stream = body
            .stream()
            .map_err(|()| CheckError::invalid_config("no body stream"))?;
        let mut size = 0usize;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => size += chunk.len(),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Ok(CheckResult::unhealthy(format!(
                        "HTTP {status}, reading the body after {size} bytes: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
        if params.str("then-spin") == Some("true") {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let message = format!("HTTP {status}, {size} bytes");
        Ok(if (200..300).contains(&status) {
            CheckResult::healthy(message)
        } else {
            CheckResult::unhealthy(message)
        })
    }
}

/// One GET, waiting for the response head.
fn get(url: &str, timeout_ns: Option<u64>) -> Result<IncomingResponse, String> {
    let pending = send(url, timeout_ns)?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(r))) => Ok(r),
        Some(Ok(Err(e))) => Err(format!("{url}: {e:?}")),
        other => Err(format!("{url}: {other:?}")),
    }
}

/// One GET sent, its response not waited for.
fn send(url: &str, timeout_ns: Option<u64>) -> Result<FutureIncomingResponse, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(format!("{url}: not http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(timeout_ns);
    let _ = options.set_first_byte_timeout(timeout_ns);
    let _ = options.set_between_bytes_timeout(timeout_ns);
    outgoing_handler::handle(request, Some(options)).map_err(|e| format!("{url}: {e:?}"))
}

healthprobe_sdk::export_probe!(WasiHttp);
