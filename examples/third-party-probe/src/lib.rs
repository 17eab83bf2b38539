//! `queue-depth`: fetches a JSON metrics document over HTTP, reads one number at a
//! JSON pointer and compares it with a warning and a critical threshold.
//!
//! Written against `healthprobe-sdk` only: implement [`Probe`], export it with
//! [`healthprobe_sdk::export_probe!`], and keep the pure logic in plain functions
//! so `cargo test` can run it natively.

use std::fmt;

use healthprobe_sdk::http::{Request, parse_header};
use healthprobe_sdk::{Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo};
use serde_json::Value;

/// Longest JSON excerpt quoted in a message.
const EXCERPT_CHARS: usize = 80;

struct QueueDepth;

impl Probe for QueueDepth {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "queue-depth",
            env!("CARGO_PKG_VERSION"),
            "Reads a number (such as a queue depth) from a JSON metrics URL and compares it with warning and critical thresholds.",
        )
        .param(ParamSpec::required(
            "url",
            "Absolute http:// or https:// URL of the JSON metrics document (fetched with GET).",
        ))
        .param(ParamSpec::required(
            "pointer",
            "JSON pointer to the number in the document, for example /queue/depth.",
        ))
        .param(
            ParamSpec::optional(
                "warn",
                "Degraded when the number is at least this (and below critical).",
            )
            .default("100"),
        )
        .param(
            ParamSpec::optional("critical", "Unhealthy when the number is at least this.")
                .default("1000"),
        )
        .param(
            ParamSpec::optional(
                "header",
                "Request header as `Name: value`; give it once per header.",
            )
            .repeatable(),
        )
    }

    fn check(params: &Params, _budget: Budget) -> Result<CheckResult, CheckError> {
        // Every parameter is checked before any request is sent.
        let url = params.required_str("url")?;
        let pointer = parse_pointer(params.required_str("pointer")?)
            .map_err(|reason| CheckError::invalid_param("pointer", reason))?;
        // Both have a default declared in `describe`, which the SDK fills in.
        let warn = params.required_parse("warn", parse_threshold)?;
        let critical = params.required_parse("critical", parse_threshold)?;
        let thresholds = Thresholds::new(warn, critical)
            .map_err(|reason| CheckError::invalid_param("warn", reason))?;
        let headers = params
            .list("header")
            .into_iter()
            .map(parse_header)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| CheckError::invalid_param("header", reason))?;

        // No per-request timeout: the host bounds the request by the run's deadline.
        let mut request = Request::get(url);
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
        {
            request = request.header("Accept", "application/json");
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }

        // No response at all is a verdict, not an error: the host's message names the cause.
        let response = match request.send() {
            Ok(response) => response,
            Err(e) => {
                return Ok(CheckResult::unhealthy(e.to_string())
                    .detail("url", url)
                    .detail("error", e.kind()));
            }
        };
        if !response.is_success() {
            return Ok(
                CheckResult::unhealthy(format!("HTTP {} from {url}", response.status))
                    .detail("url", url)
                    .detail("status", response.status),
            );
        }

        let depth = match read_number(&response.body, pointer) {
            Ok(depth) => depth,
            Err(e) => return Ok(CheckResult::unhealthy(e.message(url)).detail("url", url)),
        };
        let message = format!("queue depth {depth} at {pointer} ({thresholds})");
        let result = match thresholds.classify(depth.value) {
            Level::Normal => CheckResult::healthy(message),
            Level::Warning => CheckResult::degraded(message),
            Level::Critical => CheckResult::unhealthy(message),
        };
        Ok(result.detail("depth", depth.value).detail("url", url))
    }
}

healthprobe_sdk::export_probe!(QueueDepth);

/// Where a number falls relative to the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Below `warn`: healthy.
    Normal,
    /// From `warn` up to below `critical`: degraded.
    Warning,
    /// At or above `critical`: unhealthy.
    Critical,
}

/// The `warn` and `critical` thresholds, with `warn <= critical`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Thresholds {
    warn: f64,
    critical: f64,
}

impl Thresholds {
    /// Check that the thresholds are in order; the error is the reason for `warn`.
    fn new(warn: f64, critical: f64) -> Result<Self, String> {
        if warn > critical {
            return Err(format!(
                "must not be greater than critical ({critical}), got {warn}"
            ));
        }
        Ok(Thresholds { warn, critical })
    }

    fn classify(&self, value: f64) -> Level {
        if value >= self.critical {
            Level::Critical
        } else if value >= self.warn {
            Level::Warning
        } else {
            Level::Normal
        }
    }
}

impl fmt::Display for Thresholds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warn {}, critical {}", self.warn, self.critical)
    }
}

/// Parse a threshold: a finite number such as `100` or `2.5`.
fn parse_threshold(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(format!(
            "expected a number such as 100 or 2.5, got '{text}'"
        )),
    }
}

/// Check that `pointer` is a JSON pointer: empty (the whole document) or starting with `/`.
fn parse_pointer(pointer: &str) -> Result<&str, String> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(pointer)
    } else {
        Err(format!(
            "expected a JSON pointer starting with '/', such as /queue/depth, got '{pointer}'"
        ))
    }
}

/// A number read from the document: its value and its JSON text (`5`, `2.5`).
#[derive(Debug, Clone, PartialEq)]
struct Depth {
    value: f64,
    text: String,
}

impl fmt::Display for Depth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why no number could be read from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadError {
    /// The body does not parse as JSON.
    NotJson(String),
    /// Nothing is at the pointer.
    Missing { pointer: String },
    /// Something other than a number is at the pointer (its JSON text, shortened).
    NotNumber { pointer: String, found: String },
}

impl ReadError {
    /// The unhealthy message for a document fetched from `url`.
    fn message(&self, url: &str) -> String {
        match self {
            ReadError::NotJson(reason) => format!("body of {url} is not JSON: {reason}"),
            ReadError::Missing { pointer } => {
                format!("no value at {pointer} in the JSON from {url}")
            }
            ReadError::NotNumber { pointer, found } => {
                format!("{pointer} in the JSON from {url} is {found}, not a number")
            }
        }
    }
}

/// Read the number at `pointer` in the JSON document `body`.
fn read_number(body: &[u8], pointer: &str) -> Result<Depth, ReadError> {
    let json: Value =
        serde_json::from_slice(body).map_err(|e| ReadError::NotJson(e.to_string()))?;
    let found = json.pointer(pointer).ok_or_else(|| ReadError::Missing {
        pointer: pointer.to_string(),
    })?;
    match found {
        Value::Number(n) => Ok(Depth {
            // Without serde_json's arbitrary-precision feature every number has an f64 value.
            value: n.as_f64().unwrap_or(f64::NAN),
            text: n.to_string(),
        }),
        other => Err(ReadError::NotNumber {
            pointer: pointer.to_string(),
            found: excerpt(&other.to_string()),
        }),
    }
}

/// `text` cut to [`EXCERPT_CHARS`] characters, with `…` when cut.
fn excerpt(text: &str) -> String {
    if text.chars().count() > EXCERPT_CHARS {
        let cut: String = text.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thresholds `describe` declares as defaults.
    fn defaults() -> Thresholds {
        let params = Params::default().with_defaults(&QueueDepth::describe().params);
        let warn = params.required_parse("warn", parse_threshold).unwrap();
        let critical = params.required_parse("critical", parse_threshold).unwrap();
        Thresholds::new(warn, critical).unwrap()
    }

    #[test]
    fn classification_boundaries() {
        let t = defaults();
        assert_eq!(t.classify(0.0), Level::Normal);
        assert_eq!(t.classify(99.0), Level::Normal);
        assert_eq!(t.classify(99.9), Level::Normal);
        assert_eq!(t.classify(100.0), Level::Warning);
        assert_eq!(t.classify(999.0), Level::Warning);
        assert_eq!(t.classify(1000.0), Level::Critical);
        assert_eq!(t.classify(1e9), Level::Critical);
        assert_eq!(t.classify(-5.0), Level::Normal);

        // Equal thresholds leave no degraded band.
        let t = Thresholds::new(10.0, 10.0).unwrap();
        assert_eq!(t.classify(9.0), Level::Normal);
        assert_eq!(t.classify(10.0), Level::Critical);
    }

    #[test]
    fn thresholds() {
        assert_eq!(defaults().to_string(), "warn 100, critical 1000");
        assert_eq!(
            Thresholds::new(2.5, 7.0).unwrap().to_string(),
            "warn 2.5, critical 7"
        );
        assert_eq!(
            Thresholds::new(2000.0, 1000.0).unwrap_err(),
            "must not be greater than critical (1000), got 2000"
        );
        assert_eq!(parse_threshold("100"), Ok(100.0));
        assert_eq!(parse_threshold("2.5"), Ok(2.5));
        assert_eq!(parse_threshold("-1"), Ok(-1.0));
        for bad in ["", "abc", "10k", "NaN", "inf", "1 000"] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_threshold("lots").unwrap_err(),
            "expected a number such as 100 or 2.5, got 'lots'"
        );
    }

    #[test]
    fn pointers() {
        assert_eq!(parse_pointer("/queue/depth"), Ok("/queue/depth"));
        assert_eq!(parse_pointer(""), Ok(""));
        assert_eq!(
            parse_pointer("queue.depth").unwrap_err(),
            "expected a JSON pointer starting with '/', such as /queue/depth, got 'queue.depth'"
        );
    }

    #[test]
    fn reading_numbers() {
        let body = br#"{"queue":{"depth":5,"lag":2.5,"name":"jobs","tags":[1,{"x":-3}]}}"#;
        let depth = read_number(body, "/queue/depth").unwrap();
        assert_eq!((depth.value, depth.to_string()), (5.0, "5".to_string()));
        assert_eq!(read_number(body, "/queue/lag").unwrap().value, 2.5);
        assert_eq!(read_number(body, "/queue/tags/1/x").unwrap().value, -3.0);
        assert_eq!(read_number(b" 42 ", "").unwrap().text, "42");

        assert_eq!(
            read_number(body, "/queue/size"),
            Err(ReadError::Missing {
                pointer: "/queue/size".into()
            })
        );
        assert_eq!(
            read_number(body, "/queue/name"),
            Err(ReadError::NotNumber {
                pointer: "/queue/name".into(),
                found: "\"jobs\"".into()
            })
        );
        assert!(matches!(
            read_number(b"<html>", "/queue/depth"),
            Err(ReadError::NotJson(_))
        ));
        assert!(matches!(
            read_number(b"", "/queue/depth"),
            Err(ReadError::NotJson(_))
        ));
        // A number given as a string is not a number.
        assert!(matches!(
            read_number(br#"{"d":"5"}"#, "/d"),
            Err(ReadError::NotNumber { .. })
        ));
    }

    #[test]
    fn read_error_messages() {
        let url = "http://127.0.0.1:8080/metrics";
        let e = read_number(b"<html>", "/queue/depth").unwrap_err();
        assert!(
            e.message(url)
                .starts_with("body of http://127.0.0.1:8080/metrics is not JSON: "),
            "{}",
            e.message(url)
        );
        assert_eq!(
            read_number(b"{}", "/queue/depth").unwrap_err().message(url),
            "no value at /queue/depth in the JSON from http://127.0.0.1:8080/metrics"
        );
        assert_eq!(
            read_number(br#"{"queue":{"depth":null}}"#, "/queue/depth")
                .unwrap_err()
                .message(url),
            "/queue/depth in the JSON from http://127.0.0.1:8080/metrics is null, not a number"
        );
        let long = format!(r#"{{"d":"{}"}}"#, "x".repeat(200));
        match read_number(long.as_bytes(), "/d").unwrap_err() {
            ReadError::NotNumber { found, .. } => {
                assert_eq!(found.chars().count(), EXCERPT_CHARS + 1);
                assert!(found.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Authorization: Bearer abc"),
            Ok(("Authorization".into(), "Bearer abc".into()))
        );
        assert_eq!(
            parse_header("X-Token:a:b"),
            Ok(("X-Token".into(), "a:b".into()))
        );
        for bad in ["NoColon", ": value", "Bad Name: x", "A: b\r\nC: d"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn describe_documents_every_param() {
        let info = QueueDepth::describe();
        assert_eq!(info.name, "queue-depth");
        let names: Vec<_> = info.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["url", "pointer", "warn", "critical", "header"]);
        assert!(info.params.iter().all(|p| !p.description.is_empty()));
        assert!(info.params[0].required && info.params[1].required);
        assert_eq!(info.params[2].default.as_deref(), Some("100"));
        assert_eq!(info.params[3].default.as_deref(), Some("1000"));
        assert!(info.params[4].repeatable);
    }

    #[test]
    fn bad_params_are_invalid_param() {
        // All of these fail before any request is sent (the HTTP import panics natively).
        let budget = Budget::new(1000);
        let url = ("url", "http://127.0.0.1:8080/metrics");
        let pointer = ("pointer", "/queue/depth");
        for (pairs, name) in [
            (vec![pointer], "url"),
            (vec![url], "pointer"),
            (vec![url, ("pointer", "queue/depth")], "pointer"),
            (vec![url, pointer, ("warn", "many")], "warn"),
            (vec![url, pointer, ("critical", "1k")], "critical"),
            (
                vec![url, pointer, ("warn", "500"), ("critical", "50")],
                "warn",
            ),
            (vec![url, pointer, ("warn", "2000")], "warn"),
            (vec![url, pointer, ("header", "nocolon")], "header"),
        ] {
            // As the SDK calls `check`: with the declared defaults filled in.
            let params =
                Params::from_pairs(pairs.clone()).with_defaults(&QueueDepth::describe().params);
            match QueueDepth::check(&params, budget) {
                Err(CheckError::InvalidParam(p)) => assert_eq!(p.name, name, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }
}
