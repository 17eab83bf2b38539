//! What a run ends with: the verdict, the report, and why a run failed. Plain data used by
//! the runner, the renderer and every command; it depends on nothing but the caps' types.

use std::time::Duration;

use crate::limits::LimitExceeded;

/// Why a run did not produce a verdict from the probe itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The probe could not be run at all (exit 3): bad arguments, unreadable or invalid
    /// component, wrong world, bad parameter.
    #[error("{0}")]
    BadInput(String),
    /// The deadline passed (exit 1).
    #[error("timeout after {}{}", crate::text::duration(*.after), .during.as_ref().map(|d| format!(" {d}")).unwrap_or_default())]
    Timeout {
        /// The configured timeout.
        after: Duration,
        /// What was going on (`while compiling the probe`, `waiting for http://…`), when
        /// known.
        during: Option<String>,
    },
    /// The fuel ran out (exit 1).
    #[error("out of fuel ({} units); raise --fuel if the probe is honest", .0)]
    OutOfFuel(u64),
    /// A memory, table or socket cap was hit (exit 1).
    #[error("{}{}", .0, .0.flag().map(|f| format!("; raise {f} if the probe is honest")).unwrap_or_default())]
    Limit(LimitExceeded),
    /// The guest trapped (exit 1): a panic, a stack overflow, a wasm bug.
    #[error("probe crashed: {0}")]
    Trap(String),
    /// A host function the probe called failed with an error of the host's rather than a
    /// result the probe could handle (exit 1).
    #[error("a host call failed: {0}")]
    HostCall(String),
    /// The host could not set itself up to run the probe: the engine, a thread, the
    /// compiler (exit 3; nothing about the probe was judged).
    #[error("{0}")]
    Setup(String),
}

impl Failure {
    /// The verdict a run that failed this way gets.
    pub fn verdict(&self) -> Verdict {
        match self {
            Failure::BadInput(_) | Failure::Setup(_) => Verdict::Error,
            Failure::Timeout { .. }
            | Failure::OutOfFuel(_)
            | Failure::Limit(_)
            | Failure::Trap(_)
            | Failure::HostCall(_) => Verdict::Unhealthy,
        }
    }

    /// Short machine name of the cause, for `--format json` details.
    pub fn cause(&self) -> &'static str {
        match self {
            Failure::BadInput(_) => "bad-input",
            Failure::Setup(_) => "setup",
            Failure::Timeout { .. } => "timeout",
            Failure::OutOfFuel(_) => "out-of-fuel",
            Failure::Limit(LimitExceeded::Memory { .. }) => "memory-limit",
            Failure::Limit(LimitExceeded::Table { .. }) => "table-limit",
            Failure::Limit(LimitExceeded::Sockets { .. }) => "socket-limit",
            Failure::Limit(LimitExceeded::Handles { .. }) => "resource-limit",
            Failure::Limit(LimitExceeded::RandomBytes { .. }) => "memory-limit",
            Failure::Limit(LimitExceeded::HostMemory { .. }) => "memory-limit",
            Failure::Trap(_) => "trap",
            Failure::HostCall(_) => "host-call",
        }
    }
}

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Exit 0.
    Healthy,
    /// Exit 0, with a warning.
    Degraded,
    /// Exit 1.
    Unhealthy,
    /// Exit 3: the probe could not be run.
    Error,
}

impl Verdict {
    /// The verdict as a word (`healthy`, `degraded`, `unhealthy`, `error`): the first word of
    /// the output line, and serve's log and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Unhealthy => "unhealthy",
            Verdict::Error => "error",
        }
    }

    /// The process exit status for this verdict: 0 healthy or degraded, 1 unhealthy, 3 not
    /// run at all; never 2, which Docker reserves.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy | Verdict::Degraded => 0,
            Verdict::Unhealthy => 1,
            Verdict::Error => crate::EXIT_ERROR,
        }
    }
}

/// Everything known about a finished run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// The probe's name (from `describe`, else the PROBE argument).
    pub probe: String,
    /// One line: the cause.
    pub message: String,
    /// Facts from the probe (and the host, for failures).
    pub details: Vec<(String, Detail)>,
    /// Wall time from the start of the run.
    pub elapsed: Duration,
    /// Captured guest stdout: kept bytes and count of discarded bytes.
    pub stdout: (Vec<u8>, u64),
    /// Captured guest stderr: kept bytes and count of discarded bytes.
    pub stderr: (Vec<u8>, u64),
    /// SHA-256 of the component that ran, once it was read.
    pub sha256: Option<String>,
    /// How its code was obtained: precompiled, from the compile cache, or compiled.
    pub code: Option<String>,
    /// What the host saw of the probe's last request through the `http` import.
    pub http: Option<crate::activity::Exchange>,
    /// The address of the probe's last TCP connection through `wasi:sockets`.
    pub connected: Option<std::net::SocketAddr>,
}

/// `haystack` with every occurrence of `needle` replaced by `with`.
fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The value of a detail: typed as a probe of world `probe` gave it; text from a probe of
/// `probe-text` (0.1.0's world) and for the host's own details.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Detail {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction (never NaN or infinite: those become text).
    Number(f64),
    /// Yes or no.
    Flag(bool),
}

impl Detail {
    /// The value as a number, for a gauge: a flag is 0 or 1; text only if it reads as a
    /// finite number (a `probe-text` probe's numbers are text).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Detail::Text(t) => t.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            // i64 to f64 rounds above 2^53, as any gauge value does.
            #[allow(clippy::cast_precision_loss)]
            Detail::Integer(i) => Some(*i as f64),
            Detail::Number(n) => Some(*n),
            Detail::Flag(b) => Some(f64::from(u8::from(*b))),
        }
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Detail::Text(t) => f.write_str(t),
            Detail::Integer(i) => write!(f, "{i}"),
            Detail::Number(n) => write!(f, "{n}"),
            Detail::Flag(b) => write!(f, "{b}"),
        }
    }
}

impl From<String> for Detail {
    fn from(s: String) -> Self {
        Detail::Text(s)
    }
}

impl From<&str> for Detail {
    fn from(s: &str) -> Self {
        Detail::Text(s.to_string())
    }
}

impl From<usize> for Detail {
    fn from(n: usize) -> Self {
        i64::try_from(n).map_or_else(|_| Detail::Text(n.to_string()), Detail::Integer)
    }
}

impl From<crate::bindings::healthprobe::probe::types::Value> for Detail {
    fn from(v: crate::bindings::healthprobe::probe::types::Value) -> Self {
        use crate::bindings::healthprobe::probe::types::Value;
        match v {
            Value::Text(t) => Detail::Text(t),
            Value::Integer(i) => Detail::Integer(i),
            Value::Number(n) if n.is_finite() => Detail::Number(n),
            Value::Number(n) => Detail::Text(n.to_string()),
            Value::Flag(b) => Detail::Flag(b),
        }
    }
}

/// The detail of when a TLS server's certificate expires, in seconds since the epoch (the
/// earliest if several connections): blackbox_exporter's `probe_ssl_earliest_cert_expiry`.
/// The SDK gives it for `wasi:tls` connections, the host for the `http` import's.
pub const SSL_EXPIRY_DETAIL: &str = "ssl-earliest-cert-expiry";
/// The detail of the TLS version of the last handshake (`TLSv1.3`): blackbox_exporter's
/// `probe_tls_version_info`.
pub const TLS_VERSION_DETAIL: &str = "tls-version";

/// Most details a report keeps of what a probe returned; the rest are dropped and counted in
/// one more detail, `details-dropped`. A probe's answer is lifted into host memory and then
/// rendered by every command (`run`'s JSON, serve's `/health` and `/probe` gauges), so it is
/// bounded once, here, before anything renders it.
pub const MAX_DETAILS: usize = 64;
/// Longest detail name kept, in bytes; a longer one is cut.
pub const MAX_DETAIL_NAME: usize = 128;
/// Longest detail value kept, in bytes; a longer one is cut.
pub const MAX_DETAIL_VALUE: usize = 1024;
/// Longest message kept from a probe, in bytes (the text line shows at most 1024).
pub const MAX_PROBE_MESSAGE: usize = 4096;

/// A probe's message and details cut to [`MAX_PROBE_MESSAGE`], [`MAX_DETAILS`],
/// [`MAX_DETAIL_NAME`] and [`MAX_DETAIL_VALUE`]; dropped details are counted in
/// `details-dropped`.
pub fn bounded(
    message: String,
    details: Vec<(String, crate::bindings::healthprobe::probe::types::Value)>,
) -> (String, Vec<(String, Detail)>) {
    use crate::text::excerpt;
    let message = if message.len() > MAX_PROBE_MESSAGE {
        excerpt(&message, MAX_PROBE_MESSAGE)
    } else {
        message
    };
    let dropped = details.len().saturating_sub(MAX_DETAILS);
    let mut details: Vec<(String, Detail)> = details
        .into_iter()
        .take(MAX_DETAILS)
        .map(|(name, value)| (name, Detail::from(value)))
        .collect();
    for (name, value) in &mut details {
        if name.len() > MAX_DETAIL_NAME {
            *name = excerpt(name, MAX_DETAIL_NAME);
        }
        if let Detail::Text(text) = value
            && text.len() > MAX_DETAIL_VALUE
        {
            *text = excerpt(text, MAX_DETAIL_VALUE);
        }
    }
    if dropped > 0 {
        details.push(("details-dropped".into(), dropped.into()));
    }
    (message, details)
}

impl Report {
    /// A report with nothing captured, no details and no digest yet: every report starts
    /// here.
    pub fn new(
        verdict: Verdict,
        probe: impl Into<String>,
        message: impl Into<String>,
        elapsed: Duration,
    ) -> Self {
        Report {
            verdict,
            probe: probe.into(),
            message: message.into(),
            details: Vec::new(),
            elapsed,
            stdout: (Vec::new(), 0),
            stderr: (Vec::new(), 0),
            sha256: None,
            code: None,
            http: None,
            connected: None,
        }
    }

    /// Replaces every occurrence of each of `secrets` in what the report shows (its
    /// message, its details' names and text, the probe's captured output) with
    /// [`crate::params::REDACTED`]: whatever a probe or a server echoed of a secret
    /// parameter, no output shows it.
    pub fn redact(&mut self, secrets: &[String]) {
        use crate::params::REDACTED;
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            let hide = |text: &mut String| {
                if text.contains(secret.as_str()) {
                    *text = text.replace(secret.as_str(), REDACTED);
                }
            };
            hide(&mut self.message);
            for (name, value) in &mut self.details {
                hide(name);
                if let Detail::Text(text) = value {
                    hide(text);
                }
            }
            for (bytes, _) in [&mut self.stdout, &mut self.stderr] {
                *bytes = replace_bytes(bytes, secret.as_bytes(), REDACTED.as_bytes());
            }
        }
    }

    /// The report of a run that ended before the probe produced a result.
    pub fn failed(probe: &str, failure: &Failure, elapsed: Duration) -> Self {
        Report {
            details: vec![("cause".into(), failure.cause().into())],
            ..Report::new(failure.verdict(), probe, failure.to_string(), elapsed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_wherever_they_show() {
        let mut r = Report::new(
            Verdict::Unhealthy,
            "p",
            "bad hunter2 and hunter2",
            Duration::ZERO,
        );
        r.details = vec![
            ("hunter2".into(), Detail::Text("x-hunter2-y".into())),
            ("n".into(), Detail::Integer(2)),
        ];
        r.stderr = (b"said hunter2\n".to_vec(), 0);
        r.redact(&["hunter2".into(), String::new()]);
        assert_eq!(r.message, "bad [redacted] and [redacted]");
        assert_eq!(
            r.details[0],
            ("[redacted]".into(), Detail::Text("x-[redacted]-y".into()))
        );
        assert_eq!(r.stderr.0, b"said [redacted]\n");
        assert_eq!(replace_bytes(b"aaa", b"aa", b"b"), b"ba");
    }

    #[test]
    fn a_flood_of_details_is_cut_and_counted() {
        use crate::bindings::healthprobe::probe::types::Value;
        let details = (0..200_000)
            .map(|i| (format!("d{i}"), Value::Integer(i)))
            .collect();
        let (message, details) = bounded("x".repeat(1 << 20), details);
        assert!(message.len() <= MAX_PROBE_MESSAGE);
        assert_eq!(details.len(), MAX_DETAILS + 1);
        assert_eq!(details[0], ("d0".into(), Detail::Integer(0)));
        assert_eq!(
            details.last().unwrap(),
            &(
                "details-dropped".into(),
                Detail::Integer((200_000 - MAX_DETAILS) as i64)
            )
        );
        let (_, long) = bounded(
            String::new(),
            vec![("n".repeat(1000), Value::Text("v".repeat(5000)))],
        );
        assert!(
            long[0].0.len() <= MAX_DETAIL_NAME && long[0].1.to_string().len() <= MAX_DETAIL_VALUE
        );
        assert_eq!(long.len(), 1);
        // Not a number a gauge or JSON can carry: kept as text.
        let (_, odd) = bounded(String::new(), vec![("n".into(), Value::Number(f64::NAN))]);
        assert_eq!(odd[0].1, Detail::Text("NaN".into()));
    }
}
