//! The bundled `http` probe: one HTTP request, checked against the expected
//! status, body text and JSON value.

use std::fmt;
use std::time::Instant;

use healthprobe_sdk::http::{Request, is_token, parse_header};
use healthprobe_sdk::{
    Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo, parse_bool,
};

/// The default `expect-status`, as in Kubernetes HTTP probes.
const DEFAULT_STATUS: &str = "200-399";

/// Longest body excerpt quoted in a message.
const EXCERPT_CHARS: usize = 120;

struct HttpProbe;

impl Probe for HttpProbe {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "http",
            env!("CARGO_PKG_VERSION"),
            "Sends one HTTP request and checks the status code, and optionally the body text or a JSON value.",
        )
        .param(ParamSpec::required("url", "Absolute http:// or https:// URL to request."))
        .param(ParamSpec::optional("method", "Request method, for example GET, HEAD or POST.").default("GET"))
        .param(
            ParamSpec::optional("header", "Request header as `Name: value`; give it once per header.")
                .repeatable(),
        )
        .param(ParamSpec::optional("body", "Request body, sent as given."))
        .param(
            ParamSpec::optional(
                "expect-status",
                "Accepted status codes: codes and ranges separated by commas, for example 200, 200,204 or 200-299,301.",
            )
            .default(DEFAULT_STATUS),
        )
        .param(ParamSpec::optional(
            "expect-body",
            "Text that must occur in the response body.",
        ))
        .param(ParamSpec::optional(
            "expect-json",
            "JSON-pointer=value the JSON body must hold, for example /status=UP.",
        ))
        .param(
            ParamSpec::optional("follow-redirects", "Whether to follow redirects (at most 5).")
                .default("true"),
        )
        .param(
            ParamSpec::optional(
                "insecure-tls",
                "Skip TLS certificate verification; the operator must also pass --allow-insecure-tls.",
            )
            .default("false"),
        )
    }

    fn check(params: &Params, _budget: Budget) -> Result<CheckResult, CheckError> {
        let url = params.required_str("url")?;
        let method = parse_method(params.required_str("method")?)
            .map_err(|reason| CheckError::invalid_param("method", reason))?;
        let headers = params
            .list("header")
            .into_iter()
            .map(parse_header)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| CheckError::invalid_param("header", reason))?;
        let expect_status = params.required_parse("expect-status", StatusSpec::parse)?;
        let expect_body = params.str("expect-body");
        let expect_json = params.parse("expect-json", JsonExpectation::parse)?;
        let follow = params.required_parse("follow-redirects", parse_bool)?;
        let insecure = params.required_parse("insecure-tls", parse_bool)?;

        // No per-request timeout: the host bounds the request by the run's deadline.
        let mut request = Request::new(method, url)
            .follow_redirects(follow)
            .insecure(insecure);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = params.str("body") {
            request = request.body(body);
        }

        let start = Instant::now();
        let result = request.send();
        let elapsed_ms = start.elapsed().as_millis();
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                return Ok(CheckResult::unhealthy(e.to_string())
                    .detail("url", url)
                    .detail("error", e.kind())
                    .detail("elapsed-ms", elapsed_ms));
            }
        };

        let verdict = judge(
            url,
            response.status,
            &response.body,
            &expect_status,
            expect_body,
            expect_json.as_ref(),
        );
        let mut result = match &verdict {
            Ok(()) => CheckResult::healthy(format!(
                "HTTP {} from {url} in {elapsed_ms} ms",
                response.status
            )),
            Err(failure) => CheckResult::unhealthy(&failure.message),
        };
        // What blackbox_exporter's http prober reports of a response, for serve's /probe.
        if let Some(length) = response
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            result = result.detail("content-length", length);
        }
        if let Some(modified) = response
            .header("last-modified")
            .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        {
            result = result.detail("last-modified", modified.as_secs());
        }
        if expect_body.is_some() || expect_json.is_some() {
            let body_failed = matches!(&verdict, Err(f) if f.body);
            result = result.detail("body-mismatch", body_failed);
        }
        Ok(result
            .detail("url", url)
            .detail("status", response.status)
            .detail("elapsed-ms", elapsed_ms)
            .detail("body-bytes", response.body.len()))
    }
}

healthprobe_sdk::export_probe!(HttpProbe);

/// Why a response is unhealthy: the message, and whether it was the body (not the status)
/// that failed the expectations.
#[derive(Debug, PartialEq)]
struct Failed {
    message: String,
    body: bool,
}

/// Compare a response with the expectations.
fn judge(
    url: &str,
    status: u16,
    body: &[u8],
    expect_status: &StatusSpec,
    expect_body: Option<&str>,
    expect_json: Option<&JsonExpectation>,
) -> Result<(), Failed> {
    if !expect_status.matches(status) {
        return Err(Failed {
            message: format!("HTTP {status} from {url} (expected {expect_status})"),
            body: false,
        });
    }
    let body_failed = |message| Failed {
        message,
        body: true,
    };
    let text = String::from_utf8_lossy(body);
    if let Some(needle) = expect_body {
        if !text.contains(needle) {
            return Err(body_failed(format!(
                "body of {url} does not contain \"{needle}\"; body: {}",
                excerpt(&text)
            )));
        }
    }
    if let Some(expectation) = expect_json {
        expectation.check(body).map_err(|e| {
            body_failed(match e {
                JsonMismatch::NotJson(reason) => format!("{url}: body is not JSON: {reason}"),
                other => other.to_string(),
            })
        })?;
    }
    Ok(())
}

/// The start of `text` on one line, for quoting in a message.
fn excerpt(text: &str) -> String {
    let flat: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(EXCERPT_CHARS + 1)
        .collect();
    if flat.chars().count() > EXCERPT_CHARS {
        let cut: String = flat.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else if flat.is_empty() {
        "(empty body)".to_string()
    } else {
        flat
    }
}

/// Check that `method` is an HTTP token such as `GET`.
fn parse_method(method: &str) -> Result<&str, String> {
    let method = method.trim();
    if is_token(method) {
        Ok(method)
    } else {
        Err(format!(
            "expected an HTTP method such as GET, HEAD or POST, got '{method}'"
        ))
    }
}

/// Accepted status codes: a list of codes and inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatusSpec(Vec<(u16, u16)>);

impl StatusSpec {
    /// Parse `200`, `200,204` or `200-299,301`.
    fn parse(text: &str) -> Result<Self, String> {
        let expected = || {
            format!("expected status codes or ranges like 200, 200,204 or 200-299, got '{text}'")
        };
        let code = |part: &str| -> Result<u16, String> {
            let part = part.trim();
            match part.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) && part.bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(c)
                }
                Ok(_) => Err(format!(
                    "status codes are from 100 to 599, got '{part}' in '{text}'"
                )),
                Err(_) => Err(expected()),
            }
        };
        let mut ranges = Vec::new();
        for item in text.split(',') {
            let range = match item.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(format!("range {lo}-{hi} is empty in '{text}'"));
                    }
                    (lo, hi)
                }
                None => {
                    let c = code(item)?;
                    (c, c)
                }
            };
            ranges.push(range);
        }
        Ok(StatusSpec(ranges))
    }

    fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// `POINTER=VALUE`: the JSON body must hold `VALUE` at the JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JsonExpectation {
    pointer: String,
    value: String,
}

/// Why a body does not meet a [`JsonExpectation`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum JsonMismatch {
    /// The body does not parse as JSON.
    NotJson(String),
    /// Nothing is at the pointer.
    Missing { pointer: String, excerpt: String },
    /// Something else is at the pointer.
    Different {
        pointer: String,
        actual: String,
        expected: String,
        excerpt: String,
    },
}

impl fmt::Display for JsonMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonMismatch::NotJson(reason) => write!(f, "body is not JSON: {reason}"),
            JsonMismatch::Missing { pointer, excerpt } => {
                write!(f, "JSON {pointer} is missing; body: {excerpt}")
            }
            JsonMismatch::Different {
                pointer,
                actual,
                expected,
                excerpt,
            } => write!(
                f,
                "JSON {pointer} is {actual}, expected \"{expected}\"; body: {excerpt}"
            ),
        }
    }
}

impl JsonExpectation {
    /// Parse `POINTER=VALUE`, splitting at the first `=`.
    fn parse(text: &str) -> Result<Self, String> {
        let (pointer, value) = text
            .split_once('=')
            .ok_or_else(|| format!("expected POINTER=VALUE such as /status=UP, got '{text}'"))?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "expected a JSON pointer starting with '/' before '=', such as /status=UP, got '{text}'"
            ));
        }
        Ok(JsonExpectation {
            pointer: pointer.to_string(),
            value: value.to_string(),
        })
    }

    /// Compare: a JSON string with the raw text, anything else by its JSON text
    /// (`true`, `3`, `null`, `{"a":1}`).
    fn check(&self, body: &[u8]) -> Result<(), JsonMismatch> {
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| JsonMismatch::NotJson(e.to_string()))?;
        let excerpt = || excerpt(&String::from_utf8_lossy(body));
        let Some(found) = json.pointer(&self.pointer) else {
            return Err(JsonMismatch::Missing {
                pointer: self.pointer.clone(),
                excerpt: excerpt(),
            });
        };
        let matches = match found {
            serde_json::Value::String(s) => *s == self.value,
            other => serde_json::to_string(other).is_ok_and(|text| text == self.value),
        };
        if matches {
            Ok(())
        } else {
            Err(JsonMismatch::Different {
                pointer: self.pointer.clone(),
                actual: found.to_string(),
                expected: self.value.clone(),
                excerpt: excerpt(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_specs() {
        let spec = StatusSpec::parse("200-299,301").unwrap();
        assert!(spec.matches(200) && spec.matches(299) && spec.matches(301));
        assert!(!spec.matches(300) && !spec.matches(503));
        assert_eq!(spec.to_string(), "200-299,301");
        assert_eq!(
            StatusSpec::parse("200").unwrap(),
            StatusSpec(vec![(200, 200)])
        );
        assert_eq!(
            StatusSpec::parse(" 200 , 204 ").unwrap(),
            StatusSpec(vec![(200, 200), (204, 204)])
        );
        assert_eq!(
            StatusSpec::parse(DEFAULT_STATUS).unwrap(),
            StatusSpec(vec![(200, 399)])
        );
        for bad in [
            "",
            "abc",
            "200,",
            "2xx",
            "200-",
            "-200",
            "99",
            "600",
            "300-200",
            "+200",
            "200-299-300",
        ] {
            assert!(StatusSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            StatusSpec::parse("abc").unwrap_err(),
            "expected status codes or ranges like 200, 200,204 or 200-299, got 'abc'"
        );
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Accept: application/json"),
            Ok(("Accept".into(), "application/json".into()))
        );
        assert_eq!(
            parse_header("X-Token:abc:def"),
            Ok(("X-Token".into(), "abc:def".into()))
        );
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".into(), String::new()))
        );
        for bad in ["NoColon", ": value", "Bad Name: x", "A: b\r\nC: d"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_header("NoColon").unwrap_err(),
            "expected a header as 'Name: value', got 'NoColon'"
        );
    }

    #[test]
    fn methods() {
        assert_eq!(parse_method("POST"), Ok("POST"));
        assert!(parse_method("GET /").is_err());
        assert!(parse_method("").is_err());
    }

    #[test]
    fn json_expectations() {
        let up = JsonExpectation::parse("/status=UP").unwrap();
        assert_eq!(up.check(br#"{"status":"UP"}"#), Ok(()));
        let down = up
            .check(br#"{"status":"DOWN","components":{}}"#)
            .unwrap_err();
        assert_eq!(
            down.to_string(),
            r#"JSON /status is "DOWN", expected "UP"; body: {"status":"DOWN","components":{}}"#
        );
        assert!(matches!(up.check(b"{}"), Err(JsonMismatch::Missing { .. })));
        assert!(matches!(up.check(b"<html>"), Err(JsonMismatch::NotJson(_))));

        // Non-string values compare by their JSON text.
        let ok = JsonExpectation::parse("/checks/0/ok=true").unwrap();
        assert_eq!(ok.check(br#"{"checks":[{"ok":true}]}"#), Ok(()));
        assert!(ok.check(br#"{"checks":[{"ok":"true"}]}"#).is_ok());
        assert!(ok.check(br#"{"checks":[{"ok":false}]}"#).is_err());
        let n = JsonExpectation::parse("/n=3").unwrap();
        assert_eq!(n.check(br#"{"n":3}"#), Ok(()));

        // Split at the first '='; the value may contain '='.
        let eq = JsonExpectation::parse("/q=a=b").unwrap();
        assert_eq!(eq.value, "a=b");
        assert_eq!(JsonExpectation::parse("=x").unwrap().pointer, "");

        assert!(JsonExpectation::parse("/status").is_err());
        assert!(JsonExpectation::parse("status=UP").is_err());
    }

    #[test]
    fn judging() {
        let spec = StatusSpec::parse(DEFAULT_STATUS).unwrap();
        let url = "http://127.0.0.1:8080/health";
        assert_eq!(judge(url, 200, b"ok", &spec, None, None), Ok(()));
        let failed = |message: &str, body| Failed {
            message: message.into(),
            body,
        };
        assert_eq!(
            judge(url, 503, b"", &spec, None, None).unwrap_err(),
            failed(
                "HTTP 503 from http://127.0.0.1:8080/health (expected 200-399)",
                false
            )
        );
        assert_eq!(
            judge(url, 200, b"status: DOWN", &spec, Some("UP"), None).unwrap_err(),
            failed(
                "body of http://127.0.0.1:8080/health does not contain \"UP\"; body: status: DOWN",
                true
            )
        );
        let json = JsonExpectation::parse("/status=UP").unwrap();
        let err = judge(url, 200, b"<html>", &spec, None, Some(&json)).unwrap_err();
        assert!(
            err.body
                && err
                    .message
                    .starts_with("http://127.0.0.1:8080/health: body is not JSON: "),
            "{err:?}"
        );
    }

    #[test]
    fn excerpts() {
        assert_eq!(excerpt("a\n  b"), "a b");
        assert_eq!(excerpt(""), "(empty body)");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn describe_documents_every_param() {
        let info = HttpProbe::describe();
        let names: Vec<_> = info.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "url",
                "method",
                "header",
                "body",
                "expect-status",
                "expect-body",
                "expect-json",
                "follow-redirects",
                "insecure-tls"
            ]
        );
        assert!(info.params.iter().all(|p| !p.description.is_empty()));
        assert!(info.params[0].required && info.params[2].repeatable);
    }

    #[test]
    fn bad_params_are_invalid_param() {
        let budget = Budget::new(1000);
        for (name, value) in [
            ("expect-status", "2xx"),
            ("header", "nocolon"),
            ("expect-json", "/status"),
            ("follow-redirects", "maybe"),
            ("method", "G ET"),
        ] {
            let params = Params::from_pairs([("url", "http://x/"), (name, value)])
                .with_defaults(&HttpProbe::describe().params);
            match HttpProbe::check(&params, budget) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
