//! [`TcpError`]: why a TCP operation failed, naming the address, and how it becomes a
//! check's verdict.

use std::fmt;
use std::io::{self, ErrorKind};
use std::time::Duration;

use super::sys;
use crate::{Budget, CheckError, CheckResult};

/// Why a TCP operation failed. Every message names the address.
#[derive(Debug)]
pub enum TcpError {
    /// The address is not of the form `host:port`.
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host name could not be resolved.
    Resolve {
        /// The address as given.
        address: String,
        /// The resolver's explanation.
        reason: String,
    },
    /// The peer refused the connection (nothing listens on the port).
    Refused {
        /// The address as given.
        address: String,
    },
    /// The host or its network cannot be reached.
    Unreachable {
        /// The address as given.
        address: String,
    },
    /// The budget ran out (or the socket timed out) while `action` was going on.
    Timeout {
        /// The address as given.
        address: String,
        /// What was going on: `resolving`, `connecting`, `reading` or `writing`.
        action: &'static str,
        /// How long the check had been running when it gave up (zero when no budget
        /// was given), for the message: `timeout after 1.9 s reading 127.0.0.1:1883`.
        after: Duration,
    },
    /// The host's network policy refused the connection (the host names the grant).
    Denied {
        /// The address as given.
        address: String,
        /// What was refused: `resolving`, `connecting`, `reading` or `writing`.
        action: &'static str,
    },
    /// Any other I/O failure.
    Io {
        /// The address as given.
        address: String,
        /// The underlying error.
        source: io::Error,
    },
    /// TLS failed: the handshake (a refused certificate, a peer that does not speak
    /// TLS) or the TLS stream (a server that refused the client certificate).
    Tls {
        /// The address as given.
        address: String,
        /// The host's explanation, such as `unknown issuer` or `certificate expired on …`.
        reason: String,
    },
}

impl TcpError {
    /// The budget ran out while `action` was going on.
    pub fn timeout(address: &str, action: &'static str, budget: Option<&Budget>) -> Self {
        TcpError::Timeout {
            address: address.to_string(),
            action,
            after: budget.map(Budget::elapsed).unwrap_or_default(),
        }
    }

    pub(super) fn from_io(
        address: &str,
        action: &'static str,
        e: io::Error,
        budget: Option<&Budget>,
    ) -> Self {
        if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) {
            return TcpError::timeout(address, action, budget);
        }
        let address = address.to_string();
        match e.kind() {
            ErrorKind::ConnectionRefused => TcpError::Refused { address },
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                TcpError::Unreachable { address }
            }
            ErrorKind::PermissionDenied => TcpError::Denied { address, action },
            _ => TcpError::Io { address, source: e },
        }
    }

    pub(super) fn from_sys(
        address: &str,
        action: &'static str,
        e: sys::Fail,
        budget: Option<&Budget>,
    ) -> Self {
        match e {
            sys::Fail::Timeout => TcpError::timeout(address, action, budget),
            sys::Fail::Resolve(reason) => TcpError::Resolve {
                address: address.to_string(),
                reason,
            },
            sys::Fail::Io(e) => TcpError::from_io(address, action, e, budget),
            sys::Fail::Tls(reason) => TcpError::Tls {
                address: address.to_string(),
                reason,
            },
        }
    }

    /// A short name for the kind of failure, for a check's `error` detail:
    /// `invalid-address`, `resolve`, `refused`, `unreachable`, `timeout`, `denied`, `io` or
    /// `tls`.
    pub fn kind(&self) -> &'static str {
        match self {
            TcpError::InvalidAddress { .. } => "invalid-address",
            TcpError::Resolve { .. } => "resolve",
            TcpError::Refused { .. } => "refused",
            TcpError::Unreachable { .. } => "unreachable",
            TcpError::Timeout { .. } => "timeout",
            TcpError::Denied { .. } => "denied",
            TcpError::Io { .. } => "io",
            TcpError::Tls { .. } => "tls",
        }
    }

    /// The verdict for a check that failed with this error: an invalid address is the
    /// operator's mistake in the `address` parameter; everything else means the
    /// service is unhealthy, with the error as the message and its [`kind`](Self::kind)
    /// as the `error` detail.
    pub fn into_verdict(self) -> Result<CheckResult, CheckError> {
        match self {
            TcpError::InvalidAddress { reason, .. } => {
                Err(CheckError::invalid_param("address", reason))
            }
            e => Ok(CheckResult::unhealthy(e.to_string()).detail("error", e.kind())),
        }
    }

    /// The address the error is about, as given.
    pub fn address(&self) -> &str {
        match self {
            TcpError::InvalidAddress { address, .. }
            | TcpError::Resolve { address, .. }
            | TcpError::Refused { address }
            | TcpError::Unreachable { address }
            | TcpError::Timeout { address, .. }
            | TcpError::Denied { address, .. }
            | TcpError::Io { address, .. }
            | TcpError::Tls { address, .. } => address,
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::InvalidAddress { address, reason } => {
                write!(f, "invalid address '{address}': {reason}")
            }
            TcpError::Resolve { address, reason } => {
                write!(f, "cannot resolve {address}: {reason}")
            }
            TcpError::Refused { address } => write!(f, "connection to {address} refused"),
            TcpError::Unreachable { address } => write!(f, "{address} is unreachable"),
            TcpError::Timeout {
                address,
                action,
                after,
            } => {
                write!(f, "timeout{} {action} {address}", After(*after))
            }
            TcpError::Denied { address, action } => {
                write!(f, "{action} {address} denied by the host")
            }
            TcpError::Io { address, source } => write!(f, "I/O error with {address}: {source}"),
            TcpError::Tls { address, reason } => write!(f, "TLS with {address} failed: {reason}"),
        }
    }
}

impl std::error::Error for TcpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TcpError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// ` after 1.9 s` (` after 450 ms` under a second), or nothing under a millisecond (no
/// budget was given, or none was left to spend): how timeouts say how long the check had
/// waited.
pub(super) struct After(pub Duration);

impl fmt::Display for After {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_millis(1) {
            Ok(())
        } else if d < Duration::from_secs(1) {
            write!(f, " after {} ms", d.as_millis())
        } else {
            write!(f, " after {:.1} s", d.as_secs_f64())
        }
    }
}
