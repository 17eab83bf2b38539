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
            Failure::Limit(LimitExceeded::RandomBytes { .. }) => "memory-limit",
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
    pub details: Vec<(String, String)>,
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
}

impl Report {
    /// The report of a run that ended before the probe produced a result.
    pub fn failed(probe: &str, failure: &Failure, elapsed: Duration) -> Self {
        Report {
            verdict: failure.verdict(),
            probe: probe.to_string(),
            message: failure.to_string(),
            details: vec![("cause".into(), failure.cause().into())],
            elapsed,
            stdout: (Vec::new(), 0),
            stderr: (Vec::new(), 0),
            sha256: None,
            code: None,
        }
    }
}
