//! HTTP requests through the host's client.
//!
//! Requests go through the host's network policy and never outlive the run's
//! deadline. A response with any status (including 4xx and 5xx) is `Ok`;
//! [`HttpError`] means no response was received.
//!
//! ```no_run
//! use std::time::Duration;
//! use healthprobe_sdk::http::Request;
//!
//! let response = Request::get("http://127.0.0.1:8080/health")
//!     .header("Accept", "application/json")
//!     .timeout(Duration::from_secs(2))
//!     .send()?;
//! println!("{} {}", response.status, response.text());
//! # Ok::<(), healthprobe_sdk::http::HttpError>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::__private::bindings::healthprobe::probe::http as wit;
use crate::Pair;

/// Largest response body the host returns; a longer one is [`HttpError::TooLarge`].
pub fn max_body_bytes() -> u64 {
    wit::max_body_bytes()
}

/// An HTTP request being built; send it with [`Request::send`].
///
/// By default it has no headers, no body, no timeout of its own (the run's
/// deadline still applies) and follows redirects.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    inner: wit::Request,
}

impl Request {
    /// A request with any method (`GET`, `HEAD`, `POST`, ...) for an absolute `http(s)://` URL.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            inner: wit::Request {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
                timeout_ms: None,
                follow_redirects: true,
                insecure: false,
            },
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `HEAD` request.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new("HEAD", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Add a header; a name may be added more than once.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// Set the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// Give up after `timeout` (rounded up to whole milliseconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        let ms = timeout.as_micros().div_ceil(1000);
        self.inner.timeout_ms = Some(u64::try_from(ms).unwrap_or(u64::MAX));
        self
    }

    /// Whether to follow redirects (at most 5, each checked against the network policy).
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.inner.follow_redirects = follow;
        self
    }

    /// Skip TLS certificate verification. The host refuses such a request (`Denied`)
    /// unless the operator passed `--allow-insecure-tls`.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.inner.insecure = insecure;
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The headers added so far.
    pub fn headers(&self) -> &[Pair] {
        &self.inner.headers
    }

    /// Send the request and wait for the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        match wit::send(&self.inner) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// A response; any status code counts as a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, for example 200.
    pub status: u16,
    /// The headers in order, names lower-case.
    pub headers: Vec<Pair>,
    /// The body (at most [`max_body_bytes`]).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, with invalid UTF-8 replaced by `U+FFFD`.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Whether `text` is an HTTP token (a valid method or header name).
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Splits a `Name: value` (or `Name:value`) header parameter into name and value, with a
/// reason for the operator when it is malformed.
pub fn parse_header(header: &str) -> Result<(String, String), String> {
    let malformed = || format!("expected a header as 'Name: value', got '{header}'");
    let (name, value) = header.split_once(':').ok_or_else(malformed)?;
    let name = name.trim();
    if !is_token(name) {
        return Err(malformed());
    }
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(format!("a header value must be one line, got '{header}'"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Why a request got no response; each variant carries the host's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The network policy does not allow the address.
    Denied(String),
    /// No response within the request's timeout or the run's deadline.
    Timeout(String),
    /// Name resolution or the TCP connection failed (refused, unreachable, reset).
    Connect(String),
    /// The TLS handshake or certificate verification failed.
    Tls(String),
    /// The response body exceeds [`max_body_bytes`].
    TooLarge(String),
    /// The request is malformed (bad URL, scheme, method or header).
    Invalid(String),
    /// The server broke the HTTP protocol.
    Protocol(String),
}

impl HttpError {
    /// A short kebab-case name of the cause: `denied`, `timeout`, `connect`,
    /// `tls`, `too-large`, `invalid` or `protocol`.
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::Denied(_) => "denied",
            HttpError::Timeout(_) => "timeout",
            HttpError::Connect(_) => "connect",
            HttpError::Tls(_) => "tls",
            HttpError::TooLarge(_) => "too-large",
            HttpError::Invalid(_) => "invalid",
            HttpError::Protocol(_) => "protocol",
        }
    }

    /// The host's explanation.
    pub fn message(&self) -> &str {
        match self {
            HttpError::Denied(m)
            | HttpError::Timeout(m)
            | HttpError::Connect(m)
            | HttpError::Tls(m)
            | HttpError::TooLarge(m)
            | HttpError::Invalid(m)
            | HttpError::Protocol(m) => m,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = match self {
            HttpError::Denied(_) => "denied by network policy",
            HttpError::Timeout(_) => "timed out",
            HttpError::Connect(_) => "connection failed",
            HttpError::Tls(_) => "TLS failed",
            HttpError::TooLarge(_) => "response too large",
            HttpError::Invalid(_) => "invalid request",
            HttpError::Protocol(_) => "HTTP protocol error",
        };
        // The host's messages already name the cause and the URL; the generic cause is
        // only a fallback for a host that sends none.
        match self.message() {
            "" => f.write_str(cause),
            message => f.write_str(message),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<wit::Error> for HttpError {
    fn from(e: wit::Error) -> Self {
        match e {
            wit::Error::Denied(m) => HttpError::Denied(m),
            wit::Error::Timeout(m) => HttpError::Timeout(m),
            wit::Error::Connect(m) => HttpError::Connect(m),
            wit::Error::Tls(m) => HttpError::Tls(m),
            wit::Error::TooLarge(m) => HttpError::TooLarge(m),
            wit::Error::Invalid(m) => HttpError::Invalid(m),
            wit::Error::Protocol(m) => HttpError::Protocol(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder() {
        let r = Request::post("http://x/")
            .header("A", "1")
            .body("hi")
            .timeout(Duration::from_micros(1500))
            .follow_redirects(false);
        assert_eq!(r.method(), "POST");
        assert_eq!(r.url(), "http://x/");
        assert_eq!(r.inner.timeout_ms, Some(2));
        assert_eq!(r.inner.body.as_deref(), Some(&b"hi"[..]));
        assert!(!r.inner.follow_redirects);
    }

    #[test]
    fn response_helpers() {
        let r = Response {
            status: 204,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"ok\xff".to_vec(),
        };
        assert_eq!(r.header("Content-Type"), Some("text/plain"));
        assert_eq!(r.text(), "ok\u{fffd}");
        assert!(r.is_success());
    }

    #[test]
    fn error_display() {
        let e = HttpError::Connect("connection to 127.0.0.1:9 refused".into());
        assert_eq!(e.to_string(), "connection to 127.0.0.1:9 refused");
        assert_eq!(e.kind(), "connect");
        assert_eq!(HttpError::Timeout(String::new()).to_string(), "timed out");
    }
}
